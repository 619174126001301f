// The decisions of a graceful stop (control/services/graceful-stop.ts), pure:
// which of a stopping node's masters it asks a failover of and which it does
// not wait for (and why), and who takes the cluster master role from it. The
// stop itself, over real nodes, is test/integration/sigterm-handover.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ShardPlacement } from '../../src/coord/schema.js';
import { planHandOver } from '../../src/control/services/graceful-stop.js';
import { masterRoleTarget } from '../../src/control/model/maintenance.js';
import { bdbRecord } from '../support/bdb-record.js';

const m = (uid: number, node: number, slots: [number, number]): ShardPlacement => ({ uid, role: 'master', node_uid: node, slots });
const r = (uid: number, node: number, master: number, slots: [number, number]): ShardPlacement => ({
  uid,
  role: 'slave',
  node_uid: node,
  slots,
  master_uid: master,
});

test('planHandOver: masters whose replica is on a node that stays up are asked for, per database; the others are left, each with why', () => {
  const a = bdbRecord(1, [m(1, 1, [0, 8191]), r(2, 2, 1, [0, 8191]), m(3, 1, [8192, 16383]), r(4, 3, 3, [8192, 16383])]);
  const b = bdbRecord(2, [m(5, 2, [0, 16383]), r(6, 1, 5, [0, 16383])]); // node 1 holds only a replica
  const solo = bdbRecord(3, [m(7, 1, [0, 16383])]); // not replicated
  const gone = bdbRecord(4, [m(8, 1, [0, 16383]), r(9, 2, 8, [0, 16383])], { status: 'delete-pending' });

  // Nodes 2 and 3 stay up.
  let p = planHandOver([a, b, solo], 1, [2, 3]);
  assert.deepEqual([...p.pending], [[1, [1, 3]]]);
  assert.deepEqual(p.left, [{ shard: 7, bdb: 3, why: 'database 3 is not replicated' }]);

  // Node 3 is stopping too (or down): master 3's replica is there, so it is not waited for.
  p = planHandOver([a, solo], 1, [2]);
  assert.deepEqual([...p.pending], [[1, [1]]]);
  assert.deepEqual(
    p.left.map((l) => [l.shard, l.why]),
    [
      [3, 'its replica (shard 4 on node 3) is on no node that stays up'],
      [7, 'database 3 is not replicated'],
    ],
  );

  // A whole cluster stopping: nothing to ask for.
  p = planHandOver([a], 1, []);
  assert.equal(p.pending.size, 0);
  assert.deepEqual(
    p.left.map((l) => l.shard),
    [1, 3],
  );

  // A replicated database whose master has lost its replica (a rebuild not placed yet).
  p = planHandOver([bdbRecord(5, [m(10, 1, [0, 16383])], { replication: true })], 1, [2, 3]);
  assert.deepEqual(p.left, [{ shard: 10, bdb: 5, why: 'database 5 is missing its replica' }]);

  // A database being deleted is neither handed over nor reported.
  p = planHandOver([gone], 1, [2, 3]);
  assert.deepEqual([p.pending.size, p.left.length], [0, 0]);
});

test('masterRoleTarget: a placeable node first, then the newest version, then the lowest uid', () => {
  const v = (versions: Record<number, string>) => (u: number) => versions[u] ?? '0.2.0';
  assert.equal(masterRoleTarget([2, 3], new Set([2, 3]), v({})), 2);
  // Node 2 is in maintenance mode: node 3.
  assert.equal(masterRoleTarget([2, 3], new Set([3]), v({})), 3);
  // Node 2 still runs 0.1.0 (a rolling upgrade): the 0.2 node.
  assert.equal(masterRoleTarget([2, 3], new Set([2, 3]), v({ 2: '0.1.0' })), 3);
  // Only a node in maintenance mode is left: it takes the role rather than nobody.
  assert.equal(masterRoleTarget([4], new Set(), v({})), 4);
  assert.equal(masterRoleTarget([], new Set(), v({})), undefined);
});
