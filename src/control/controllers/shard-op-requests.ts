// Operator shard operations, the request side (REST): validate a planned
// failover, a migration or a node removal and queue it as an action and a
// shard-operation record; ShardOpsController (shard-ops.ts) on the cluster
// master carries it out. Also the helpers both sides share.
import type { RpcClient } from '../../internode/rpc.js';
import type { ActionRecord, BdbRecord, LiveRecord, NodeRecord, ShardOpRecord, ShardPlacement } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore, StoreHost } from '../../coord/store.js';
import { conflict, invalid, notFound } from '../../util/errors.js';
import { type OpLog, type ShardReplication, SHARD_REPLICATION_RPC } from '../model/shard-protocol.js';
import type { MasterLoopHost } from './master-loop.js';
import { nodeIsUp, type NodeStateHost } from '../model/node-state.js';
import { family as familyOf, familyMaster as familyMasterOf, isGone, planEvacuation } from '../model/shard-plans.js';
import { placeableNodes } from '../model/maintenance.js';

/** What shard operations need of their node's membership (src/node/loops.ts builds it from the membership parts). */
export interface ShardOpsHost extends MasterLoopHost, NodeStateHost {
  readonly uid: number;
  readonly store: ClusterStore;
  readonly nodes: PrefixCache<NodeRecord>;
  readonly live: PrefixCache<LiveRecord>;
  rpc(uid: number): RpcClient | undefined;
  /** Call a control-RPC method on node `uid` (in-process, through the same registry, when that is this node). */
  call<T>(uid: number, method: string, params: object, timeoutMs?: number): Promise<T>;
  /** Give up the cluster master role for good (this node is being removed): another node takes over. */
  resignMaster(why: string): Promise<void>;
}

export const slotText = (s: ShardPlacement) => `${s.slots[0]}-${s.slots[1]}`;
export const isLive = (h: ShardOpsHost & StoreHost, node: number) => nodeIsUp(h, node);

/** Call a shard-rpc method on the node that runs the shard (in-process when that is this node; it logs with its own logger). */
export function shardCall<T>(h: ShardOpsHost, _log: OpLog, node: number, method: string, params: object, timeoutMs = 3000): Promise<T> {
  return h.call<T>(node, method, params, timeoutMs);
}

export function replication(h: ShardOpsHost, log: OpLog, s: ShardPlacement): Promise<ShardReplication> {
  return shardCall<ShardReplication>(h, log, s.node_uid, SHARD_REPLICATION_RPC, { shard_uid: s.uid });
}

/** The master of a shard's slots: itself, or its master. */
export const familyMaster = (b: BdbRecord, s: ShardPlacement) => familyMasterOf(b.shards, s);

/** A master and its replicas: the shards that hold one slot range. */
export const family = (b: BdbRecord, master: ShardPlacement) => familyOf(b.shards, master);

// --- requests (REST) ---

interface Located {
  b: BdbRecord;
  s: ShardPlacement;
}

async function locate(h: ShardOpsHost & StoreHost, shardUids: number[]): Promise<Located[]> {
  if (!shardUids.length) throw notFound('shard_uids_required', 'a list of shard uids is required');
  const bdbs = (await h.store.bdbs.list()).filter((b) => !isGone(b));
  return [...new Set(shardUids)].map((uid) => {
    for (const b of bdbs) {
      const s = b.shards.find((x) => x.uid === uid);
      if (s) return { b, s };
    }
    throw notFound('shard_not_exist', `shard ${uid} does not exist`);
  });
}

/** A database that is being created or deleted, or has an operation under way, takes no other. */
async function checkNotBusy(h: ShardOpsHost & StoreHost, b: BdbRecord): Promise<void> {
  if (b.status === 'pending') throw conflict('db_busy', `database ${b.uid} is being created`);
  for (const o of await h.store.shardOps.list()) {
    if (!o.items.some((i) => i.bdb_uid === b.uid)) continue;
    // The record goes just after its action finishes.
    const a = await h.store.actions.get(o.action_uid);
    if (a && a.status !== 'completed' && a.status !== 'failed')
      throw conflict('db_busy', `database ${b.uid} is busy: action ${o.action_uid} (shard ${o.kind}) is under way`);
  }
}

