// Bad input, as an attacker or a careless operator sends it, against one real
// node (127.0.22.5): absurd memory sizes, 50 identical concurrent creations,
// a database whose shard cannot start, probes of the plaintext data-plane
// port (3343), and hostile RESP frames against an endpoint (RSS bounded).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TestNode, type BdbJson, USER, PASSWORD, waitFor, sleep } from '../support/cluster.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-test-22-bad-'));
const n1 = new TestNode('127.0.22.5', path.join(root, 'n1'));
type Err = { error_code: string; description: string };

before(async () => {
  await n1.start();
  const c = await n1.cli(['cluster', 'create', 'name', 'bad.test', 'username', USER, 'password', PASSWORD]);
  if (c.code !== 0) throw new Error(`create failed: ${c.stderr}\n${n1.logTail()}`);
});
after(async () => {
  await n1.kill('SIGTERM');
  if (!process.env.TESSERA_KEEP_TEST_DIRS) fs.rmSync(root, { recursive: true, force: true });
});

const actionCount = async () => {
  const b = (await n1.api<unknown>('GET', '/v1/actions')).body as unknown[] | { actions: unknown[] };
  return Array.isArray(b) ? b.length : b.actions.length;
};

test('memory_size beyond what the nodes have (1e300, 2^53+2) is refused with insufficient_resources, and nothing is created', async () => {
  const before = await actionCount();
  for (const raw of ['1e300', '9007199254740994', String(os.totalmem() * 2)]) {
    // Sent as raw JSON: 2^53+2 is not exactly representable, which is part of the point.
    const r = await n1.api<Err>('POST', '/v1/bdbs', JSON.parse(`{"name":"huge","memory_size":${raw}}`));
    assert.equal(r.status, 400, raw);
    assert.equal(r.body.error_code, 'insufficient_resources', raw);
  }
  const put = await n1.api<Err>('PUT', '/v1/bdbs/999', { memory_size: 1e300 });
  assert.equal(put.status, 404, 'a change of a missing database is a 404 first');
  assert.deepEqual((await n1.api('GET', '/v1/bdbs')).body, []);
  assert.equal(await actionCount(), before, 'no action was left behind');
});

let first: BdbJson;
test('50 concurrent identical creations: one database, 49 refusals, and no database uid burnt', async () => {
  const body = { name: 'same', memory_size: 100 << 20 };
  const rs = await Promise.all(Array.from({ length: 50 }, () => n1.api<BdbJson & Err>('POST', '/v1/bdbs', body)));
  const ok = rs.filter((r) => r.status === 200);
  assert.equal(ok.length, 1, rs.map((r) => `${r.status} ${r.body.error_code ?? ''}`).join(','));
  for (const r of rs.filter((x) => x.status !== 200)) assert.equal(r.body.error_code, 'db_name_exists');
  first = ok[0].body;
  const next = await n1.api<BdbJson>('POST', '/v1/bdbs', { name: 'next', memory_size: 100 << 20 });
  assert.equal(next.status, 200);
  assert.equal(next.body.uid, first.uid + 1, 'the next creation gets the next uid');
  assert.equal(next.body.shards[0].uid, first.shards[first.shards.length - 1].uid + 1, 'and the next shard uid');
  await waitFor(
    'both active',
    async () => {
      const l = (await n1.api<BdbJson[]>('GET', '/v1/bdbs')).body;
      return l.length === 2 && l.every((b) => b.status === 'active');
    },
    60_000,
  );
});

test('a database whose shard cannot start is not active, and shows the shard error', async () => {
  const list = (await n1.api<BdbJson[]>('GET', '/v1/bdbs')).body;
  const nextShard = Math.max(...list.flatMap((b) => b.shards.map((s) => s.uid))) + 1;
  // A careless operator left a file where the shard's directory goes.
  fs.mkdirSync(path.join(n1.dataDir, 'shards'), { recursive: true });
  fs.writeFileSync(path.join(n1.dataDir, 'shards', String(nextShard)), 'not a directory');
  const r = await n1.api<BdbJson>('POST', '/v1/bdbs', { name: 'broken', memory_size: 100 << 20 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.shards[0].uid, nextShard);
  const seen = await waitFor(
    'the shard error',
    async () => {
      const b = (await n1.api<BdbJson & { shards: { error?: string }[] }>('GET', `/v1/bdbs/${r.body.uid}`)).body;
      return b.error && b.shards[0].error ? b : undefined;
    },
    30_000,
  );
  assert.notEqual(seen.status, 'active');
  assert.match(seen.error!, new RegExp(`shard ${nextShard}`));
  await sleep(3000);
  assert.notEqual((await n1.api<BdbJson>('GET', `/v1/bdbs/${r.body.uid}`)).body.status, 'active', 'still not active');
  assert.equal((await n1.api('DELETE', `/v1/bdbs/${r.body.uid}`)).status, 200);
  await waitFor('broken deleted', async () => (await n1.api('GET', `/v1/bdbs/${r.body.uid}`)).status === 404, 30_000);
});

/** What 3343 answers a link header. */
function probe3343(header: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: n1.addr, port: 3343 });
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.write(header);
    setTimeout(() => s.destroy(), 10_000).unref();
  });
}

