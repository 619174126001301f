// GET /v1/shards, GET /v1/shards/{uid}: every shard of every database, in
// Redis Enterprise's shard object (uid and node_uid as strings, bdb_uid a
// number, role, assigned_slots, status, detailed_status, report_timestamp).
//
// POST /v1/shards/{uid}/actions/failover, /v1/shards/actions/failover
// ({"shard_uids": [...]}) and /v1/shards/{uid}/actions/migrate,
// /v1/shards/actions/migrate ({"shard_uids": [...], "target_node_uid": N}):
// validated here, queued as an action that the cluster master runs
// (control/controllers/shard-ops.ts); the answer is `{action_uid, description}`, and
// `GET /v1/actions/{uid}` follows it.
import type { FastifyPluginAsync } from 'fastify';
import type { ApiNode, ApiReadView } from '../services.js';
import { notFound } from '../../util/errors.js';
import { isGone } from '../../control/model/shard-plans.js';
import { rangesText } from '../../control/model/reshard-plan.js';
import { uidParams } from '../schemas.js';
import { shardStates } from './bdbs.js';

function shardViews(m: ApiReadView) {
  return m
    .databases()
    .filter((b) => !isGone(b))
    .flatMap((b) => {
      const states = shardStates(m, b);
      return b.shards.map((s) => {
        const st = states.get(s.uid)!;
        return {
          uid: String(s.uid),
          bdb_uid: b.uid,
          node_uid: String(s.node_uid),
          role: s.role,
          assigned_slots: rangesText(s),
          status: st.status === 'active' ? 'active' : 'inactive',
          detailed_status: detailedStatus(st),
          // Why it refuses writes (reason aof_write, bgsave or oom, and the message): Tessera's.
          ...(st.write_refused ? { write_refused: st.write_refused } : {}),
          ...(s.master_uid !== undefined ? { master_uid: String(s.master_uid) } : {}),
          ...(st.sync ? { sync: st.sync } : {}),
          ...(st.reported ? { report_timestamp: st.reported } : {}),
        };
      });
    })
    .sort((a, b) => Number(a.uid) - Number(b.uid));
}

/**
 * RE's detailed_status where one fits (ok, down, loading). A running shard that refuses writes has no RE
 * value (busy and timeout say that it does not answer): `misconf` (its AOF or snapshot cannot be written;
 * clients get -MISCONF) and `oom` (full with noeviction; clients get -OOM) are Tessera's.
 */
export function detailedStatus(st: { status: string; write_refused?: { reason: string } }): string {
  if (st.status === 'down') return 'down';
  if (st.status !== 'active') return 'loading';
  if (!st.write_refused) return 'ok';
  return st.write_refused.reason === 'oom' ? 'oom' : 'misconf';
}

/** A uid in a body: Redis Enterprise sends shard uids as strings; numbers are taken too. */
const uidValue = {
  anyOf: [
    { type: 'string', pattern: '^[0-9]{1,9}$' },
    { type: 'integer', minimum: 0 },
  ],
} as const;
/** `immediate` (rladmin's word) is ours: switch without waiting for the replica to catch up. */
const failoverOne = { type: 'object', additionalProperties: false, properties: { immediate: { type: 'boolean' } } } as const;
const failoverMany = {
  type: 'object',
  additionalProperties: false,
  properties: { shard_uids: { type: 'array', items: uidValue }, immediate: { type: 'boolean' } },
} as const;
const migrateOne = { type: 'object', additionalProperties: false, properties: { target_node_uid: uidValue } } as const;
const migrateMany = {
  type: 'object',
  additionalProperties: false,
  properties: { shard_uids: { type: 'array', items: uidValue }, target_node_uid: uidValue },
} as const;

/** A POST without a body is an empty one (Redis Enterprise's clients send none when there is nothing to say). */
const noBodyIsEmpty = async (req: { body: unknown }) => {
  if (req.body === undefined || req.body === null) req.body = {};
};

type Uid = string | number;
const uids = (v: Uid[] | undefined) => (v ?? []).map(Number);
const optUid = (v: Uid | undefined) => (v === undefined ? undefined : Number(v));

export const shardsRoutes: FastifyPluginAsync<{ daemon: ApiNode }> = async (app, { daemon }) => {
  app.get('/v1/shards', async () => shardViews(daemon.requireMember()));
  app.get<{ Params: { uid: string } }>('/v1/shards/:uid', { schema: { params: uidParams } }, async (req) => {
    const s = shardViews(daemon.requireMember()).find((x) => x.uid === String(Number(req.params.uid)));
    if (!s) throw notFound('shard_not_found', `no shard with uid ${req.params.uid}`);
    return s;
  });

  app.post<{ Body: { shard_uids?: Uid[]; immediate?: boolean } }>(
    '/v1/shards/actions/failover',
    { preValidation: noBodyIsEmpty, schema: { body: failoverMany } },
    async (req) => {
      const a = await daemon
        .requireMember()
        .shardOps.requestFailover(req.log, uids(req.body?.shard_uids), { immediate: req.body?.immediate });
      return { action_uid: a.action_uid, description: 'Failover was triggered' };
    },
  );
  app.post<{ Params: { uid: string }; Body: { immediate?: boolean } }>(
    '/v1/shards/:uid/actions/failover',
    { preValidation: noBodyIsEmpty, schema: { params: uidParams, body: failoverOne } },
    async (req) => {
      const a = await daemon
        .requireMember()
        .shardOps.requestFailover(req.log, [Number(req.params.uid)], { immediate: req.body?.immediate });
      return { action_uid: a.action_uid, description: 'Failover was triggered' };
    },
  );
  app.post<{ Body: { shard_uids?: Uid[]; target_node_uid?: Uid } }>(
    '/v1/shards/actions/migrate',
    { preValidation: noBodyIsEmpty, schema: { body: migrateMany } },
    async (req) => {
      const a = await daemon
        .requireMember()
        .shardOps.requestMigrate(req.log, uids(req.body?.shard_uids), optUid(req.body?.target_node_uid));
      return { action_uid: a.action_uid, description: 'Migrate was triggered' };
    },
  );
  app.post<{ Params: { uid: string }; Body: { target_node_uid?: Uid } }>(
    '/v1/shards/:uid/actions/migrate',
    { preValidation: noBodyIsEmpty, schema: { params: uidParams, body: migrateOne } },
    async (req) => {
      const a = await daemon.requireMember().shardOps.requestMigrate(req.log, [Number(req.params.uid)], optUid(req.body?.target_node_uid));
      return { action_uid: a.action_uid, description: 'Migrate was triggered' };
    },
  );
};
