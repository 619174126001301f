// A live database's shape (issue 21), the request side: replication turned on
// or off, and a shards blueprint applied. Each is validated against the
// records and queued as one shard operation with its action, which the
// ShardOpsController (shard-ops.ts) on the cluster master carries out:
// `replication` adds a replica of every master (placed by blueprint.ts's
// `placeReplicas`, synced) or removes every replica; a blueprint is a
// `migrate` operation whose items each carry their target node (the way
// `remove_node` carries them, which 0.1.0 masters also run). The caller
// passes the nodes that may take shards (`eligible`).
import type { ActionRecord, BdbRecord } from '../../coord/schema.js';
import type { ClusterStore } from '../../coord/store.js';
import type { OpLog } from '../model/shard-protocol.js';
import { conflict, invalid, notFound, type OperatorError } from '../../util/errors.js';
import { isGone } from '../model/shard-plans.js';
import {
  type BlueprintEntry,
  blueprintMoves,
  blueprintOf,
  clusterStateId,
  loadOf,
  optimizePlacement,
  placeReplicas,
} from '../model/blueprint.js';
import { checkNotBusy, createOp } from './shard-op-requests.js';

/** What these requests read and write. */
export interface ReshapeHost {
  readonly store: Pick<ClusterStore, 'bdbs' | 'actions' | 'shardOps' | 'seqs'>;
}

/** Action names of the operations queued here (GET /v1/actions shows them; a database is change-pending while one runs). */
export const RESHAPE_ACTIONS = ['enable_replication', 'disable_replication', 'shards_blueprint'] as const;

/** What a request answers: the database as it was asked of, and the action (none when nothing had to change, or on a dry run). */
export interface ReshapeResult {
  bdb: BdbRecord;
  action?: ActionRecord;
}

async function database(h: ReshapeHost, uid: number): Promise<BdbRecord> {
  const b = await h.store.bdbs.get(uid);
  if (!b || b.status === 'delete-pending') throw notFound('db_not_exist', `database ${uid} does not exist`);
  return b;
}

/** A database in the middle of another change is busy (409 db_busy), as a PUT finds it. */
function busy(b: BdbRecord): OperatorError | undefined {
  if (isGone(b)) return conflict('db_busy', `database ${b.uid} is ${b.status}`);
  if (b.status === 'pending' || b.status === 'active-change-pending')
    return conflict(
      'db_busy',
      `database ${b.uid} is busy with another change (status ${b.status}${b.action_uid ? `, action ${b.action_uid}` : ''}); change it once it is active`,
    );
  return undefined;
}

async function checkFree(h: ReshapeHost, b: BdbRecord): Promise<void> {
  const e = busy(b);
  if (e) throw e;
  await checkNotBusy(h, b);
}

/** The proposal of GET /v1/bdbs/{uid}/actions/optimize_shards_placement: the blueprint and the cluster-state-id it was planned at. */
export async function optimizeShardsPlacement(
  h: ReshapeHost,
  uid: number,
  eligible: readonly number[],
  opts: { avoid?: readonly number[]; placement?: 'dense' | 'sparse' } = {},
): Promise<{ blueprint: BlueprintEntry[]; clusterStateId: string }> {
  const b = await database(h, uid);
  const bdbs = await h.store.bdbs.list();
  const usable = eligible.filter((n) => !opts.avoid?.includes(n));
  const shards = optimizePlacement(b, usable, loadOf(bdbs, uid), opts.placement ?? b.shards_placement);
  // The state id is the cluster's, not the query's: a PUT checks it against the same eligible nodes.
  return { blueprint: blueprintOf(shards), clusterStateId: clusterStateId(b, eligible, bdbs) };
}

/**
 * `replication: true|false` on database `uid`. Errors: db_not_exist (404),
 * db_busy (409), insufficient_resources (406: no second eligible node).
 */
