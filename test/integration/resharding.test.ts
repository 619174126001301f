// Online resharding (issue 21): a 3-node cluster with internode encryption
// runs a replicated 2-shard database holding 200,000 keys plus a 50 MB string
// and a hash of 1,000,000 fields, under a steady load of writers through the
// endpoints of two nodes and a prober reading one key of every slot. It goes
// 2 → 4 → 3 shards: through PUT /v1/bdbs/{uid} shards_count, followed
// through its action, then `tessera tune db <uid> shards_count 3`. Asserted: no failed command, no acknowledged key
// missing or wrong, no key on a shard that does not own its slot (SCAN of
// every master, DBSIZE against the keys of its slots), every slot served
// throughout. The longest write pause (the writers' slowest acknowledged
// SET) is printed, and must stay under 1 s. The big values' names put them in
// slots that move in 2 → 4 ({big}:string in 6392, bighash in 15077).
//
// Net: 127.0.61.x (TESSERA_TEST_NET moves it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { TestCluster, type BdbJson, createDb, waitFor, sleep } from '../support/cluster.js';
import { keySlot } from '../../src/proxy/slots.js';
import { Load, readBack } from '../support/load.js';
import { Prober, checkPlacement as checkPlacementOn, rangesOf, shardClient } from '../support/slot-placement.js';

const cluster = new TestCluster(61, 3);
const [n1, n2, n3] = cluster.nodes;
let db: BdbJson;
type ActionJson = { action_uid: string; status: string; progress: number; steps?: string[]; error?: string };

const KEYS_LOADED = 200_000;
const BIG_STRING = 50 * 1024 * 1024;
const BIG_HASH_FIELDS = 1_000_000;

const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;

let writers: Load[] = [];
let prober: Prober;

/** Every master holds only keys of its own slots (and, `quiet`, DBSIZE says as many); returns the keys per master. */
const checkPlacement = (b: BdbJson, quiet: boolean) => checkPlacementOn(b, quiet, nodeByUid);

/** `tessera tune db <uid> shards_count <n>`: it prints each step and returns once the database is active. */
async function reshardByCli(n: number): Promise<BdbJson> {
  const t0 = Date.now();
  const r = await n2.cli(['tune', 'db', String(db.uid), 'shards_count', String(n)]);
  for (const line of r.stdout.trim().split('\n')) console.log(`#   ${line}`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /moved to shard/);
  assert.match(r.stdout, /Finished successfully\s*$/);
  const b = (await n1.api<BdbJson>('GET', `/v1/bdbs/${db.uid}`)).body;
  assert.equal(b.status, 'active');
  console.log(`# resharding to ${n} shards (CLI) took ${Date.now() - t0} ms`);
  return b;
}

/** The key mover's links the nodes report while `until` runs (what `verify encryption` reads): protocol of each. */
async function migrationLinksDuring(until: Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  let done = false;
  void until.finally(() => {
    done = true;
  });
  while (!done) {
    for (const n of cluster.nodes) {
      const r = await n1.api<{ links: { purpose: string; protocol: string; side: string }[] }>(
        'GET',
        `/v1/nodes/${n.uidFromDisk}/internode_links`,
      );
      for (const l of r.body.links ?? []) if (l.purpose === 'migration') seen.push(`${l.side}:${l.protocol}`);
    }
    await sleep(200);
  }
  return seen;
}

