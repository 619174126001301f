// What is on the wire between nodes, proven with a packet capture on the
// loopback interface: with data_internode_encryption off, values written
// through an endpoint cross between nodes in clear (proxy → remote shard,
// and replication); switched on, they never do, on any port, and every
// handshake on 3342 uses an allowed suite. The switch itself drops no client
// connection and fails no command.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { TestCluster, type BdbJson, createDb, waitDbStatus, waitFor, shardCli, sleep } from '../support/cluster.js';
import { Capture, stopAllCaptures } from '../support/capture.js';

const NET = 6;
const cluster = new TestCluster(NET, 3);
const [n1, n2, n3] = cluster.nodes;
const nodeAddrs = new Set(cluster.nodes.map((n) => n.addr));
const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;
let db: BdbJson;
const capDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cap-'));

// IANA codes of the four allowed suites, as tshark prints them.
const ALLOWED_SUITES = new Set(['0xc030', '0xc02f', '0x1301', '0x1302']);

before(async () => {
  await cluster.startAll();
  await cluster.form('wire.test');
  db = await createDb(n1, {
    name: 'wire',
    memory_size: 300 << 20,
    shards_count: 3,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: 12100,
  });
});
after(async () => {
  await stopAllCaptures();
  await cluster.stop();
  fs.rmSync(capDir, { recursive: true, force: true });
});

/** A capture of this cluster's addresses; stopped by the `after` hook whatever fails. */
const capture = (name: string) => new Capture(path.join(capDir, name), `tcp and net 127.0.${NET}.0/24`);
const internodePayloads = (cap: Capture) => cap.payloadsBetween(nodeAddrs);

/** Write values carrying the marker to keys on every shard, through node 1's endpoint. */
async function writeMarked(marker: string, count = 60): Promise<string[]> {
  const c = new Redis({ host: n1.addr, port: db.port, maxRetriesPerRequest: 0 });
  const keys: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const k = `mark:${marker}:${i}`;
      keys.push(k);
      await c.set(k, `value-${marker}-${i}`);
      assert.equal(await c.get(k), `value-${marker}-${i}`);
    }
  } finally {
    c.disconnect();
  }
  return keys;
}

/** Every replica holds the marked keys: replication traffic happened while we watched. */
async function waitReplicated(keys: string[]): Promise<void> {
  for (const rep of db.shards.filter((s) => s.role === 'slave')) {
    const node = nodeByUid(rep.node_uid);
    const master = db.shards.find((s) => s.uid === rep.master_uid)!;
    const onMaster = Number(await shardCli(nodeByUid(master.node_uid), master.uid, ['EVAL', `return #redis.call('KEYS', 'mark:*')`, '0']));
    await waitFor(
      `replica ${rep.uid} has the marked keys`,
      async () => Number(await shardCli(node, rep.uid, ['EVAL', `return #redis.call('KEYS', 'mark:*')`, '0'])) === onMaster,
      15_000,
    );
  }
  assert.ok(keys.length > 0);
}

test('encryption off: the marker crosses between nodes in clear, both proxy → shard and replication', async () => {
  assert.equal(db.data_internode_encryption, false);
  const marker = randomBytes(8).toString('hex');
  const cap = capture('off.pcap');
  await cap.start();
  const keys = await writeMarked(marker);
  await waitReplicated(keys);
  await cap.stop();
  const hits = (await internodePayloads(cap)).filter((p) => p.data.includes(marker));
  assert.ok(hits.length > 0, 'marker seen between nodes');
  // Proxy → remote shard goes to a node's 3343; replication comes back from it.
  assert.ok(
    hits.some((p) => p.dport === 3343),
    'proxy → remote shard in clear on 3343',
  );
  assert.ok(
    hits.some((p) => p.sport === 3343),
    'replication stream in clear from 3343',
  );
});

