// A database's shape, pure (issue 21): Redis Enterprise's shards blueprint
// (GET /v1/bdbs/{uid}/actions/optimize_shards_placement proposes one, PUT
// /v1/bdbs/{uid} {"shards_blueprint": …} applies it), the cluster-state-id
// that says whether a blueprint is still about the current placement, and
// where the replicas go when replication is turned on. Every function takes
// the ELIGIBLE nodes (live, and not kept free of shards) as input, so the
// caller decides which nodes may take shards.
import { createHash } from 'node:crypto';
import type { BdbRecord, ShardPlacement } from '../../coord/schema.js';
import { conflict, invalid, unacceptable } from '../../util/errors.js';
import { family, familyMaster, isGone } from './shard-plans.js';

/** One slot range of a database and where its master and replicas are (RE's `shards_blueprint` item; node uids as strings, as RE writes them). */
export interface BlueprintEntry {
  nodes: { node_uid: string; role: 'master' | 'slave' }[];
  slot_range: string;
}

/** What the nodes hold besides this database: shards per node (ties are broken towards the emptier node). */
export type NodeLoad = ReadonlyMap<number, number>;

const rangeText = (s: ShardPlacement) => `${s.slots[0]}-${s.slots[1]}`;
const masters = (shards: readonly ShardPlacement[]) => shards.filter((s) => s.role === 'master').sort((a, b) => a.slots[0] - b.slots[0]);

/** The blueprint of a placement: one entry per master, in slot order, the master first. */
export function blueprintOf(shards: readonly ShardPlacement[]): BlueprintEntry[] {
  return masters(shards).map((m) => ({
    nodes: family(shards, m)
      .sort((a, b) => (a.role === b.role ? a.uid - b.uid : a.role === 'master' ? -1 : 1))
      .map((s) => ({ node_uid: String(s.node_uid), role: s.role })),
    slot_range: rangeText(m),
  }));
}

/**
 * The cluster-state-id of database `b`: a digest of what its blueprint is
 * planned from (its uid and generation, the eligible nodes, and every other
 * database's uid and generation, whose shards weigh on the choice). Any
 * change of placement bumps a generation, and a node that joins, leaves, goes
 * down or is kept free changes the eligible list, so an id read before such a
 * change no longer matches.
 */
export function clusterStateId(b: BdbRecord, eligible: readonly number[], bdbs: readonly BdbRecord[]): string {
  const others = bdbs
    .filter((x) => x.uid !== b.uid && !isGone(x))
    .map((x) => `${x.uid}:${x.generation}`)
    .sort();
  const text = JSON.stringify([b.uid, b.generation, [...eligible].sort((x, y) => x - y), others]);
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** Shards of the other databases per node. */
export function loadOf(bdbs: readonly BdbRecord[], except: number): Map<number, number> {
  const load = new Map<number, number>();
  for (const x of bdbs) {
    if (x.uid === except || isGone(x)) continue;
    for (const s of x.shards) load.set(s.node_uid, (load.get(s.node_uid) ?? 0) + 1);
  }
  return load;
}

/** The lexicographic cost of a placement over the eligible nodes: this database's shards per node, its masters per node, all shards per node (sums of squares). */
function cost(shards: readonly ShardPlacement[], eligible: readonly number[], load: NodeLoad): number[] {
  let own = 0;
  let mast = 0;
  let all = 0;
  for (const n of eligible) {
    const here = shards.filter((s) => s.node_uid === n);
    const m = here.filter((s) => s.role === 'master').length;
    own += here.length ** 2;
    mast += m ** 2;
    all += (here.length + (load.get(n) ?? 0)) ** 2;
  }
  return [own, mast, all];
}

const less = (a: number[], b: number[]) => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
};

/** May shard `s` be on node `to`: no other shard of its slots is there. */
function fits(shards: readonly ShardPlacement[], s: ShardPlacement, to: number): boolean {
  const fm = familyMaster(shards, s) ?? s;
  return !family(shards, fm).some((x) => x.uid !== s.uid && x.node_uid === to);
}

