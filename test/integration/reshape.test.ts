// A live database's shape (issue 21): a 3-node cluster runs a non-replicated,
// encrypted 2-shard database under steady write load through endpoints on
// two nodes. Replication is turned on (CLI, `tune db <id> replication
// enabled`), off (REST, its action followed), and on again: no command
// fails, no acknowledged key is lost, every replica syncs on another node
// than its master, and removed replicas lose their files. Then a 4th node
// joins; the optimized blueprint (GET optimize_shards_placement) puts shards
// on it, and applied with its cluster-state-id (CLI `bdb <id>
// optimize_shards_placement apply`) moves them there, again with no failed
// command and no lost key; the same id afterwards is stale (409).
//
// Addresses: 127.0.63.1-4 (TESSERA_TEST_NET=63 gives the same).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster, TestNode, type BdbJson, createDb, waitFor, shardCli, sleep, USER, PASSWORD } from '../support/cluster.js';
import { Load, readBack } from '../support/load.js';

const cluster = new TestCluster(63, 3);
const [n1, n2, n3] = cluster.nodes;
const n4 = new TestNode(`127.0.${process.env.TESSERA_TEST_NET ?? 63}.4`, path.join(cluster.root, 'n4'));
let db: BdbJson;

type Shard = BdbJson['shards'][number];
type Db = BdbJson & { replication: boolean };
type ActionJson = { action_uid: string; name: string; status: string; progress: number; steps?: string[]; error?: string };
type Entry = { nodes: { node_uid: string; role: string }[]; slot_range: string };

const nodeByUid = (uid: number) => [...cluster.nodes, n4].find((n) => n.uidFromDisk === uid)!;
async function bdb(): Promise<Db> {
  return (await n1.api<Db>('GET', `/v1/bdbs/${db.uid}`)).body;
}

let loads: Load[] = [];
const failures = () => loads.map((l) => `${l.name}: ${l.ok} ok, ${l.failed} failed ${JSON.stringify([...l.errors])}`).join('; ');
function assertNoFailure(what: string): void {
  console.log(`# after ${what}: ${failures()}`);
  for (const l of loads) assert.equal(l.failed, 0, `${what}: ${failures()}`);
}

async function lost(): Promise<string[]> {
  const wrong: string[] = [];
  for (const l of loads) wrong.push(...(await readBack(n2, db.port, l.acked)));
  return wrong;
}

async function inSync(s: Shard): Promise<boolean> {
  return /master_link_status:up/.test(await shardCli(nodeByUid(s.node_uid), s.uid, ['INFO', 'replication']).catch(() => ''));
}

async function follow(actionUid: string, timeoutMs = 180_000): Promise<ActionJson> {
  let a: ActionJson | undefined;
  await waitFor(
    `action ${actionUid} done`,
    async () => {
      a = (await n2.api<ActionJson>('GET', `/v1/actions/${actionUid}`)).body;
      if (a.status === 'failed') throw new Error(`action ${actionUid} failed: ${a.error}`);
      return a.status === 'completed';
    },
    timeoutMs,
    200,
  );
  return a!;
}

/** Replicated: every master has one replica, on another node, in sync; the database is active. */
async function assertReplicated(): Promise<BdbJson> {
  const b = await bdb();
  assert.equal(b.status, 'active');
  assert.equal(b.replication, true);
  const masters = b.shards.filter((s) => s.role === 'master');
  assert.equal(masters.length, 2);
  for (const m of masters) {
    const reps = b.shards.filter((s) => s.master_uid === m.uid);
    assert.equal(reps.length, 1, JSON.stringify(b.shards));
    assert.notEqual(reps[0].node_uid, m.node_uid, 'a replica is never on its master node');
    assert.equal(reps[0].assigned_slots, m.assigned_slots);
    await waitFor(`replica ${reps[0].uid} in sync`, () => inSync(reps[0]), 30_000, 200);
  }
  return b;
}

before(async () => {
  await cluster.startAll();
  await cluster.form('reshape.test');
  await cluster.waitClusterVersion('0.2');
  db = await createDb(n1, {
    name: 'shape',
    memory_size: 200 << 20,
    shards_count: 2,
    sharding: true,
    replication: false,
    proxy_policy: 'all-nodes',
    shards_placement: 'sparse',
    port: 12630,
    data_internode_encryption: true,
  });
  loads = [new Load('via-n1', n1, db.port, 3), new Load('via-n3', n3, db.port, 3)];
  await sleep(1000);
});
after(async () => {
  await Promise.all(loads.map((l) => l.stop()));
  await n4.kill('SIGTERM');
  await cluster.stop();
});

test('replication off -> on (CLI tune db): a synced replica per master on another node, no failed command', async () => {
  const t0 = Date.now();
  const res = await n2.cli(['tune', 'db', String(db.uid), 'replication', 'enabled']);
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  assert.match(res.stdout, /Enabling replication of db:\d+ \(action \d+\)/);
  assert.match(res.stdout, /in sync with shard/);
  assert.match(res.stdout, /Finished successfully\s*$/);
  console.log(`# replication on (CLI) took ${Date.now() - t0} ms`);
  await assertReplicated();
  assertNoFailure('replication on');
});

