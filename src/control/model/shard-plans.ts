// Every change of a database's shard list, pure: the same record gives the
// same result, undefined when the change does not apply (a refusal). The
// cluster master's controllers (failover, shard operations) and, while a
// 0.1.0 master runs the cluster, every node's reconciler write placements
// only through these, so a promotion re-points sibling replicas the same way
// whoever decides it, and a placement change always bumps the same fields.
import type { BdbRecord, ShardPlacement } from '../../coord/schema.js';
import { conflict } from '../../util/errors.js';

/** A database that is being deleted or whose creation failed: no loop places, runs or fails over its shards. */
export const isGone = (b: Pick<BdbRecord, 'status'>): boolean => b.status === 'delete-pending' || b.status === 'creation-failed';

/** `b` with new `shards`: generation + 1 (nodes converge on it), status change-pending (unless still pending), changed now. */
export function bumped(b: BdbRecord, shards: ShardPlacement[], now: Date = new Date()): BdbRecord {
  return {
    ...b,
    shards,
    generation: b.generation + 1,
    status: b.status === 'pending' ? b.status : 'active-change-pending',
    last_changed_time: now.toISOString(),
  };
}

const slotText = (s: ShardPlacement) => `${s.slots[0]}-${s.slots[1]}`;

/** The master of a shard's slots: itself, or its master. */
export function familyMaster(shards: readonly ShardPlacement[], s: ShardPlacement): ShardPlacement | undefined {
  return s.role === 'master' ? s : shards.find((x) => x.uid === s.master_uid);
}

/** A master and its replicas: the shards that hold one slot range. */
export function family(shards: readonly ShardPlacement[], master: ShardPlacement): ShardPlacement[] {
  return shards.filter((x) => x.uid === master.uid || x.master_uid === master.uid);
}

/**
 * Replica `replicaUid` takes the place of its master `masterUid`: it gets the
 * slots, the old master becomes its replica, and the master's other replicas
 * follow the new master. Refused (undefined) unless `replicaUid` is a replica
 * of `masterUid`, a master. Planned switchover and failover are both this.
 */
export function promote(shards: readonly ShardPlacement[], masterUid: number, replicaUid: number): ShardPlacement[] | undefined {
  const m = shards.find((s) => s.uid === masterUid);
  const r = shards.find((s) => s.uid === replicaUid);
  if (!m || !r || m.role !== 'master' || r.role !== 'slave' || r.master_uid !== m.uid) return undefined;
  return shards.map((s) => {
    if (s.uid === r.uid) return { ...s, role: 'master' as const, master_uid: undefined, slots: m.slots };
    if (s.uid === m.uid) return { ...s, role: 'slave' as const, master_uid: r.uid };
    if (s.master_uid === m.uid) return { ...s, master_uid: r.uid };
    return { ...s };
  });
}

/** Master `masterUid` hands its slots to its replica `replicaUid` (planned switchover): a promotion. */
export const planSwitch = promote;

/** A new replica `newUid` on node `target` of the master of `shardUid`'s slots; never beside a shard of those slots (but `shardUid` itself, which it replaces). */
export function planAddReplica(
  shards: readonly ShardPlacement[],
  shardUid: number,
  newUid: number,
  target: number,
): ShardPlacement[] | undefined {
  const s = shards.find((x) => x.uid === shardUid);
  const m = s && (s.role === 'master' ? s : shards.find((x) => x.uid === s.master_uid && x.role === 'master'));
  if (!s || !m || shards.some((x) => x.uid === newUid)) return undefined;
  if (shards.some((x) => (x.uid === m.uid || x.master_uid === m.uid) && x.node_uid === target && x.uid !== s.uid)) return undefined;
  return [...shards, { uid: newUid, role: 'slave', node_uid: target, slots: m.slots, master_uid: m.uid }];
}

/** Remove replica `shardUid`, replaced by `newUid`: replicas that followed it follow `newUid`'s master (or `newUid`, a master). */
export function planRemove(shards: readonly ShardPlacement[], shardUid: number, newUid: number): ShardPlacement[] | undefined {
  const s = shards.find((x) => x.uid === shardUid);
  const t = shards.find((x) => x.uid === newUid);
  if (!s || !t || s.role === 'master') return undefined;
  const master = t.role === 'master' ? t.uid : t.master_uid;
  return shards.filter((x) => x.uid !== s.uid).map((x) => (x.master_uid === s.uid ? { ...x, master_uid: master } : x));
}

/** Replica `shardUid` placed on node `to` (rebuilt there by a full sync). Refused for a master, or onto a node that holds a shard of its slots. */
export function moveReplica(shards: readonly ShardPlacement[], shardUid: number, to: number): ShardPlacement[] | undefined {
  const s = shards.find((x) => x.uid === shardUid);
  const m = s && familyMaster(shards, s);
  if (!s || !m || s.role !== 'slave') return undefined;
  if (family(shards, m).some((x) => x.uid !== s.uid && x.node_uid === to)) return undefined;
  return shards.map((x) => (x.uid === s.uid ? { ...x, node_uid: to } : { ...x }));
}

