// The cluster master's failover loop (control/controllers/failover-controller.ts)
// over a real scratch etcd, with the membership it reads given as a plain
// host: real watched caches of the node, liveness, database and observed
// records, and the silence of each node as the heartbeats would report it.
// A dead node's master shard hands its slots to a live replica in one
// compare-and-swap (the sibling replica follows the new master); a node that
// is not the master, or whose view is not current, decides nothing; a
// reconciler's `handover` report of the current generation, from the node's
// current run (its live record's started_time), promotes the replica; a report
// of an older generation or of a past run of the node is ignored; a master reported refusing writes for its
// disk (MISCONF) for longer than the hold hands over to its in-sync replica, one full with noeviction (OOM) never. The nodes' side (reconcilers converging,
// shards really promoted) is test/integration/node-failover.test.ts.
//
// Address: etcd listens on 127.0.54.1 (client 25400, peer 25410).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { Lease } from 'etcd3';
import {
  KEYS,
  type BdbRecord,
  type LiveRecord,
  type NodeRecord,
  type ObservedRecord,
  type ObservedShard,
  type ShardPlacement,
} from '../../src/coord/schema.js';
import type { PrefixCache } from '../../src/coord/watch.js';
import { type ClusterStore, storeOf } from '../../src/coord/store.js';
import { FailoverController, type FailoverHost } from '../../src/control/controllers/failover-controller.js';
import { REBUILD_ACTION } from '../../src/control/controllers/replica-rebuilds.js';
import { scratchEtcdForFile } from '../support/etcd.js';
import { sleep, waitFor } from '../support/wait.js';
import { nodeRecord } from '../support/api-host.js';
import { bdbRecord } from '../support/bdb-record.js';

const HOST = '127.0.54.1';
const DEAD_AFTER_MS = 5000;
/** The controller's loop runs every TICK_MS here (250 ms in a node): A_FEW_TICKS_MS is a few ticks, for "nothing happens". */
const TICK_MS = 50;
const A_FEW_TICKS_MS = 250;
const log = pino({ level: 'silent' });
const scratch = scratchEtcdForFile(HOST, 25400, 25410);

/** The membership as the failover controller sees it on node 1: real caches of the store, and the silence the heartbeats would report. */
class Host implements FailoverHost {
  master = true;
  current = true;
  /** Node uid → ms without a heartbeat (0 when absent); `undefined` for all while this node's own view is not current. */
  silence: Record<number, number> | undefined = {};
  haEnabled = false;
  readonly uid = 1;
  readonly store: ClusterStore;
  readonly nodes: PrefixCache<NodeRecord>;
  readonly live: PrefixCache<LiveRecord>;
  readonly bdbs: PrefixCache<BdbRecord>;
  readonly observed: PrefixCache<ObservedRecord>;

  constructor(store: ClusterStore) {
    this.store = store;
    this.nodes = store.nodes.cache();
    this.live = store.nodes.liveCache();
    this.bdbs = store.bdbs.cache();
    this.observed = store.observed.cache();
  }
  async start(): Promise<void> {
    await Promise.all([this.nodes.start(), this.live.start(), this.bdbs.start(), this.observed.start()]);
  }
  async stop(): Promise<void> {
    await Promise.all([this.nodes.stop(), this.live.stop(), this.bdbs.stop(), this.observed.stop()]);
  }
  isMaster(): boolean {
    return this.master;
  }
  storeIsCurrent(): boolean {
    return this.current;
  }
  silentMs(uid: number): number | undefined {
    return this.silence === undefined ? undefined : (this.silence[uid] ?? 0);
  }
  deadAfterMs(): number {
    return DEAD_AFTER_MS;
  }
  replicaHa(): { enabled: boolean; graceSeconds: number } {
    return { enabled: this.haEnabled, graceSeconds: 0 };
  }
  databases(): BdbRecord[] {
    return this.bdbs.values();
  }
  syncOf(): undefined {
    return undefined; // no node reports a sync here: rebuilds stay at 0%
  }
}

const bdb = (uid: number, generation: number, shards: ShardPlacement[]): BdbRecord =>
  bdbRecord(uid, shards, {
    port: 15400 + uid,
    memory_size: 1 << 24,
    shards_count: 1,
    sharding: false,
    replication: true,
    proxy_policy: 'single',
    internal_secret: 'failover-test-secret',
    generation,
  });

