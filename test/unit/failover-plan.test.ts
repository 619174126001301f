// The failover plan for one database after nodes die: which replica takes
// over each lost master, and where each lost replica is rebuilt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planFailover } from '../../src/control/model/shard-plans.js';
import type { ShardPlacement } from '../../src/coord/schema.js';

// 2 shards, 3 nodes: masters 1 (node 1) and 3 (node 2); replicas 2 (node 2) and 4 (node 3).
const twoShards: ShardPlacement[] = [
  { uid: 1, role: 'master', node_uid: 1, slots: [0, 8191] },
  { uid: 2, role: 'slave', node_uid: 2, slots: [0, 8191], master_uid: 1 },
  { uid: 3, role: 'master', node_uid: 2, slots: [8192, 16383] },
  { uid: 4, role: 'slave', node_uid: 3, slots: [8192, 16383], master_uid: 3 },
];

test('a dead master node: its replica is promoted and the old master is rebuilt as a replica on another live node, never beside its master', () => {
  const plan = planFailover(twoShards, new Set([1]), [2, 3])!;
  assert.deepEqual(plan.promoted, [{ failed: 1, promoted: 2, node: 2 }]);
  assert.deepEqual(plan.moved, [{ shard: 1, from: 1, to: 3 }]);
  const byUid = new Map(plan.shards.map((s) => [s.uid, s]));
  assert.deepEqual(byUid.get(2), { uid: 2, role: 'master', node_uid: 2, slots: [0, 8191], master_uid: undefined });
  assert.deepEqual(byUid.get(1), { uid: 1, role: 'slave', node_uid: 3, slots: [0, 8191], master_uid: 2 });
  // One master per slot range, and the untouched shard is as it was.
  assert.equal(plan.shards.filter((s) => s.role === 'master').length, 2);
  assert.deepEqual(byUid.get(3), twoShards[2]);
  assert.deepEqual(twoShards[0].role, 'master', 'the input is not changed');
});

test('a dead replica node: the replica is rebuilt elsewhere, no promotion', () => {
  const plan = planFailover(twoShards, new Set([3]), [1, 2])!;
  assert.deepEqual(plan.promoted, []);
  assert.deepEqual(plan.moved, [{ shard: 4, from: 3, to: 1 }]);
});

test('nothing to do: no shard on the dead node, or no live replica and no other node', () => {
  assert.equal(planFailover(twoShards, new Set([4]), [1, 2, 3]), undefined);
  const single: ShardPlacement[] = [{ uid: 1, role: 'master', node_uid: 1, slots: [0, 16383] }];
  assert.equal(planFailover(single, new Set([1]), [2, 3]), undefined, 'no replica: the slots wait for the node');
  const pair: ShardPlacement[] = [
    { uid: 1, role: 'master', node_uid: 1, slots: [0, 16383] },
    { uid: 2, role: 'slave', node_uid: 2, slots: [0, 16383], master_uid: 1 },
  ];
  const plan = planFailover(pair, new Set([1]), [2])!;
  assert.deepEqual(plan.promoted, [{ failed: 1, promoted: 2, node: 2 }]);
  assert.deepEqual(plan.moved, [], 'the only live node holds the master: the replica stays placed on the dead node');
});

test('two nodes dead: a replica on a dead node is not promoted; the one on the live node is', () => {
  const plan = planFailover(twoShards, new Set([1, 2]), [3])!;
  assert.deepEqual(plan.promoted, [{ failed: 3, promoted: 4, node: 3 }]);
  assert.equal(plan.shards.find((s) => s.uid === 1)!.role, 'master', 'shard 1 has no live replica: it waits for its node');
});

test('replica grace period (slave_ha_grace_period) or slave_ha off: masters fail over at once, replicas stay until their node is in the rebuild set', () => {
  const early = planFailover(twoShards, new Set([1]), [2, 3], new Set())!;
  assert.deepEqual(early.promoted, [{ failed: 1, promoted: 2, node: 2 }]);
  assert.deepEqual(early.moved, [], 'not rebuilt during the grace period');
  assert.equal(early.shards.find((s) => s.uid === 1)?.node_uid, 1, 'the old master waits on its dead node, as a replica');
  // Later, past the grace period: the promotion is done, the rebuild follows.
  const later = planFailover(early.shards, new Set([1]), [2, 3], new Set([1]))!;
  assert.deepEqual(later.promoted, []);
  assert.deepEqual(later.moved, [{ shard: 1, from: 1, to: 3 }]);
  assert.equal(
    planFailover(twoShards, new Set([3]), [1, 2], new Set()),
    undefined,
    'a dead replica node alone: nothing until the grace period ends',
  );
});
