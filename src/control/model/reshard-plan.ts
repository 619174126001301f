// Resharding, the pure part: which slots each master shard serves after a
// change of shards_count (the same split as creation, `slotRanges`), which
// existing master keeps which target range (most overlap first, so the fewest
// slots move), where new shards go (the creation's placement rules over the
// eligible nodes), the slot moves from shard to shard, and the shard list
// after each moved chunk and at the end. The controller
// (control/controllers/reshard.ts) runs the moves; REST plans once, before
// anything moves, so a layout that cannot be placed is refused up front.
import type { BdbRecord, ShardPlacement } from '../../coord/schema.js';
import { SLOT_COUNT } from '../../proxy/slots.js';
import { conflict } from '../../util/errors.js';
import { placeShards, slotRanges } from './placement.js';

export type Range = [number, number];

export const MAX_SHARDS = 512;

/** The slot ranges a shard serves: `slot_ranges` during a resharding, else its one `slots` range. */
export function rangesOf(s: Pick<ShardPlacement, 'slots' | 'slot_ranges'>): Range[] {
  return s.slot_ranges ? s.slot_ranges.map((r) => [r[0], r[1]]) : [[s.slots[0], s.slots[1]]];
}

/** `0-4095,8192-9000` (RE's assigned_slots), empty for none. */
export function rangesText(s: Pick<ShardPlacement, 'slots' | 'slot_ranges'>): string {
  return rangesOf(s)
    .map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`))
    .join(',');
}

/** slot → owning master uid (-1 none). */
function ownerMap(shards: readonly ShardPlacement[]): Int32Array {
  const m = new Int32Array(SLOT_COUNT).fill(-1);
  for (const s of shards) if (s.role === 'master') for (const [a, b] of rangesOf(s)) for (let x = a; x <= b; x++) m[x] = s.uid;
  return m;
}

/** Contiguous runs of set slots. */
function runs(has: (slot: number) => boolean): Range[] {
  const out: Range[] = [];
  for (let x = 0; x < SLOT_COUNT; x++) {
    if (!has(x)) continue;
    const a = x;
    while (x + 1 < SLOT_COUNT && has(x + 1)) x++;
    out.push([a, x]);
  }
  return out;
}

export interface Move {
  source: number;
  target: number;
  slots: Range;
}

export interface ReshardPlan {
  /** The shard list to write first: the current one plus the new shards (masters serving no slot yet, and their replicas). */
  shards: ShardPlacement[];
  /** master uid → its target range. */
  targets: Map<number, Range>;
  moves: Move[];
  /** Masters emptied by the moves, removed (with their replicas) at the end. */
  remove: number[];
  /** New shard uids taken (masters and replicas). */
  newShardUids: number[];
  movedSlots: number;
}

/** What placement needs to know of the eligible nodes (up, not in maintenance: the caller decides). */
export interface EligibleNode {
  uid: number;
  /** Bytes the node has. */
  memory: number;
}

/**
 * Plan a change of database `b` to `n` master shards. `nodes`: the nodes new
 * shards may go to; `load`: shards per node over every database (fewest first,
 * as creation); new uids from `firstUid`. Throws 409 (conflict) with the reason
 * when the new layout cannot be placed: replication needs two nodes, a shard's
 * memory must fit the largest node and the whole database the nodes together.
 */
export function planReshard(
  b: Pick<BdbRecord, 'uid' | 'shards' | 'replication' | 'shards_placement' | 'memory_size'>,
  n: number,
  nodes: readonly EligibleNode[],
  load: ReadonlyMap<number, number>,
  firstUid: number,
): ReshardPlan {
  if (!Number.isInteger(n) || n < 1 || n > MAX_SHARDS) throw conflict('invalid_sharding', `shards_count must be 1..${MAX_SHARDS}`);
  const masters = b.shards.filter((s) => s.role === 'master').sort((x, y) => rangesOf(x)[0]?.[0] - rangesOf(y)[0]?.[0] || x.uid - y.uid);
  const want = slotRanges(n);
  // Memory fits as at creation: one shard within the largest node, every shard (replicas too) within them all.
  if (n > masters.length) {
    if (!nodes.length) throw conflict('no_placement', `database ${b.uid}: no eligible node for new shards`);
    if (b.replication && nodes.length < 2)
      throw conflict(
        'no_placement',
        `database ${b.uid} is replicated: its new shards need two eligible nodes (a master never beside its replica), there are ${nodes.length}`,
      );
  }
  const perShard = b.memory_size / n;
  const largest = Math.max(0, ...nodes.map((x) => x.memory));
  const total = nodes.reduce((a, x) => a + x.memory, 0);
  if (n > masters.length && perShard > largest)
    throw conflict(
      'insufficient_resources',
      `each of ${n} shards needs ${Math.ceil(perShard)} bytes; the largest eligible node has ${largest}`,
    );
  if (n > masters.length && b.memory_size * (b.replication ? 2 : 1) > total)
    throw conflict(
      'insufficient_resources',
      `memory_size ${b.memory_size}${b.replication ? ' (twice, replicated)' : ''} does not fit the eligible nodes' ${total} bytes`,
    );

  // Existing masters keep the target range they overlap most (ties: lower range, then lower shard order).
  const overlap = (s: ShardPlacement, r: Range) =>
    rangesOf(s).reduce((a, [lo, hi]) => a + Math.max(0, Math.min(hi, r[1]) - Math.max(lo, r[0]) + 1), 0);
  const pairs: { m: number; r: number; o: number }[] = [];
  masters.forEach((s, mi) => {
    want.forEach((r, ri) => {
      pairs.push({ m: mi, r: ri, o: overlap(s, r) });
    });
  });
  pairs.sort((x, y) => y.o - x.o || x.r - y.r || x.m - y.m);
  const rangeOf = new Map<number, number>(); // master index → range index
  const taken = new Set<number>();
  for (const p of pairs) {
    if (rangeOf.has(p.m) || taken.has(p.r)) continue;
    rangeOf.set(p.m, p.r);
    taken.add(p.r);
  }
  const targets = new Map<number, Range>();
  for (const [mi, ri] of rangeOf) targets.set(masters[mi].uid, want[ri]);
  const remove = masters.filter((_, mi) => !rangeOf.has(mi)).map((s) => s.uid);

  // New masters (and replicas) for the ranges left: the creation's placement, serving no slot until moves reach them.
  const free = want.map((_, ri) => ri).filter((ri) => !taken.has(ri));
  const eligible = nodes.map((x) => ({ uid: x.uid }) as Parameters<typeof placeShards>[0][number]);
  const placed = free.length ? placeShards(eligible, new Map(load), free.length, b.replication, firstUid, b.shards_placement) : [];
  let i = -1;
  const added = placed.map((s) => {
    if (s.role === 'master') i++;
    const r = want[free[i]];
    if (s.role === 'master') targets.set(s.uid, r);
    return { ...s, slots: r, slot_ranges: [] as Range[] };
  });
  for (const s of added)
    if (s.role === 'slave' && s.node_uid === added.find((x) => x.uid === s.master_uid)?.node_uid)
      throw conflict('no_placement', `database ${b.uid}: no node for the replica of new shard ${s.master_uid} apart from its master's`);

  // Slot moves: old owner → new owner, grouped into contiguous runs per pair.
  const shards = [...b.shards.map((s) => ({ ...s })), ...added];
  const before = ownerMap(shards);
  const after = new Int32Array(SLOT_COUNT).fill(-1);
  for (const [uid, [lo, hi]] of targets) for (let x = lo; x <= hi; x++) after[x] = uid;
  const moves: Move[] = [];
  for (let x = 0; x < SLOT_COUNT; x++) {
    if (before[x] === after[x]) continue;
    const last = moves[moves.length - 1];
    if (last && last.source === before[x] && last.target === after[x] && last.slots[1] === x - 1) last.slots[1] = x;
    else moves.push({ source: before[x], target: after[x], slots: [x, x] });
  }
  const movedSlots = moves.reduce((a, m) => a + m.slots[1] - m.slots[0] + 1, 0);
  return { shards, targets, moves, remove, newShardUids: added.map((s) => s.uid), movedSlots };
}

