// Maintenance mode's pure decisions, in-process: the placement predicate, the
// quorum check, the snapshot, and the planners that empty a node and fill it
// again. The steps are played as the shard operations would (a failover is a
// promotion; a migration adds a replica on the target, switches a master
// over to it, and removes the old shard), so a whole on/off round trip is
// checked to put back the snapshot's shards and roles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BdbRecord, ShardPlacement } from '../../src/coord/schema.js';
import {
  type MaintenanceMove,
  type MaintenanceStep,
  checkEnter,
  evicted,
  placeableNodes,
  planEnter,
  planRestore,
  quorumRefusal,
  snapshotOf,
  unplaceable,
} from '../../src/control/model/maintenance.js';
import { planAddReplica, planFailover, planRemove, planSwitch } from '../../src/control/model/shard-plans.js';
import { OperatorError } from '../../src/util/errors.js';
import { bdbRecord } from '../support/bdb-record.js';

const s = (uid: number, role: 'master' | 'slave', node: number, slots: [number, number], master?: number): ShardPlacement => ({
  uid,
  role,
  node_uid: node,
  slots,
  ...(master !== undefined ? { master_uid: master } : {}),
});

function bdb(uid: number, shards: ShardPlacement[], over: Partial<BdbRecord> = {}): BdbRecord {
  return bdbRecord(uid, shards, {
    memory_size: 1 << 20,
    data_internode_encryption: true,
    internal_secret: 'x',
    created_time: '',
    last_changed_time: '',
    ...over,
  });
}

// 3 nodes; db 1: two replicated shards, node 2 holds master 3 and replica 2; db 2: one unreplicated master on node 2.
const db1 = () =>
  bdb(1, [
    s(1, 'master', 1, [0, 8191]),
    s(2, 'slave', 2, [0, 8191], 1),
    s(3, 'master', 2, [8192, 16383]),
    s(4, 'slave', 3, [8192, 16383], 3),
  ]);
const db2 = () => bdb(2, [s(10, 'master', 2, [0, 16383])]);
const LIVE = new Set([1, 2, 3]);
const loadOf = (bdbs: BdbRecord[]) => {
  const m = new Map<number, number>();
  for (const b of bdbs) for (const x of b.shards) m.set(x.node_uid, (m.get(x.node_uid) ?? 0) + 1);
  return m;
};

/** Play a step as ShardOpsController would; returns the new databases and the moves a migration made. */
function play(bdbs: BdbRecord[], step: MaintenanceStep, nextUid: { n: number }): { bdbs: BdbRecord[]; moves: MaintenanceMove[] } {
  const moves: MaintenanceMove[] = [];
  const out = bdbs.map((b) => {
    let shards = b.shards;
    for (const it of step.items.filter((i) => i.bdb_uid === b.uid)) {
      if (step.kind === 'failover') {
        const to =
          'to_shard_uid' in it && it.to_shard_uid !== undefined
            ? it.to_shard_uid
            : shards.find((x) => x.master_uid === it.shard_uid && x.role === 'slave')!.uid;
        shards = planSwitch(shards, it.shard_uid, to)!;
        assert.ok(shards, `switch ${it.shard_uid} -> ${to}`);
      } else {
        const target = (it as { target_node_uid: number }).target_node_uid;
        const t = nextUid.n++;
        shards = planAddReplica(shards, it.shard_uid, t, target)!;
        assert.ok(shards, `add replica of ${it.shard_uid} on node ${target}`);
        if (shards.find((x) => x.uid === it.shard_uid)!.role === 'master') shards = planSwitch(shards, it.shard_uid, t)!;
        shards = planRemove(shards, it.shard_uid, t)!;
        assert.ok(shards, `remove ${it.shard_uid}`);
        moves.push({ bdb_uid: b.uid, shard_uid: it.shard_uid, new_shard_uid: t });
      }
    }
    return { ...b, shards };
  });
  return { bdbs: out, moves };
}

/** What a node holds, comparable across uids: database, slots, role. */
const held = (bdbs: BdbRecord[], node: number) =>
  snapshotOf(bdbs, node)
    .map((e) => `${e.bdb_uid}:${e.slots[0]}-${e.slots[1]}:${e.role}`)
    .sort();

test('the placement predicate: nodes with a maintenance record (any state) take nothing; uids or records', () => {
  const recs = [{ node_uid: 2 }];
  assert.deepEqual(placeableNodes([1, 2, 3], recs), [1, 3]);
  assert.deepEqual(
    placeableNodes([{ uid: 1 }, { uid: 2 }], recs).map((n) => n.uid),
    [1],
  );
  assert.deepEqual(placeableNodes([1, 2], []), [1, 2]);
  assert.deepEqual([...unplaceable([{ node_uid: 4 }, { node_uid: 2 }])].sort(), [2, 4]);
});

