// Bootstrap (Redis Enterprise shapes): GET /v1/bootstrap, POST /v1/bootstrap/{create_cluster,join_cluster}.
// Open without credentials: before a cluster exists there are no users to check.
import type { FastifyPluginAsync } from 'fastify';
import type { NodeDaemon } from '../../control/daemon.js';
import { OperatorError } from '../../util/errors.js';
import { credentialsBody } from '../schemas.js';

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
  cluster: { nodes: string[] };
  credentials: { username: string; password: string };
  node?: { identity?: { addr?: string } };
}

export const bootstrapRoutes: FastifyPluginAsync<{ daemon: NodeDaemon }> = async (app, { daemon }) => {
  const checkAddr = (b: { node?: { identity?: { addr?: string } } }) => {
    const want = b.node?.identity?.addr;
    if (want && want !== daemon.cfg.addr) throw new OperatorError('invalid', 'invalid_address', `this node's address is ${daemon.cfg.addr}, not ${want}`);
  };

  app.get('/v1/bootstrap', { config: { auth: false } }, async () => ({
    bootstrap_status: daemon.bootstrap,
    local_node_info: daemon.localNodeInfo(),
  }));

  app.post<{ Body: CreateBody }>('/v1/bootstrap/create_cluster', { config: { auth: false }, schema: { body: createBody } }, async (req) => {
    checkAddr(req.body);
    await daemon.createCluster({ name: req.body.cluster.name, ...req.body.credentials });
    return { bootstrap_status: daemon.bootstrap, local_node_info: daemon.localNodeInfo() };
  });

  app.post<{ Body: JoinBody }>('/v1/bootstrap/join_cluster', { config: { auth: false }, schema: { body: joinBody } }, async (req) => {
    checkAddr(req.body);
    await daemon.joinCluster({ nodes: req.body.cluster.nodes, ...req.body.credentials });
    return { bootstrap_status: daemon.bootstrap, local_node_info: daemon.localNodeInfo() };
  });
};
