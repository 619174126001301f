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
import { spawn, execFile, ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { TestCluster, BdbJson, createDb, waitDbStatus, waitFor, shardCli, sleep } from './support/cluster.js';

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
  db = await createDb(n1, { name: 'wire', memory_size: 300 << 20, shards_count: 3, sharding: true, replication: true, proxy_policy: 'all-nodes', port: 12100 });
});
after(async () => {
  await cluster.stop();
  fs.rmSync(capDir, { recursive: true, force: true });
});

class Capture {
  private proc?: ChildProcess;
  constructor(readonly file: string) {}

  async start(): Promise<void> {
    // dumpcap writes the raw capture; tshark reads it afterwards.
    this.proc = spawn('dumpcap', ['-q', '-i', 'lo', '-f', `tcp and net 127.0.${NET}.0/24`, '-w', this.file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    this.proc.stderr!.on('data', (d) => (err += d));
    await waitFor('capture running', async () => {
      if (this.proc!.exitCode !== null) throw new Error(`dumpcap exited: ${err}`);
      return fs.existsSync(this.file) && fs.statSync(this.file).size > 0;
    }, 10_000);
    await sleep(500);
  }

  async stop(): Promise<void> {
    await sleep(500);
    const p = this.proc!;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGINT');
    await exited;
  }

  private tshark(args: string[]): Promise<string> {
    return new Promise((resolve, reject) =>
      execFile('tshark', ['-r', this.file, '-d', 'tcp.port==3342,tls', ...args], { maxBuffer: 512 * 1024 * 1024 }, (err, out) => (err ? reject(err) : resolve(out))),
    );
  }

  /** Payload bytes of every TCP segment between two different nodes, with the ports. */
  async internodePayloads(): Promise<{ src: string; dst: string; sport: number; dport: number; time: number; data: Buffer }[]> {
    const out = await this.tshark(['-Y', 'tcp.len > 0', '-T', 'fields', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'tcp.srcport', '-e', 'tcp.dstport', '-e', 'frame.time_epoch', '-e', 'tcp.payload']);
    return out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t'))
      .filter(([src, dst]) => nodeAddrs.has(src) && nodeAddrs.has(dst) && src !== dst)
      .map(([src, dst, sport, dport, time, hex]) => ({ src, dst, sport: Number(sport), dport: Number(dport), time: Number(time) * 1000, data: Buffer.from(hex.replace(/:/g, ''), 'hex') }));
  }

  /** Cipher suites chosen by servers in ServerHellos on 3342. */
  async serverHelloSuites(): Promise<string[]> {
    const out = await this.tshark(['-Y', 'tls.handshake.type == 2 && tcp.srcport == 3342', '-T', 'fields', '-e', 'tls.handshake.ciphersuite']);
    return out.split('\n').filter(Boolean);
  }
}

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
    await waitFor(`replica ${rep.uid} has the marked keys`, async () => Number(await shardCli(node, rep.uid, ['EVAL', `return #redis.call('KEYS', 'mark:*')`, '0'])) === onMaster, 15_000);
  }
  assert.ok(keys.length > 0);
}

test('encryption off: the marker crosses between nodes in clear, both proxy → shard and replication', async () => {
  assert.equal(db.data_internode_encryption, false);
  const marker = randomBytes(8).toString('hex');
  const cap = new Capture(path.join(capDir, 'off.pcap'));
  await cap.start();
  const keys = await writeMarked(marker);
  await waitReplicated(keys);
  await cap.stop();
  const hits = (await cap.internodePayloads()).filter((p) => p.data.includes(marker));
  assert.ok(hits.length > 0, 'marker seen between nodes');
  // Proxy → remote shard goes to a node's 3343; replication comes back from it.
  assert.ok(hits.some((p) => p.dport === 3343), 'proxy → remote shard in clear on 3343');
  assert.ok(hits.some((p) => p.sport === 3343), 'replication stream in clear from 3343');
});

test('switching on keeps client connections and commands intact; afterwards the marker never crosses in clear and 3342 uses allowed suites only', async () => {
  // Steady load through every endpoint, across the switch. Any disconnect or failed command is counted.
  const clients = cluster.nodes.map((n) => new Redis({ host: n.addr, port: db.port, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, lazyConnect: true }));
  const before = new Redis({ host: n2.addr, port: db.port, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, lazyConnect: true });
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
  const cap = new Capture(path.join(capDir, 'on.pcap'));
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
    await waitFor(`replica ${rep.uid} link up`, async () => /master_link_status:up/.test(await shardCli(nodeByUid(rep.node_uid), rep.uid, ['INFO', 'replication'])), 15_000);
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
  const payloads = await cap.internodePayloads();
  assert.ok(payloads.some((p) => p.time > switchedAt && (p.dport === 3342 || p.sport === 3342)), 'traffic went over 3342');
  const clear = payloads.filter((p) => p.data.includes(marker));
  assert.deepEqual(clear.map((p) => `${p.src}:${p.sport}->${p.dst}:${p.dport}`), [], 'marker never crosses between nodes in clear');
  const plainAfter = payloads.filter((p) => p.time > switchedAt && (p.dport === 3343 || p.sport === 3343));
  assert.deepEqual(plainAfter.map((p) => `${p.src}:${p.sport}->${p.dst}:${p.dport}`), [], 'no data on the plaintext channel once switched');
  const suites = await cap.serverHelloSuites();
  assert.ok(suites.length > 0, 'handshakes on 3342 were captured');
  for (const s of suites) assert.ok(ALLOWED_SUITES.has(s), `negotiated suite ${s} is allowed`);
});

test('switching back off moves links back to the plaintext channel, again without errors', async () => {
  const c = new Redis({ host: n2.addr, port: db.port, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, lazyConnect: true });
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
  const cap = new Capture(path.join(capDir, 'off-again.pcap'));
  await cap.start();
  await writeMarked(marker, 20);
  await cap.stop();
  assert.ok((await cap.internodePayloads()).some((p) => p.data.includes(marker)), 'plaintext again, as asked');
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
