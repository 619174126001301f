// Maintenance mode (issue 21; the way issue 20's upgrade empties a node): a
// 3-node cluster runs a 2-shard replicated database with
// data_internode_encryption on, under steady writes through the endpoints of
// two nodes that are not node 2, every acknowledged key remembered and every
// error counted. `tessera node 2 maintenance_mode on` empties node 2 (its
// masters switched over first, then migrations) and marks it so nothing is
// placed there; node 2 is stopped with SIGTERM and started again on the same
// data directory; `maintenance_mode off` puts back its snapshot's shards and
// roles. Then maintenance mode on the cluster master's node hands the master
// role over. No command fails, no acknowledged key is lost.
//
// Addresses: 127.0.60.x (TestCluster net 60; TESSERA_TEST_NET moves it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, type TestNode, type BdbJson, createDb, waitFor, shardCli, sleep } from '../support/cluster.js';
import { Load, readBack } from '../support/load.js';

const cluster = new TestCluster(60, 3);
const [n1, n2, n3] = cluster.nodes;
const PORT = 12660;
let db: BdbJson;

type Shard = BdbJson['shards'][number];
type NodeJson = {
  uid: number;
  status: string;
  shard_count: number;
  maintenance_mode: boolean;
  maintenance_state?: string;
  maintenance_snapshot?: string;
  accept_servers: boolean;
};
type ErrorJson = { error_code: string; description: string };

const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;
const bdb = async (uid = db.uid) => (await n1.api<BdbJson>('GET', `/v1/bdbs/${uid}`)).body;
const nodeInfo = async (uid: number, via: TestNode = n1) => (await via.api<NodeJson>('GET', `/v1/nodes/${uid}`)).body;

/** What a node holds, comparable across shard uids: the slots and the role of each of its shards. */
function held(b: BdbJson, uid: number): string[] {
  return b.shards
    .filter((s) => s.node_uid === uid)
    .map((s) => `${s.assigned_slots}:${s.role}`)
    .sort();
}

function assertFamiliesApart(b: BdbJson): void {
  for (const m of b.shards.filter((s) => s.role === 'master')) {
    const fam = b.shards.filter((s) => s.uid === m.uid || s.master_uid === m.uid);
    assert.equal(new Set(fam.map((s) => s.node_uid)).size, fam.length, `a master and its replica on one node: ${JSON.stringify(b.shards)}`);
  }
}

async function waitSynced(b: BdbJson): Promise<void> {
  for (const s of b.shards.filter((x: Shard) => x.role === 'slave'))
    await waitFor(
      `shard ${s.uid} in sync`,
      async () => /master_link_status:up/.test(await shardCli(nodeByUid(s.node_uid), s.uid, ['INFO', 'replication']).catch(() => '')),
      60_000,
      200,
    );
}

let loads: Load[] = [];
const counts = () => loads.map((l) => ({ ok: l.ok, failed: l.failed }));
function report(what: string, before: ReturnType<typeof counts>, ms: number): void {
  const parts = loads.map((l, i) => `${l.name}: ${l.ok - before[i].ok} ok, ${l.failed - before[i].failed} failed`);
  console.log(`# ${what} took ${ms} ms; load meanwhile: ${parts.join('; ')}`);
}

before(async () => {
  await cluster.startAll();
  await cluster.form('maintenance.test');
  // Maintenance mode is gated on the cluster version: the master raises it to 0.2 once it has seen every member.
  await cluster.waitClusterVersion('0.2');
  db = await createDb(n1, {
    name: 'maint',
    memory_size: 200 << 20,
    shards_count: 2,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: PORT,
    data_internode_encryption: true,
  });
  await waitSynced(db);
  // Writers through node 1's and node 3's endpoints: node 2 is the one that goes down.
  loads = [new Load('via-n1', n1, PORT, 3), new Load('via-n3', n3, PORT, 3)];
  await sleep(1000);
});

after(async () => {
  await Promise.all(loads.map((l) => l.stop()));
  await cluster.stop();
});

let uid2: number;
let snapshot2: string[];

