// PUT /v1/bdbs/{uid} with `shards_count` (and `sharding`): online resharding,
// as Redis Enterprise. Validated and planned here, before anything moves (a
// layout that cannot be placed is 409 with the reason); the plan's first step
// (the new shards, and the `reshard` marker with the moves) is written in one
// compare-and-swap with the database's status `active-change-pending` and a
// new action, and the answer is the database with `action_uid`. The cluster
// master's ReshardController (control/controllers/reshard.ts) moves the
// slots; `GET /v1/actions/{uid}` shows its steps.
import type { FastifyBaseLogger } from 'fastify';
import type { ApiMember } from '../services.js';
import type { BdbRecord } from '../../coord/schema.js';
import { OperatorError, conflict, invalid, notFound } from '../../util/errors.js';
import { requireClusterFeature } from '../version-gate.js';
import { MAX_SHARDS, planReshard, type ReshardPlan } from '../../control/model/reshard-plan.js';
import { placeableActiveNodes } from '../../control/services/bdb-create.js';

/** The fields a resharding request may carry (anything else is changed by its own PUT). */
const RESHARD_FIELDS = new Set(['shards_count', 'sharding']);

/** Does this PUT ask for a resharding? (bdbs.ts dispatches it here.) */
export const isReshard = (body: object): boolean => Object.hasOwn(body, 'shards_count');

function busyReason(b: BdbRecord): OperatorError | undefined {
  if (b.status === 'delete-pending') return conflict('db_busy', `database ${b.uid} is being deleted`);
  if (b.status === 'pending' || b.status === 'active-change-pending' || b.reshard)
    return conflict(
      'db_busy',
      `database ${b.uid} is busy with another change (status ${b.status}${b.action_uid ? `, action ${b.action_uid}` : ''}); reshard it once it is active`,
    );
  return undefined;
}

/**
 * Validate and start a resharding of database `uid`; the changed database.
 * 400: shards_count outside 1..512, sharding false above 1 shard, other fields,
 * no change; 404: no such database; 409: the cluster version is too old, the
 * database is busy, or the new layout cannot be placed.
 */
export async function reshardBdb(
  m: ApiMember,
  uid: number,
  body: { shards_count?: number; sharding?: boolean } & Record<string, unknown>,
  dryRun: boolean,
  log: FastifyBaseLogger,
): Promise<BdbRecord> {
  const extra = Object.keys(body).filter((k) => !RESHARD_FIELDS.has(k));
  if (extra.length)
    throw invalid('unsupported_change', `shards_count is changed alone (with sharding); change ${extra.join(', ')} in another request`);
  const n = body.shards_count;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_SHARDS)
    throw invalid('invalid_shards_count', `shards_count must be an integer from 1 to ${MAX_SHARDS}`);
  if (n > 1 && body.sharding === false) throw invalid('invalid_sharding', 'shards_count above 1 needs sharding: true');
  await requireClusterFeature(m, 'resharding');
  const before = await m.store.bdbs.get(uid);
  if (!before) throw notFound('db_not_exist', `database ${uid} does not exist`);
  const busy = busyReason(before);
  if (busy) throw busy;
  if (n === before.shards_count) throw invalid('no_change', `database ${uid} has ${n} shard${n > 1 ? 's' : ''} already`);

  // Placement as at creation: the active nodes not in maintenance mode, fewest shards first.
  const own = m.statusReply().total_memory;
  const eligible = (await placeableActiveNodes(m, m.store)).map((x) => ({
    uid: x.uid,
    memory: x.uid === m.uid ? own : (m.probes.get(x.uid)?.status?.total_memory ?? own),
  }));
  const loadNow = async () => {
    const load = new Map<number, number>();
    for (const b of await m.store.bdbs.list()) for (const s of b.shards) load.set(s.node_uid, (load.get(s.node_uid) ?? 0) + 1);
    return load;
  };
  const dry = planReshard(before, n, eligible, await loadNow(), 0); // throws the refusal before anything is taken
  if (dryRun) return { ...before, shards: dry.shards, shards_count: n };

  const first = dry.newShardUids.length ? await m.store.seqs.next('shard', dry.newShardUids.length) : 0;
  const load = await loadNow();
  const action = await m.store.actions.create('reshard', `bdb:${uid}`, {
    description: `resharding from ${before.shards_count} to ${n} shards: ${dry.movedSlots} slots to move`,
    steps: [`0% resharding from ${before.shards_count} to ${n} shards: ${dry.movedSlots} slots to move`],
  });
  let problem: OperatorError | undefined;
  const next = await m.store.bdbs.update(uid, (cur) => {
    problem = busyReason(cur);
    if (problem) return undefined;
    let plan: ReshardPlan;
    try {
      plan = planReshard(cur, n, eligible, load, first);
    } catch (e) {
      problem = e instanceof OperatorError ? e : conflict('no_placement', (e as Error).message);
      return undefined;
    }
    if (plan.newShardUids.length !== dry.newShardUids.length) {
      problem = conflict('db_busy', `database ${uid} changed meanwhile; try again`);
      return undefined;
    }
    return {
      ...cur,
      shards: plan.shards,
      status: 'active-change-pending',
      generation: cur.generation + 1,
      action_uid: action.action_uid,
      last_changed_time: new Date().toISOString(),
      reshard: {
        shards_count: n,
        moves: plan.moves,
        remove: plan.remove,
        moved_slots: 0,
        total_slots: plan.movedSlots,
      },
    };
  });
  if (!next) {
    await m.store.actions.delete(action.action_uid);
    throw problem ?? notFound('db_not_exist', `database ${uid} does not exist`);
  }
  log.info(
    { bdb: uid, from: before.shards_count, to: n, moves: dry.moves.length, slots: dry.movedSlots, action: action.action_uid },
    'resharding requested',
  );
  return next;
}