/** The first chunk of `move`: at most `size` slots from its low end. */
export function firstChunk(move: Move, size: number): Range {
  return [move.slots[0], Math.min(move.slots[1], move.slots[0] + size - 1)];
}

/** Remove `r` from a sorted list of ranges. */
function subtract(ranges: Range[], r: Range): Range[] {
  const out: Range[] = [];
  for (const [a, b] of ranges) {
    if (b < r[0] || a > r[1]) out.push([a, b]);
    else {
      if (a < r[0]) out.push([a, r[0] - 1]);
      if (b > r[1]) out.push([r[1] + 1, b]);
    }
  }
  return out;
}

/** Add `r` to a list of ranges, merged and sorted. */
function add(ranges: Range[], r: Range): Range[] {
  const all = [...ranges, r].sort((x, y) => x[0] - y[0]);
  const out: Range[] = [];
  for (const [a, b] of all) {
    const l = out[out.length - 1];
    if (l && a <= l[1] + 1) l[1] = Math.max(l[1], b);
    else out.push([a, b]);
  }
  return out;
}

/**
 * The shard list once slots `r` belong to master `target` instead of `source`
 * (their replicas follow). Undefined when `source` does not serve all of `r`.
 */
export function applyChunk(shards: readonly ShardPlacement[], source: number, target: number, r: Range): ShardPlacement[] | undefined {
  const src = shards.find((s) => s.uid === source && s.role === 'master');
  const dst = shards.find((s) => s.uid === target && s.role === 'master');
  if (!src || !dst) return undefined;
  for (let x = r[0]; x <= r[1]; x++) if (!rangesOf(src).some(([a, b]) => x >= a && x <= b)) return undefined;
  const srcRanges = subtract(rangesOf(src), r);
  const dstRanges = add(rangesOf(dst), r);
  return shards.map((s) => {
    const fam =
      s.uid === source || s.master_uid === source ? srcRanges : s.uid === target || s.master_uid === target ? dstRanges : undefined;
    return fam ? { ...s, slot_ranges: fam.map(([a, b]) => [a, b] as Range) } : { ...s };
  });
}