/** Ask for `n` shards and follow the action to its end, printing each step; the database once active. */
async function reshard(n: number): Promise<BdbJson> {
  const t0 = Date.now();
  const r = await n2.api<BdbJson>('PUT', `/v1/bdbs/${db.uid}`, { shards_count: n, sharding: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.status, 'active-change-pending');
  const actionUid = r.body.action_uid!;
  let printed = 0;
  const a = await waitFor(
    `resharding to ${n} shards`,
    async () => {
      const x = (await n1.api<ActionJson>('GET', `/v1/actions/${actionUid}`)).body;
      for (const s of (x.steps ?? []).slice(printed)) console.log(`#   ${s}`);
      printed = x.steps?.length ?? 0;
      return x.status === 'completed' || x.status === 'failed' ? x : undefined;
    },
    180_000,
    250,
  );
  assert.equal(a.status, 'completed', a.error);
  const b = await waitFor(
    'database active',
    async () => {
      const x = (await n1.api<BdbJson>('GET', `/v1/bdbs/${db.uid}`)).body;
      return x.status === 'active' ? x : undefined;
    },
    30_000,
  );
  console.log(`# resharding to ${n} shards took ${Date.now() - t0} ms`);
  return b;
}

before(async () => {
  await cluster.startAll();
  await cluster.form('reshard.test');
  db = await createDb(n1, {
    name: 'grow',
    memory_size: 2 * 1024 ** 3,
    shards_count: 2,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: 12610,
    data_internode_encryption: true,
  });
  // The load: pipelined through the endpoint, then the big values.
  const c = new Redis({ host: n1.addr, port: db.port });
  const t0 = Date.now();
  for (let i = 0; i < KEYS_LOADED; i += 5000) {
    const p = c.pipeline();
    for (let j = i; j < i + 5000; j++) p.set(`k:${j}`, `value-${j}`);
    await p.exec();
  }
  const t1 = Date.now();
  // The big values straight into their shards (faster than through the proxy); read back through it below.
  const ownerOf = (key: string) => {
    const slot = keySlot(key);
    const s = db.shards.find((x) => x.role === 'master' && rangesOf(x.assigned_slots).some(([a, z]) => slot >= a && slot <= z))!;
    return shardClient(nodeByUid(s.node_uid), s.uid);
  };
  const sc = ownerOf('{big}:string');
  await sc.set('{big}:string', Buffer.alloc(BIG_STRING, 'x'));
  sc.disconnect();
  const hc = ownerOf('bighash');
  const hp = hc.pipeline();
  for (let i = 0; i < BIG_HASH_FIELDS; i += 10_000) {
    const args: string[] = [];
    for (let j = i; j < i + 10_000; j++) args.push(`f${j}`, `${j}`);
    hp.hset('bighash', ...args);
  }
  await hp.exec();
  hc.disconnect();
  console.log(`# big values written in ${Date.now() - t1} ms`);
  console.log(
    `# loaded ${KEYS_LOADED} keys, a ${BIG_STRING >> 20} MB string and a hash of ${BIG_HASH_FIELDS} fields in ${Date.now() - t0} ms`,
  );
  c.disconnect();
  writers = [new Load('via-n1', n1, db.port, 2, { errorKey: 'message' }), new Load('via-n3', n3, db.port, 2, { errorKey: 'message' })];
  prober = new Prober(n3, db.port);
  await sleep(1000);
});

after(async () => {
  await Promise.all(writers.map((w) => w.stop()));
  await prober?.stop();
  await cluster.stop();
});

test('2 → 4 → 3 shards under load: no failed command, no key lost or misplaced, every slot served, pauses under 1 s', async () => {
  const growing = reshard(4);
  const links = await migrationLinksDuring(growing);
  const b4 = await growing;
  console.log(`# migration links seen: ${links.length} (${[...new Set(links)].join(', ')})`);
  assert.ok(links.length > 0, "the key mover's links are reported (verify encryption sees them)");
  assert.ok(
    links.every((l) => !l.endsWith('plaintext')),
    `every migration link is TLS (encryption is on): ${[...new Set(links)]}`,
  );
  assert.equal(b4.shards.filter((s) => s.role === 'master').length, 4);
  assert.equal(b4.shards.length, 8, 'each new master has its replica');
  for (const s of b4.shards.filter((x) => x.role === 'slave')) {
    const m = b4.shards.find((x) => x.uid === s.master_uid)!;
    assert.notEqual(s.node_uid, m.node_uid, 'a replica is never beside its master');
  }
  await checkPlacement(b4, false);

  const b3 = await reshardByCli(3);
  assert.equal(b3.shards.filter((s) => s.role === 'master').length, 3);
  assert.equal(b3.shards.length, 6);

  await Promise.all(writers.map((w) => w.stop()));
  await prober.stop();
  const counts = await checkPlacement(b3, true);
  const total = [...counts.values()].reduce((a, x) => a + x, 0);
  const acked = writers.reduce((a, w) => a + w.acked.size, 0);
  for (const w of writers)
    console.log(
      `# ${w.name}: ${w.ok} acknowledged, ${w.failed} failed ${JSON.stringify([...w.errors])}; slowest SET ${Math.round(w.maxMs)} ms`,
    );
  console.log(`# prober: ${prober.rounds} rounds over every slot, ${prober.failed} failed ${JSON.stringify([...prober.errors])}`);
  console.log(`# keys per master after 3 shards: ${JSON.stringify([...counts])} (${total} in all)`);
  const longest = Math.max(...writers.map((w) => w.maxMs));
  console.log(`# longest write pause seen by a writer: ${Math.round(longest)} ms`);

  assert.equal(
    writers.reduce((a, w) => a + w.failed, 0),
    0,
    'no failed single-key command',
  );
  assert.equal(prober.failed, 0, 'every slot served throughout');
  for (const w of writers)
    assert.deepEqual((await readBack(n2, db.port, w.acked)).slice(0, 5), [], `${w.name}: acknowledged keys read back`);
  assert.equal(total, KEYS_LOADED + 2 + acked, 'no key lost, none left twice');
  const c = new Redis({ host: n2.addr, port: db.port });
  try {
    assert.equal(await c.strlen('{big}:string'), BIG_STRING);
    assert.equal(await c.hlen('bighash'), BIG_HASH_FIELDS);
    assert.equal(await c.get('k:12345'), 'value-12345');
  } finally {
    c.disconnect();
  }
  assert.ok(longest < 1000, `the longest write pause was ${Math.round(longest)} ms`);
});