test('switching on keeps client connections and commands intact; afterwards the marker never crosses in clear and 3342 uses allowed suites only', async () => {
  // Steady load through every endpoint, across the switch. Any disconnect or failed command is counted.
  const clients = cluster.nodes.map(
    (n) =>
      new Redis({
        host: n.addr,
        port: db.port,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        retryStrategy: () => null,
        lazyConnect: true,
      }),
  );
  const before = new Redis({
    host: n2.addr,
    port: db.port,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    lazyConnect: true,
  });
  await Promise.all([...clients, before].map((c) => c.connect()));
  await before.set('opened-before', '1');
  let closes = 0;
  let errors = 0;
  let ok = 0;
  for (const c of [...clients, before]) c.on('close', () => closes++);
  let running = true;
  const loops = clients.map(async (c, i) => {
    let n = 0;
    while (running) {
      try {
        const k = `load:${i}:${n % 50}`;
        const v = await c.incr(k);
        if (typeof v !== 'number') errors++;
        await c.set(`s:${i}:${n % 97}`, String(n));
        const got = await c.get(`s:${i}:${n % 97}`);
        if (got !== String(n)) {
          errors++;
          console.log(`# client ${i}: read ${got} after writing ${n}`);
        }
        ok++;
        n++;
      } catch (err) {
        if (errors++ < 5) console.log(`# client ${i}: ${(err as Error).message}`);
        await sleep(10);
      }
    }
  });
  // The capture spans the switch, so the new links' handshakes are in it.
  const cap = capture('on.pcap');
  await cap.start();
  await sleep(1000);
  const t = await n3.cli(['tune', 'db', String(db.uid), 'data_internode_encryption', 'enabled']);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /Finished successfully/);
  await sleep(1500);
  running = false;
  await Promise.all(loops);
  assert.equal(errors, 0, 'no failed command through the switch');
  assert.equal(closes, 0, 'no client connection closed');
  assert.ok(ok > 100, `load ran (${ok} rounds)`);
  assert.equal(await before.get('opened-before'), '1', 'a connection opened before the switch still works');
  [...clients, before].forEach((c) => c.disconnect());
  db = await waitDbStatus(n1, db.uid, 'active');
  assert.equal(db.data_internode_encryption, true);

  // Replication continued without a full resync.
  for (const rep of db.shards.filter((s) => s.role === 'slave')) {
    const info = await shardCli(nodeByUid(rep.node_uid), rep.uid, ['INFO', 'replication']);
    await waitFor(
      `replica ${rep.uid} link up`,
      async () => /master_link_status:up/.test(await shardCli(nodeByUid(rep.node_uid), rep.uid, ['INFO', 'replication'])),
      15_000,
    );
    assert.match(info, /role:slave/);
  }
  for (const m of db.shards.filter((s) => s.role === 'master')) {
    const stats = await shardCli(nodeByUid(m.node_uid), m.uid, ['INFO', 'stats']);
    assert.equal(Number(/sync_full:(\d+)/.exec(stats)![1]), 1, 'only the initial full sync');
    assert.ok(Number(/sync_partial_ok:(\d+)/.exec(stats)![1]) >= 1, 'the switch resumed with a partial resync');
  }

  const switchedAt = Date.now();
  const marker = randomBytes(8).toString('hex');
  const keys = await writeMarked(marker);
  await waitReplicated(keys);
  await cap.stop();
  const payloads = await internodePayloads(cap);
  assert.ok(
    payloads.some((p) => p.time > switchedAt && (p.dport === 3342 || p.sport === 3342)),
    'traffic went over 3342',
  );
  const clear = payloads.filter((p) => p.data.includes(marker));
  assert.deepEqual(
    clear.map((p) => `${p.src}:${p.sport}->${p.dst}:${p.dport}`),
    [],
    'marker never crosses between nodes in clear',
  );
  const plainAfter = payloads.filter((p) => p.time > switchedAt && (p.dport === 3343 || p.sport === 3343));
  assert.deepEqual(
    plainAfter.map((p) => `${p.src}:${p.sport}->${p.dst}:${p.dport}`),
    [],
    'no data on the plaintext channel once switched',
  );
  const suites = await cap.serverHelloSuites();
  assert.ok(suites.length > 0, 'handshakes on 3342 were captured');
  for (const s of suites) assert.ok(ALLOWED_SUITES.has(s), `negotiated suite ${s} is allowed`);
});

/**
 * Does this byte stream (one direction of one TCP connection) consist of TLS
 * records? The capture may start mid-stream, so look for an offset within the
 * first record's reach from which a chain of valid record headers (content
 * type 20-23, version 3.x, length <= 2^14+256) covers the rest exactly; the
 * last record may be cut off by the capture's end. Returns the bytes of
 * application-data records (type 23), or -1 if it is not TLS.
 */