test('tessera node 2 maintenance_mode on: its masters switch over, everything migrates off, nothing is placed on it', async () => {
  uid2 = n2.uidFromDisk!;
  const b0 = await bdb();
  snapshot2 = held(b0, uid2);
  assert.ok(snapshot2.length > 0, `node 2 holds shards to begin with: ${JSON.stringify(b0.shards)}`);
  const before = counts();
  const t0 = Date.now();
  const res = await n1.cli(['node', String(uid2), 'maintenance_mode', 'on']);
  report('maintenance_mode on (CLI)', before, Date.now() - t0);
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  assert.match(
    res.stdout,
    new RegExp(`^Turning maintenance mode on for node ${uid2}: moving its shards to the other nodes \\(action \\d+\\)`),
  );
  if (b0.shards.some((s) => s.node_uid === uid2 && s.role === 'master')) assert.match(res.stdout, /switching over shard \d+/);
  assert.match(res.stdout, /migrating shard \d+ to node \d+/);
  assert.match(res.stdout, new RegExp(`Node ${uid2} is in maintenance mode\\n$`));

  const b1 = await bdb();
  assert.deepEqual(held(b1, uid2), [], `node 2 holds no shard: ${JSON.stringify(b1.shards)}`);
  assert.equal(b1.shards.length, b0.shards.length);
  assertFamiliesApart(b1);
  await waitSynced(b1);
  const info = await nodeInfo(uid2);
  assert.equal(info.maintenance_mode, true);
  assert.equal(info.maintenance_state, 'on');
  assert.equal(info.accept_servers, false);
  assert.match(info.maintenance_snapshot ?? '', /^maintenance_mode_node\d+_/);
  assert.equal(info.shard_count, 0);
  const st = await n3.cli(['status']);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, new RegExp(`in maintenance mode: node ${uid2}`));
  assert.match(st.stdout, /OK \(maintenance\)/);

  // Nothing is placed on it: a new database goes to the other nodes, a migration there is refused.
  const placed = await createDb(n1, { name: 'placed', memory_size: 50 << 20, shards_count: 3, sharding: true, port: PORT + 1 });
  assert.ok(!placed.shards.some((s) => s.node_uid === uid2), JSON.stringify(placed.shards));
  const mig = await n1.api<ErrorJson>('POST', `/v1/shards/${placed.shards[0].uid}/actions/migrate`, { target_node_uid: uid2 });
  assert.deepEqual([mig.status, mig.body.error_code], [409, 'node_in_maintenance'], JSON.stringify(mig.body));
  const again = await n1.api<ErrorJson>('POST', `/v1/nodes/${uid2}/actions/maintenance_on`, {});
  assert.deepEqual([again.status, again.body.error_code], [409, 'already_in_maintenance'], JSON.stringify(again.body));
  // With node 2 in maintenance, a second node may not go too: 1 of 3 store members would be left.
  const quorum = await n1.api<ErrorJson>('POST', `/v1/nodes/${n3.uidFromDisk}/actions/maintenance_on`, {});
  assert.deepEqual([quorum.status, quorum.body.error_code], [409, 'quorum_loss'], JSON.stringify(quorum.body));
});

test('node 2 in maintenance mode is stopped (SIGTERM) and started again on its data dir: nothing moves, no command fails', async () => {
  const b0 = await bdb();
  const before = counts();
  const t0 = Date.now();
  await n2.kill('SIGTERM');
  // Past the failover timeout (5 s): the master judges node 2 dead, and has nothing to fail over.
  await waitFor('node 2 down', async () => (await nodeInfo(uid2)).status === 'down', 30_000, 200);
  await sleep(7000);
  const during = await bdb();
  assert.deepEqual(
    during.shards.map((s) => `${s.uid}@${s.node_uid}:${s.role}`),
    b0.shards.map((s) => `${s.uid}@${s.node_uid}:${s.role}`),
    'no shard moved while node 2 was down',
  );
  await n2.start();
  await waitFor('node 2 active again', async () => (await nodeInfo(uid2)).status === 'active', 60_000, 200);
  await waitFor(
    'status OK on node 2',
    async () => {
      const st = await n2.cli(['status']);
      return st.code === 0 && /^OK\. Cluster master/m.test(st.stdout);
    },
    60_000,
    500,
  );
  report('SIGTERM and restart of node 2 in maintenance mode', before, Date.now() - t0);
  const info = await nodeInfo(uid2, n2);
  assert.equal(info.maintenance_mode, true, 'still in maintenance mode after the restart');
  assert.equal(info.maintenance_state, 'on');
  assert.deepEqual(held(await bdb(), uid2), []);
});

test('tessera node 2 maintenance_mode off: node 2 gets back its snapshot, shards and roles', async () => {
  const before = counts();
  const t0 = Date.now();
  const res = await n3.cli(['node', String(uid2), 'maintenance_mode', 'off']);
  report('maintenance_mode off (CLI)', before, Date.now() - t0);
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  assert.match(res.stdout, /migrating shard \d+ to node \d+/);
  assert.match(res.stdout, new RegExp(`Node ${uid2} left maintenance mode\\n$`));
  const b1 = await bdb();
  assert.deepEqual(held(b1, uid2), snapshot2, `node 2 is back to its snapshot: ${JSON.stringify(b1.shards)}`);
  assert.equal(b1.shards.length, db.shards.length);
  assertFamiliesApart(b1);
  await waitSynced(b1);
  const info = await nodeInfo(uid2);
  assert.equal(info.maintenance_mode, false);
  assert.equal(info.accept_servers, true);
  const off = await n1.api<ErrorJson>('POST', `/v1/nodes/${uid2}/actions/maintenance_off`, {});
  assert.deepEqual([off.status, off.body.error_code], [409, 'not_in_maintenance'], JSON.stringify(off.body));
});

