// The proxy endpoint in front of three real redis-servers (unix sockets,
// requirepass), driven by ioredis, raw sockets, redis-cli and
// redis-benchmark. Every redis-server started here is killed by PID after.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { Redis } from 'ioredis';
import { authConnect, spawnRedis } from '../support/redis.js';
import { sleep, waitFor } from '../support/wait.js';

import { Endpoint, type EndpointConfig } from '../../src/proxy/endpoint.js';
import { encodeCommand } from '../../src/proxy/resp-encode.js';
import { ReplyParser, decodeReply, type RespReply, type RespValue } from '../../src/proxy/resp-reply.js';
import { keySlot } from '../../src/proxy/slots.js';

const HOST = '127.0.20.1';
const SECRET = 'shard-secret-' + process.pid;
const N = 3;
const RANGES: [number, number][] = [
  [0, 5460],
  [5461, 10922],
  [10923, 16383],
];
const SHARDS = RANGES.map((r, i) => ({ shardUid: i + 1, slots: [r] }));

let dir = '';
const servers: (ChildProcess | null)[] = [];
const sockPath = (uid: number) => join(dir, `s${uid}.sock`);
const connects = new Map<number, number>();

async function startShard(uid: number, tcp: string[] = ['--port', '0']): Promise<void> {
  servers[uid] = await spawnRedis(sockPath(uid), dir, ['--requirepass', SECRET], tcp);
  // The socket file appears before accept() is ready: wait for a PONG.
  for (let i = 0; i < 100; i++) {
    try {
      const s = await connector(uid);
      s.destroy();
      connects.set(uid, (connects.get(uid) ?? 1) - 1);
      return;
    } catch {
      await sleep(20);
    }
  }
  throw new Error(`shard ${uid} did not start`);
}

