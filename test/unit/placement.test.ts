// The pure placement transforms (control/model/shard-plans.ts): no store, no sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bumped, isGone, moveReplica, planFailover, promote } from '../../src/control/model/shard-plans.js';
import type { BdbRecord, ShardPlacement } from '../../src/coord/schema.js';

// Master 1 on node 1 with replicas 2 (node 2) and 3 (node 3); master 4 on node 2 with replica 5 on node 1.
const shards = (): ShardPlacement[] => [
  { uid: 1, role: 'master', node_uid: 1, slots: [0, 8191] },
  { uid: 2, role: 'slave', node_uid: 2, slots: [0, 8191], master_uid: 1 },
  { uid: 3, role: 'slave', node_uid: 3, slots: [0, 8191], master_uid: 1 },
  { uid: 4, role: 'master', node_uid: 2, slots: [8192, 16383] },
  { uid: 5, role: 'slave', node_uid: 1, slots: [8192, 16383], master_uid: 4 },
];

test('promote: the replica takes the slots, the old master and its sibling follow it', () => {
  const before = shards();
  const after = promote(before, 1, 2)!;
  assert.deepEqual(
    after.find((s) => s.uid === 2),
    { uid: 2, role: 'master', node_uid: 2, slots: [0, 8191], master_uid: undefined },
  );
  assert.equal(after.find((s) => s.uid === 1)?.role, 'slave');
  assert.equal(after.find((s) => s.uid === 1)?.master_uid, 2);
  assert.equal(after.find((s) => s.uid === 3)?.master_uid, 2, 'the other replica follows the new master');
  assert.deepEqual(after.slice(3), before.slice(3), 'other slots untouched');
  assert.deepEqual(before, shards(), 'input not mutated');
});

test('promote refuses what is not a replica of that master', () => {
  assert.equal(promote(shards(), 1, 5), undefined);
  assert.equal(promote(shards(), 2, 1), undefined);
  assert.equal(promote(shards(), 1, 99), undefined);
});

test('planFailover: a dead master is promoted away from, siblings re-pointed; no live replica, no promotion', () => {
  const plan = planFailover(shards(), new Set([1]), [2, 3], new Set())!;
  assert.deepEqual(plan.promoted, [{ failed: 1, promoted: 2, node: 2 }]);
  assert.equal(plan.shards.find((s) => s.uid === 3)?.master_uid, 2);
  const lonely: ShardPlacement[] = [
    { uid: 1, role: 'master', node_uid: 1, slots: [0, 16383] },
    { uid: 2, role: 'slave', node_uid: 2, slots: [0, 16383], master_uid: 1 },
  ];
  assert.equal(planFailover(lonely, new Set([1, 2]), [3]), undefined, 'no live replica: refused');
});

test('moveReplica refuses a master and a node that holds a shard of its slots', () => {
  assert.equal(moveReplica(shards(), 1, 4), undefined, 'a master is not moved');
  assert.equal(moveReplica(shards(), 2, 1), undefined, 'beside its master');
  assert.equal(moveReplica(shards(), 2, 3), undefined, 'beside its sibling');
  assert.equal(moveReplica(shards(), 2, 4)?.find((s) => s.uid === 2)?.node_uid, 4);
});

test('bumped: generation + 1 once, change pending unless still pending; isGone', () => {
  const b = { uid: 1, generation: 7, status: 'active', shards: shards() } as unknown as BdbRecord;
  const now = new Date('2026-01-01T00:00:00Z');
  const next = bumped(b, promote(b.shards, 1, 2)!, now);
  assert.equal(next.generation, 8);
  assert.equal(next.status, 'active-change-pending');
  assert.equal(next.last_changed_time, now.toISOString());
  assert.equal(bumped({ ...b, status: 'pending' }, b.shards).status, 'pending');
  assert.equal(isGone({ status: 'delete-pending' }), true);
  assert.equal(isGone({ status: 'creation-failed' }), true);
  for (const status of ['pending', 'active', 'active-change-pending'] as const) assert.equal(isGone({ status }), false);
});