test('failover re-placement never rebuilds a replica on a node in maintenance mode', () => {
  // Node 3 dies holding replica 4; node 2 holds master 3; node 1 is in maintenance: nowhere to rebuild.
  const plan = planFailover(db1().shards, new Set([3]), [1, 2], new Set([3]), new Set([1]));
  assert.equal(plan, undefined);
  const free = planFailover(db1().shards, new Set([3]), [1, 2, 4], new Set([3]), new Set([1]));
  assert.deepEqual(free?.moved, [{ shard: 4, from: 3, to: 4 }]);
});

test('quorum: a node may go down only if a majority of the store members stays up; down and maintenance nodes count as gone', () => {
  assert.equal(quorumRefusal([1, 2, 3], 2, new Set(), new Set()), undefined);
  const two = quorumRefusal([1, 2], 2, new Set(), new Set());
  assert.ok(two instanceof OperatorError);
  assert.equal(two.code, 'quorum_loss');
  assert.equal(two.kind, 'conflict');
  assert.match(two.message, /needs 2 of its 2 members, and 1 would be left/);
  assert.match(quorumRefusal([1, 2, 3], 2, new Set([3]), new Set())!.message, /node 3 is down/);
  assert.match(quorumRefusal([1, 2, 3], 2, new Set(), new Set([1]))!.message, /node 1 is in maintenance mode/);
  assert.equal(quorumRefusal([1, 2, 3, 4, 5], 2, new Set([3]), new Set()), undefined);
  assert.ok(quorumRefusal([1], 1, new Set(), new Set()));
});

test("snapshot: every shard on the node with its role and its master's slots", () => {
  assert.deepEqual(snapshotOf([db1(), db2(), bdb(3, [s(20, 'master', 2, [0, 16383])], { status: 'delete-pending' })], 2), [
    { bdb_uid: 1, shard_uid: 2, role: 'slave', slots: [0, 8191] },
    { bdb_uid: 1, shard_uid: 3, role: 'master', slots: [8192, 16383] },
    { bdb_uid: 2, shard_uid: 10, role: 'master', slots: [0, 16383] },
  ]);
});

test('enter: masters with a live replica elsewhere are switched over first, then everything left migrates', () => {
  const bdbs = [db1(), db2()];
  const first = planEnter(bdbs, 2, {}, LIVE, [1, 3], loadOf(bdbs));
  assert.deepEqual(first, { kind: 'failover', items: [{ bdb_uid: 1, shard_uid: 3 }] });
  const after = play(bdbs, first!, { n: 100 }).bdbs;
  const second = planEnter(after, 2, {}, LIVE, [1, 3], loadOf(after));
  assert.equal(second?.kind, 'migrate');
  // Replica 2 (of master 1 on node 1) goes to node 3; shard 3 (now a replica of 4 on node 3) to node 1; master 10 to the least loaded.
  const byShard = new Map(second!.items.map((i) => [i.shard_uid, (i as { target_node_uid: number }).target_node_uid]));
  assert.equal(byShard.get(2), 3);
  assert.equal(byShard.get(3), 1);
  assert.ok([1, 3].includes(byShard.get(10)!));
  const empty = play(after, second!, { n: 100 }).bdbs;
  assert.deepEqual(held(empty, 2), []);
  assert.equal(planEnter(empty, 2, {}, LIVE, [1, 3], loadOf(empty)), undefined, 'nothing left: done');
});

test('enter: a master whose replica is on a down node is migrated, not failed over; no target at all is no_placement', () => {
  const bdbs = [db1()];
  // Node 3 (replica 4 of master 3) is down; node 4 is up and empty.
  const step = planEnter(bdbs, 2, {}, new Set([1, 2, 4]), [1, 4], loadOf(bdbs));
  assert.equal(step?.kind, 'migrate');
  const byShard = new Map(step!.items.map((i) => [i.shard_uid, (i as { target_node_uid: number }).target_node_uid]));
  assert.equal(byShard.get(2), 4, 'replica 2 never beside its master on node 1');
  assert.ok(byShard.has(3), 'master 3 moves by migration');
  // Without node 4, replica 2 has nowhere to go.
  assert.throws(
    () => planEnter(bdbs, 2, {}, new Set([1, 2]), [1], loadOf(bdbs)),
    (e: unknown) => e instanceof OperatorError && e.code === 'no_placement' && /cannot enter maintenance mode: shard 2 /.test(e.message),
  );
});

test('enter: evict_dbs and evict_ha_replica limit what moves; kept shards stay and do not block', () => {
  const bdbs = [db1(), db2()];
  const onlyDb2 = planEnter(bdbs, 2, { evict_dbs: [2] }, LIVE, [1, 3], loadOf(bdbs));
  assert.deepEqual(onlyDb2?.kind, 'migrate');
  assert.deepEqual(
    onlyDb2!.items.map((i) => i.shard_uid),
    [10],
  );
  const keepReplicas = { evict_ha_replica: false };
  assert.ok(evicted({ uid: 1 }, { role: 'master' }, keepReplicas));
  assert.ok(!evicted({ uid: 1 }, { role: 'slave' }, keepReplicas));
  let cur = bdbs;
  const next = { n: 100 };
  for (let i = 0; i < 5; i++) {
    const step = planEnter(cur, 2, keepReplicas, LIVE, [1, 3], loadOf(cur));
    if (!step) break;
    cur = play(cur, step, next).bdbs;
  }
  // Only replicas are left on node 2: master 3's old self (now a replica) and replica 2.
  assert.deepEqual(held(cur, 2), ['1:0-8191:slave', '1:8192-16383:slave']);
});

