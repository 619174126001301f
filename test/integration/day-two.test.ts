// Day two in one run (issue 21's combined test): a 3-node cluster with
// internode encryption runs a 2-shard database, replication off, holding
// 200,000 keys plus a 50 MB string and a hash of 1,000,000 fields, under
// writers through the endpoints of node 1 and node 3 (every acknowledged key
// remembered, every error counted) and a prober reading one key of every slot
// through node 3. In order: shards 2 → 4 → 3; replication off → on; a 4th
// node joins, GET optimize_shards_placement proposes shards on it, PUT with
// its cluster-state-id moves them there; a planned failover gives node 2 a
// master if it has none; maintenance mode on node 2 (that master switched
// over first, then every shard migrated off), SIGTERM
// of node 2, start again on its data dir, maintenance mode off. Asserted: no
// failed command, no acknowledged key missing or wrong, the big values intact
// (length and SHA-256), no key on a shard that does not own its slot (SCAN
// per master against its slots, DBSIZE once quiet), every slot served
// throughout (the prober: no error, and the longest gap between two answers
// for a slot), node 2 back to its snapshot's shards and roles. Each phase's
// duration and longest write pause are printed.
//
// Addresses: 127.0.81.1-4 (TESSERA_TEST_NET moves nodes 1-3; node 4 follows it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import { TestCluster, TestNode, type BdbJson, createDb, waitFor, sleep, shardCli, USER, PASSWORD } from '../support/cluster.js';
import { keySlot } from '../../src/proxy/slots.js';
import { Load, readBack } from '../support/load.js';
import { Prober, checkPlacement as checkPlacementOn, rangesOf, shardClient } from '../support/slot-placement.js';

const NET = Number(process.env.TESSERA_TEST_NET ?? 81);
const cluster = new TestCluster(81, 3);
const [n1, n2, n3] = cluster.nodes;
const n4 = new TestNode(`127.0.${NET}.4`, path.join(cluster.root, 'n4'));
const PORT = 12810;

const KEYS_LOADED = 200_000;
const BIG_STRING = 50 * 1024 * 1024;
const BIG_HASH_FIELDS = 1_000_000;
// Their names put them in slots that move in 2 → 4 ({big}:string in 6392, bighash in 15077).
const BIG_KEY = '{big}:string';
const HASH_KEY = 'bighash';

type Shard = BdbJson['shards'][number];
type Db = BdbJson & { replication: boolean };
type ActionJson = { action_uid: string; name: string; status: string; progress: number; steps?: string[]; error?: string };
type Entry = { nodes: { node_uid: string; role: string }[]; slot_range: string };

let db: BdbJson;
const all = () => [...cluster.nodes, n4];
const nodeByUid = (uid: number) => all().find((n) => n.uidFromDisk === uid)!;
const bdb = async (): Promise<Db> => (await n1.api<Db>('GET', `/v1/bdbs/${db.uid}`)).body;

let writers: Load[] = [];
let prober: Prober;
const phases: string[] = [];

function failures(): string {
  return writers.map((w) => `${w.name}: ${w.ok} ok, ${w.failed} failed ${JSON.stringify([...w.errors])}`).join('; ');
}

/** Runs one phase: its duration, the longest acknowledged SET and the longest slot gap meanwhile; no failed command. */
async function phase<T>(name: string, run: () => Promise<T>): Promise<T> {
  for (const w of writers) w.maxMs = 0;
  prober.takeGap();
  const before = writers.map((w) => w.ok);
  const t0 = Date.now();
  const out = await run();
  const ms = Date.now() - t0;
  const pause = Math.round(Math.max(...writers.map((w) => w.maxMs)));
  const gap = prober.takeGap();
  const acked = writers.reduce((a, w, i) => a + w.ok - before[i], 0);
  const line = `${name}: ${(ms / 1000).toFixed(1)} s, ${acked} SETs acknowledged, longest write pause ${pause} ms, longest slot gap ${gap.ms} ms (slot ${gap.slot})`;
  phases.push(line);
  console.log(`# ${line}`);
  for (const w of writers) assert.equal(w.failed, 0, `${name}: ${failures()}`);
  assert.equal(prober.failed, 0, `${name}: every slot served: ${[...prober.errors]}`);
  return out;
}

/** Every master holds only keys of its own slots (and, `quiet`, DBSIZE says as many); returns the keys per master. */
const checkPlacement = (b: BdbJson, quiet: boolean) => checkPlacementOn(b, quiet, nodeByUid);

