// Bootstrap (Redis Enterprise shapes): GET /v1/bootstrap, POST /v1/bootstrap/{create_cluster,join_cluster}.
// Open without credentials: before a cluster exists there are no users to check.
import type { FastifyPluginAsync } from 'fastify';
import type { BootstrapNode } from '../services.js';
import { OperatorError } from '../../util/errors.js';
import { credentialsBody } from '../schemas.js';
import { parseFingerprint } from '../../pki/pki.js';

const credentials = credentialsBody;

const node = {
  type: 'object',
  additionalProperties: false,
  properties: {
    identity: { type: 'object', additionalProperties: false, properties: { addr: { type: 'string', minLength: 1 } } },
  },
} as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['cluster', 'credentials'],
  properties: {
    action: { const: 'create_cluster' },
    cluster: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: { name: { type: 'string', pattern: '^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$' } },
    },
    credentials,
    node,
  },
} as const;

const joinBody = {
  type: 'object',
  additionalProperties: false,
  required: ['cluster', 'credentials'],
  properties: {
    action: { const: 'join_cluster' },
    cluster: {
      type: 'object',
      additionalProperties: false,
      required: ['nodes'],
      properties: {
        name: { type: 'string' },
        /** Tessera's: the cluster's REST CA fingerprint (`sha256:<hex>`), as `cluster create` printed it. */
        ca_fingerprint: { type: 'string', maxLength: 200 },
        nodes: { type: 'array', minItems: 1, maxItems: 64, items: { type: 'string', pattern: '^[A-Za-z0-9.\\-]+(:[0-9]{1,5})?$' } },
      },
    },
    credentials,
    node,
  },
} as const;

interface CreateBody {
  cluster: { name: string };
  credentials: { username: string; password: string };
  node?: { identity?: { addr?: string } };
}
interface JoinBody {
  cluster: { nodes: string[]; ca_fingerprint?: string };
  credentials: { username: string; password: string };
  node?: { identity?: { addr?: string } };
}

export const bootstrapRoutes: FastifyPluginAsync<{ daemon: BootstrapNode }> = async (app, { daemon }) => {
  const checkAddr = (b: { node?: { identity?: { addr?: string } } }) => {
    const want = b.node?.identity?.addr;
    if (want && want !== daemon.cfg.addr)
      throw new OperatorError('invalid', 'invalid_address', `this node's address is ${daemon.cfg.addr}, not ${want}`);
  };

  // Tessera's additions: the REST trust anchor (public; a CLI or joining node compares its fingerprint with a pinned one).
  const status = () => {
    const t = daemon.restTrust();
    return {
      bootstrap_status: daemon.bootstrap,
      local_node_info: daemon.localNodeInfo(),
      ...(t ? { rest_ca_cert: t.certPem, rest_ca_fingerprint: t.fingerprint } : {}),
    };
  };

  app.get('/v1/bootstrap', { config: { auth: false } }, async () => status());

  app.post<{ Body: CreateBody }>('/v1/bootstrap/create_cluster', { config: { auth: false }, schema: { body: createBody } }, async (req) => {
    checkAddr(req.body);
    await daemon.createCluster({ name: req.body.cluster.name, ...req.body.credentials });
    return status();
  });

  app.post<{ Body: JoinBody }>('/v1/bootstrap/join_cluster', { config: { auth: false }, schema: { body: joinBody } }, async (req) => {
    checkAddr(req.body);
    const pin = req.body.cluster.ca_fingerprint;
    const caFingerprint = pin === undefined ? undefined : parseFingerprint(pin);
    if (pin !== undefined && !caFingerprint)
      throw new OperatorError('invalid', 'invalid_fingerprint', 'ca_fingerprint must be sha256:<64 hex digits>');
    await daemon.joinCluster({ nodes: req.body.cluster.nodes, caFingerprint, ...req.body.credentials });
    return status();
  });
};