test('enter is refused before anything moves when a shard has nowhere to go (checkEnter plays the failovers first)', () => {
  // Node 3 is live but takes nothing (in maintenance): the failover of master 3 to replica 4 there is fine,
  // but replica 2 would then have to go to node 1, beside its master.
  const bdbs = [db1()];
  assert.throws(
    () => checkEnter(bdbs, 2, {}, LIVE, [1], loadOf(bdbs)),
    (e: unknown) => e instanceof OperatorError && e.code === 'no_placement' && e.kind === 'conflict',
  );
  assert.equal(checkEnter(bdbs, 2, {}, LIVE, [1, 3], loadOf(bdbs)), 2);
  assert.equal(checkEnter(bdbs, 2, { evict_dbs: [] }, LIVE, [], loadOf(bdbs)), 0, 'nothing to evict: nothing to place');
});

test('on, then off: the node gets back its snapshot, shards and roles, through migrations then planned failovers', () => {
  let cur = [db1(), db2()];
  const snapshot = snapshotOf(cur, 2);
  const want = held(cur, 2);
  const next = { n: 100 };
  const moves: MaintenanceMove[] = [];
  for (let i = 0; ; i++) {
    assert.ok(i < 10, 'enter converges');
    const step = planEnter(cur, 2, {}, LIVE, [1, 3], loadOf(cur));
    if (!step) break;
    const r = play(cur, step, next);
    cur = r.bdbs;
    moves.push(...r.moves);
  }
  assert.deepEqual(held(cur, 2), []);
  const kinds: string[] = [];
  for (let i = 0; ; i++) {
    assert.ok(i < 10, 'restore converges');
    const plan = planRestore(snapshot, cur, 2, moves, LIVE);
    assert.deepEqual(plan.unrestorable, []);
    if (!plan.step) break;
    kinds.push(plan.step.kind);
    cur = play(cur, plan.step, next).bdbs;
  }
  assert.deepEqual(kinds, ['migrate', 'failover'], 'migrations back first, then the masters');
  assert.deepEqual(held(cur, 2), want);
  // The shards that took node 2's place went back (no extra shard anywhere): as many shards as before.
  assert.equal(cur[0].shards.length, 4);
  assert.equal(cur[1].shards.length, 1);
  // And each family is still on distinct nodes.
  for (const b of cur)
    for (const m of b.shards.filter((x) => x.role === 'master')) {
      const nodes = b.shards.filter((x) => x.uid === m.uid || x.master_uid === m.uid).map((x) => x.node_uid);
      assert.equal(new Set(nodes).size, nodes.length);
    }
});

test('restore: the shard that took the place is preferred; gone databases and down masters are reported, not waited for', () => {
  const snapshot = snapshotOf([db1()], 2);
  // After maintenance on: master 4 on node 3 (was replica), shard 3's place taken by 103 on node 1; replica 2 replaced by 102 on node 3.
  const now = bdb(1, [
    s(1, 'master', 1, [0, 8191]),
    s(102, 'slave', 3, [0, 8191], 1),
    s(4, 'master', 3, [8192, 16383]),
    s(103, 'slave', 1, [8192, 16383], 4),
  ]);
  const moves = [
    { bdb_uid: 1, shard_uid: 2, new_shard_uid: 102 },
    { bdb_uid: 1, shard_uid: 3, new_shard_uid: 103 },
  ];
  const plan = planRestore(snapshot, [now], 2, moves, LIVE);
  assert.deepEqual(plan.step, {
    kind: 'migrate',
    items: [
      { bdb_uid: 1, shard_uid: 102, target_node_uid: 2 },
      { bdb_uid: 1, shard_uid: 103, target_node_uid: 2 },
    ],
  });
  const down = planRestore(snapshot, [now], 2, moves, new Set([1, 2]));
  assert.deepEqual(down.step, { kind: 'migrate', items: [{ bdb_uid: 1, shard_uid: 102, target_node_uid: 2 }] });
  assert.match(down.unrestorable.join(), /shard 3: the master of its slots \(shard 4\) is on node 3, which is down/);
  const gone = planRestore(snapshot, [], 2, moves, LIVE);
  assert.equal(gone.step, undefined);
  assert.equal(gone.unrestorable.length, 2);
  assert.match(gone.unrestorable[0], /database 1 has no master of slots 0-8191 any more/);
});