export interface FailoverPlan {
  shards: ShardPlacement[];
  promoted: { failed: number; promoted: number; node: number }[];
  moved: { shard: number; from: number; to: number }[];
}

/**
 * The new placement of one database after the loss of `dead` nodes, or
 * undefined when nothing can change: masters there are failed over (a
 * promotion of a replica on a live node), and replicas on the `rebuild` ones
 * (dead past the replica grace period; by default all dead nodes) are placed
 * elsewhere, never on an `unplaceable` node. Pure: the same record and node sets give the same plan.
 */
export function planFailover(
  shards: readonly ShardPlacement[],
  dead: ReadonlySet<number>,
  liveNodes: readonly number[],
  rebuild: ReadonlySet<number> = dead,
  /** Nodes nothing may be placed on (maintenance mode: model/maintenance.ts placeableNodes). */
  unplaceable: ReadonlySet<number> = new Set(),
): FailoverPlan | undefined {
  let next = shards.map((s) => ({ ...s }));
  const plan: FailoverPlan = { shards: next, promoted: [], moved: [] };
  const alive = (n: number) => !dead.has(n) && liveNodes.includes(n);
  for (const uid of shards.filter((s) => s.role === 'master' && dead.has(s.node_uid)).map((s) => s.uid)) {
    const r = next.find((s) => s.role === 'slave' && s.master_uid === uid && alive(s.node_uid));
    if (!r) continue; // no replica to take over: the slots wait for the node
    const after = promote(next, uid, r.uid);
    if (!after) continue;
    next = after;
    plan.promoted.push({ failed: uid, promoted: r.uid, node: r.node_uid });
  }
  for (const uid of next.map((s) => s.uid)) {
    const s = next.find((x) => x.uid === uid)!;
    if (s.role !== 'slave' || !dead.has(s.node_uid) || !rebuild.has(s.node_uid)) continue;
    const master = next.find((x) => x.uid === s.master_uid);
    if (!master || !alive(master.node_uid)) continue; // nothing live to copy from
    // Never beside a shard of its slots; otherwise the live node holding fewest of this database's shards.
    const load = (n: number) => next.filter((x) => x.node_uid === n).length;
    const taken = new Set(family(next, master).map((x) => x.node_uid));
    const to = liveNodes.filter((n) => alive(n) && !taken.has(n) && !unplaceable.has(n)).sort((a, b) => load(a) - load(b) || a - b)[0];
    if (to === undefined) continue;
    const after = moveReplica(next, uid, to);
    if (!after) continue;
    next = after;
    plan.moved.push({ shard: uid, from: s.node_uid, to });
  }
  plan.shards = next;
  return plan.promoted.length || plan.moved.length ? plan : undefined;
}

/** Where each shard of a node that is removed goes. */
export interface Evacuation {
  bdb_uid: number;
  shard_uid: number;
  target_node_uid: number;
}

/**
 * Place every shard of node `node` on another of `targets` (live nodes):
 * the one with the fewest shards (`load`, counting what this plan adds) that
 * holds no shard of the same slots. Throws, naming the shard and why, when
 * one has nowhere to go.
 */
export function planEvacuation(
  bdbs: readonly BdbRecord[],
  node: number,
  targets: readonly number[],
  load: ReadonlyMap<number, number>,
): Evacuation[] {
  const count = new Map(load);
  const out: Evacuation[] = [];
  for (const b of [...bdbs].sort((x, y) => x.uid - y.uid)) {
    for (const s of b.shards.filter((x) => x.node_uid === node).sort((x, y) => x.uid - y.uid)) {
      const fm = familyMaster(b.shards, s) ?? s;
      const taken = new Set(
        family(b.shards, fm)
          .filter((x) => x.uid !== s.uid)
          .map((x) => x.node_uid),
      );
      const fits = targets.filter((t) => t !== node && !taken.has(t)).sort((x, y) => (count.get(x) ?? 0) - (count.get(y) ?? 0) || x - y);
      if (!fits.length) {
        const why = targets.length
          ? `every other live node (${targets.join(', ')}) already holds a shard of those slots, and a master and its replica are never on one node`
          : 'no other node is live';
        throw conflict(
          'no_placement',
          `node ${node} cannot be removed: shard ${s.uid} of database ${b.uid} (${s.role === 'master' ? 'master' : 'replica'} of slots ${slotText(fm)}) has nowhere to go: ${why}; add a node first`,
        );
      }
      out.push({ bdb_uid: b.uid, shard_uid: s.uid, target_node_uid: fits[0] });
      count.set(fits[0], (count.get(fits[0]) ?? 0) + 1);
    }
  }
  return out;
}