const ALL: [number, number] = [0, 16383];
/** The live record's started_time of node `u`'s current run (its incarnation). */
const startedOf = (u: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, u)).toISOString();

/**
 * A fresh store: nodes `members` (published, at 127.0.54.10+uid), the `live`
 * ones holding a liveness record under one lease, database `db` written once;
 * and a started host over it.
 */
async function world(members: number[], live: number[], db: BdbRecord): Promise<{ host: Host; lease: Lease; done: () => Promise<void> }> {
  await scratch.client.delete().prefix('/tessera/');
  const store = storeOf(scratch.client);
  for (const u of members) await store.nodes.put(nodeRecord(u, `127.0.54.${10 + u}`));
  const lease = scratch.client.lease(60);
  for (const u of live) await store.nodes.putLive(lease, { uid: u, started_time: startedOf(u), pid: process.pid });
  await scratch.client.put(KEYS.bdb(db.uid)).value(JSON.stringify(db));
  const host = new Host(store);
  await host.start();
  const done = async () => {
    await host.stop();
    await lease.revoke();
  };
  return { host, lease, done };
}

/** The stored record, and how many times it was written (etcd's per-key version). */
async function stored(uid: number): Promise<{ rec: BdbRecord; writes: number }> {
  const kv = (await scratch.client.get(KEYS.bdb(uid)).exec()).kvs[0];
  assert.ok(kv, `database ${uid} is stored`);
  return { rec: JSON.parse(kv.value.toString()) as BdbRecord, writes: Number(kv.version) };
}

const shardOf = (b: BdbRecord, uid: number) => b.shards.find((s) => s.uid === uid);

/** Wait (up to 5 s) until shard `shard` of database `uid` is stored as master: the record then, and its write count. */
function promoted(uid: number, shard: number): Promise<{ rec: BdbRecord; writes: number }> {
  return waitFor(
    `shard ${shard} of database ${uid} promoted`,
    async () => {
      const s = await stored(uid);
      return shardOf(s.rec, shard)?.role === 'master' ? s : undefined;
    },
    5000,
    50,
  );
}

test('a dead node: its master shard hands its slots to the replica on a live node in one write, and the sibling replica follows it', async () => {
  // Master 11 on node 2, replicas 12 on node 3 and 13 on node 1; node 2 is silent past the failover timeout and has no liveness record.
  const db = bdb(1, 5, [
    { uid: 11, role: 'master', node_uid: 2, slots: ALL },
    { uid: 12, role: 'slave', node_uid: 3, slots: ALL, master_uid: 11 },
    { uid: 13, role: 'slave', node_uid: 1, slots: ALL, master_uid: 11 },
  ]);
  const { host, done } = await world([1, 2, 3], [1, 3], db);
  host.silence = { 2: DEAD_AFTER_MS + 1000 };
  const ctl = new FailoverController(host, log, TICK_MS);
  ctl.start();
  try {
    const after = await promoted(1, 12);
    assert.deepEqual(shardOf(after.rec, 12), { uid: 12, role: 'master', node_uid: 3, slots: ALL });
    assert.deepEqual(shardOf(after.rec, 11), { uid: 11, role: 'slave', node_uid: 2, slots: ALL, master_uid: 12 });
    assert.deepEqual(shardOf(after.rec, 13), { uid: 13, role: 'slave', node_uid: 1, slots: ALL, master_uid: 12 });
    assert.equal(after.rec.generation, 6);
    assert.equal(after.rec.status, 'active-change-pending');
    assert.equal(after.writes, 2, 'one compare-and-swap');
    // Later ticks find nothing more to do (replica high availability is off: the old master stays on node 2 as a replica).
    await sleep(A_FEW_TICKS_MS);
    const later = await stored(1);
    assert.equal(later.writes, 2, JSON.stringify(later.rec));
    assert.equal(later.rec.generation, 6);
    assert.equal(ctl.promotions.get(1), 1);
  } finally {
    ctl.stop();
    await done();
  }
});