export async function requestReplication(
  h: ReshapeHost,
  log: OpLog,
  uid: number,
  on: boolean,
  eligible: readonly number[],
  dryRun = false,
): Promise<ReshapeResult> {
  const b = await database(h, uid);
  await checkFree(h, b);
  const bdbs = await h.store.bdbs.list();
  const adds = on ? placeReplicas(b, eligible, loadOf(bdbs, uid), 0) : [];
  const removes = on
    ? []
    : b.shards
        .filter((s) => s.role === 'slave')
        .map((s) => s.uid)
        .sort((x, y) => x - y);
  if (b.replication === on && !adds.length && !removes.length) return { bdb: b };
  const asked = { ...b, replication: on };
  if (dryRun) return { bdb: asked };
  if (!adds.length && !removes.length) {
    // The shards are as asked already: only the flag changes (nodes do not read it).
    const next = await h.store.bdbs.update(uid, (cur) => (cur.replication === on ? undefined : { ...cur, replication: on }));
    return { bdb: next ?? asked };
  }
  const first = adds.length ? await h.store.seqs.next('shard', adds.length) : 0;
  const items = on
    ? adds.map((a, i) => ({ bdb_uid: uid, shard_uid: a.shard_uid, new_shard_uid: first + i, target_node_uid: a.target_node_uid }))
    : removes.map((s) => ({ bdb_uid: uid, shard_uid: s }));
  const action = await createOp(
    h,
    { kind: 'replication', replication: on, items },
    `bdb:${uid}`,
    on ? 'enable_replication' : 'disable_replication',
  );
  log.info(
    {
      action: action.action_uid,
      bdb: uid,
      replication: on,
      shards: on ? adds.map((a, i) => `${a.shard_uid}+${first + i}@${a.target_node_uid}`) : removes.map((s) => `-${s}`),
    },
    'replication change requested',
  );
  return { bdb: asked, action };
}

/**
 * `shards_blueprint` with the `cluster-state-id` it was made at, on database
 * `uid`. Errors: db_not_exist (404), missing_cluster_state_id and
 * invalid_shards_blueprint (400, see blueprintMoves), db_busy,
 * node_not_available and cluster_state_changed (409: the cluster changed
 * since the blueprint was made; ask for a new one).
 */
export async function requestBlueprint(
  h: ReshapeHost,
  log: OpLog,
  uid: number,
  blueprint: unknown,
  stateId: string | undefined,
  known: readonly number[],
  eligible: readonly number[],
  dryRun = false,
): Promise<ReshapeResult> {
  const b = await database(h, uid);
  if (stateId === undefined || stateId.trim() === '')
    throw invalid(
      'missing_cluster_state_id',
      'a shards_blueprint needs the cluster-state-id header that GET /v1/bdbs/{uid}/actions/optimize_shards_placement answered with it',
    );
  const moves = blueprintMoves(b, blueprint, known, eligible);
  const bdbs = await h.store.bdbs.list();
  const now = clusterStateId(b, eligible, bdbs);
  if (stateId.trim() !== now)
    throw conflict(
      'cluster_state_changed',
      `cluster-state-id ${stateId.trim()} is stale: the placement or the nodes changed since the blueprint was made (now ${now}); ask GET /v1/bdbs/${uid}/actions/optimize_shards_placement again`,
    );
  await checkFree(h, b);
  if (!moves.length || dryRun) return { bdb: b };
  const first = await h.store.seqs.next('shard', moves.length);
  const items = moves.map((mv, i) => ({
    bdb_uid: uid,
    shard_uid: mv.shard_uid,
    new_shard_uid: first + i,
    target_node_uid: mv.target_node_uid,
  }));
  const action = await createOp(h, { kind: 'migrate', items }, `bdb:${uid}`, 'shards_blueprint');
  log.info(
    { action: action.action_uid, bdb: uid, moves: items.map((i) => `${i.shard_uid}->${i.new_shard_uid}@${i.target_node_uid}`) },
    'shards blueprint requested',
  );
  return { bdb: b, action };
}

/** The databases with a replication change or a blueprint under way (their status reads active-change-pending meanwhile). */
export async function reshaping(h: ReshapeHost): Promise<Set<number>> {
  const out = new Set<number>();
  for (const o of await h.store.shardOps.list()) {
    if (o.kind !== 'replication' && o.kind !== 'migrate') continue;
    const a = await h.store.actions.get(o.action_uid);
    if (!a || a.status === 'completed' || a.status === 'failed') continue;
    if (!(RESHAPE_ACTIONS as readonly string[]).includes(a.name)) continue;
    for (const i of o.items) out.add(i.bdb_uid);
  }
  return out;
}
