// The resharding planner without a cluster: target ranges (the creation's
// split), which master keeps which range, the slot moves, placement of new
// shards and its refusals, and the shard list chunk by chunk to the end:
// 2 → 4 → 3 → 1, and 1 → 512.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyChunk,
  coversAllSlots,
  finishReshard,
  firstChunk,
  planReshard,
  rangesOf,
  remapToMasters,
  type ReshardPlan,
} from '../../src/control/model/reshard-plan.js';
import { slotRanges } from '../../src/control/model/placement.js';
import { OperatorError } from '../../src/util/errors.js';
import type { ShardPlacement } from '../../src/coord/schema.js';

const GB = 1024 ** 3;
const nodes = [1, 2, 3].map((uid) => ({ uid, memory: 8 * GB }));

// 2 shards, 3 nodes: masters 1 (node 1) and 3 (node 2); replicas 2 (node 2) and 4 (node 3).
const twoShards: ShardPlacement[] = [
  { uid: 1, role: 'master', node_uid: 1, slots: [0, 8191] },
  { uid: 2, role: 'slave', node_uid: 2, slots: [0, 8191], master_uid: 1 },
  { uid: 3, role: 'master', node_uid: 2, slots: [8192, 16383] },
  { uid: 4, role: 'slave', node_uid: 3, slots: [8192, 16383], master_uid: 3 },
];
const db = (shards: ShardPlacement[], replication = true) => ({
  uid: 7,
  shards,
  replication,
  shards_placement: 'sparse' as const,
  memory_size: GB,
});
const loadOf = (shards: ShardPlacement[]) => {
  const m = new Map<number, number>();
  for (const s of shards) m.set(s.node_uid, (m.get(s.node_uid) ?? 0) + 1);
  return m;
};

/** Run a plan to its end, chunk by chunk, checking every slot is served by exactly one master after each. */
function run(plan: ReshardPlan, chunk = 1000): ShardPlacement[] {
  let shards = plan.shards;
  assert.ok(coversAllSlots(shards), 'every slot is served before the first move');
  for (const m of plan.moves) {
    const move = { ...m, slots: [...m.slots] as [number, number] };
    while (move.slots[0] <= move.slots[1]) {
      const r = firstChunk(move, chunk);
      const next = applyChunk(shards, move.source, move.target, r);
      assert.ok(next, `chunk ${r} of ${move.source} → ${move.target} applies`);
      shards = next;
      assert.ok(coversAllSlots(shards), 'every slot is served after each chunk');
      move.slots[0] = r[1] + 1;
    }
  }
  const done = finishReshard(shards, plan.remove);
  assert.ok(done, 'the plan finishes');
  return done;
}

const masterRanges = (shards: ShardPlacement[]) =>
  shards
    .filter((s) => s.role === 'master')
    .map((s) => rangesOf(s)[0])
    .sort((a, b) => a[0] - b[0]);

test('2 → 4: each old master keeps the lower half of its range; two new masters (with replicas on other nodes) take the upper halves', () => {
  const plan = planReshard(db(twoShards), 4, nodes, loadOf(twoShards), 10);
  assert.deepEqual(plan.newShardUids, [10, 11, 12, 13]);
  assert.deepEqual(plan.remove, []);
  assert.deepEqual(plan.moves, [
    { source: 1, target: 10, slots: [4096, 8191] },
    { source: 3, target: 12, slots: [12288, 16383] },
  ]);
  assert.equal(plan.movedSlots, 8192, 'the fewest slots move');
  for (const s of plan.shards.filter((x) => x.uid >= 10)) {
    if (s.role === 'master') assert.deepEqual(s.slot_ranges, [], 'a new master serves nothing until its first chunk');
    else assert.notEqual(s.node_uid, plan.shards.find((m) => m.uid === s.master_uid)!.node_uid, 'never beside its master');
  }
  const after = run(plan);
  assert.deepEqual(masterRanges(after), slotRanges(4));
  assert.equal(after.length, 8);
  assert.ok(after.every((s) => s.slot_ranges === undefined));
  const r = after.find((s) => s.uid === 11)!;
  assert.deepEqual(r.slots, [4096, 8191], 'replicas follow their master');
});

