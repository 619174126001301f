// Maintenance mode's pure decisions (RE's `rladmin node <uid> maintenance_mode`):
// which nodes new shards may go to (the one placement predicate every placer
// uses: database creation, migrations, evacuation, failover rebuilds), whether
// a node may go down without losing the store's quorum, the snapshot of what a
// node holds, and the next step of emptying it (planned failovers of its
// masters first, then migrations) and of filling it again as the snapshot
// says (migrations back, then the promotions that give it its masters back).
// The cluster master's MaintenanceController (control/controllers/maintenance.ts)
// runs each step as a shard operation and plans the next from the store.
import type { BdbRecord, MaintenanceRecord, MaintenanceShard, ShardPlacement } from '../../coord/schema.js';
import { OperatorError, conflict } from '../../util/errors.js';
import { type Evacuation, family, isGone, planEvacuation, promote } from './shard-plans.js';
import { compareMinor } from './version-gates.js';

/** The nodes nothing may be placed on: every node with a maintenance record (entering, on or leaving). */
export function unplaceable(maintenance: Iterable<Pick<MaintenanceRecord, 'node_uid'>>): Set<number> {
  return new Set([...maintenance].map((m) => m.node_uid));
}

/** Of `nodes` (uids or records), those new shards may be placed on: none in maintenance mode. */
export function placeableNodes<T extends number | { uid: number }>(
  nodes: readonly T[],
  maintenance: Iterable<Pick<MaintenanceRecord, 'node_uid'>>,
): T[] {
  const out = unplaceable(maintenance);
  return nodes.filter((n) => !out.has(typeof n === 'number' ? n : n.uid));
}

/** What maintenance_on moves (RE's options): only `evict_dbs` when given; replicas unless `evict_ha_replica` is false. */
export interface EvictOptions {
  evict_dbs?: readonly number[];
  evict_ha_replica?: boolean;
}

/** Does shard `s` of database `b` leave the node under these options? */
export function evicted(b: Pick<BdbRecord, 'uid'>, s: Pick<ShardPlacement, 'role'>, o: EvictOptions): boolean {
  return (!o.evict_dbs || o.evict_dbs.includes(b.uid)) && (s.role === 'master' || o.evict_ha_replica !== false);
}

const sameSlots = (a: readonly [number, number], b: readonly [number, number]) => a[0] === b[0] && a[1] === b[1];

/** The master of a shard's slots, found by the slots (uids change when a shard migrates). */
function masterOfSlots(b: BdbRecord, slots: readonly [number, number]): ShardPlacement | undefined {
  return b.shards.find((s) => s.role === 'master' && sameSlots(s.slots, slots));
}

/** What node `node` holds now, with each shard's role and slots: the snapshot maintenance_off restores. */
export function snapshotOf(bdbs: readonly BdbRecord[], node: number): MaintenanceShard[] {
  const out: MaintenanceShard[] = [];
  for (const b of [...bdbs].sort((x, y) => x.uid - y.uid)) {
    if (isGone(b)) continue;
    for (const s of b.shards.filter((x) => x.node_uid === node).sort((x, y) => x.uid - y.uid)) {
      const m = s.role === 'master' ? s : b.shards.find((x) => x.uid === s.master_uid);
      out.push({ bdb_uid: b.uid, shard_uid: s.uid, role: s.role, slots: [...(m ?? s).slots] as [number, number] });
    }
  }
  return out;
}

/**
 * Would node `node` going down lose the store's quorum? Every member votes;
 * those down, and those in maintenance mode (they may be stopped at any time),
 * count as gone with it. A refusal (409 quorum_loss) names them.
 */