test('on 3343, an unknown shard and a wrong secret get the same reply', async () => {
  const shard = first.shards[0].uid;
  const replies = [
    await probe3343(`TDP1 ${first.uid} ${shard} wrong-secret-aaaaaaaaaaaaaaaaaaaaaaaa x\n`),
    await probe3343(`TDP1 ${first.uid} 9999 wrong-secret-aaaaaaaaaaaaaaaaaaaaaaaa x\n`),
    await probe3343(`TDP1 9999 ${shard} wrong-secret-aaaaaaaaaaaaaaaaaaaaaaaa x\n`),
    await probe3343(`HELLO\n`),
  ];
  assert.deepEqual(replies, Array(4).fill('-ERR link refused\r\n'));
  // Many refusals: the log gets a bounded number of lines.
  const log0 = fs.readFileSync(n1.logFile, 'utf8').split('shard link refused').length;
  await Promise.all(Array.from({ length: 100 }, () => probe3343('HELLO\n')));
  const logged = fs.readFileSync(n1.logFile, 'utf8').split('shard link refused').length - log0;
  assert.ok(logged <= 20, `${logged} log lines for 100 refusals`);
  assert.ok(logged >= 1);
});

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** Write `bytes` to a database endpoint; resolves with what came back and whether the server closed the connection. */
function sendRaw(port: number, bytes: Buffer[], waitMs: number): Promise<{ reply: string; closed: boolean; sock: net.Socket }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: n1.addr, port });
    let reply = '';
    let closed = false;
    s.on('data', (d) => (reply += d.toString('latin1')));
    // Resolves when the server closes, or after waitMs (a loaded machine may take its time).
    const done = () => resolve({ reply, closed, sock: s });
    s.on('end', () => (closed = true));
    s.on('close', () => {
      closed = true;
      done();
    });
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? (closed = true) : reject(e)));
    s.on('connect', async () => {
      for (const b of bytes) {
        if (closed) break;
        if (!s.write(b)) await new Promise((r) => (s.once('drain', r), s.once('close', r)));
      }
      setTimeout(done, waitMs);
    });
  });
}

test("an unfinished *1000000 frame of one-byte arguments keeps the node's RSS within a small multiple of its bytes", async () => {
  const pid = n1.proc!.pid!;
  const one = Buffer.from('$1\r\na\r\n');
  const body = Buffer.concat(Array(999_999).fill(one));
  const before = rssOf(pid);
  const { reply, closed, sock } = await sendRaw(first.port, [Buffer.from('*1000000\r\n'), body], 3000);
  const during = rssOf(pid);
  assert.equal(reply, '', 'no reply to an unfinished command');
  assert.equal(closed, false);
  const grew = during - before;
  // Before: +145 MB for these 7 MB. Now the bytes, their offsets, and some slack for the heap.
  assert.ok(grew < body.length * 5, `RSS grew ${(grew / 1e6).toFixed(1)} MB for ${(body.length / 1e6).toFixed(1)} MB sent`);
  console.log(`partial frame: ${(body.length / 1e6).toFixed(1)} MB sent, node RSS +${(grew / 1e6).toFixed(1)} MB`);
  sock.destroy();
  // The endpoint still serves.
  const ok = await sendRaw(first.port, [Buffer.from('*1\r\n$4\r\nPING\r\n')], 500);
  assert.equal(ok.reply, '+PONG\r\n');
  ok.sock.destroy();
});

test("a 10 MB inline request gets redis's error and the connection is closed; so does a frame beyond the query buffer limit", async () => {
  const inline = Buffer.alloc(10 * 1024 * 1024, 0x61);
  const r = await sendRaw(first.port, [inline], 20_000);
  assert.equal(r.reply, '-ERR Protocol error: too big inline request\r\n');
  assert.equal(r.closed, true, 'the server closed the connection');
  r.sock.destroy();
  // A bulk announced at 512 MB and fed past the per-client limit (64 MB): the connection is closed.
  const big = await sendRaw(
    first.port,
    [Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n'), Buffer.alloc(70 * 1024 * 1024, 0x62)],
    20_000,
  );
  assert.equal(big.closed, true, 'closed at the query buffer limit');
  big.sock.destroy();
});