test('4 → 3 → 1: the emptied masters and their replicas are removed; the kept ones end on the creation split', () => {
  const four = run(planReshard(db(twoShards), 4, nodes, loadOf(twoShards), 10));
  const plan3 = planReshard(db(four), 3, nodes, loadOf(four), 20);
  assert.deepEqual(plan3.newShardUids, []);
  assert.equal(plan3.remove.length, 1);
  assert.ok(plan3.movedSlots < 8192, `${plan3.movedSlots} slots move, fewer than half`);
  const three = run(plan3);
  assert.deepEqual(masterRanges(three), slotRanges(3));
  assert.equal(three.length, 6);
  assert.ok(!three.some((s) => s.uid === plan3.remove[0] || s.master_uid === plan3.remove[0]));
  const one = run(planReshard(db(three), 1, nodes, loadOf(three), 30), 4096);
  assert.deepEqual(masterRanges(one), [[0, 16383]]);
  assert.equal(one.length, 2, 'one master and its replica');
});

test('1 → 512 and back: the bounds, 32 slots a shard', () => {
  const one: ShardPlacement[] = [{ uid: 1, role: 'master', node_uid: 1, slots: [0, 16383] }];
  const plan = planReshard(db(one, false), 512, nodes, loadOf(one), 2);
  assert.equal(plan.newShardUids.length, 511);
  assert.equal(plan.moves.length, 511);
  const many = run(plan, 4096);
  assert.equal(many.length, 512);
  assert.ok(masterRanges(many).every(([a, b]) => b - a + 1 === 32));
  assert.deepEqual(masterRanges(run(planReshard(db(many, false), 1, nodes, loadOf(many), 600))), [[0, 16383]]);
});

test('placement refusals: out of bounds, replication with one eligible node, memory that does not fit; nothing planned', () => {
  const refused = (f: () => unknown, code: string) =>
    assert.throws(f, (e: unknown) => e instanceof OperatorError && e.code === code && e.kind === 'conflict' && e.message.length > 0);
  refused(() => planReshard(db(twoShards), 0, nodes, new Map(), 10), 'invalid_sharding');
  refused(() => planReshard(db(twoShards), 513, nodes, new Map(), 10), 'invalid_sharding');
  refused(() => planReshard(db(twoShards), 2.5, nodes, new Map(), 10), 'invalid_sharding');
  refused(() => planReshard(db(twoShards), 4, [nodes[0]], new Map(), 10), 'no_placement');
  refused(() => planReshard(db(twoShards), 4, [], new Map(), 10), 'no_placement');
  const small = [1, 2].map((uid) => ({ uid, memory: GB / 2 }));
  refused(() => planReshard(db(twoShards), 4, small, new Map(), 10), 'insufficient_resources');
  // Shrinking places nothing: allowed on any node set.
  assert.equal(planReshard(db(twoShards), 1, [], new Map(), 10).moves.length, 1);
});

test('dense placement puts the new masters on the least loaded node, replicas on another', () => {
  const plan = planReshard(
    { ...db(twoShards), shards_placement: 'dense' },
    4,
    nodes,
    new Map([
      [1, 5],
      [2, 5],
      [3, 0],
    ]),
    10,
  );
  const added = plan.shards.filter((s) => plan.newShardUids.includes(s.uid));
  assert.deepEqual(
    added.filter((s) => s.role === 'master').map((s) => s.node_uid),
    [3, 3],
  );
  assert.ok(added.filter((s) => s.role === 'slave').every((s) => s.node_uid !== 3));
});

test('applyChunk refuses slots the source does not serve', () => {
  assert.equal(applyChunk(twoShards, 1, 3, [8000, 8300]), undefined);
  assert.equal(applyChunk(twoShards, 2, 3, [0, 10]), undefined, 'a replica is not a source');
});

test('a failover during a resharding: moves, removals and cleanups follow the promoted replica', () => {
  const plan = planReshard(db(twoShards), 4, nodes, loadOf(twoShards), 10);
  const state = {
    shards_count: 4,
    moves: plan.moves,
    remove: [3],
    moved_slots: 0,
    total_slots: 8192,
    cleanup: [{ source: 1, slots: [4096, 4100] as [number, number] }],
  };
  assert.equal(remapToMasters(plan.shards, state), undefined, 'nothing to change while the masters are the same');
  // Shard 2 (replica of 1) is promoted: 1 is now its replica.
  const after = plan.shards.map((s) =>
    s.uid === 2
      ? { ...s, role: 'master' as const, master_uid: undefined }
      : s.uid === 1
        ? { ...s, role: 'slave' as const, master_uid: 2 }
        : s,
  );
  const next = remapToMasters(after, state)!;
  assert.deepEqual(
    next.moves.map((m) => [m.source, m.target]),
    [
      [2, 10],
      [3, 12],
    ],
  );
  assert.deepEqual(next.cleanup, [{ source: 2, slots: [4096, 4100] }]);
  assert.deepEqual(next.remove, [3]);
});