async function createOp(
  h: ShardOpsHost & StoreHost,
  op: Omit<ShardOpRecord, 'action_uid' | 'created_time'>,
  objectName: string,
): Promise<ActionRecord> {
  const action = await h.store.actions.create(op.kind === 'remove_node' ? 'remove_node' : `shard_${op.kind}`, objectName);
  const rec: ShardOpRecord = { ...op, action_uid: action.action_uid, created_time: new Date().toISOString() };
  await h.store.shardOps.put(rec);
  return action;
}

/**
 * Validate a planned failover of master shards (all of one database) and
 * queue it. Errors: shard_uids_required, shard_not_exist (404);
 * failover_shards_different_bdb, shard_is_slave, shard_has_no_replica (400);
 * db_busy, node_down, replica_not_available, replica_not_in_sync (409).
 */
export async function requestFailover(
  h: ShardOpsHost & StoreHost,
  log: OpLog,
  shardUids: number[],
  opts: { immediate?: boolean } = {},
): Promise<ActionRecord> {
  const found = await locate(h, shardUids);
  const b = found[0].b;
  if (found.some((f) => f.b.uid !== b.uid))
    throw invalid('failover_shards_different_bdb', 'all the shards to fail over must belong to one database');
  await checkNotBusy(h, b);
  for (const { s } of found) {
    if (s.role !== 'master') throw invalid('shard_is_slave', `shard ${s.uid} is a replica; fail over its master, shard ${s.master_uid}`);
    const replicas = b.shards.filter((x) => x.master_uid === s.uid);
    if (!replicas.length)
      throw invalid(
        'shard_has_no_replica',
        `shard ${s.uid} has no replica to fail over to (database ${b.uid} is ${b.replication ? 'missing it' : 'not replicated'})`,
      );
    if (!isLive(h, s.node_uid))
      throw conflict('node_down', `shard ${s.uid} is on node ${s.node_uid}, which is down; the node failover promotes its replica`);
    const live = replicas.filter((r) => isLive(h, r.node_uid));
    if (!live.length)
      throw conflict(
        'replica_not_available',
        `the replica of shard ${s.uid} (shard ${replicas.map((r) => r.uid).join(', ')}) is on node ${replicas.map((r) => r.node_uid).join(', ')}, which is down`,
      );
    if (!opts.immediate) {
      const states = await Promise.all(
        live.map((r) =>
          replication(h, log, r).then(
            (i) => `${i.role === 'slave' ? `link ${i.master_link_status}` : `role ${i.role}`}`,
            (e: Error) => `unreachable: ${e.message}`,
          ),
        ),
      );
      if (!states.includes('link up')) {
        throw conflict(
          'replica_not_in_sync',
          `the replica of shard ${s.uid} is not in sync (shard ${live.map((r, i) => `${r.uid}: ${states[i]}`).join('; ')}); retry later, or fail over with immediate`,
        );
      }
    }
  }
  const action = await createOp(
    h,
    {
      kind: 'failover',
      items: found.map(({ b, s }) => ({ bdb_uid: b.uid, shard_uid: s.uid })),
      ...(opts.immediate ? { immediate: true } : {}),
    },
    `bdb:${b.uid}`,
  );
  log.info(
    { action: action.action_uid, bdb: b.uid, shards: found.map((f) => f.s.uid), immediate: !!opts.immediate },
    'shard failover requested',
  );
  return action;
}

/**
 * Validate a migration of shards to a node and queue it. Errors:
 * shard_uids_required, target_node_uid_required, shard_not_exist,
 * node_not_found (404); shard_already_on_node, target_holds_same_slots (400);
 * db_busy, node_down (409).
 */