export function quorumRefusal(
  voters: readonly number[],
  node: number,
  down: ReadonlySet<number>,
  inMaintenance: ReadonlySet<number>,
): OperatorError | undefined {
  const away = new Set([node, ...down, ...inMaintenance].filter((u) => voters.includes(u)));
  const need = Math.floor(voters.length / 2) + 1;
  const left = voters.length - away.size;
  if (left >= need) return undefined;
  const others = [...away].filter((u) => u !== node).sort((a, b) => a - b);
  const why = others.length
    ? ` (besides it, ${others.map((u) => `node ${u} ${down.has(u) ? 'is down' : 'is in maintenance mode'}`).join(', ')})`
    : '';
  return conflict(
    'quorum_loss',
    `node ${node} cannot go down for maintenance: the cluster store needs ${need} of its ${voters.length} members, and ${left} would be left${why}`,
  );
}

/** One step of emptying or filling a node: a planned failover, or migrations. */
export type MaintenanceStep =
  | { kind: 'failover'; items: { bdb_uid: number; shard_uid: number; to_shard_uid?: number }[] }
  | { kind: 'migrate'; items: Evacuation[] };

/** Stands for a shard that stays on the node (not evicted), so that evacuation leaves it. */
const KEPT = -1;

/**
 * The next step of emptying node `node`: first a planned failover of each
 * master there (of the evicted databases) that has a replica on another live
 * node; once none is left, the migration of every evicted shard still there
 * to the live `targets` (placeable nodes), the one with the fewest shards
 * (`load`) that holds none of its slots. Undefined: nothing left to move.
 * Throws 409 no_placement when a shard has nowhere to go.
 */
export function planEnter(
  bdbs: readonly BdbRecord[],
  node: number,
  o: EvictOptions,
  live: ReadonlySet<number>,
  targets: readonly number[],
  load: ReadonlyMap<number, number>,
): MaintenanceStep | undefined {
  const hosting = bdbs.filter((b) => !isGone(b) && b.shards.some((s) => s.node_uid === node && evicted(b, s, o)));
  const failovers = hosting.flatMap((b) =>
    b.shards
      .filter(
        (s) =>
          s.node_uid === node &&
          s.role === 'master' &&
          evicted(b, s, o) &&
          b.shards.some((r) => r.master_uid === s.uid && r.role === 'slave' && r.node_uid !== node && live.has(r.node_uid)),
      )
      .map((s) => ({ bdb_uid: b.uid, shard_uid: s.uid })),
  );
  if (failovers.length) return { kind: 'failover', items: failovers };
  if (!hosting.length) return undefined;
  // Shards that stay are relabelled onto no node: planEvacuation moves what is on `node`, and still sees where their families are.
  const moving = hosting.map((b) => ({
    ...b,
    shards: b.shards.map((s) => (s.node_uid === node && !evicted(b, s, o) ? { ...s, node_uid: KEPT } : s)),
  }));
  try {
    const items = planEvacuation(
      moving,
      node,
      targets.filter((t) => t !== node),
      load,
    );
    return items.length ? { kind: 'migrate', items } : undefined;
  } catch (err) {
    if (err instanceof OperatorError && err.code === 'no_placement')
      throw conflict('no_placement', err.message.replace('cannot be removed', 'cannot enter maintenance mode'));
    throw err;
  }
}

/**
 * Can node `node` be emptied? Every step of planEnter, the failovers played
 * on a copy (each master's first live replica elsewhere takes over), so that
 * the migrations after them are checked too. Returns the number of shards
 * that move; throws 409 no_placement naming a shard that has nowhere to go.
 */
export function checkEnter(
  bdbs: readonly BdbRecord[],
  node: number,
  o: EvictOptions,
  live: ReadonlySet<number>,
  targets: readonly number[],
  load: ReadonlyMap<number, number>,
): number {
  let cur = bdbs;
  const first = planEnter(cur, node, o, live, targets, load);
  if (first?.kind !== 'failover') return first?.items.length ?? 0;
  cur = cur.map((b) => {
    let shards: ShardPlacement[] = b.shards;
    for (const it of first.items.filter((i) => i.bdb_uid === b.uid)) {
      const r = shards.find((x) => x.master_uid === it.shard_uid && x.role === 'slave' && x.node_uid !== node && live.has(x.node_uid));
      shards = (r && promote(shards, it.shard_uid, r.uid)) ?? shards;
    }
    return { ...b, shards };
  });
  const then = planEnter(cur, node, o, live, targets, load);
  return then?.kind === 'migrate' ? then.items.length : 0;
}

