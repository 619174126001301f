// Operator shard operations without a cluster: the placement changes a
// planned failover and a migration make, and the reading of a shard's INFO
// replication they decide on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planAddReplica, planEvacuation, planRemove, planSwitch } from '../../src/control/model/shard-plans.js';
import { OperatorError } from '../../src/util/errors.js';
import { parseReplication } from '../../src/control/reconcilers/shard-rpc.js';
import type { BdbRecord, ShardPlacement } from '../../src/coord/schema.js';

// 2 shards, 3 nodes: masters 1 (node 1) and 3 (node 2); replicas 2 (node 2) and 4 (node 3).
const twoShards: ShardPlacement[] = [
  { uid: 1, role: 'master', node_uid: 1, slots: [0, 8191] },
  { uid: 2, role: 'slave', node_uid: 2, slots: [0, 8191], master_uid: 1 },
  { uid: 3, role: 'master', node_uid: 2, slots: [8192, 16383] },
  { uid: 4, role: 'slave', node_uid: 3, slots: [8192, 16383], master_uid: 3 },
];
const byUid = (shards: ShardPlacement[]) => new Map(shards.map((s) => [s.uid, s]));

test('switch: the replica takes the slots, the old master becomes its replica, the other shards are untouched', () => {
  const next = byUid(planSwitch(twoShards, 1, 2)!);
  assert.deepEqual(next.get(2), { uid: 2, role: 'master', node_uid: 2, slots: [0, 8191], master_uid: undefined });
  assert.deepEqual(next.get(1), { uid: 1, role: 'slave', node_uid: 1, slots: [0, 8191], master_uid: 2 });
  assert.deepEqual(next.get(3), twoShards[2]);
  assert.deepEqual(next.get(4), twoShards[3]);
  assert.equal(twoShards[0].role, 'master', 'the input is not changed');
});

test('switch: only a master to its own replica; a second replica follows the new master', () => {
  assert.equal(planSwitch(twoShards, 2, 1), undefined, 'a replica is not switched');
  assert.equal(planSwitch(twoShards, 1, 4), undefined, 'not its replica');
  assert.equal(planSwitch(twoShards, 9, 2), undefined, 'unknown shard');
  const three = [...twoShards, { uid: 5, role: 'slave' as const, node_uid: 3, slots: [0, 8191] as [number, number], master_uid: 1 }];
  const next = byUid(planSwitch(three, 1, 5)!);
  assert.equal(next.get(5)?.role, 'master');
  assert.equal(next.get(2)?.master_uid, 5);
  assert.equal(next.get(1)?.master_uid, 5);
});

test("add replica: of the shard's master, never beside a shard of the same slots", () => {
  // Replica 2 (node 2) of master 1 (node 1) to node 3: a new replica of 1 there.
  const next = planAddReplica(twoShards, 2, 7, 3)!;
  assert.deepEqual(next.at(-1), { uid: 7, role: 'slave', node_uid: 3, slots: [0, 8191], master_uid: 1 });
  // Master 1 to node 3: a replica of itself.
  assert.deepEqual(planAddReplica(twoShards, 1, 7, 3)!.at(-1), { uid: 7, role: 'slave', node_uid: 3, slots: [0, 8191], master_uid: 1 });
  // Master 1 to node 2, where its replica is; replica 4 to node 2, where its master is.
  assert.equal(planAddReplica(twoShards, 1, 7, 2), undefined);
  assert.equal(planAddReplica(twoShards, 4, 7, 2), undefined);
  assert.equal(planAddReplica(twoShards, 9, 7, 3), undefined, 'unknown shard');
  assert.equal(planAddReplica(twoShards, 2, 4, 3), undefined, 'the new uid is taken');
});