test('with replica high availability the old master, now a replica, is placed on another live node in the same write, followed as an action', async () => {
  const db = bdb(2, 3, [
    { uid: 21, role: 'master', node_uid: 2, slots: ALL },
    { uid: 22, role: 'slave', node_uid: 3, slots: ALL, master_uid: 21 },
  ]);
  const { host, done } = await world([1, 2, 3], [1, 3], db);
  host.silence = { 2: DEAD_AFTER_MS + 1000 };
  host.haEnabled = true;
  const ctl = new FailoverController(host, log, TICK_MS);
  ctl.start();
  try {
    const after = await promoted(2, 22);
    assert.deepEqual(shardOf(after.rec, 22), { uid: 22, role: 'master', node_uid: 3, slots: ALL });
    assert.deepEqual(shardOf(after.rec, 21), { uid: 21, role: 'slave', node_uid: 1, slots: ALL, master_uid: 22 });
    assert.equal(after.rec.generation, 4);
    assert.equal(after.writes, 2, 'promotion and move in one compare-and-swap');
    const rebuild = await waitFor('the rebuild action', async () =>
      (await host.store.actions.list()).find((a) => a.name === REBUILD_ACTION && a.object_name === 'bdb:2'),
    );
    assert.equal(rebuild.status, 'active');
    assert.deepEqual(rebuild.shard_uids, [21]);
    assert.match(rebuild.description ?? '', /shard 21 on node 1 \(was on node 2\)/);
    await sleep(A_FEW_TICKS_MS);
    assert.equal((await stored(2)).writes, 2);
  } finally {
    ctl.stop();
    await done();
  }
});

test('a node that is not the master, or whose view is not current, or that cannot judge silence, changes nothing', async () => {
  const db = bdb(3, 9, [
    { uid: 31, role: 'master', node_uid: 2, slots: ALL },
    { uid: 32, role: 'slave', node_uid: 3, slots: ALL, master_uid: 31 },
    { uid: 33, role: 'slave', node_uid: 1, slots: ALL, master_uid: 31 },
  ]);
  const { host, done } = await world([1, 2, 3], [1, 3], db);
  host.silence = { 2: DEAD_AFTER_MS + 1000 };
  const ctl = new FailoverController(host, log, TICK_MS);
  try {
    host.master = false;
    ctl.start();
    await sleep(A_FEW_TICKS_MS);
    assert.equal((await stored(3)).writes, 1, 'not the master');
    host.master = true;
    host.current = false;
    await sleep(A_FEW_TICKS_MS);
    assert.equal((await stored(3)).writes, 1, 'the view is not current');
    host.current = true;
    host.silence = undefined;
    await sleep(A_FEW_TICKS_MS);
    assert.equal((await stored(3)).writes, 1, 'its own heartbeats are not coming back');
    // The same node once it can judge: the failover happens (the setup was one that fails over).
    host.silence = { 2: DEAD_AFTER_MS + 1000 };
    const after = await promoted(3, 32);
    assert.equal(after.writes, 2);
    assert.equal(after.rec.generation, 10);
    // Counted once the controller's write returns, a moment after the store has it.
    await waitFor('the promotion counted', () => ctl.promotions.get(3) === 1, 2000, 20);
  } finally {
    ctl.stop();
    await done();
  }
});

/**
 * What node `node`'s reconciler reports of a database (`observed.put(bdb, node, …)`): master shard `shard`
 * down, asking for a handover; written by the node's current run unless `incarnation` names another (null: none).
 */
function crashed(node: number, generation: number, shard: number, incarnation: string | null = startedOf(node)): ObservedRecord {
  return {
    node_uid: node,
    generation,
    ...(incarnation === null ? {} : { incarnation }),
    converged: false,
    shards: [{ uid: shard, role: 'master', status: 'down', error: 'the shard crashed', handover: 'crashed' }],
    time: new Date().toISOString(),
  };
}