test("maintenance mode on the cluster master's node hands the master role over, and off brings its shards back", async () => {
  const master = (await n1.api<{ master_node_uid: number }>('GET', '/v1/cluster')).body.master_node_uid;
  const via = cluster.nodes.find((n) => n.uidFromDisk !== master)!;
  const b0 = await bdb();
  const snap = held(b0, master);
  const before = counts();
  const t0 = Date.now();
  const res = await via.cli(['node', String(master), 'maintenance_mode', 'on']);
  report(`maintenance_mode on for the master, node ${master}`, before, Date.now() - t0);
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  assert.match(res.stdout, new RegExp(`node ${master} holds no shard; it is the cluster master: handing the role to node \\d+`));
  const now = (await via.api<{ master_node_uid: number }>('GET', '/v1/cluster')).body.master_node_uid;
  assert.notEqual(now, master, 'another node is the cluster master');
  assert.deepEqual(held(await bdb(), master), []);
  assert.equal((await nodeInfo(master, via)).maintenance_state, 'on');

  const back = await via.cli(['node', String(master), 'maintenance_mode', 'off']);
  assert.equal(back.code, 0, `${back.stdout}\n${back.stderr}`);
  const b1 = await bdb();
  assert.deepEqual(held(b1, master), snap);
  assertFamiliesApart(b1);
  await waitSynced(b1);
});

test('evict_ha_replica disabled: only the masters leave node 2; its replicas wait on it through a restart, not rebuilt elsewhere', async () => {
  const b0 = await bdb();
  const snap = held(b0, uid2);
  const before = counts();
  const t0 = Date.now();
  const res = await n1.cli(['node', String(uid2), 'maintenance_mode', 'on', 'evict_ha_replica', 'disabled']);
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  const b1 = await bdb();
  // Every shard it keeps is a replica, of the same slots as before (its masters were switched over, not moved).
  assert.deepEqual(held(b1, uid2), snap.map((x) => x.replace(/:master$/, ':slave')).sort(), JSON.stringify(b1.shards));
  await n2.kill('SIGTERM');
  await waitFor('node 2 down', async () => (await nodeInfo(uid2)).status === 'down', 30_000, 200);
  // Past failover_timeout (5 s) and slave_ha_grace_period (0): a dead node's replicas would be rebuilt elsewhere by now.
  await sleep(8000);
  const during = await bdb();
  assert.deepEqual(
    during.shards.map((s) => `${s.uid}@${s.node_uid}:${s.role}`),
    b1.shards.map((s) => `${s.uid}@${s.node_uid}:${s.role}`),
    'no replica was rebuilt off node 2 while it was down in maintenance mode',
  );
  await n2.start();
  await waitFor('node 2 active again', async () => (await nodeInfo(uid2)).status === 'active', 60_000, 200);
  await waitSynced(await bdb());
  const back = await n1.cli(['node', String(uid2), 'maintenance_mode', 'off']);
  assert.equal(back.code, 0, `${back.stdout}\n${back.stderr}`);
  report('maintenance on (replicas kept), SIGTERM, restart, off', before, Date.now() - t0);
  const b2 = await bdb();
  assert.deepEqual(held(b2, uid2), snap, `its masters are back: ${JSON.stringify(b2.shards)}`);
  assertFamiliesApart(b2);
  await waitSynced(b2);
});

test('no command failed and no acknowledged key was lost through maintenance mode and the restart', async () => {
  await Promise.all(loads.map((l) => l.stop()));
  const all = new Map<string, string>();
  for (const l of loads) for (const [k, v] of l.acked) all.set(k, v);
  const wrong = await readBack(n2, PORT, all);
  const failed = loads.reduce((a, l) => a + l.failed, 0);
  const kinds = new Map<string, number>();
  for (const l of loads) for (const [k, v] of l.errors) kinds.set(k, (kinds.get(k) ?? 0) + v);
  console.log(
    `# load total: ${all.size} keys acknowledged, ${failed} commands failed (${[...kinds].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}); ${wrong.length} acknowledged keys missing or wrong`,
  );
  assert.ok(all.size > 1000, `enough load: ${all.size}`);
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} acknowledged keys lost`);
  assert.equal(failed, 0, `commands failed: ${[...kinds].map(([k, v]) => `${k} ${v}`).join(', ')}`);
});
