// GET /v1/nodes, GET /v1/nodes/{uid}: every node's live state as this node sees it
// (liveness lease in the store, and a control-plane probe over the internode channel).
import type { FastifyPluginAsync } from 'fastify';
import type { NodeDaemon } from '../../control/daemon.js';
import type { ClusterMember } from '../../control/member.js';
import type { NodeRecord } from '../../coord/schema.js';
import { notFound } from '../errors.js';

export function nodeView(m: ClusterMember, n: NodeRecord) {
  const live = m.live.items.get(String(n.uid));
  const self = n.uid === m.uid;
  const probe = self ? { ok: true, at: Date.now(), status: m.statusReply() } : m.probes.get(n.uid);
  const status = probe?.status;
  return {
    uid: n.uid,
    addr: n.addr,
    status: live ? 'active' : 'down',
    is_master: m.masterUid === n.uid,
    software_version: status?.software_version ?? n.software_version,
    capabilities: n.capabilities,
    shard_count: 0,
    shard_list: [] as number[],
    uptime: live ? Math.max(0, Math.round((Date.now() - Date.parse(live.started_time)) / 1000)) : 0,
    cores: status?.cores ?? null,
    total_memory: status?.total_memory ?? null,
    control_plane_link: self ? 'local' : probe?.ok ? 'ok' : 'unreachable',
    last_seen: probe?.at ? new Date(probe.at).toISOString() : null,
    ports: n.ports,
  };
}

const uidParams = {
  type: 'object',
  required: ['uid'],
  properties: { uid: { type: 'string', pattern: '^[0-9]{1,9}$' } },
} as const;

export const nodesRoutes: FastifyPluginAsync<{ daemon: NodeDaemon }> = async (app, { daemon }) => {
  app.get('/v1/nodes', async () => {
    const m = daemon.requireMember();
    return m.nodes
      .values()
      .filter((n) => n.addr)
      .sort((a, b) => a.uid - b.uid)
      .map((n) => nodeView(m, n));
  });

  app.get<{ Params: { uid: string } }>('/v1/nodes/:uid', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const n = m.nodes.items.get(String(Number(req.params.uid)));
    if (!n || !n.addr) throw notFound('node_not_found', `node ${req.params.uid} does not exist`);
    return nodeView(m, n);
  });
};