test("a master shard's crash reported for the current generation promotes its live replica; a stale report is ignored", async () => {
  // Every node up: no node failover, only the report can move the slots.
  const db = bdb(4, 7, [
    { uid: 41, role: 'master', node_uid: 2, slots: ALL },
    { uid: 42, role: 'slave', node_uid: 3, slots: ALL, master_uid: 41 },
    { uid: 43, role: 'slave', node_uid: 1, slots: ALL, master_uid: 41 },
  ]);
  const { host, done } = await world([1, 2, 3], [1, 2, 3], db);
  const ctl = new FailoverController(host, log, TICK_MS);
  ctl.start();
  try {
    // Reported against generation 6: the placement changed since, the report is about another one.
    await host.store.observed.put(4, 2, crashed(2, 6, 41));
    // From a node that does not hold the master: not its shard to hand over.
    await host.store.observed.put(4, 3, crashed(3, 7, 41));
    await sleep(A_FEW_TICKS_MS);
    let s = await stored(4);
    assert.equal(s.writes, 1, JSON.stringify(s.rec));
    assert.equal(shardOf(s.rec, 41)?.role, 'master');

    await host.store.observed.put(4, 2, crashed(2, 7, 41));
    s = await promoted(4, 42);
    assert.deepEqual(shardOf(s.rec, 42), { uid: 42, role: 'master', node_uid: 3, slots: ALL });
    assert.deepEqual(shardOf(s.rec, 41), { uid: 41, role: 'slave', node_uid: 2, slots: ALL, master_uid: 42 });
    assert.deepEqual(shardOf(s.rec, 43), { uid: 43, role: 'slave', node_uid: 1, slots: ALL, master_uid: 42 });
    assert.equal(s.rec.generation, 8);
    assert.equal(s.writes, 2);
    // The report stays until the node's reconciler rewrites it; it is of generation 7 now, so it moves nothing more.
    await sleep(A_FEW_TICKS_MS);
    assert.equal((await stored(4)).writes, 2);
    assert.equal(ctl.promotions.get(4), 1);
  } finally {
    ctl.stop();
    await done();
  }
});

test('a crash report when no replica is on a live node leaves the master where it is', async () => {
  const db = bdb(5, 2, [
    { uid: 51, role: 'master', node_uid: 2, slots: ALL },
    { uid: 52, role: 'slave', node_uid: 3, slots: ALL, master_uid: 51 },
  ]);
  // Node 3 holds no liveness record: its replica cannot take over.
  const { host, done } = await world([1, 2, 3], [1, 2], db);
  const ctl = new FailoverController(host, log, TICK_MS);
  ctl.start();
  try {
    await host.store.observed.put(5, 2, crashed(2, 2, 51));
    await sleep(A_FEW_TICKS_MS);
    const s = await stored(5);
    assert.equal(s.writes, 1, JSON.stringify(s.rec));
    assert.equal(ctl.promotions.get(5), undefined);
  } finally {
    ctl.stop();
    await done();
  }
});

test("a handover report from a past run of the node (a restart since) or naming no run is ignored; the node's current run is acted on", async () => {
  // Every node up: no node failover, only the report can move the slots.
  const db = bdb(6, 3, [
    { uid: 61, role: 'master', node_uid: 2, slots: ALL },
    { uid: 62, role: 'slave', node_uid: 3, slots: ALL, master_uid: 61 },
  ]);
  const { host, done } = await world([1, 2, 3], [1, 2, 3], db);
  const ctl = new FailoverController(host, log, TICK_MS);
  ctl.start();
  try {
    // Written by node 2's run before its restart, for the generation that is still current: the shard came back clean.
    await host.store.observed.put(6, 2, crashed(2, 3, 61, new Date(Date.UTC(2025, 11, 31)).toISOString()));
    await sleep(A_FEW_TICKS_MS);
    let s = await stored(6);
    assert.equal(s.writes, 1, JSON.stringify(s.rec));
    // A report that names no run (not this release's reconciler) is not trusted either.
    await host.store.observed.put(6, 2, crashed(2, 3, 61, null));
    await sleep(A_FEW_TICKS_MS);
    s = await stored(6);
    assert.equal(s.writes, 1, JSON.stringify(s.rec));
    assert.equal(shardOf(s.rec, 61)?.role, 'master');
    assert.equal(ctl.promotions.get(6), undefined);

    // The same report from the node's current run: the replica takes over.
    await host.store.observed.put(6, 2, crashed(2, 3, 61));
    s = await promoted(6, 62);
    assert.deepEqual(shardOf(s.rec, 61), { uid: 61, role: 'slave', node_uid: 2, slots: ALL, master_uid: 62 });
    assert.equal(s.rec.generation, 4);
    assert.equal(s.writes, 2);
    // Counted once the controller's write returns, a moment after the store has it.
    await waitFor('the promotion counted', () => ctl.promotions.get(6) === 1, 2000, 20);
  } finally {
    ctl.stop();
    await done();
  }
});