/**
 * The final shard list: the emptied masters `remove` and their replicas gone,
 * and every shard back to one `slots` range (no `slot_ranges`). Undefined when
 * a removed master still serves a slot, or a kept one serves other than one range.
 */
export function finishReshard(shards: readonly ShardPlacement[], remove: readonly number[]): ShardPlacement[] | undefined {
  const gone = new Set(remove);
  for (const s of shards) if (s.role === 'master' && gone.has(s.uid) && rangesOf(s).length) return undefined;
  const kept = shards.filter((s) => !gone.has(s.uid) && !(s.master_uid !== undefined && gone.has(s.master_uid)));
  const out: ShardPlacement[] = [];
  for (const s of kept) {
    const m = s.role === 'master' ? s : kept.find((x) => x.uid === s.master_uid);
    const r = m ? rangesOf(m) : [];
    if (r.length !== 1) return undefined;
    const { slot_ranges: _r, ...rest } = s;
    out.push({ ...rest, slots: r[0] });
  }
  return out;
}

/** Every slot served by exactly one master. */
export function coversAllSlots(shards: readonly ShardPlacement[]): boolean {
  const seen = new Uint8Array(SLOT_COUNT);
  for (const s of shards)
    if (s.role === 'master')
      for (const [a, b] of rangesOf(s))
        for (let x = a; x <= b; x++) {
          if (seen[x]) return false;
          seen[x] = 1;
        }
  return runs((x) => seen[x] === 0).length === 0;
}

type ReshardState = NonNullable<BdbRecord['reshard']>;

/**
 * The resharding state with every shard it names as a master: a failover
 * during a resharding promotes a replica, and the moves, removals and
 * cleanups of the old master are the new one's (a shard now a replica stands
 * for its master). Undefined when nothing changes.
 */
export function remapToMasters(shards: readonly ShardPlacement[], r: ReshardState): ReshardState | undefined {
  let changed = false;
  const m = (uid: number) => {
    const s = shards.find((x) => x.uid === uid);
    const to = s?.role === 'slave' && s.master_uid !== undefined ? s.master_uid : uid;
    if (to !== uid) changed = true;
    return to;
  };
  const next: ReshardState = {
    ...r,
    moves: r.moves.map((x) => ({ ...x, source: m(x.source), target: m(x.target) })),
    remove: r.remove.map(m),
    ...(r.cleanup ? { cleanup: r.cleanup.map((c) => ({ ...c, source: m(c.source) })) } : {}),
  };
  return changed ? next : undefined;
}
