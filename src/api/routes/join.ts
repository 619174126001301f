// The member's side of a join: admit a node (sign its CSRs, add its store
// member as a learner), promote it once caught up, or undo it. Admin only.
import type { FastifyPluginAsync } from 'fastify';
import type { JoinNodeRequest } from '../../control/bootstrap/daemon.js';
import type { JoinAdmission } from '../services.js';
import { uidParams } from '../schemas.js';
import { VERSION_HEADER } from '../../control/model/version-gates.js';

const pem = { type: 'string', minLength: 64, maxLength: 65536 } as const;
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;

const joinNodeBody = {
  type: 'object',
  additionalProperties: false,
  required: ['addr', 'ports', 'csrs'],
  properties: {
    addr: { type: 'string', format: 'ipv4' },
    ports: {
      type: 'object',
      additionalProperties: false,
      required: ['rest', 'internode', 'dp_plain', 'etcd_peer', 'etcd_client', 'metrics'],
      properties: { rest: port, internode: port, dp_plain: port, etcd_peer: port, etcd_client: port, metrics: port, ui: port },
    },
    csrs: {
      type: 'object',
      additionalProperties: false,
      required: ['cp', 'dp', 'api'],
      properties: { cp: pem, dp: pem, api: pem, cm: pem, proxy: pem, metrics_exporter: pem },
    },
  },
} as const;

export const joinRoutes: FastifyPluginAsync<{ daemon: JoinAdmission }> = async (app, { daemon }) => {
  app.post<{ Body: JoinNodeRequest }>('/v1/cluster/join_node', { schema: { body: joinNodeBody } }, async (req) =>
    daemon.admitNode(req.body, typeof req.headers[VERSION_HEADER] === 'string' ? req.headers[VERSION_HEADER] : undefined),
  );

  app.post<{ Params: { uid: string } }>('/v1/cluster/join_node/:uid/promote', { schema: { params: uidParams } }, async (req) => {
    await daemon.promoteJoin(Number(req.params.uid));
    return {};
  });

  app.post<{ Params: { uid: string } }>('/v1/cluster/join_node/:uid/abort', { schema: { params: uidParams } }, async (req) => {
    await daemon.abortJoin(Number(req.params.uid));
    return {};
  });
};