async function assertFamilies(b: BdbJson): Promise<void> {
  for (const m of b.shards.filter((s) => s.role === 'master')) {
    const fam = b.shards.filter((s) => s.uid === m.uid || s.master_uid === m.uid);
    assert.equal(new Set(fam.map((s) => s.node_uid)).size, fam.length, `a master and its replica on one node: ${JSON.stringify(b.shards)}`);
  }
  for (const s of b.shards.filter((x: Shard) => x.role === 'slave'))
    await waitFor(
      `shard ${s.uid} in sync`,
      async () => /master_link_status:up/.test(await shardCli(nodeByUid(s.node_uid), s.uid, ['INFO', 'replication']).catch(() => '')),
      120_000,
      200,
    );
}

/** What a node holds, comparable across shard uids: the slots and the role of each of its shards. */
function held(b: BdbJson, uid: number): string[] {
  return b.shards
    .filter((s) => s.node_uid === uid)
    .map((s) => `${s.assigned_slots}:${s.role}`)
    .sort();
}

/** Follows an action to its end, printing each step. */
async function follow(actionUid: string, what: string): Promise<ActionJson> {
  let printed = 0;
  const a = await waitFor(
    what,
    async () => {
      const x = (await n1.api<ActionJson>('GET', `/v1/actions/${actionUid}`)).body;
      for (const s of (x.steps ?? []).slice(printed)) console.log(`#   ${s}`);
      printed = x.steps?.length ?? 0;
      return x.status === 'completed' || x.status === 'failed' ? x : undefined;
    },
    300_000,
    250,
  );
  assert.equal(a.status, 'completed', `${what}: ${a.error}`);
  return a;
}

async function waitActive(): Promise<Db> {
  return waitFor(
    'database active',
    async () => {
      const x = await bdb();
      return x.status === 'active' ? x : undefined;
    },
    60_000,
  );
}

/** A PUT of the database answered with an action, followed to its end. */
async function change(body: Record<string, unknown>, what: string, via: TestNode = n2): Promise<Db> {
  const r = await via.api<Db>('PUT', `/v1/bdbs/${db.uid}`, body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok(r.body.action_uid, `${what} answers with an action: ${JSON.stringify(r.body)}`);
  await follow(r.body.action_uid!, what);
  return waitActive();
}

/** SHA-256 of the big string, and of the hash's fields and values in field order, read through an endpoint. */
async function bigDigests(via: TestNode): Promise<{ strlen: number; string: string; hlen: number; hash: string }> {
  const c = new Redis({ host: via.addr, port: PORT, maxRetriesPerRequest: 0 });
  try {
    const s = await c.getBuffer(BIG_KEY);
    const flat = (await c.call('HGETALL', HASH_KEY)) as string[];
    const pairs: [string, string][] = [];
    for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i], flat[i + 1]]);
    return { strlen: s?.length ?? 0, string: sha(s ?? Buffer.alloc(0)), hlen: pairs.length, hash: hashDigest(pairs) };
  } finally {
    c.disconnect();
  }
}
const sha = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');
function hashDigest(pairs: [string, string][]): string {
  const h = crypto.createHash('sha256');
  for (const [f, v] of pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) h.update(`${f}=${v}\n`);
  return h.digest('hex');
}

let bigString: Buffer;
const expectedHash = () => {
  const pairs: [string, string][] = [];
  for (let j = 0; j < BIG_HASH_FIELDS; j++) pairs.push([`f${j}`, `${j}`]);
  return hashDigest(pairs);
};

before(async () => {
  await cluster.startAll();
  await cluster.form('day-two.test');
  await cluster.waitClusterVersion('0.2');
  db = await createDb(n1, {
    name: 'daytwo',
    memory_size: 2 * 1024 ** 3,
    shards_count: 2,
    sharding: true,
    replication: false,
    proxy_policy: 'all-nodes',
    shards_placement: 'sparse',
    port: PORT,
    data_internode_encryption: true,
  });
  const t0 = Date.now();
  const c = new Redis({ host: n1.addr, port: PORT });
  for (let i = 0; i < KEYS_LOADED; i += 5000) {
    const p = c.pipeline();
    for (let j = i; j < i + 5000; j++) p.set(`k:${j}`, `value-${j}`);
    await p.exec();
  }
  c.disconnect();
  const t1 = Date.now();
  // The big values straight into their shards (faster than through the proxy); read back through endpoints below.
  const ownerOf = (key: string) => {
    const slot = keySlot(key);
    const s = db.shards.find((x) => x.role === 'master' && rangesOf(x.assigned_slots).some(([a, z]) => slot >= a && slot <= z))!;
    return shardClient(nodeByUid(s.node_uid), s.uid);
  };
  bigString = crypto.randomBytes(BIG_STRING);
  const sc = ownerOf(BIG_KEY);
  await sc.set(BIG_KEY, bigString);
  sc.disconnect();
  const hc = ownerOf(HASH_KEY);
  const hp = hc.pipeline();
  for (let i = 0; i < BIG_HASH_FIELDS; i += 10_000) {
    const args: string[] = [];
    for (let j = i; j < i + 10_000; j++) args.push(`f${j}`, `${j}`);
    hp.hset(HASH_KEY, ...args);
  }
  await hp.exec();
  hc.disconnect();
  console.log(
    `# loaded ${KEYS_LOADED} keys in ${t1 - t0} ms, a ${BIG_STRING >> 20} MB string and a hash of ${BIG_HASH_FIELDS} fields in ${Date.now() - t1} ms`,
  );
  writers = [new Load('via-n1', n1, PORT, 2, { errorKey: 'message' }), new Load('via-n3', n3, PORT, 2, { errorKey: 'message' })];
  prober = new Prober(n3, PORT);
  await sleep(1000);
});