test('remove: the replaced replica goes; replicas that followed it follow the new shard', () => {
  const added = planAddReplica(twoShards, 2, 7, 3)!;
  const next = planRemove(added, 2, 7)!;
  assert.deepEqual(
    next.map((s) => s.uid),
    [1, 3, 4, 7],
  );
  // A migrated master, switched: 1 is a replica of 7, which serves; 2 followed 7.
  const switched = planSwitch(planAddReplica(twoShards, 1, 7, 3)!, 1, 7)!;
  const gone = byUid(planRemove(switched, 1, 7)!);
  assert.equal(gone.has(1), false);
  assert.equal(gone.get(7)?.role, 'master');
  assert.equal(gone.get(2)?.master_uid, 7);
  assert.equal(planRemove(twoShards, 1, 2), undefined, 'a master is never removed');
});

test('INFO replication of a master and of a replica', () => {
  const master = parseReplication(
    '$300\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.16.2,port=40001,state=online,offset=1234,lag=0\r\n' +
      'slave1:ip=127.0.16.3,port=40002,state=wait_bgsave,offset=0,lag=1\r\nmaster_failover_state:no-failover\r\nmaster_replid:abc\r\nmaster_repl_offset:1234\r\n\r\n',
  );
  assert.deepEqual(master, {
    role: 'master',
    master_repl_offset: 1234,
    replicas: [
      { state: 'online', offset: 1234 },
      { state: 'wait_bgsave', offset: 0 },
    ],
  });
  const replica = parseReplication(
    '$200\r\n# Replication\r\nrole:slave\r\nmaster_host:127.0.16.1\r\nmaster_port:40001\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\nslave_read_repl_offset:1300\r\nslave_repl_offset:1299\r\nmaster_repl_offset:1299\r\n\r\n',
  );
  assert.deepEqual(replica, {
    role: 'slave',
    master_repl_offset: 1299,
    master_link_status: 'up',
    master_sync_in_progress: false,
    slave_repl_offset: 1299,
    replicas: [],
  });
  assert.throws(() => parseReplication('-NOAUTH Authentication required.\r\n'), /NOAUTH/);
});

const asBdb = (uid: number, shards: ShardPlacement[]) => ({ uid, shards }) as unknown as BdbRecord; // only uid and shards are read

test('evacuation: each shard of the removed node goes to the least loaded live node holding none of its slots', () => {
  // Node 2 holds replica 2 and master 3. Replica 2 cannot go to node 1 (its
  // master); it goes to the empty node 4 rather than node 3. Master 3 cannot
  // go to node 3 (its replica 4); nodes 1 and 4 now have one shard each, and
  // the lower uid wins.
  const plan = planEvacuation(
    [asBdb(1, twoShards)],
    2,
    [1, 3, 4],
    new Map([
      [1, 1],
      [2, 2],
      [3, 1],
      [4, 0],
    ]),
  );
  assert.deepEqual(plan, [
    { bdb_uid: 1, shard_uid: 2, target_node_uid: 4 },
    { bdb_uid: 1, shard_uid: 3, target_node_uid: 1 },
  ]);
  // Without node 4, master 3 goes to node 1 and replica 2 to node 3.
  assert.deepEqual(
    planEvacuation([asBdb(1, twoShards)], 2, [1, 3], new Map()).map((e) => e.target_node_uid),
    [3, 1],
  );
  assert.deepEqual(planEvacuation([asBdb(1, twoShards)], 9, [1, 2, 3], new Map()), [], 'a node without shards moves nothing');
});

test('evacuation: refused with the shard and the reason when it has nowhere to go', () => {
  assert.throws(
    () => planEvacuation([asBdb(1, twoShards)], 2, [1], new Map()),
    (e: unknown) =>
      e instanceof OperatorError &&
      e.code === 'no_placement' &&
      /shard 2 of database 1 \(replica of slots 0-8191\) has nowhere to go: every other live node \(1\) already holds a shard of those slots/.test(
        e.message,
      ),
  );
  assert.throws(() => planEvacuation([asBdb(1, twoShards)], 1, [], new Map()), /no other node is live/);
});
