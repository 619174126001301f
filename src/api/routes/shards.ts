// GET /v1/shards, GET /v1/shards/{uid}: every shard of every database, in
// Redis Enterprise's shard object (uid and node_uid as strings, bdb_uid a
// number, role, assigned_slots, status, detailed_status, report_timestamp).
import type { FastifyPluginAsync } from 'fastify';
import type { NodeDaemon } from '../../control/daemon.js';
import type { ClusterMember } from '../../control/member.js';
import { notFound } from '../../util/errors.js';
import { uidParams } from '../schemas.js';
import { shardStates } from './bdbs.js';

function shardViews(m: ClusterMember) {
  return (m.reconciler?.bdbs.values() ?? [])
    .filter((b) => b.status !== 'delete-pending' && b.status !== 'creation-failed')
    .flatMap((b) => {
      const states = shardStates(m, b);
      return b.shards.map((s) => {
        const st = states.get(s.uid)!;
        return {
          uid: String(s.uid),
          bdb_uid: b.uid,
          node_uid: String(s.node_uid),
          role: s.role,
          assigned_slots: `${s.slots[0]}-${s.slots[1]}`,
          status: st.status === 'active' ? 'active' : 'inactive',
          detailed_status: st.status === 'active' ? 'ok' : st.status === 'down' ? 'down' : 'loading',
          ...(s.master_uid !== undefined ? { master_uid: String(s.master_uid) } : {}),
          ...(st.reported ? { report_timestamp: st.reported } : {}),
        };
      });
    })
    .sort((a, b) => Number(a.uid) - Number(b.uid));
}

export const shardsRoutes: FastifyPluginAsync<{ daemon: NodeDaemon }> = async (app, { daemon }) => {
  app.get('/v1/shards', async () => shardViews(daemon.requireMember()));
  app.get<{ Params: { uid: string } }>('/v1/shards/:uid', { schema: { params: uidParams } }, async (req) => {
    const s = shardViews(daemon.requireMember()).find((x) => x.uid === String(Number(req.params.uid)));
    if (!s) throw notFound('shard_not_found', `no shard with uid ${req.params.uid}`);
    return s;
  });
};