function tlsApplicationBytes(b: Buffer): number {
  const validAt = (i: number) =>
    i + 5 <= b.length && b[i] >= 20 && b[i] <= 23 && b[i + 1] === 3 && b[i + 2] <= 4 && b.readUInt16BE(i + 3) <= 16384 + 256;
  for (let start = 0; start < Math.min(b.length, 16384 + 261); start++) {
    let i = start;
    let app = 0;
    while (i < b.length && validAt(i)) {
      const len = b.readUInt16BE(i + 3);
      if (b[i] === 23) app += len;
      i += 5 + len;
    }
    if (i >= b.length && i !== start) return app;
  }
  return -1;
}

test('with encryption on, the capture alone shows every stream between nodes is TLS, and the data went through 3342', async () => {
  // Normally the previous test switched it on; on its own (--test-name-pattern) this one does.
  if (!(await n1.api<BdbJson>('GET', `/v1/bdbs/${db.uid}`)).body.data_internode_encryption) {
    await n1.api('PUT', `/v1/bdbs/${db.uid}`, { data_internode_encryption: true });
    db = await waitDbStatus(n1, db.uid, 'active');
  }
  assert.equal(db.data_internode_encryption, true);
  const cap = capture('tls-only.pcap');
  await cap.start();
  const marker = randomBytes(8).toString('hex');
  // Through every endpoint, so links to remote shards and replication carry the values.
  // Whether a command succeeds is not what this test judges: only the capture is.
  for (const n of cluster.nodes) {
    const c = new Redis({ host: n.addr, port: db.port, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined); // connection trouble shows in the capture, if anywhere
    try {
      for (let i = 0; i < 100; i++) await c.set(`tls-only:${n.addr}:${i}`, `${marker}-${'x'.repeat(200)}`).catch(() => undefined);
    } finally {
      c.disconnect();
    }
  }
  await sleep(1000); // replication catches up
  await cap.stop();
  const streams = new Map<string, { ports: number[]; parts: Buffer[] }>();
  for (const p of await internodePayloads(cap)) {
    const k = `${p.src}:${p.sport}->${p.dst}:${p.dport}`;
    if (!streams.has(k)) streams.set(k, { ports: [p.sport, p.dport], parts: [] });
    streams.get(k)!.parts.push(p.data);
  }
  assert.ok(streams.size > 0, 'traffic between nodes was captured');
  let appBytes3342 = 0;
  const notTls: string[] = [];
  for (const [k, { ports, parts }] of streams) {
    const app = tlsApplicationBytes(Buffer.concat(parts));
    if (app < 0) notTls.push(k);
    else if (ports.includes(3342)) appBytes3342 += app;
  }
  assert.deepEqual(notTls, [], 'streams between nodes that are not TLS records');
  // 300 values of ~220 bytes crossed (a third of keys to a remote master, then on to replicas).
  assert.ok(appBytes3342 > (300 * 220) / 3, `only ${appBytes3342} application-data bytes on 3342`);
  assert.ok(![...streams.values()].some((st) => st.ports.includes(3343)), 'nothing on the plaintext channel');
});

test('switching back off moves links back to the plaintext channel, again without errors', async () => {
  const c = new Redis({
    host: n2.addr,
    port: db.port,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    lazyConnect: true,
  });
  let closed = false;
  c.on('close', () => (closed = true));
  await c.connect();
  await c.set('x', '1');
  const r = await n1.api('PUT', `/v1/bdbs/${db.uid}`, { data_internode_encryption: false });
  assert.equal(r.status, 200);
  await waitDbStatus(n1, db.uid, 'active');
  for (let i = 0; i < 50; i++) assert.equal(await c.incr('x'), i + 2);
  assert.equal(closed, false);
  c.disconnect();
  const marker = randomBytes(8).toString('hex');
  const cap = capture('off-again.pcap');
  await cap.start();
  await writeMarked(marker, 20);
  await cap.stop();
  assert.ok(
    (await internodePayloads(cap)).some((p) => p.data.includes(marker)),
    'plaintext again, as asked',
  );
});

test('new databases take the cluster policy default', async () => {
  const p = await n1.cli(['tune', 'cluster', 'data_internode_encryption', 'enabled']);
  assert.equal(p.code, 0, p.stderr);
  const d = await createDb(n2, { name: 'bypolicy', memory_size: 50 << 20 });
  assert.equal(d.data_internode_encryption, true);
  const explicit = await createDb(n2, { name: 'explicit', memory_size: 50 << 20, data_internode_encryption: false });
  assert.equal(explicit.data_internode_encryption, false);
  await n1.cli(['tune', 'cluster', 'data_internode_encryption', 'disabled']);
});