async function killShard(uid: number): Promise<void> {
  const p = servers[uid];
  if (!p || p.exitCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
  servers[uid] = null;
  rmSync(sockPath(uid), { force: true });
}

/** net.connect + AUTH, resolved once the shard said +OK (counted per shard). */
function connector(uid: number): Promise<Duplex> {
  connects.set(uid, (connects.get(uid) ?? 0) + 1);
  return authConnect(sockPath(uid), SECRET);
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, HOST, r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

const endpoints: Endpoint[] = [];
async function startEndpoint(extra: Partial<EndpointConfig> = {}): Promise<{ ep: Endpoint; cfg: EndpointConfig }> {
  const cfg: EndpointConfig = { bdbUid: 1, host: HOST, port: await freePort(), shards: SHARDS, linkGeneration: 1, ...extra };
  const ep = new Endpoint(cfg, connector);
  await ep.listen();
  endpoints.push(ep);
  return { ep, cfg };
}

/** The shard index (0..2) a key lives on. */
const shardOf = (key: string) => RANGES.findIndex(([a, b]) => keySlot(key) >= a && keySlot(key) <= b);
/** A key (with the given prefix) that lives on shard `i`. */
function keyOn(i: number, prefix: string): string {
  for (let n = 0; ; n++) if (shardOf(`${prefix}${n}`) === i) return `${prefix}${n}`;
}

const clients: Redis[] = [];
function client(port: number, opts: Record<string, unknown> = {}): Redis {
  const r = new Redis({ host: HOST, port, lazyConnect: false, maxRetriesPerRequest: 0, ...opts });
  r.on('error', () => {});
  clients.push(r);
  return r;
}
const shardClients: Redis[] = [];
const shardClient = (i: number) => shardClients[i];

/** A raw RESP client: write bytes, read decoded (or raw) replies. */
class Raw {
  readonly sock: net.Socket;
  private readonly parser = new ReplyParser();
  private readonly replies: RespReply[] = [];
  private wake: (() => void) | null = null;
  closed = false;
  readonly closedP: Promise<void>;
  constructor(port: number) {
    this.sock = net.connect(port, HOST);
    this.sock.on('data', (d) => {
      this.parser.push(d);
      for (let r = this.parser.next(); r !== null; r = this.parser.next()) this.replies.push(r);
      this.wake?.();
    });
    this.sock.on('error', () => {});
    this.closedP = new Promise((r) =>
      this.sock.on('close', () => {
        this.closed = true;
        this.wake?.();
        r();
      }),
    );
  }
  send(...cmds: (string | Buffer | (string | Buffer)[])[]): this {
    for (const c of cmds) this.sock.write(Array.isArray(c) ? encodeCommand(c) : c);
    return this;
  }
  async rawReplies(n: number, timeoutMs = 5000): Promise<RespReply[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length < n) {
      if (this.closed || Date.now() > deadline) throw new Error(`got ${this.replies.length} of ${n} replies`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
    }
    return this.replies.splice(0, n);
  }
  async read(n = 1): Promise<RespValue[]> {
    return (await this.rawReplies(n)).map((r) => decodeReply(r.raw, { strings: true }));
  }
  async one(): Promise<RespValue> {
    return (await this.read(1))[0];
  }
  close(): void {
    this.sock.destroy();
  }
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

const errMsg = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  return '(no error)';
};

describe('proxy endpoint over three shards', () => {
  let port = 0;
  let ep: Endpoint;
  let r: Redis;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-proxy-'));
    for (let uid = 1; uid <= N; uid++) await startShard(uid);
    for (let uid = 1; uid <= N; uid++) {
      const c = new Redis({ path: sockPath(uid), password: SECRET, maxRetriesPerRequest: 1 });
      c.on('error', () => {});
      shardClients.push(c);
    }
    const started = await startEndpoint();
    ep = started.ep;
    port = started.cfg.port;
    r = client(port);
  });

  after(async () => {
    for (const c of [...clients, ...shardClients]) c.disconnect();
    for (const e of endpoints) await e.close();
    for (let uid = 1; uid <= N; uid++) await killShard(uid);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('routes each key to the shard owning its slot', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `route:${i}`);
    await Promise.all(keys.map((k) => r.set(k, `v-${k}`)));
    const counts = [0, 0, 0];
    for (const k of keys) {
      const i = shardOf(k);
      counts[i]++;
      assert.equal(await shardClient(i).get(k), `v-${k}`, k);
      for (let j = 0; j < N; j++) if (j !== i) assert.equal(await shardClient(j).exists(k), 0);
    }
    assert.ok(
      counts.every((c) => c > 50),
      `spread ${counts}`,
    );
    assert.equal(
      await r.dbsize(),
      (await Promise.all(shardClients.map((c) => c.dbsize()))).reduce((a, b) => a + b),
    );
  });

  it('serves single-key commands of every data type', async () => {
    assert.equal(await r.set('t:str', 'abc'), 'OK');
    assert.equal(await r.append('t:str', 'def'), 6);
    assert.equal(await r.getrange('t:str', 1, 3), 'bcd');
    assert.equal(await r.incrbyfloat('t:f', 1.5), '1.5');
    assert.equal(await r.rpush('t:list', 'a', 'b', 'c'), 3);
    assert.deepEqual(await r.lrange('t:list', 0, -1), ['a', 'b', 'c']);
    assert.equal(await r.hset('t:hash', 'f1', 'v1', 'f2', 'v2'), 2);
    assert.deepEqual(await r.hgetall('t:hash'), { f1: 'v1', f2: 'v2' });
    assert.equal(await r.sadd('t:set', 'x', 'y'), 2);
    assert.deepEqual((await r.smembers('t:set')).sort(), ['x', 'y']);
    assert.equal(await r.zadd('t:z', 1, 'one', 2, 'two'), 2);
    assert.deepEqual(await r.zrange('t:z', 0, -1, 'WITHSCORES'), ['one', '1', 'two', '2']);
    const id = await r.xadd('t:stream', '*', 'a', '1');
    assert.match(String(id), /^\d+-\d+$/);
    assert.equal(await r.xlen('t:stream'), 1);
    assert.equal(await r.pfadd('t:hll', 'a', 'b', 'c'), 1);
    assert.equal(await r.pfcount('t:hll'), 3);
    assert.equal(await r.setbit('t:bits', 7, 1), 0);
    assert.equal(await r.bitcount('t:bits'), 1);
    assert.equal(await r.geoadd('t:geo', 13.361389, 38.115556, 'Palermo'), 1);
    assert.equal(await r.type('t:z'), 'zset');
    assert.equal(await r.expire('t:str', 100), 1);
    assert.ok((await r.ttl('t:str')) > 90);
    assert.equal(await r.call('OBJECT', 'ENCODING', 't:hash'), 'listpack');
    assert.ok(Number(await r.call('MEMORY', 'USAGE', 't:hash')) > 0);
  });

  it('splits MGET/MSET/DEL/EXISTS/UNLINK/TOUCH across shards and merges in order', async () => {
    const ks = [keyOn(0, 'm:'), keyOn(1, 'm:'), keyOn(2, 'm:'), keyOn(0, 'mm:'), keyOn(2, 'mm:')];
    assert.equal(await r.mset(ks[0], 'a', ks[1], 'b', ks[2], 'c', ks[3], 'd'), 'OK');
    assert.deepEqual(await r.mget(ks[3], 'nope', ks[2], ks[1], ks[0], ks[4]), ['d', null, 'c', 'b', 'a', null]);
    assert.equal(await r.exists(ks[0], ks[1], ks[1], ks[4]), 3);
    assert.equal(await r.touch(ks[0], ks[1], ks[2]), 3);
    assert.equal(await r.unlink(ks[3]), 1);
    assert.equal(await r.del(ks[0], ks[1], ks[2], ks[3], ks[4]), 3);
    assert.equal(await shardClient(1).exists(ks[1]), 0);
    assert.equal(await errMsg(r.call('MSET', ks[0], 'a', ks[1])), "ERR wrong number of arguments for 'mset' command");
  });

  it('answers CROSSSLOT for other multi-key commands in different slots, and serves them within one slot', async () => {
    const cross = "CROSSSLOT Keys in request don't hash to the same slot";
    assert.equal(await errMsg(r.sunion(keyOn(0, 'u:'), keyOn(1, 'u:'))), cross);
    assert.equal(await errMsg(r.rename(keyOn(0, 'u:'), keyOn(2, 'u:'))), cross);
    assert.equal(await errMsg(r.msetnx(keyOn(0, 'u:'), '1', keyOn(2, 'u:'), '2')), cross);
    assert.equal(await errMsg(r.blpop(keyOn(0, 'u:'), keyOn(1, 'u:'), 1)), cross);
    await r.sadd('{u}a', '1', '2');
    await r.sadd('{u}b', '2', '3');
    assert.deepEqual((await r.sunion('{u}a', '{u}b')).sort(), ['1', '2', '3']);
    assert.equal(await r.rename('{u}a', '{u}c'), 'OK');
    assert.equal(await r.zunionstore('{u}z', 2, '{u}b', '{u}c'), 3);
  });

  it('answers keyless and fan-out commands like one server', async () => {
    assert.equal(await r.ping(), 'PONG');
    assert.equal(await r.ping('hi'), 'hi');
    assert.equal(await r.echo('hello'), 'hello');
    assert.equal(await r.flushdb(), 'OK');
    for (const c of shardClients) assert.equal(await c.dbsize(), 0);
    const keys = Array.from({ length: 120 }, (_, i) => `fan:${i}`);
    await r.mset(...keys.flatMap((k) => [k, '1']));
    await r.lpush('fan:list', 'x');
    assert.equal(await r.dbsize(), 121);
    assert.deepEqual((await r.keys('fan:*')).sort(), [...keys, 'fan:list'].sort());
    assert.ok((await r.randomkey())!.startsWith('fan:'));
    const info = await r.info('keyspace');
    assert.match(info, /db0:keys=121,expires=0/);
    assert.match(await r.info(), /redis_version:7/);
    const [sec] = await r.time();
    assert.ok(Math.abs(Number(sec) - Date.now() / 1000) < 5);
    // SCAN walks every shard; every key exactly once, options passed through.
    const seen: string[] = [];
    let cursor = '0';
    let calls = 0;
    do {
      const [next, batch] = await r.scan(cursor, 'MATCH', 'fan:*', 'COUNT', 7);
      seen.push(...batch);
      cursor = next;
      calls++;
    } while (cursor !== '0');
    assert.ok(calls > 3);
    assert.deepEqual(seen.sort(), [...keys, 'fan:list'].sort());
    let typed: string[] = [];
    cursor = '0';
    do {
      const [next, batch] = (await r.call('SCAN', cursor, 'TYPE', 'list')) as [string, string[]];
      typed = typed.concat(batch);
      cursor = next;
    } while (cursor !== '0');
    assert.deepEqual(typed, ['fan:list']);
    assert.equal(await errMsg(r.scan('abc')), 'ERR invalid cursor');
    // Scripts are loaded everywhere so EVALSHA works on every shard.
    const sha = (await r.script('LOAD', "return redis.call('GET', KEYS[1])")) as string;
    assert.deepEqual(await r.script('EXISTS', sha, 'f'.repeat(40)), [1, 0]);
    for (let i = 0; i < N; i++) assert.equal(await r.evalsha(sha, 1, keys[i * 10]), '1');
    for (const k of keys.slice(0, 30)) assert.equal(await r.evalsha(sha, 1, k), '1');
    assert.ok(Number(await r.call('COMMAND', 'COUNT')) > 200);
    assert.equal(await r.select(0), 'OK');
    assert.equal(await errMsg(r.select(1)), 'ERR DB index is out of range');
    await r.script('FLUSH');
    assert.deepEqual(await r.script('EXISTS', sha), [0]);
  });

  it('gives redis its own errors for unknown commands and wrong arity, and refuses admin commands', async () => {
    const direct = shardClient(0);
    for (const args of [['NOSUCH', 'a', 'b'], ['GET'], ['SET', 'k'], ['OBJECT', 'NOPE', 'x'], ['XINFO']]) {
      const want = await errMsg(direct.call(args[0], ...args.slice(1)));
      assert.equal(await errMsg(r.call(args[0], ...args.slice(1))), want, args.join(' '));
    }
    for (const args of [
      ['CONFIG', 'GET', 'maxmemory'],
      ['SHUTDOWN'],
      ['DEBUG', 'SLEEP', '0'],
      ['MONITOR'],
      ['REPLICAOF', 'NO', 'ONE'],
      ['ACL', 'LIST'],
      ['BGSAVE'],
      ['FLUSHALL', 'x', 'y'],
    ]) {
      assert.match(await errMsg(r.call(args[0], ...args.slice(1))), /^(NOPERM|ERR)/, args.join(' '));
    }
    assert.equal(await errMsg(r.call('CLUSTER', 'INFO')), 'ERR This instance has cluster support disabled');
    assert.equal(await r.ping(), 'PONG');
  });

  it('emulates CLIENT SETNAME/GETNAME/ID/INFO and HELLO locally', async () => {
    const c = client(port);
    assert.equal(await c.client('GETNAME'), null);
    assert.equal(await c.client('SETNAME', 'worker-1'), 'OK');
    assert.equal(await c.client('GETNAME'), 'worker-1');
    assert.equal(await errMsg(c.client('SETNAME', 'bad name')), 'ERR Client names cannot contain spaces, newlines or special characters.');
    const id = Number(await c.client('ID'));
    const info = String(await c.client('INFO'));
    assert.match(info, new RegExp(`^id=${id} .*name=worker-1 .*cmd=client\\|info .*resp=2\\n$`));
    assert.match(String(await c.client('LIST')), /name=worker-1/);
    const hello = (await c.call('HELLO', '2')) as string[];
    assert.deepEqual(hello.slice(0, 2), ['server', 'redis']);
    assert.equal(hello[hello.indexOf('proto') + 1], 2);
    assert.equal(hello[hello.indexOf('id') + 1], id);
    assert.equal(await errMsg(c.call('HELLO', '4')), 'NOPROTO unsupported protocol version');
  });

  it('speaks RESP3 to a HELLO 3 client: maps, nulls, pushes', async () => {
    const c = new Raw(port);
    await r.hset('r3:h', 'a', '1', 'b', '2');
    await r.zadd('r3:z', 1.5, 'm');
    c.send(
      ['HELLO', '3', 'SETNAME', 'r3'],
      ['HGETALL', 'r3:h'],
      ['GET', 'r3:none'],
      ['ZSCORE', 'r3:z', 'm'],
      ['CLIENT', 'GETNAME'],
      ['MGET', keyOn(0, 'r3:'), keyOn(1, 'r3:')],
    );
    const raws = await c.rawReplies(6);
    assert.equal(raws[0].type, '%'.charCodeAt(0));
    const hello = decodeReply(raws[0].raw, { strings: true }) as Map<string, RespValue>;
    assert.equal(hello.get('proto'), 3);
    assert.equal(hello.get('server'), 'redis');
    assert.equal(raws[1].type, '%'.charCodeAt(0), 'HGETALL is a RESP3 map');
    assert.deepEqual(
      decodeReply(raws[1].raw, { strings: true }),
      new Map([
        ['a', '1'],
        ['b', '2'],
      ]),
    );
    assert.equal(raws[2].rawBuffer().toString(), '_\r\n');
    assert.equal(raws[3].rawBuffer().toString(), ',1.5\r\n');
    assert.equal(decodeReply(raws[4].raw, { strings: true }), 'r3');
    assert.equal(raws[5].rawBuffer().toString(), '*2\r\n_\r\n_\r\n');
    // Pub/sub pushes arrive as RESP3 pushes, and normal commands still work.
    c.send(['SUBSCRIBE', 'r3chan']);
    const [sub] = await c.rawReplies(1);
    assert.equal(sub.rawBuffer().toString(), '>3\r\n$9\r\nsubscribe\r\n$6\r\nr3chan\r\n:1\r\n');
    assert.equal(await r.publish('r3chan', 'hey'), 1);
    const [msg] = await c.rawReplies(1);
    assert.equal(msg.rawBuffer().toString(), '>3\r\n$7\r\nmessage\r\n$6\r\nr3chan\r\n$3\r\nhey\r\n');
    c.send(['GET', 'r3:none']);
    assert.equal((await c.rawReplies(1))[0].rawBuffer().toString(), '_\r\n');
    // A push is not held back behind a pending (blocked) reply.
    c.send(['BLPOP', 'r3:list', '0']);
    await sleep(100);
    await r.publish('r3chan', 'during');
    const [push] = await c.rawReplies(1);
    assert.equal(push.rawBuffer().toString(), '>3\r\n$7\r\nmessage\r\n$6\r\nr3chan\r\n$6\r\nduring\r\n');
    await r.rpush('r3:list', 'x');
    assert.deepEqual(await c.read(1), [['r3:list', 'x']]);
    c.close();
  });

  it('runs MULTI/EXEC and WATCH atomically on one shard, CROSSSLOT otherwise', async () => {
    const [a, b] = ['{tx}a', '{tx}b'];
    const res = await r.multi().set(a, '1').incr(a).get(a).set(b, 'x').exec();
    assert.deepEqual(res, [
      [null, 'OK'],
      [null, 2],
      [null, '2'],
      [null, 'OK'],
    ]);
    // A key in another slot inside the transaction: CROSSSLOT at queue time, EXECABORT at EXEC.
    const raw = new Raw(port);
    raw.send(['MULTI'], ['SET', a, '1'], ['SET', keyOn(shardOf(a) === 0 ? 1 : 0, 'txo:'), '2'], ['EXEC'], ['GET', a]);
    const got = await raw.read(5);
    assert.equal(got[0], 'OK');
    assert.equal(got[1], 'QUEUED');
    assert.equal((got[2] as Error).message, "CROSSSLOT Keys in request don't hash to the same slot");
    assert.equal((got[3] as Error).message, 'EXECABORT Transaction discarded because of previous errors.');
    assert.equal(got[4], '2');
    raw.send(['EXEC'], ['DISCARD'], ['MULTI'], ['MULTI'], ['DISCARD']);
    const errs = await raw.read(5);
    assert.equal((errs[0] as Error).message, 'ERR EXEC without MULTI');
    assert.equal((errs[1] as Error).message, 'ERR DISCARD without MULTI');
    assert.equal((errs[3] as Error).message, 'ERR MULTI calls can not be nested');
    assert.equal(errs[4], 'OK');
    raw.close();
    // WATCH: a write by another client makes EXEC fail; no write, EXEC runs.
    const w = client(port);
    await w.watch(a);
    assert.equal(await w.get(a), '2');
    await r.set(a, 'changed');
    assert.equal(await w.multi().set(a, 'mine').exec(), null);
    assert.equal(await r.get(a), 'changed');
    await w.watch(a, b);
    const val = await w.get(a);
    assert.deepEqual(await w.multi().set(a, `${val}+`).exec(), [[null, 'OK']]);
    assert.equal(await r.get(a), 'changed+');
    // Ordinary commands on other shards still flow while a WATCH is held.
    await w.watch(a);
    assert.equal(await w.set(keyOn(0, 'wx:'), '1'), 'OK');
    assert.equal(await w.set(keyOn(2, 'wx:'), '1'), 'OK');
    assert.equal(await w.unwatch(), 'OK');
    assert.equal(await w.set(a, 'x'), 'OK');
  });

  it('runs EVAL on the shard of its keys; no keys → any shard; cross-slot keys → CROSSSLOT', async () => {
    const script = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return redis.call('MGET', KEYS[1], KEYS[2])";
    assert.deepEqual(await r.eval(script, 2, '{ev}1', '{ev}2', 'v'), ['v', 'v']);
    assert.equal(await shardClient(shardOf('{ev}1')).get('{ev}2'), 'v');
    assert.equal(
      await errMsg(r.eval(script, 2, keyOn(0, 'ev:'), keyOn(1, 'ev:'), 'v')),
      "CROSSSLOT Keys in request don't hash to the same slot",
    );
    assert.equal(await r.eval('return 42', 0), 42);
    await r.call(
      'FUNCTION',
      'LOAD',
      'REPLACE',
      "#!lua name=tlib\nredis.register_function('tget', function(keys) return redis.call('GET', keys[1]) end)",
    );
    for (let i = 0; i < N; i++) {
      const k = keyOn(i, 'fc:');
      await r.set(k, `f${i}`);
      assert.equal(await r.call('FCALL', 'tget', 1, k), `f${i}`);
    }
  });

  it('carries pub/sub across shards: channels, patterns, counts, shard channels', async () => {
    const chans = [keyOn(0, 'chan:'), keyOn(1, 'chan:'), keyOn(2, 'chan:')];
    const sub = client(port);
    const got: string[] = [];
    sub.on('message', (ch: string, m: string) => got.push(`${ch}=${m}`));
    sub.on('pmessage', (p: string, ch: string, m: string) => got.push(`${p}:${ch}=${m}`));
    assert.equal(await sub.subscribe(...chans), 3);
    assert.equal(await sub.psubscribe('chan:*'), 4);
    const sub2 = client(port);
    await sub2.subscribe(chans[1]);
    assert.equal(await r.publish(chans[0], 'a'), 2, 'one channel and one pattern subscriber');
    assert.equal(await r.publish(chans[1], 'b'), 3);
    assert.equal(await r.publish(chans[2], 'c'), 2);
    assert.equal(await r.publish('other', 'x'), 0);
    assert.deepEqual(await r.call('PUBSUB', 'NUMSUB', chans[1], 'other'), [chans[1], 2, 'other', 0]);
    await sleep(50);
    assert.deepEqual(
      got.sort(),
      [`${chans[0]}=a`, `${chans[1]}=b`, `${chans[2]}=c`, `chan:*:${chans[0]}=a`, `chan:*:${chans[1]}=b`, `chan:*:${chans[2]}=c`].sort(),
    );
    assert.equal(await sub.unsubscribe(chans[0]), 3);
    got.length = 0;
    await r.publish(chans[0], 'after');
    await sleep(50);
    assert.deepEqual(got, [`chan:*:${chans[0]}=after`]);
    // RESP2 subscribed context, PING in it, and leaving it.
    const raw = new Raw(port);
    raw.send(['SUBSCRIBE', chans[2], chans[0]], ['PING'], ['PING', 'x'], ['GET', 'k']);
    const replies = await raw.read(5);
    assert.deepEqual(replies.slice(0, 4), [
      ['subscribe', chans[2], 1],
      ['subscribe', chans[0], 2],
      ['pong', ''],
      ['pong', 'x'],
    ]);
    assert.equal(
      (replies[4] as Error).message,
      "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
    );
    raw.send(['UNSUBSCRIBE'], ['PUNSUBSCRIBE'], ['PING']);
    assert.deepEqual(await raw.read(4), [['unsubscribe', chans[2], 1], ['unsubscribe', chans[0], 0], ['punsubscribe', null, 0], 'PONG']);
    raw.send(['SSUBSCRIBE', '{sc}1', '{sc}2'], ['SSUBSCRIBE', keyOn(0, 'sc:'), keyOn(1, 'sc:')]);
    const ss = await raw.read(3);
    assert.deepEqual(ss.slice(0, 2), [
      ['ssubscribe', '{sc}1', 1],
      ['ssubscribe', '{sc}2', 2],
    ]);
    assert.equal((ss[2] as Error).message, "CROSSSLOT Keys in request don't hash to the same slot");
    assert.equal(await r.call('SPUBLISH', '{sc}2', 'shard-msg'), 1);
    assert.deepEqual(await raw.read(1), [['smessage', '{sc}2', 'shard-msg']]);
    raw.send(['RESET'], ['GET', 'nope']);
    assert.deepEqual(await raw.read(2), ['RESET', null]);
    raw.close();
  });

  it('blocks a BLPOP client on its own connection while others keep working', async () => {
    const blocker = client(port);
    const key = keyOn(1, 'blk:');
    const t0 = Date.now();
    const popped = blocker.blpop(key, 0);
    await sleep(100);
    // Other clients, including ones on the same shard, are not held up.
    for (let i = 0; i < 50; i++) assert.equal(await r.set(keyOn(1, `nb${i}:`), 'x'), 'OK');
    assert.ok(Date.now() - t0 < 2000);
    const linksBlocked = ep.stats().links;
    assert.equal(await r.rpush(key, 'v1'), 1);
    assert.deepEqual(await popped, [key, 'v1']);
    // Its later blocking calls reuse the same dedicated connection.
    assert.equal(await blocker.blpop(key, 0.05), null);
    await r.rpush(key, 'v2');
    assert.deepEqual(await blocker.brpop(key, 1), [key, 'v2']);
    assert.equal(ep.stats().links, linksBlocked);
    await r.xadd('blk:stream', '1-1', 'f', 'v');
    assert.deepEqual(await blocker.xread('BLOCK', 100, 'STREAMS', 'blk:stream', '0'), [['blk:stream', [['1-1', ['f', 'v']]]]]);
    // A pipelined command after the blocking one runs after it, as on redis.
    const p = blocker.pipeline().blpop('blk:order', 1).rpush('blk:order', 'late').exec();
    await sleep(50);
    await r.rpush('blk:order', 'early');
    assert.deepEqual(await p, [
      [null, ['blk:order', 'early']],
      [null, 1],
    ]);
    blocker.disconnect();
    await sleep(100);
    assert.equal(ep.stats().links, linksBlocked - 1, 'the dedicated link goes with its client');
  });

  it('keeps thousands of pipelined commands in order across shards (also with auto-pipelining)', async () => {
    const raw = new Raw(port);
    const n = 5000;
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) parts.push(encodeCommand(['SET', `pl:${i}`, String(i)]), encodeCommand(['GET', `pl:${i}`]));
    raw.sock.write(Buffer.concat(parts));
    const replies = await raw.read(2 * n);
    for (let i = 0; i < n; i++) {
      assert.equal(replies[2 * i], 'OK');
      assert.equal(replies[2 * i + 1], String(i));
    }
    raw.close();
    const auto = client(port, { enableAutoPipelining: true });
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 3000; i++) ops.push(auto.incr(`ap:${i % 37}`), auto.get(`pl:${i}`));
    const out = await Promise.all(ops);
    const counters = new Map<number, number>();
    for (let i = 0; i < 3000; i++) {
      const c = (counters.get(i % 37) ?? 0) + 1;
      counters.set(i % 37, c);
      assert.equal(out[2 * i], c);
      assert.equal(out[2 * i + 1], String(i));
    }
  });

  it('serves redis-cli', async () => {
    const cli = (...a: string[]) => run('redis-cli', ['-h', HOST, '-p', String(port), ...a]);
    assert.equal((await cli('SET', 'cli:k', 'hello')).out.trim(), 'OK');
    assert.equal((await cli('GET', 'cli:k')).out.trim(), 'hello');
    assert.equal((await cli('MGET', keyOn(0, 'cli:'), 'cli:k')).out, '\nhello\n');
    assert.equal((await cli('DBSIZE')).out.trim(), String(await r.dbsize()));
    assert.match((await cli('INFO', 'keyspace')).out, /db0:keys=\d+/);
    assert.match((await cli('NOSUCHCMD')).out, /ERR unknown command 'NOSUCHCMD'/);
  });

  // redis-benchmark through the endpoint (180,000 commands): test/integration/proxy-benchmark.test.ts.

  it('AUTH: NOAUTH before, WRONGPASS on a bad password, HELLO AUTH, and the no-password error', async () => {
    const { cfg } = await startEndpoint({ password: 'pw-1' });
    const raw = new Raw(cfg.port);
    raw.send(
      ['GET', 'x'],
      ['AUTH', 'bad'],
      ['AUTH', 'nobody', 'pw-1'],
      ['PING'],
      ['AUTH', 'pw-1'],
      ['PING'],
      ['AUTH', 'default', 'pw-1'],
      ['AUTH', 'a', 'b', 'c'],
    );
    const got = await raw.read(8);
    assert.equal((got[0] as Error).message, 'NOAUTH Authentication required.');
    assert.equal((got[1] as Error).message, 'WRONGPASS invalid username-password pair or user is disabled.');
    assert.equal((got[2] as Error).message, 'WRONGPASS invalid username-password pair or user is disabled.');
    assert.equal((got[3] as Error).message, 'NOAUTH Authentication required.');
    assert.deepEqual(got.slice(4, 7), ['OK', 'PONG', 'OK']);
    assert.equal((got[7] as Error).message, 'ERR syntax error');
    raw.close();
    const h = new Raw(cfg.port);
    h.send(
      ['HELLO', '3'],
      ['HELLO', '3', 'AUTH', 'default', 'nope'],
      ['HELLO', '3', 'AUTH', 'default', 'pw-1', 'SETNAME', 'h3'],
      ['CLIENT', 'GETNAME'],
    );
    const hs = await h.read(4);
    assert.match((hs[0] as Error).message, /^NOAUTH HELLO must be called with the client already authenticated/);
    assert.equal((hs[1] as Error).message, 'WRONGPASS invalid username-password pair or user is disabled.');
    assert.equal((hs[2] as Map<string, RespValue>).get('proto'), 3);
    assert.equal(hs[3], 'h3');
    h.close();
    // Unauthenticated clients get redis's small limits on request size.
    const big = new Raw(cfg.port);
    big.send(encodeCommand(['SET', 'k', 'x'.repeat(20000)]));
    assert.equal(((await big.one()) as Error).message, 'ERR Protocol error: unauthenticated bulk length');
    await big.closedP;
    const ok = client(cfg.port, { password: 'pw-1' });
    assert.equal(await ok.set('auth:k', 'v'), 'OK');
    const bad = client(cfg.port, { password: 'wrong', retryStrategy: () => null });
    assert.match(await errMsg(bad.get('auth:k')), /WRONGPASS|Connection is closed|Stream isn't writeable/);
    // Without a password configured, `AUTH x` is redis's configuration error.
    assert.equal(
      await errMsg(r.call('AUTH', 'x')),
      'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
    );
    assert.equal(await r.call('AUTH', 'default', 'anything'), 'OK');
  });

  it('answers malformed input with redis error text, closes only that client, and caps the query buffer', async () => {
    const cases: [string, string][] = [
      ['*1\r\n$x\r\n', 'ERR Protocol error: invalid bulk length'],
      ['*abc\r\n', 'ERR Protocol error: invalid multibulk length'],
      ['*1\r\n+foo\r\n', "ERR Protocol error: expected '$', got '+'"],
      ['SET "a b\r\n', 'ERR Protocol error: unbalanced quotes in request'],
    ];
    for (const [bytes, want] of cases) {
      const c = new Raw(port);
      c.send(encodeCommand(['PING']), bytes);
      const replies = await c.read(2);
      assert.equal(replies[0], 'PONG');
      assert.equal((replies[1] as Error).message, want);
      await c.closedP;
    }
    // Garbage without a newline: "too big inline request" after 64 KiB.
    const g = new Raw(port);
    g.send('x'.repeat(70 * 1024));
    assert.equal(((await g.one()) as Error).message, 'ERR Protocol error: too big inline request');
    await g.closedP;
    // A bulk beyond the 64 MB query buffer limit: the client is dropped.
    const huge = new Raw(port);
    huge.send('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$200000000\r\n');
    const chunk = Buffer.alloc(1 << 20, 120);
    for (let i = 0; i < 80 && !huge.closed; i++) {
      if (huge.sock.write(chunk)) continue;
      await new Promise<void>((res) => {
        const done = () => {
          huge.sock.off('drain', done).off('close', done);
          res();
        };
        huge.sock.on('drain', done).on('close', done);
      });
    }
    await Promise.race([huge.closedP, sleep(5000)]);
    assert.ok(huge.closed, 'client over the query buffer limit is closed');
    // An HTTP request on the RESP port is dropped silently, like redis.
    const http = new Raw(port);
    http.send('POST / HTTP/1.1\r\nHost: x\r\n\r\n');
    await http.closedP;
    assert.equal(await r.ping(), 'PONG');
    assert.equal(await r.set('still', 'fine'), 'OK');
  });

  it('survives a shard restart: in-flight commands fail, then service resumes', async () => {
    const victim = 2; // uid 2 owns the middle range
    const k = keyOn(1, 'kill:');
    const other = keyOn(0, 'kill:');
    await r.set(k, 'before');
    // A slow script keeps a command in flight on the shard while it dies.
    const c = client(port);
    const inflight = errMsg(c.eval('local i = 0 while i < 300000000 do i = i + 1 end return 1', 1, k));
    await sleep(150);
    await killShard(victim);
    assert.equal(await inflight, 'ERR shard connection lost');
    assert.equal(await r.set(other, 'ok'), 'OK', 'other shards unaffected');
    // A command for the dead shard is held (not failed) until it is back.
    const held = r.get(k);
    await sleep(300);
    await startShard(victim);
    assert.ok([null, 'before'].includes(await held), 'the held command is served once the shard is back');
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      try {
        ok = (await r.set(k, 'after')) === 'OK';
      } catch {
        await sleep(100);
      }
    }
    assert.ok(ok, 'service resumed');
    for (let i = 0; i < 100; i++) assert.equal(await r.incr(k + ':n'), i + 1);
    assert.equal(await c.get(k), 'after');
    shardClients[victim - 1].disconnect();
    shardClients[victim - 1] = new Redis({ path: sockPath(victim), password: SECRET });
    shardClients[victim - 1].on('error', () => {});
  });

  it('drops a shard link that sends garbage without crashing, and reconnects', async () => {
    // A fake shard answering nonsense to the first command, then a real one.
    let first = true;
    const fake = async (uid: number): Promise<Duplex> => {
      if (!first) return connector(uid);
      first = false;
      const [a, b] = await pair();
      let n = 0;
      // A sane answer to the link's HELLO, then nonsense.
      b.on('data', () => b.write(n++ === 0 ? '+OK\r\n' : '?garbage\r\n'));
      return a;
    };
    const fport = await freePort();
    const e = new Endpoint({ bdbUid: 9, host: HOST, port: fport, shards: SHARDS, linkGeneration: 1 }, fake);
    endpoints.push(e);
    await e.listen();
    const c = client(fport);
    const k = keyOn(0, 'garb:');
    assert.equal(await errMsg(c.get(k)), 'ERR shard connection lost');
    let v: string | null = 'x';
    for (let i = 0; i < 20; i++) {
      try {
        v = await c.get(k);
        break;
      } catch {
        await sleep(50);
      }
    }
    assert.equal(v, null);
  });

  it('holds commands for an unreachable master, then answers CLUSTERDOWN; other shards are unaffected', async () => {
    const down = async (uid: number): Promise<Duplex> => {
      if (uid === 1) throw new Error('connect ECONNREFUSED');
      return connector(uid);
    };
    const fport = await freePort();
    const e = new Endpoint({ bdbUid: 9, host: HOST, port: fport, shards: SHARDS, linkGeneration: 1, holdMs: 400 }, down);
    endpoints.push(e);
    await e.listen();
    // No ready check: its INFO would reach the held shard too.
    const c = client(fport, { enableReadyCheck: false });
    const other = client(fport, { enableReadyCheck: false });
    const t0 = Date.now();
    const held = errMsg(c.get(keyOn(0, 'hold:')));
    assert.equal(await other.set(keyOn(1, 'hold:'), 'x'), 'OK', 'a live shard answers while another is held');
    assert.ok(Date.now() - t0 < 300);
    assert.equal(await held, 'CLUSTERDOWN The master shard of this slot is unreachable');
    assert.ok(Date.now() - t0 >= 350, `held ${Date.now() - t0} ms`);
    // Past the hold, commands for it fail at once.
    const t1 = Date.now();
    assert.match(await errMsg(c.get(keyOn(0, 'hold:'))), /^CLUSTERDOWN/);
    assert.ok(Date.now() - t1 < 300);
  });

  it('failover: held commands move, in order, to the shard that takes over the slots; a replica is not written until it is master', async () => {
    // Shard 1 is dead; "shard 4" is shard 1's replica being promoted: its
    // first link answers HELLO as a replica, the next as master (shard 3's
    // redis stands in for it).
    let replicaHellos = 0;
    const conn = async (uid: number): Promise<Duplex> => {
      if (uid === 1) throw new Error('connect ECONNREFUSED');
      if (uid === 4 && replicaHellos++ === 0) {
        const [a, b] = await pair();
        b.on('data', () => b.write('*4\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n'));
        return a;
      }
      return connector(uid === 4 ? 3 : uid);
    };
    const fport = await freePort();
    const cfg: EndpointConfig = { bdbUid: 9, host: HOST, port: fport, shards: SHARDS, linkGeneration: 1, holdMs: 5000 };
    const e = new Endpoint(cfg, conn);
    endpoints.push(e);
    await e.listen();
    const c = client(fport);
    const k = keyOn(0, 'fo:');
    await shardClient(2).del(k);
    const writes = [c.set(k, '1'), c.append(k, '2'), c.append(k, '3')];
    await sleep(200);
    e.update({ ...cfg, shards: [{ shardUid: 4, slots: [RANGES[0]] }, SHARDS[1], SHARDS[2]] });
    assert.deepEqual(await Promise.all(writes), ['OK', 2, 3]);
    assert.equal(await c.get(k), '123');
    assert.equal(await shardClient(2).get(k), '123', 'written to the new master');
    assert.ok(replicaHellos >= 2, 'the replica was asked again once it was master');
    await shardClient(2).del(k);
  });

  it('failover from a shard that never answers (SIGSTOP): its command in flight fails after the drain, later ones go to the new master', async () => {
    // "Shard 5" answers HELLO, then nothing: a stopped process on a live connection.
    const conn = async (uid: number): Promise<Duplex> => {
      if (uid !== 5) return connector(uid);
      const [a, b] = await pair();
      let first = true;
      b.on('data', () => {
        if (first) b.write('*2\r\n$4\r\nrole\r\n$6\r\nmaster\r\n');
        first = false;
      });
      return a;
    };
    const fport = await freePort();
    const cfg: EndpointConfig = {
      bdbUid: 9,
      host: HOST,
      port: fport,
      shards: [{ shardUid: 5, slots: [RANGES[0]] }, SHARDS[1], SHARDS[2]],
      linkGeneration: 1,
    };
    const e = new Endpoint(cfg, conn);
    endpoints.push(e);
    await e.listen();
    const c = client(fport, { enableReadyCheck: false });
    const c2 = client(fport, { enableReadyCheck: false });
    const k = keyOn(0, 'stopped:');
    const stuck = errMsg(c.set(k, 'lost?'));
    await sleep(200);
    e.update({ ...cfg, shards: SHARDS }); // shard 1 takes the range over
    const t0 = Date.now();
    assert.equal(await c2.set(k, 'new'), 'OK', 'a new command goes to the new master');
    assert.equal(await stuck, 'ERR shard connection lost');
    const waited = Date.now() - t0;
    // The drain is 2 s: not before it; the upper bound is loose, a loaded 2-core machine may be late.
    assert.ok(waited >= 1500 && waited < 10_000, `the unanswered command failed after the drain (${waited} ms)`);
    assert.equal(await shardClient(0).get(k), 'new');
  });

  it('planned switchover under load: writes paused on the old master and answered -READONLY after its demotion go to the new master; none fails', async () => {
    // Shards 6 and 7 replicate over TCP: 7 follows 6, then the roles are
    // switched twice as the shard operations do it (pause writes, let the
    // replica catch up, swap roles, unpause), once with the endpoint's new
    // map before the demotion and once after it.
    const [p6, p7] = [await freePort(), await freePort()];
    await startShard(6, ['--port', String(p6), '--bind', HOST, '--masterauth', SECRET, '--repl-diskless-sync-delay', '0']);
    await startShard(7, ['--port', String(p7), '--bind', HOST, '--masterauth', SECRET, '--replicaof', HOST, String(p6)]);
    const admin = (uid: number) => {
      const c = new Redis({ path: sockPath(uid), password: SECRET, maxRetriesPerRequest: 1 });
      c.on('error', () => {});
      shardClients.push(c);
      return c;
    };
    const a6 = admin(6);
    const a7 = admin(7);
    const offset = async (c: Redis, field: string) => Number(new RegExp(`${field}:(\\d+)`).exec(await c.info('replication'))?.[1] ?? -1);
    for (let i = 0; i < 200 && !/master_link_status:up/.test(await a7.info('replication')); i++) await sleep(20);
    const cfg: EndpointConfig = {
      bdbUid: 9,
      host: HOST,
      port: await freePort(),
      shards: [{ shardUid: 6, slots: [RANGES[0]] }, SHARDS[1], SHARDS[2]],
      linkGeneration: 1,
      holdMs: 8000,
    };
    const logged: string[] = [];
    const note = (o: object, m?: string) => logged.push(`${m} ${JSON.stringify(o)}`);
    const e = new Endpoint(cfg, connector, { info: () => {}, warn: note, error: note });
    endpoints.push(e);
    await e.listen();
    const tag = keyOn(0, 'switch:');
    const k = `{${tag}}n`;
    const t = `{${tag}}tx`;
    let stop = false;
    let acked = 0;
    let txAcked = 0;
    const errors: string[] = [];
    const loaders = Array.from({ length: 4 }, async () => {
      const c = client(cfg.port);
      while (!stop && errors.length < 100) {
        const p = c.pipeline();
        for (let i = 0; i < 20; i++) p.incr(k);
        const res = (await p.exec()) ?? [];
        for (const [err] of res)
          if (err) errors.push(err.message);
          else acked++;
        const tx = await c
          .multi()
          .incr(t)
          .get(k)
          .exec()
          .catch((err: Error) => [[err]]);
        if (tx?.[0]?.[0]) errors.push(String(tx[0][0]));
        else txAcked++;
      }
    });
    const switchTo = async (from: Redis, to: Redis, toPort: number, toUid: number, mapFirst: boolean) => {
      await from.call('CLIENT', 'PAUSE', '5000', 'WRITE');
      await sleep(100); // writes pile up, paused on the old master
      const goal = await offset(from, 'master_repl_offset');
      for (let i = 0; i < 200 && (await offset(to, 'slave_repl_offset')) < goal; i++) await sleep(5);
      await to.call('REPLICAOF', 'NO', 'ONE');
      const shards = [{ shardUid: toUid, slots: [RANGES[0]] }, SHARDS[1], SHARDS[2]];
      if (mapFirst) e.update({ ...cfg, shards });
      await from.call('REPLICAOF', HOST, String(toPort));
      await sleep(50);
      await from.call('CLIENT', 'UNPAUSE');
      if (!mapFirst) {
        await sleep(300); // the old link meets -READONLY and waits for the map
        e.update({ ...cfg, shards });
      }
      await sleep(400);
    };
    try {
      await sleep(300);
      await switchTo(a6, a7, p7, 7, true);
      await switchTo(a7, a6, p6, 6, false);
    } finally {
      stop = true;
      await Promise.all(loaders);
      await killShard(7);
    }
    assert.deepEqual(errors.slice(0, 5), [], `${errors.length} commands failed; the endpoint logged ${logged.join('; ')}`);
    assert.ok(
      logged.some((l) => /READONLY/.test(l)),
      `the demotion was met under load: ${logged.join('; ')}`,
    );
    assert.ok(acked > 1000, `load ran: ${acked}`);
    assert.equal(Number(await a6.get(k)), acked, 'every acknowledged INCR applied once, on the current master');
    assert.equal(Number(await a6.get(t)), txAcked, 'every acknowledged MULTI/EXEC applied once');
    await a6.del(k, t);
    await killShard(6);
  });

  it('follows a new shard map: keys and subscriptions move to the new owner', async () => {
    const { ep: e, cfg } = await startEndpoint();
    const c = client(cfg.port);
    const sub = client(cfg.port);
    const ch = keyOn(0, 'mapch:');
    const got: string[] = [];
    sub.on('message', (_c: string, m: string) => got.push(m));
    await sub.subscribe(ch);
    assert.equal(await c.publish(ch, 'one'), 1);
    // Let 'one' arrive first: a push still in flight on the old owner's link when
    // the map changes may be lost (only relinks promise no loss).
    for (let i = 0; i < 100 && got.length === 0; i++) await sleep(10);
    // uid 1's range goes to uid 3.
    e.update({ ...cfg, shards: [SHARDS[1], { shardUid: 3, slots: [RANGES[0], RANGES[2]] }] });
    const k = keyOn(0, 'mapk:');
    assert.equal(await c.set(k, 'moved'), 'OK');
    assert.equal(await shardClient(2).get(k), 'moved');
    assert.equal(await shardClient(0).exists(k), 0);
    // The subscription is re-made on the new owner (a message published
    // before that is done may be lost: only relinks promise no loss).
    for (let i = 0; i < 100; i++) {
      const [, n] = (await shardClient(2).call('PUBSUB', 'NUMSUB', ch)) as [string, number];
      if (n === 1) break;
      await sleep(20);
    }
    assert.equal(await c.publish(ch, 'two'), 1);
    await sleep(50);
    assert.deepEqual(got, ['one', 'two']);
    assert.equal(await c.dbsize(), (await shardClient(1).dbsize()) + (await shardClient(2).dbsize()));
  });

  it('WAIT: checks its arguments like redis and answers over the written shards (no replicas here: 0)', async () => {
    assert.equal(await errMsg(r.call('WAIT', 'x', '0')), 'ERR value is not an integer or out of range');
    assert.equal(await errMsg(r.call('WAIT', '1', '-1')), 'ERR timeout is negative');
    assert.equal(await r.call('WAIT', '0', '0'), 0);
    const p = r.pipeline();
    p.set(keyOn(0, 'wait:'), 'a');
    p.set(keyOn(2, 'wait:'), 'b');
    p.call('WAIT', '1', '150');
    const t0 = Date.now();
    const res = (await p.exec())!.map(([e, v]) => e ?? v);
    assert.deepEqual(res, ['OK', 'OK', 0]);
    assert.ok(Date.now() - t0 >= 120, 'WAIT waited for its timeout');
    // The shards see no trace of it in db 0.
    assert.equal(await shardClient(0).exists('__tessera:wait'), 0);
    // Like the other fan-outs it cannot run inside one shard's transaction.
    await assert.rejects(r.multi().set(keyOn(1, 'wait:'), 'c').call('WAIT', '1', '5000').exec(), /EXECABORT/);
  });

  it('reports a port in use', async () => {
    await assert.rejects(
      new Endpoint({ bdbUid: 2, host: HOST, port, shards: SHARDS, linkGeneration: 1 }, connector).listen(),
      new RegExp(`port ${HOST}:${port} is already in use`),
    );
  });

  it('moves every link to a new generation under load: no error, no reconnect, no lost message', async () => {
    const { ep: e, cfg } = await startEndpoint();
    const p = cfg.port;
    let events = 0;
    const mk = (opts: Record<string, unknown> = {}) => {
      const c = client(p, opts);
      c.on('reconnecting', () => events++);
      c.on('close', () => events++);
      return c;
    };
    const workers = Array.from({ length: 8 }, () => mk());
    const subscriber = mk();
    const publisher = mk();
    const blocked = mk();
    const pusher = mk();
    await Promise.all([...workers, subscriber, publisher, blocked, pusher].map((c) => c.ping()));
    const seen = new Set<number>();
    subscriber.on('message', (_ch: string, m: string) => seen.add(Number(m)));
    subscriber.on('pmessage', () => {});
    await subscriber.subscribe('relink:tick');
    await subscriber.psubscribe('relink:p*');
    const blk = keyOn(2, 'relink:blk:');
    const blockedP = blocked.blpop(blk, 0);
    await sleep(50);

    let stop = false;
    const errors: string[] = [];
    let ops = 0;
    const loops = workers.map(async (w, i) => {
      const ctr = `relink:ctr:${i}`;
      let expect = 0;
      for (let j = 0; !stop; j++) {
        try {
          const k = `relink:${i}:${j % 50}`;
          assert.equal(await w.set(k, `${i}-${j}`), 'OK');
          assert.equal(await w.get(k), `${i}-${j}`);
          assert.equal(await w.incr(ctr), ++expect);
          ops += 3;
        } catch (err) {
          errors.push(String(err));
          return;
        }
      }
    });
    // A WATCH…EXEC loop: each transaction finishes on the connection it started on.
    const watcher = mk();
    let txDone = 0;
    const txLoop = (async () => {
      const k = '{relink}tx';
      try {
        while (!stop) {
          await watcher.watch(k);
          const v = Number((await watcher.get(k)) ?? 0);
          const res = await watcher
            .multi()
            .set(k, String(v + 1))
            .get(k)
            .exec();
          assert.deepEqual(res, [
            [null, 'OK'],
            [null, String(v + 1)],
          ]);
          txDone++;
        }
        assert.equal(Number(await watcher.get(k)), txDone);
      } catch (err) {
        errors.push(`tx: ${String(err)}`);
      }
    })();
    // A RESP3 client: its links (the RESP3 pool) move too.
    const r3 = new Raw(p);
    r3.send(['HELLO', '3']);
    await r3.read(1);
    let r3Done = 0;
    const r3Loop = (async () => {
      try {
        while (!stop) {
          r3.send(['INCR', 'relink:r3'], ['HGETALL', 'relink:none']);
          const [n, m] = await r3.rawReplies(2);
          assert.equal(n.rawBuffer().toString(), `:${++r3Done}\r\n`);
          assert.equal(m.rawBuffer().toString(), '%0\r\n');
        }
      } catch (err) {
        errors.push(`resp3: ${String(err)}`);
      }
    })();
    let seq = 0;
    const pubErrors: string[] = [];
    const pubLoop = (async () => {
      while (!stop) {
        try {
          await publisher.publish('relink:tick', String(seq++));
        } catch (err) {
          pubErrors.push(String(err));
        }
        await sleep(10);
      }
    })();

    // Every link of the steady state is up (on a loaded machine that takes more than a moment); checked exactly below.
    const wantSteady = 3 + new Set([shardOf('relink:r3'), shardOf('relink:none')]).size + 3 + 2;
    const steady = await waitFor('the steady-state links', () => (e.stats().links >= wantSteady ? e.stats().links : undefined), 10_000, 20);
    const before = [...connects.values()].reduce((a, b) => a + b, 0);
    for (let g = 2; g <= 11; g++) {
      await sleep(100);
      e.update({ ...cfg, linkGeneration: g });
    }
    await sleep(300);
    // Enough traffic to mean something, however slow the machine: a count, not a rate, is under test.
    await waitFor('enough traffic across the switches', () => txDone > 20 && r3Done > 20 && ops > 300, 20_000, 20);
    stop = true;
    await Promise.all(loops);
    await pubLoop;
    await txLoop;
    await r3Loop;
    assert.ok(txDone > 20, `transactions ${txDone}`);
    assert.ok(r3Done > 20, `RESP3 commands ${r3Done}`);
    r3.close();
    assert.equal(await pusher.rpush(blk, 'late'), 1);
    assert.deepEqual(await blockedP, [blk, 'late']);
    await sleep(300);
    assert.deepEqual(errors, []);
    assert.deepEqual(pubErrors, []);
    assert.equal(events, 0, 'no client reconnected');
    for (let s = 0; s < seq; s++) assert.ok(seen.has(s), `message ${s} of ${seq} lost`);
    assert.ok(ops > 300, `ops ${ops}`);
    const made = [...connects.values()].reduce((a, b) => a + b, 0) - before;
    assert.ok(made >= 10 * 3, `links re-established ${made} times`);
    // Steady state, all of the new generation: 3 RESP2 links, a RESP3 link
    // per shard the RESP3 client used (made on first use), 3 pub/sub links
    // (the pattern is on every shard) and the watcher's dedicated link; the
    // BLPOP's old dedicated link is gone.
    const resp3 = new Set([shardOf('relink:r3'), shardOf('relink:none')]).size;
    assert.equal(steady, 3 + resp3 + 3 + 2, 'before: the BLPOP and the watcher had a dedicated link each');
    assert.equal(e.stats().links, 3 + resp3 + 3 + 1);
    watcher.disconnect();
    await sleep(100);
    assert.equal(e.stats().links, 3 + resp3 + 3);
  });
});

/** Two connected in-memory duplex ends (a loopback TCP pair). */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const acceptP = new Promise<net.Socket>((r) => srv.once('connection', r));
  const a = net.connect(port, '127.0.0.1');
  const b = await acceptP;
  srv.close();
  return [a, b];
}
