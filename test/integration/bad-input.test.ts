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
import { TestNode, BdbJson, USER, PASSWORD, createDb, waitFor, sleep } from '../support/cluster.js';

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
  const b = (await n1.api<unknown>("GET", "/v1/actions")).body as unknown[] | { actions: unknown[] };
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
  await waitFor('both active', async () => {
    const l = (await n1.api<BdbJson[]>('GET', '/v1/bdbs')).body;
    return l.length === 2 && l.every((b) => b.status === 'active');
  }, 60_000);
});

test('a database whose shard cannot start is not active, and shows the shard error', async () => {
  const list = (await n1.api<BdbJson[]>('GET', '/v1/bdbs')).body;
  const nextShard = Math.max(...list.flatMap((b) => b.shards.map((s) => s.uid))) + 1;
  // A careless operator left a file where the shard's directory goes.
  fs.mkdirSync(path.join(n1.dataDir, 'shards'), { recursive: true });
  fs.writeFileSync(path.join(n1.dataDir, 'shards', String(nextShard)), 'not a directory');
  const r = await n1.api<BdbJson>('POST', '/v1/bdbs', { name: 'broken', memory_size: 100 << 20 });
  assert.equal(r.status, 200);
  assert.equal(r.body.shards[0].uid, nextShard);
  const seen = await waitFor('the shard error', async () => {
    const b = (await n1.api<BdbJson & { shards: { error?: string }[] }>('GET', `/v1/bdbs/${r.body.uid}`)).body;
    return b.error && b.shards[0].error ? b : undefined;
  }, 30_000);
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
