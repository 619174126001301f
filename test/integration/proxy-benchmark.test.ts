// redis-benchmark through a proxy endpoint over three real redis-servers
// (unix sockets, requirepass): 20,000 requests of each of nine commands from
// its 50 clients, with no error. Moved here from test/unit/proxy-endpoint.test.ts
// ('serves redis-cli and redis-benchmark'; the redis-cli half stays there):
// it is a load run of several seconds, not a unit check.
//
// Address: the endpoint listens on 127.0.20.2 (a free port).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Endpoint, type EndpointConfig } from '../../src/proxy/endpoint.js';
import { authConnect, spawnRedis } from '../support/redis.js';
import { run } from '../support/tls-tools.js';

const HOST = '127.0.20.2';
const SECRET = 'shard-secret-' + process.pid;
const RANGES: [number, number][] = [
  [0, 5460],
  [5461, 10922],
  [10923, 16383],
];
const N = 20_000;

let dir = '';
const shards: ChildProcess[] = [];
let ep: Endpoint | undefined;
let port = 0;
const sock = (uid: number) => join(dir, `s${uid}.sock`);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-proxy-bench-'));
  for (let uid = 1; uid <= RANGES.length; uid++) shards.push(await spawnRedis(sock(uid), dir, ['--requirepass', SECRET]));
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, HOST, r));
  port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const cfg: EndpointConfig = {
    bdbUid: 1,
    host: HOST,
    port,
    shards: RANGES.map((r, i) => ({ shardUid: i + 1, slots: [r] })),
    linkGeneration: 1,
  };
  ep = new Endpoint(cfg, (uid) => authConnect(sock(uid), SECRET));
  await ep.listen();
});

after(async () => {
  await ep?.close();
  for (const p of shards) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('serves redis-benchmark: every command type, no error', { timeout: 300_000 }, async () => {
  const before = ep!.stats();
  const b = await run(
    'redis-benchmark',
    ['-h', HOST, '-p', String(port), '-t', 'set,get,incr,lpush,rpush,lpop,sadd,hset,mset', '-n', String(N), '-q'],
    240_000,
  );
  const out = b.stdout + b.stderr;
  assert.equal(b.code, 0, out);
  const lines = out.split(/[\r\n]/).filter((l) => / requests per second/.test(l));
  for (const t of ['SET', 'GET', 'INCR', 'LPUSH', 'RPUSH', 'LPOP', 'SADD', 'HSET', 'MSET']) {
    assert.ok(
      lines.some((l) => l.startsWith(`${t}:`) || l.startsWith(`${t} (`)),
      `${t} missing in ${out}`,
    );
  }
  assert.doesNotMatch(out, /\(error\)|ERR /);
  const after = ep!.stats();
  // Only redis-benchmark's CONFIG GET probes (refused) are errors.
  assert.ok(after.errors - before.errors <= 2, `errors ${after.errors - before.errors}`);
  assert.ok(after.commands - before.commands >= 9 * N);
});