const moved = (shards: readonly ShardPlacement[], uid: number, to: number) =>
  shards.map((x) => (x.uid === uid ? { ...x, node_uid: to } : x));

/**
 * A better placement of database `b` on the `eligible` nodes: shards on a
 * node that is not eligible are moved off it (to the eligible node with the
 * fewest of its shards that holds none of the same slots); a `sparse`
 * database then has shards moved, one at a time, while a move spreads its
 * shards (then its masters, then all shards of the cluster) more evenly over
 * the eligible nodes (of equal moves, a replica's: it pauses no write). A
 * `dense` database keeps its placement otherwise. A
 * master and its replica never share a node. Moves keep each shard's role.
 * Throws 406 insufficient_resources when a shard has nowhere to go.
 */
export function optimizePlacement(
  b: Pick<BdbRecord, 'uid' | 'shards' | 'shards_placement'>,
  eligible: readonly number[],
  load: NodeLoad = new Map(),
  placement: 'dense' | 'sparse' = b.shards_placement,
): ShardPlacement[] {
  const nodes = [...new Set(eligible)].sort((x, y) => x - y);
  let shards = b.shards.map((s) => ({ ...s }));
  const count = (n: number) => shards.filter((s) => s.node_uid === n).length;
  for (const s of [...shards].sort((x, y) => x.uid - y.uid)) {
    if (nodes.includes(s.node_uid)) continue;
    const to = nodes
      .filter((n) => fits(shards, s, n))
      .sort((x, y) => count(x) - count(y) || (load.get(x) ?? 0) - (load.get(y) ?? 0) || x - y)[0];
    if (to === undefined)
      throw unacceptable(
        'insufficient_resources',
        `shard ${s.uid} of database ${b.uid} (on node ${s.node_uid}, which may not take shards) has nowhere to go: every eligible node (${nodes.join(', ') || 'none'}) holds a shard of slots ${rangeText(familyMaster(shards, s) ?? s)}`,
      );
    shards = moved(shards, s.uid, to);
  }
  if (placement !== 'sparse') return shards;
  // Each pass makes the cost strictly smaller, so this ends; the bound is a guard.
  for (let pass = 0; pass < 4 * shards.length * nodes.length + 1; pass++) {
    let best: { cost: number[]; uid: number; to: number } | undefined;
    // Among equal moves a replica goes first: moving one pauses no write (a master's move is a switchover).
    const order = [...shards].sort((x, y) => (x.role === y.role ? x.uid - y.uid : x.role === 'slave' ? -1 : 1));
    for (const s of order) {
      for (const to of nodes) {
        if (to === s.node_uid || !fits(shards, s, to)) continue;
        const c = cost(moved(shards, s.uid, to), nodes, load);
        if (!best || less(c, best.cost)) best = { cost: c, uid: s.uid, to };
      }
    }
    if (!best || !less(best.cost, cost(shards, nodes, load))) break;
    shards = moved(shards, best.uid, best.to);
  }
  return shards;
}

/** A new replica of a master: on `target_node_uid`, with the uid `new_shard_uid`. */
export interface ReplicaAdd {
  shard_uid: number;
  new_shard_uid: number;
  target_node_uid: number;
}

/**
 * Where each master of `b` without a replica gets one when replication is
 * turned on, as a new database is placed: never on its master's node; for a
 * `sparse` database the eligible node with the fewest of its shards, for a
 * `dense` one the node that already holds most of them (then the emptier
 * node, then the lower uid). New shard uids count up from `firstUid`. Throws
 * 406 insufficient_resources when a master has nowhere to put its replica.
 */