after(async () => {
  await Promise.all(writers.map((w) => w.stop()));
  await prober?.stop();
  await n4.kill('SIGTERM');
  await cluster.stop();
});

test('shards 2 → 4 → 3 under load', async () => {
  const b4 = await phase('shards 2 → 4 (REST)', () => change({ shards_count: 4, sharding: true }, 'resharding to 4'));
  assert.equal(b4.shards.filter((s) => s.role === 'master').length, 4);
  assert.equal(b4.shards.length, 4, 'no replicas yet');
  await checkPlacement(b4, false);
  const b3 = await phase('shards 4 → 3 (REST)', () => change({ shards_count: 3, sharding: true }, 'resharding to 3', n3));
  assert.equal(b3.shards.filter((s) => s.role === 'master').length, 3);
  await checkPlacement(b3, false);
});

test('replication off → on', async () => {
  const b = await phase('replication on (REST)', async () => {
    const x = await change({ replication: true }, 'replication on');
    await assertFamilies(x);
    return x;
  });
  assert.equal(b.replication, true);
  assert.equal(b.shards.length, 6, JSON.stringify(b.shards));
  await checkPlacement(b, false);
});

test('a 4th node joins; the optimized blueprint, applied with its cluster-state-id, moves shards onto it', async () => {
  const u4 = await phase('node 4 joins', async () => {
    await n4.start();
    const j = await n4.cli(['cluster', 'join', 'nodes', n1.addr, 'username', USER, 'password', PASSWORD]);
    assert.equal(j.code, 0, `${j.stderr}\n${n4.logTail()}`);
    const u = n4.uidFromDisk!;
    await waitFor(
      `node ${u} active`,
      async () =>
        (await n1.api<{ uid: number; status: string }[]>('GET', '/v1/nodes')).body.some((n) => n.uid === u && n.status === 'active'),
      60_000,
    );
    return u;
  });
  const b = await phase('blueprint applied', async () => {
    const g = await n2.api<Entry[]>('GET', `/v1/bdbs/${db.uid}/actions/optimize_shards_placement`);
    assert.equal(g.status, 200, JSON.stringify(g.body));
    const id = String(g.headers?.['cluster-state-id'] ?? '');
    assert.ok(id, 'a cluster-state-id header');
    assert.ok(
      g.body.some((e) => e.nodes.some((n) => n.node_uid === String(u4))),
      `node ${u4} gets a shard: ${JSON.stringify(g.body)}`,
    );
    const r = await n3.api<{ action_uid?: string; error_code?: string }>(
      'PUT',
      `/v1/bdbs/${db.uid}`,
      { shards_blueprint: g.body },
      undefined,
      {
        'cluster-state-id': id,
      },
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(r.body.action_uid, JSON.stringify(r.body));
    await follow(r.body.action_uid, 'blueprint');
    const x = await waitActive();
    await assertFamilies(x);
    return x;
  });
  assert.ok(
    b.shards.some((s) => s.node_uid === u4),
    `a shard on node ${u4}: ${JSON.stringify(b.shards)}`,
  );
  await checkPlacement(b, false);
});

let uid2: number;
let snapshot2: string[];

test('maintenance mode on node 2, SIGTERM, start again, maintenance mode off: node 2 back to its snapshot', async () => {
  uid2 = n2.uidFromDisk!;
  // Node 2 should hold a master, so that maintenance mode switches one over: a planned failover puts one there if not.
  const placed = await bdb();
  if (!placed.shards.some((s) => s.node_uid === uid2 && s.role === 'master')) {
    const r = placed.shards.find((s) => s.node_uid === uid2 && s.role === 'slave');
    assert.ok(r, `node 2 holds a shard: ${JSON.stringify(placed.shards)}`);
    await phase(`failover of shard ${r.master_uid} onto node 2`, async () => {
      const f = await n3.api<{ action_uid: string }>('POST', `/v1/shards/${r.master_uid}/actions/failover`, {});
      assert.equal(f.status, 200, JSON.stringify(f.body));
      await follow(f.body.action_uid, 'failover');
      await waitFor(
        'node 2 holds a master',
        async () => (await bdb()).shards.some((s) => s.node_uid === uid2 && s.role === 'master'),
        30_000,
      );
      await assertFamilies(await waitActive());
    });
  }
  const b0 = await bdb();
  snapshot2 = held(b0, uid2);
  console.log(`# node 2 holds ${JSON.stringify(snapshot2)}`);
  assert.ok(
    snapshot2.some((x) => x.endsWith(':master')),
    `node 2 holds a master to begin with: ${JSON.stringify(b0.shards)}`,
  );

  await phase('maintenance_mode on node 2 (CLI)', async () => {
    const res = await n1.cli(['node', String(uid2), 'maintenance_mode', 'on']);
    for (const l of res.stdout.trim().split('\n')) console.log(`#   ${l}`);
    assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
    assert.match(res.stdout, /switching over shard \d+/);
    assert.match(res.stdout, new RegExp(`Node ${uid2} is in maintenance mode\\n$`));
  });
  const b1 = await bdb();
  assert.deepEqual(held(b1, uid2), [], `node 2 holds no shard: ${JSON.stringify(b1.shards)}`);
  await assertFamilies(b1);
  await checkPlacement(b1, false);

  await phase('SIGTERM of node 2 in maintenance mode, start again', async () => {
    await n2.kill('SIGTERM');
    await waitFor(
      'node 2 down',
      async () => (await n1.api<{ status: string }>('GET', `/v1/nodes/${uid2}`)).body.status === 'down',
      30_000,
      200,
    );
    await n2.start();
    await waitFor(
      'node 2 active again',
      async () => (await n1.api<{ status: string }>('GET', `/v1/nodes/${uid2}`)).body.status === 'active',
      60_000,
      200,
    );
  });
  const info = (await n2.api<{ maintenance_mode: boolean }>('GET', `/v1/nodes/${uid2}`)).body;
  assert.equal(info.maintenance_mode, true, 'still in maintenance mode after the restart');
  assert.deepEqual(held(await bdb(), uid2), [], 'nothing moved onto node 2 while it restarted');

  await phase('maintenance_mode off node 2 (CLI)', async () => {
    const res = await n3.cli(['node', String(uid2), 'maintenance_mode', 'off']);
    for (const l of res.stdout.trim().split('\n')) console.log(`#   ${l}`);
    assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
    assert.match(res.stdout, new RegExp(`Node ${uid2} left maintenance mode\\n$`));
  });
  const b2 = await bdb();
  assert.deepEqual(held(b2, uid2), snapshot2, `node 2 is back to its snapshot: ${JSON.stringify(b2.shards)}`);
  await assertFamilies(b2);
});

test('no failed command, no acknowledged key lost, big values intact, no key outside its shard, every slot served', async () => {
  await Promise.all(writers.map((w) => w.stop()));
  await prober.stop();
  const b = await bdb();
  const counts = await checkPlacement(b, true);
  const total = [...counts.values()].reduce((a, x) => a + x, 0);
  const acked = writers.reduce((a, w) => a + w.acked.size, 0);
  const wrong: string[] = [];
  for (const w of writers) wrong.push(...(await readBack(n2, PORT, w.acked)));
  const c = new Redis({ host: n2.addr, port: PORT, maxRetriesPerRequest: 0 });
  try {
    assert.equal(await c.get('k:12345'), 'value-12345');
  } finally {
    c.disconnect();
  }
  const big = await bigDigests(n2);
  for (const p of phases) console.log(`# phase ${p}`);
  console.log(`# writers: ${failures()}`);
  console.log(`# prober: ${prober.rounds} rounds over every slot, ${prober.failed} failed ${JSON.stringify([...prober.errors])}`);
  console.log(`# keys per master: ${JSON.stringify([...counts])} (${total} in all; ${acked} acknowledged by the writers)`);
  console.log(`# big values: ${big.strlen} bytes sha256 ${big.string.slice(0, 16)}…, ${big.hlen} fields sha256 ${big.hash.slice(0, 16)}…`);
  assert.equal(
    writers.reduce((a, w) => a + w.failed, 0),
    0,
    'no failed single-key command',
  );
  assert.equal(prober.failed, 0, 'every slot served throughout');
  assert.ok(acked > 1000, `enough load: ${acked}`);
  assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} acknowledged keys missing or wrong`);
  assert.equal(total, KEYS_LOADED + 2 + acked, 'no key lost, none left twice');
  assert.equal(big.strlen, BIG_STRING);
  assert.equal(big.string, sha(bigString), 'the 50 MB value is intact');
  assert.equal(big.hlen, BIG_HASH_FIELDS);
  assert.equal(big.hash, expectedHash(), 'the hash is intact');
});