test('replication on -> off (REST): the action reports steps, status active-change-pending meanwhile, replicas gone with their files', async () => {
  const b0 = await bdb();
  const replicas = b0.shards.filter((s) => s.role === 'slave');
  const r = await n3.api<{ action_uid: string; status: string; replication: boolean }>('PUT', `/v1/bdbs/${db.uid}`, { replication: false });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok(r.body.action_uid);
  assert.equal(r.body.status, 'active-change-pending');
  const during = await bdb();
  assert.ok(
    during.status === 'active-change-pending' ||
      (await n1.api<ActionJson>('GET', `/v1/actions/${r.body.action_uid}`)).body.status === 'completed',
  );
  const a = await follow(r.body.action_uid);
  assert.equal(a.name, 'disable_replication');
  assert.ok(
    a.steps?.some((s) => /removing replica/.test(s)),
    JSON.stringify(a.steps),
  );
  const b1 = await bdb();
  assert.equal(b1.replication, false);
  assert.equal(b1.status, 'active');
  assert.deepEqual(
    b1.shards.map((s) => s.role),
    ['master', 'master'],
  );
  for (const s of replicas)
    await waitFor(
      `replica ${s.uid}'s files removed`,
      async () => !fs.existsSync(path.join(nodeByUid(s.node_uid).dataDir, 'shards', String(s.uid))),
      20_000,
    );
  assertNoFailure('replication off');
});

test('replication off -> on again (REST), then no acknowledged key is lost', async () => {
  const r = await n1.api<{ action_uid: string }>('PUT', `/v1/bdbs/${db.uid}`, { replication: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const a = await follow(r.body.action_uid);
  assert.equal(a.name, 'enable_replication');
  await assertReplicated();
  assertNoFailure('replication on again');
  assert.deepEqual((await lost()).slice(0, 10), [], 'every acknowledged key reads back');
});

test('a 4th node joins: the blueprint puts shards on it, applied with its cluster-state-id (CLI); the same id afterwards is stale', async () => {
  await n4.start();
  const j = await n4.cli(['cluster', 'join', 'nodes', n1.addr, 'username', USER, 'password', PASSWORD]);
  assert.equal(j.code, 0, `${j.stderr}\n${n4.logTail()}`);
  const u4 = n4.uidFromDisk!;
  await waitFor(
    `node ${u4} active`,
    async () => {
      const r = await n1.api<{ uid: number; status: string }[]>('GET', '/v1/nodes');
      return r.body.some((n) => n.uid === u4 && n.status === 'active');
    },
    60_000,
  );
  const g = await n2.api<Entry[]>('GET', `/v1/bdbs/${db.uid}/actions/optimize_shards_placement`);
  assert.equal(g.status, 200, JSON.stringify(g.body));
  const id = String(g.headers?.['cluster-state-id'] ?? '');
  assert.ok(id, 'a cluster-state-id header');
  assert.ok(
    g.body.some((e) => e.nodes.some((n) => n.node_uid === String(u4))),
    `node ${u4} gets a shard: ${JSON.stringify(g.body)}`,
  );

  const t0 = Date.now();
  const res = await n3.cli(['bdb', String(db.uid), 'optimize_shards_placement', 'apply']);
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  assert.match(res.stdout, /cluster-state-id: [0-9a-f]+/);
  assert.match(res.stdout, /Moving shards of db:\d+ \(action \d+\)/);
  assert.match(res.stdout, /Done\s*$/);
  console.log(`# blueprint applied in ${Date.now() - t0} ms:\n${res.stdout}`);

  const b = await assertReplicated();
  assert.ok(
    b.shards.some((s) => s.node_uid === u4),
    `a shard on node ${u4}: ${JSON.stringify(b.shards)}`,
  );
  const per = new Map<number, number>();
  for (const s of b.shards) per.set(s.node_uid, (per.get(s.node_uid) ?? 0) + 1);
  assert.deepEqual([...per.values()], [1, 1, 1, 1], `one shard per node: ${JSON.stringify(b.shards)}`);
  assertNoFailure('blueprint');
  assert.deepEqual((await lost()).slice(0, 10), [], 'every acknowledged key reads back');

  // The id the blueprint was applied with is stale now (the placement moved on): refused, nothing moves.
  const before = await bdb();
  const stale = await n1.api<{ error_code: string; description: string }>(
    'PUT',
    `/v1/bdbs/${db.uid}`,
    { shards_blueprint: g.body },
    undefined,
    {
      'cluster-state-id': id,
    },
  );
  assert.equal(stale.status, 409, JSON.stringify(stale.body));
  assert.equal(stale.body.error_code, 'cluster_state_changed');
  const after = await bdb();
  assert.deepEqual(after.shards, before.shards, 'nothing moved');
});