export function placeReplicas(
  b: Pick<BdbRecord, 'uid' | 'shards' | 'shards_placement'>,
  eligible: readonly number[],
  load: NodeLoad,
  firstUid: number,
): ReplicaAdd[] {
  let shards: ShardPlacement[] = b.shards.map((s) => ({ ...s }));
  const out: ReplicaAdd[] = [];
  const count = (n: number) => shards.filter((s) => s.node_uid === n).length;
  const dense = b.shards_placement === 'dense';
  for (const m of masters(b.shards)) {
    if (shards.some((s) => s.master_uid === m.uid)) continue;
    const to = [...new Set(eligible)]
      .filter((n) => n !== m.node_uid)
      .sort((x, y) => (dense ? count(y) - count(x) : count(x) - count(y)) || (load.get(x) ?? 0) - (load.get(y) ?? 0) || x - y)[0];
    if (to === undefined)
      throw unacceptable(
        'insufficient_resources',
        `replication needs a second eligible node: shard ${m.uid} (slots ${rangeText(m)}) is on node ${m.node_uid}, and the eligible nodes are ${eligible.join(', ') || 'none'}`,
      );
    const uid = firstUid + out.length;
    out.push({ shard_uid: m.uid, new_shard_uid: uid, target_node_uid: to });
    shards = [...shards, { uid, role: 'slave', node_uid: to, slots: m.slots, master_uid: m.uid }];
  }
  return out;
}

/** A migration the blueprint asks for: shard `shard_uid` goes to node `target_node_uid` (keeping its role). */
export interface BlueprintMove {
  shard_uid: number;
  target_node_uid: number;
}

const badBlueprint = (d: string) => invalid('invalid_shards_blueprint', d);

/**
 * Check blueprint `bp` against database `b` and turn it into migrations, in
 * an order where no step puts two shards of one slot range on one node.
 * `known`: every node of the cluster; `eligible`: those that may take shards.
 * Errors (nothing is moved by a refused blueprint): 400
 * invalid_shards_blueprint (not an array of entries, a slot range that is not
 * one of this database's masters' — a blueprint for another database or
 * another shard count, a missing range, a node count other than the range's
 * shards, not one master, one node twice, i.e. a master beside its replica, a
 * node that is not in the cluster, or roles swapped between two nodes that
 * hold the range: that is a failover), 409 node_not_available (a node that
 * may not take shards now).
 */