/** A shard moved off the node by maintenance_on, and the one that took its place. */
export interface MaintenanceMove {
  bdb_uid: number;
  shard_uid: number;
  new_shard_uid: number;
}

/** The next step of filling node `node` again, and the snapshot entries that cannot be restored (why). */
export interface RestorePlan {
  step?: MaintenanceStep;
  unrestorable: string[];
}

/**
 * The next step of putting back what the snapshot says node `node` held:
 * first, for each entry whose slots have no shard on the node, a migration
 * to it of the shard that took its place (or another replica of those slots;
 * the master only when the entry was a master); once every family is back,
 * a planned failover to the node's shard of each family the node was the
 * master of. Entries whose database or slots are gone (deleted, resharded),
 * or whose master is on a node that is down, are reported, not waited for.
 */
export function planRestore(
  snapshot: readonly MaintenanceShard[],
  bdbs: readonly BdbRecord[],
  node: number,
  moves: readonly MaintenanceMove[],
  live: ReadonlySet<number>,
): RestorePlan {
  const unrestorable: string[] = [];
  const migrations: Evacuation[] = [];
  const promotions: { bdb_uid: number; shard_uid: number; to_shard_uid: number }[] = [];
  for (const e of snapshot) {
    const b = bdbs.find((x) => x.uid === e.bdb_uid && !isGone(x));
    const fm = b && masterOfSlots(b, e.slots);
    if (!b || !fm) {
      unrestorable.push(`shard ${e.shard_uid}: database ${e.bdb_uid} has no master of slots ${e.slots[0]}-${e.slots[1]} any more`);
      continue;
    }
    if (!live.has(fm.node_uid)) {
      unrestorable.push(`shard ${e.shard_uid}: the master of its slots (shard ${fm.uid}) is on node ${fm.node_uid}, which is down`);
      continue;
    }
    const fam = family(b.shards, fm);
    const here = fam.find((x) => x.node_uid === node);
    if (!here) {
      const moved = moves.find((m) => m.bdb_uid === b.uid && m.shard_uid === e.shard_uid);
      const replicas = fam.filter((x) => x.role === 'slave').sort((x, y) => y.uid - x.uid);
      const pick = fam.find((x) => x.uid === moved?.new_shard_uid) ?? replicas[0] ?? (e.role === 'master' ? fm : undefined);
      if (pick) migrations.push({ bdb_uid: b.uid, shard_uid: pick.uid, target_node_uid: node });
      else unrestorable.push(`shard ${e.shard_uid}: slots ${e.slots[0]}-${e.slots[1]} of database ${b.uid} have no replica to move back`);
    } else if (e.role === 'master' && here.role === 'slave') {
      promotions.push({ bdb_uid: b.uid, shard_uid: fm.uid, to_shard_uid: here.uid });
    }
  }
  if (migrations.length) return { step: { kind: 'migrate', items: migrations }, unrestorable };
  if (promotions.length) return { step: { kind: 'failover', items: promotions }, unrestorable };
  return { unrestorable };
}

/**
 * Who takes the cluster master role from a node going away (stopping, or
 * entering maintenance mode): a placeable node
 * (not in maintenance mode) first, then the newest minor version (an older
 * one would be kept from the role by master-version-guard), then the lowest uid.
 */
export function masterRoleTarget(
  targets: readonly number[],
  placeable: ReadonlySet<number>,
  versionOf: (uid: number) => string,
): number | undefined {
  return [...targets].sort(
    (a, b) => Number(placeable.has(b)) - Number(placeable.has(a)) || compareMinor(versionOf(b), versionOf(a)) || a - b,
  )[0];
}