export async function requestMigrate(
  h: ShardOpsHost & StoreHost,
  log: OpLog,
  shardUids: number[],
  target: number | undefined,
): Promise<ActionRecord> {
  const found = await locate(h, shardUids);
  if (target === undefined) throw notFound('target_node_uid_required', 'target_node_uid is required');
  const node = h.nodes.items.get(String(target));
  if (!node?.addr) throw notFound('node_not_found', `node ${target} does not exist`);
  if (!isLive(h, target)) throw conflict('node_down', `node ${target} is down`);
  if (!placeableNodes([target], await h.store.maintenanceMode.list()).length)
    throw conflict('node_in_maintenance', `node ${target} is in maintenance mode: nothing is placed on it`);
  const families = new Set<string>();
  for (const { b, s } of found) {
    await checkNotBusy(h, b);
    if (s.node_uid === target) throw invalid('shard_already_on_node', `shard ${s.uid} is already on node ${target}`);
    const fm = familyMaster(b, s);
    if (!fm) throw conflict('db_busy', `shard ${s.uid} is a replica of shard ${s.master_uid}, which is not placed`);
    const related = family(b, fm).find((x) => x.node_uid === target && x.uid !== s.uid);
    if (related) {
      throw invalid(
        'target_holds_same_slots',
        `node ${target} already holds shard ${related.uid}, the ${related.role === 'master' ? 'master' : 'replica'} of slots ${slotText(fm)} that shard ${s.uid} serves; a master and its replica are never on one node`,
      );
    }
    const key = `${b.uid}:${fm.uid}`;
    if (families.has(key))
      throw invalid('target_holds_same_slots', `two of the shards hold slots ${slotText(fm)}; they cannot both go to node ${target}`);
    families.add(key);
    if (!isLive(h, fm.node_uid))
      throw conflict(
        'node_down',
        `shard ${fm.uid}, the master of slots ${slotText(fm)}, is on node ${fm.node_uid}, which is down: nothing to copy from`,
      );
  }
  const first = await h.store.seqs.next('shard', found.length);
  const items = found.map(({ b, s }, i) => ({ bdb_uid: b.uid, shard_uid: s.uid, new_shard_uid: first + i }));
  const action = await createOp(
    h,
    { kind: 'migrate', items, target_node_uid: target },
    [...new Set(found.map((f) => `bdb:${f.b.uid}`))].join(','),
  );
  log.info(
    { action: action.action_uid, shards: found.map((f) => f.s.uid), target, new_shards: items.map((i) => i.new_shard_uid) },
    'shard migration requested',
  );
  return action;
}

/**
 * Validate the removal of a node that hosts shards and queue it: the shards
 * migrate away, then the node is removed. Undefined when the node hosts no
 * shard (the caller removes it at once). Errors: no_placement, node_down,
 * db_busy (409).
 */
export async function requestNodeRemoval(h: ShardOpsHost & StoreHost, log: OpLog, node: number): Promise<ActionRecord | undefined> {
  const bdbs = (await h.store.bdbs.list()).filter((b) => !isGone(b));
  const hosting = bdbs.filter((b) => b.shards.some((s) => s.node_uid === node));
  if (!hosting.length) return undefined;
  const load = new Map<number, number>();
  for (const b of bdbs) for (const s of b.shards) load.set(s.node_uid, (load.get(s.node_uid) ?? 0) + 1);
  const live = h.nodes
    .values()
    .filter((n) => n.addr && n.uid !== node && isLive(h, n.uid))
    .map((n) => n.uid);
  const targets = placeableNodes(live, await h.store.maintenanceMode.list());
  const plan = planEvacuation(hosting, node, targets, load);
  for (const b of hosting) {
    await checkNotBusy(h, b);
    for (const s of b.shards.filter((x) => x.node_uid === node)) {
      const fm = familyMaster(b, s);
      if (!fm) throw conflict('db_busy', `shard ${s.uid} is a replica of shard ${s.master_uid}, which is not placed`);
      if (!isLive(h, fm.node_uid))
        throw conflict(
          'node_down',
          `shard ${fm.uid}, the master of slots ${slotText(fm)}, is on node ${fm.node_uid}, which is down: nothing to copy shard ${s.uid} from`,
        );
    }
  }
  const first = await h.store.seqs.next('shard', plan.length);
  const items = plan.map((p, i) => ({ ...p, new_shard_uid: first + i }));
  const action = await createOp(h, { kind: 'remove_node', items, node_uid: node }, `node:${node}`);
  log.info(
    { action: action.action_uid, node, moves: items.map((i) => `${i.shard_uid}->${i.new_shard_uid}@${i.target_node_uid}`) },
    'node removal requested: its shards migrate first',
  );
  return action;
}

// --- the controller (cluster master) ---

/** This node stopped being the cluster master: the operation is left for the next one, which resumes it. */