export function blueprintMoves(
  b: Pick<BdbRecord, 'uid' | 'shards'>,
  bp: unknown,
  known: readonly number[],
  eligible: readonly number[],
): BlueprintMove[] {
  if (!Array.isArray(bp) || bp.length === 0) throw badBlueprint('shards_blueprint must be a non-empty array of {nodes, slot_range}');
  const ms = masters(b.shards);
  const byRange = new Map(ms.map((m) => [rangeText(m), m]));
  const seen = new Set<string>();
  const want = new Map<number, { master: number; replicas: number[] }>();
  bp.forEach((e: unknown, i) => {
    const where = `shards_blueprint[${i}]`;
    const entry = e as Partial<{ nodes: unknown; slot_range: unknown }>;
    if (typeof e !== 'object' || e === null || typeof entry.slot_range !== 'string' || !Array.isArray(entry.nodes))
      throw badBlueprint(`${where}: expected {nodes: [{node_uid, role}], slot_range: "<first>-<last>"}`);
    const m = byRange.get(entry.slot_range.trim());
    if (!m)
      throw badBlueprint(
        `${where}: slot_range ${entry.slot_range} is not a slot range of database ${b.uid} (its ranges: ${[...byRange.keys()].join(', ')}); a blueprint applies to the database it was made for, and does not change the shard count`,
      );
    if (seen.has(rangeText(m))) throw badBlueprint(`${where}: slot_range ${entry.slot_range} is listed twice`);
    seen.add(rangeText(m));
    const fam = family(b.shards, m);
    const nodes = (entry.nodes as unknown[]).map((n, j) => {
      const x = n as Partial<{ node_uid: unknown; role: unknown }>;
      const uid = typeof x?.node_uid === 'number' ? x.node_uid : typeof x?.node_uid === 'string' ? Number(x.node_uid) : Number.NaN;
      if (!Number.isSafeInteger(uid) || uid < 1 || (x.role !== 'master' && x.role !== 'slave'))
        throw badBlueprint(`${where}.nodes[${j}]: expected {node_uid: "<uid>", role: "master" | "slave"}`);
      if (!known.includes(uid)) throw badBlueprint(`${where}.nodes[${j}]: node ${uid} is not a node of this cluster`);
      return { uid, role: x.role };
    });
    if (nodes.length !== fam.length)
      throw badBlueprint(
        `${where}: slot range ${entry.slot_range} has ${fam.length} shard(s) (a master${fam.length > 1 ? ` and ${fam.length - 1} replica(s)` : ''}), the blueprint lists ${nodes.length}; a blueprint moves shards, it does not add or remove them`,
      );
    const master = nodes.filter((n) => n.role === 'master');
    if (master.length !== 1) throw badBlueprint(`${where}: slot range ${entry.slot_range} needs exactly one master, not ${master.length}`);
    const dup = nodes.find((n, j) => nodes.findIndex((y) => y.uid === n.uid) !== j);
    if (dup)
      throw badBlueprint(
        `${where}: node ${dup.uid} is listed twice for slot range ${entry.slot_range}; a master and its replica are never on one node`,
      );
    want.set(m.uid, { master: master[0].uid, replicas: nodes.filter((n) => n.role === 'slave').map((n) => n.uid) });
  });
  const missing = ms.filter((m) => !want.has(m.uid));
  if (missing.length)
    throw badBlueprint(`slot range(s) ${missing.map(rangeText).join(', ')} of database ${b.uid} are missing from the blueprint`);

  // Per range: the master goes to the wanted master node; replicas already on a wanted replica node stay, the others take the rest.
  const moves: BlueprintMove[] = [];
  for (const m of ms) {
    const w = want.get(m.uid)!;
    const reps = b.shards.filter((s) => s.master_uid === m.uid).sort((x, y) => x.uid - y.uid);
    if (m.node_uid !== w.master && reps.some((r) => r.node_uid === w.master) && w.replicas.includes(m.node_uid))
      throw badBlueprint(
        `slot range ${rangeText(m)}: the blueprint swaps the roles of nodes ${m.node_uid} and ${w.master}; that is a failover (tessera failover db ${b.uid} shard ${m.uid}), not a move`,
      );
    if (m.node_uid !== w.master) moves.push({ shard_uid: m.uid, target_node_uid: w.master });
    const free = w.replicas.filter((n) => !reps.some((r) => r.node_uid === n));
    for (const r of reps) if (!w.replicas.includes(r.node_uid)) moves.push({ shard_uid: r.uid, target_node_uid: free.shift()! });
  }
  for (const mv of moves)
    if (!eligible.includes(mv.target_node_uid))
      throw conflict(
        'node_not_available',
        `node ${mv.target_node_uid} cannot take shards now (it is down, joining or kept free of shards); shard ${mv.shard_uid} cannot move there`,
      );
  return orderMoves(b.shards, moves);
}

/** The moves in an order where each target holds no shard of the moving shard's slots when its turn comes; refused if there is none. */
function orderMoves(start: readonly ShardPlacement[], moves: BlueprintMove[]): BlueprintMove[] {
  let shards = start.map((s) => ({ ...s }));
  const left = [...moves];
  const out: BlueprintMove[] = [];
  while (left.length) {
    const i = left.findIndex((mv) => fits(shards, shards.find((s) => s.uid === mv.shard_uid)!, mv.target_node_uid));
    if (i < 0)
      throw badBlueprint(
        `the blueprint cannot be reached by moving one shard at a time (shards ${left.map((mv) => `${mv.shard_uid} -> node ${mv.target_node_uid}`).join(', ')} wait on each other); fail over or migrate one of them first`,
      );
    const [mv] = left.splice(i, 1);
    out.push(mv);
    shards = moved(shards, mv.shard_uid, mv.target_node_uid);
  }
  return out;
}