test("a node's handover reports are cleared at its start (store.observed.dropHandovers); its other reports and other nodes' stay", async () => {
  const db = bdb(7, 2, [
    { uid: 71, role: 'master', node_uid: 2, slots: ALL },
    { uid: 72, role: 'slave', node_uid: 3, slots: ALL, master_uid: 71 },
  ]);
  const { host, done } = await world([1, 2, 3], [1, 2, 3], db);
  try {
    const mine = crashed(2, 2, 71);
    const other = crashed(3, 2, 72);
    const quiet: ObservedRecord = { ...crashed(2, 1, 81), shards: [{ uid: 81, role: 'master', status: 'active' }] };
    await host.store.observed.put(7, 2, mine);
    await host.store.observed.put(7, 3, other);
    await host.store.observed.put(8, 2, quiet);
    assert.deepEqual(await host.store.observed.dropHandovers(2), [7]);
    const read = async (b: number, n: number) =>
      JSON.parse((await scratch.client.get(KEYS.observed(b, n)).string()) ?? 'null') as ObservedRecord;
    const { handover: _, ...withoutHandover } = mine.shards[0]!;
    assert.deepEqual(await read(7, 2), { ...mine, shards: [withoutHandover] });
    assert.deepEqual(await read(7, 3), other);
    assert.deepEqual(await read(8, 2), quiet);
    assert.deepEqual(await host.store.observed.dropHandovers(2), [], 'nothing left to clear');
  } finally {
    await done();
  }
});

test('a master refusing writes for its disk (MISCONF) hands over to its in-sync replica once the refusal has lasted; OOM or a passing refusal moves nothing', async () => {
  const db = bdb(6, 3, [
    { uid: 61, role: 'master', node_uid: 2, slots: ALL },
    { uid: 62, role: 'slave', node_uid: 3, slots: ALL, master_uid: 61 },
  ]);
  const { host, done } = await world([1, 2, 3], [1, 2, 3], db);
  const HOLD_MS = 400;
  const ctl = new FailoverController(host, log, TICK_MS, HOLD_MS);
  ctl.start();
  const master = (write_refused?: ObservedShard['write_refused']): ObservedRecord => ({
    node_uid: 2,
    generation: 3,
    converged: true,
    incarnation: startedOf(2),
    shards: [{ uid: 61, role: 'master', status: 'active', ...(write_refused ? { write_refused } : {}) }],
    time: new Date().toISOString(),
  });
  const misconf = { reason: 'aof_write' as const, message: 'MISCONF: errors writing to the AOF file' };
  try {
    await host.store.observed.put(6, 3, {
      node_uid: 3,
      generation: 3,
      converged: true,
      incarnation: startedOf(3),
      shards: [{ uid: 62, role: 'slave', status: 'active', master_link_status: 'up' }],
      time: new Date().toISOString(),
    });
    // Full with noeviction: the replica would be as full; shown, never moved.
    await host.store.observed.put(6, 2, master({ reason: 'oom', message: 'OOM' }));
    await sleep(HOLD_MS + A_FEW_TICKS_MS);
    assert.equal((await stored(6)).writes, 1);
    // A refusal that clears before the hold moves nothing.
    await host.store.observed.put(6, 2, master(misconf));
    await sleep(HOLD_MS / 4);
    await host.store.observed.put(6, 2, master());
    await sleep(HOLD_MS + A_FEW_TICKS_MS);
    assert.equal((await stored(6)).writes, 1);
    // One that lasts: the replica is promoted, the old master follows it.
    const t0 = Date.now();
    await host.store.observed.put(6, 2, master(misconf));
    const s = await promoted(6, 62);
    assert.ok(Date.now() - t0 >= HOLD_MS, `promoted after ${Date.now() - t0} ms, before the hold`);
    assert.deepEqual(shardOf(s.rec, 61), { uid: 61, role: 'slave', node_uid: 2, slots: ALL, master_uid: 62 });
    assert.equal(s.writes, 2);
    assert.equal(ctl.refusalPromotions.get(6), 1);
    assert.equal(ctl.promotions.get(6), undefined); // counted apart: the metrics' reason write_refused
  } finally {
    ctl.stop();
    await done();
  }
});
