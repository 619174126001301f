import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  COMMANDS,
  P_BLOCKING,
  P_CONNECTION,
  P_CONTAINER,
  P_FANOUT,
  P_KEYLESS,
  P_MULTIKEY_SPLIT,
  P_NUMKEYS,
  P_PUBSUB,
  P_SECURITY,
  P_SHARD_CHANNEL,
  P_TRANSACTION,
  CMD_WRITE,
  checkCommand,
  commandKeyIndexes,
  commandKeys,
  getCommand,
  redisFlags,
  resolveCommand,
  unknownCommandError,
  type CommandSpec,
} from '../../src/proxy/commands.js';
import { encodeCommand, encodeError } from '../../src/proxy/resp-encode.js';
import { ReplyError, decodeReply, type RespValue } from '../../src/proxy/resp-reply.js';
import { startScratchRedis, pipelineReplies, type ScratchRedis } from '../support/redis.js';

const argv = (s: string) => s.split(' ').map((x) => Buffer.from(x === '""' ? '' : x, 'latin1'));
const keysOf = (s: string) => {
  const a = argv(s);
  return commandKeys(a[0].toString().toLowerCase(), a)?.map((k) => k.toString('latin1'));
};
const has = (name: string, flag: number) => ((getCommand(name)?.proxy ?? 0) & flag) !== 0;

/** Valid invocations whose keys COMMAND GETKEYS can confirm. */
const KEY_CORPUS = [
  'GET k',
  'SET k v EX 10 GET',
  'MSET a 1 b 2 c 3',
  'MSETNX a 1 b 2',
  'MGET a b c',
  'DEL a b',
  'EXISTS a b a',
  'UNLINK a',
  'TOUCH a b',
  'EVAL s 2 k1 k2 a1',
  'EVAL s 0',
  'EVAL s 1x k1 a',
  'EVAL s 5 a b',
  'EVALSHA sha 1 k',
  'EVAL_RO s 1 k',
  'EVALSHA_RO sha 1 k v',
  'FCALL f 2 a b x',
  'FCALL_RO f 1 a',
  'ZUNIONSTORE d 2 a b WEIGHTS 1 2',
  'ZINTERSTORE d 1 a',
  'ZDIFFSTORE d 2 a b',
  'ZUNION 2 a b WITHSCORES',
  'ZINTER 2 a b',
  'ZDIFF 2 a b',
  'ZINTERCARD 2 a b LIMIT 1',
  'SINTERCARD 3 a b c',
  'LMPOP 2 a b LEFT COUNT 2',
  'ZMPOP 1 a MIN',
  'BLMPOP 0 2 a b LEFT',
  'BZMPOP 0 1 a MAX',
  'BLPOP a b 0',
  'BRPOP a 0',
  'BLMOVE a b LEFT RIGHT 0',
  'BRPOPLPUSH a b 0',
  'BZPOPMIN a b 0',
  'BZPOPMAX a 0',
  'XREAD COUNT 2 BLOCK 0 STREAMS a b 0 0',
  'XREAD STREAMS streams 0',
  'XREAD streams a b 0 0',
  'XREADGROUP GROUP g c COUNT 1 NOACK STREAMS a 0',
  'XREADGROUP GROUP STREAMS streams STREAMS s1 s2 > >',
  'SORT k',
  'SORT k BY w_* LIMIT 0 10 GET # STORE d',
  'SORT k STORE a STORE b',
  'SORT k GET store STORE x',
  'SORT_RO k BY x',
  'OBJECT ENCODING k',
  'object freq k',
  'MEMORY USAGE k SAMPLES 5',
  'XINFO STREAM s FULL',
  'XINFO GROUPS s',
  'XINFO CONSUMERS s g',
  'XGROUP CREATE s g $ MKSTREAM',
  'XGROUP SETID s g 0',
  'XGROUP DESTROY s g',
  'XGROUP CREATECONSUMER s g c',
  'XGROUP DELCONSUMER s g c',
  'GEORADIUS k 0 0 10 km STORE d',
  'GEORADIUS k 0 0 10 km STOREDIST d2',
  'GEORADIUS k 0 0 10 km WITHDIST',
  'GEORADIUSBYMEMBER k m 10 km STORE d',
  'GEORADIUS_RO k 0 0 10 km',
  'GEOSEARCH k FROMMEMBER m BYRADIUS 1 km',
  'GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 km',
  'MIGRATE h 6379 "" 0 100 KEYS a b c',
  'MIGRATE h 6379 k 0 100 COPY REPLACE AUTH pw',
  'MIGRATE h 6379 "" 0 100 AUTH2 u p KEYS a',
  'MIGRATE h 6379 k 0 100 KEYS a',
  'BITOP AND d a b',
  'BITCOUNT k 0 1',
  'BITFIELD k GET u8 0',
  'BITPOS k 1',
  'PFCOUNT a b',
  'PFMERGE d a b',
  'PFADD h a',
  'RENAME a b',
  'RENAMENX a b',
  'COPY a b DB 1',
  'MOVE a 1',
  'SMOVE a b m',
  'LMOVE a b LEFT RIGHT',
  'RPOPLPUSH a b',
  'SDIFFSTORE d a b',
  'SUNIONSTORE d a',
  'SINTERSTORE d a b',
  'SDIFF a b',
  'ZRANGESTORE d s 0 -1',
  'LCS a b',
  'WATCH a b',
  'DUMP k',
  'RESTORE k 0 payload REPLACE',
  'EXPIRE k 10 NX',
  'PEXPIREAT k 1',
  'TTL k',
  'TYPE k',
  'PERSIST k',
  'HSET h f v f2 v2',
  'HMGET h a b',
  'HSCAN h 0',
  'LPUSH l a b',
  'LRANGE l 0 -1',
  'SADD s a',
  'SSCAN s 0',
  'ZADD z 1 a',
  'ZRANGE z 0 -1 REV',
  'ZSCAN z 0',
  'XADD s * f v',
  'XRANGE s - +',
  'XTRIM s MAXLEN 10',
  'XAUTOCLAIM s g c 0 0',
  'SETBIT k 1 1',
  'GETRANGE k 0 1',
  'GEOADD k 0 0 m',
  'GEODIST k a b',
  'HINCRBYFLOAT h f 1.5',
  'APPEND k v',
  'GETEX k PERSIST',
  'GETDEL k',
  'INCRBYFLOAT k 1.5',
  'SUBSTR k 0 1',
  'PING',
  'ECHO x',
  'DBSIZE',
  'KEYS *',
  'SCAN 0 MATCH x',
  'PUBLISH ch msg',
  'SUBSCRIBE ch',
  'FLUSHALL',
  'INFO keyspace',
  'CLIENT LIST',
  'CONFIG GET maxmemory',
];

/** Invocations redis refuses before running them: unknown command or subcommand, wrong arity. */
const ERROR_CORPUS: Buffer[][] = [
  argv('FOO'),
  argv('FOO a b'),
  argv('foo ' + 'x'.repeat(200)),
  argv('foo ' + 'a'.repeat(100) + ' ' + 'b'.repeat(100) + ' c'),
  argv('foo ' + 'a'.repeat(124) + ' b c'),
  [Buffer.from('foo'), Buffer.from('a\x00b'), Buffer.from('c\r\nd')],
  [Buffer.from('f\x00oo'), Buffer.from('x')],
  [Buffer.from('y'.repeat(200))],
  [Buffer.from(''), Buffer.from('a')],
  [Buffer.from('\xc3\xa9t\xe9', 'latin1'), Buffer.from('\xff', 'latin1')],
  argv('GET'),
  argv('GET a b'),
  argv('SET k'),
  argv('get'),
  argv('OBJECT'),
  argv('OBJECT nosuch'),
  argv('object encoding'),
  argv('CONFIG GeT'),
  [Buffer.from('client'), Buffer.from('bogus\r\nx')],
  argv('XINFO STREAM'),
  argv('MEMORY usage'),
  argv('COMMAND nosuch'),
  argv('xgroup'),
  argv('ZUNIONSTORE d 1'),
  argv('EVAL s'),
  argv('MSET a'),
];

describe('commands table', () => {
  it('covers every data type and the generic commands', () => {
    const expected = `
      get set setnx setex psetex getset getdel getex getrange setrange append strlen incr incrby incrbyfloat decr decrby mget mset msetnx lcs substr
      lpush rpush lpushx rpushx lpop rpop llen lrange lindex lset linsert lrem ltrim lpos lmove blmove rpoplpush brpoplpush blpop brpop lmpop blmpop
      sadd srem smembers sismember smismember scard spop srandmember smove sinter sintercard sinterstore sunion sunionstore sdiff sdiffstore sscan
      zadd zrem zscore zmscore zincrby zcard zcount zlexcount zrange zrangestore zrangebyscore zrangebylex zrevrange zrevrangebyscore zrevrangebylex
      zrank zrevrank zremrangebyrank zremrangebyscore zremrangebylex zpopmin zpopmax bzpopmin bzpopmax zmpop bzmpop zrandmember zscan
      zunion zunionstore zinter zinterstore zintercard zdiff zdiffstore
      hset hsetnx hget hmget hmset hdel hexists hlen hkeys hvals hgetall hincrby hincrbyfloat hstrlen hrandfield hscan
      xadd xrange xrevrange xlen xread xreadgroup xack xclaim xautoclaim xpending xdel xtrim xsetid xgroup xinfo
      pfadd pfcount pfmerge setbit getbit bitcount bitpos bitop bitfield bitfield_ro
      geoadd geopos geodist geohash georadius georadiusbymember georadius_ro georadiusbymember_ro geosearch geosearchstore
      del unlink exists touch expire pexpire expireat pexpireat expiretime pexpiretime persist ttl pttl type rename renamenx copy move
      object dump restore sort sort_ro scan keys randomkey dbsize flushdb flushall migrate
      eval evalsha eval_ro evalsha_ro fcall fcall_ro script function
      subscribe unsubscribe psubscribe punsubscribe publish pubsub ssubscribe sunsubscribe spublish
      multi exec discard watch unwatch auth hello select client quit reset ping echo info command config memory wait`;
    for (const name of expected.split(/\s+/).filter(Boolean)) assert.ok(getCommand(name), name);
    assert.equal(getCommand('nosuchcommand'), undefined);
    assert.equal(getCommand('GET'), undefined, 'lookups take lower-case names');
    assert.equal(getCommand('object|encoding')?.firstKey, 2);
  });

  it('has redis 7.0 arity and key positions', () => {
    const check = (name: string, arity: number, first: number, last: number, step: number) => {
      const s = getCommand(name) as CommandSpec;
      assert.deepEqual([s.arity, s.firstKey, s.lastKey, s.step], [arity, first, last, step], name);
    };
    check('get', 2, 1, 1, 1);
    check('set', -3, 1, 1, 1);
    check('mset', -3, 1, -1, 2);
    check('mget', -2, 1, -1, 1);
    check('blpop', -3, 1, -2, 1);
    check('bitop', -4, 2, -1, 1);
    check('rename', 3, 1, 2, 1);
    check('eval', -3, 0, 0, 0);
    check('ping', -1, 0, 0, 0);
    check('memory|usage', -3, 2, 2, 1);
    assert.ok((getCommand('set')!.flags & CMD_WRITE) !== 0);
    assert.deepEqual(redisFlags(getCommand('get')!), ['readonly', 'fast']);
    assert.equal(getCommand('dbsize')!.responsePolicy, 'agg_sum');
    assert.equal(getCommand('keys')!.requestPolicy, 'all_shards');
  });

  it('classifies commands for routing', () => {
    for (const n of ['ping', 'echo', 'time', 'lolwut']) assert.ok(has(n, P_KEYLESS), n);
    for (const n of ['dbsize', 'flushdb', 'flushall', 'keys', 'scan', 'randomkey', 'info', 'wait']) assert.ok(has(n, P_FANOUT), n);
    assert.ok(!has('ping', P_FANOUT));
    assert.ok(!has('get', P_KEYLESS) && !has('dbsize', P_KEYLESS));
    assert.ok(has('script|load', P_FANOUT) && has('function|flush', P_FANOUT));
    for (const n of ['mget', 'mset', 'del', 'exists', 'unlink', 'touch']) assert.ok(has(n, P_MULTIKEY_SPLIT), n);
    assert.ok(!has('msetnx', P_MULTIKEY_SPLIT), 'splitting MSETNX would break its atomicity');
    for (const n of [
      'eval',
      'evalsha',
      'fcall',
      'zunionstore',
      'zinterstore',
      'zdiffstore',
      'lmpop',
      'zmpop',
      'blmpop',
      'bzmpop',
      'sintercard',
      'zunion',
      'zinter',
      'zdiff',
    ]) {
      assert.ok(has(n, P_NUMKEYS), n);
    }
    for (const n of ['blpop', 'brpop', 'blmove', 'brpoplpush', 'bzpopmin', 'bzpopmax', 'blmpop', 'bzmpop', 'xread', 'xreadgroup']) {
      assert.ok(has(n, P_BLOCKING), n);
    }
    assert.ok(!has('lpop', P_BLOCKING));
    for (const n of [
      'subscribe',
      'psubscribe',
      'unsubscribe',
      'punsubscribe',
      'publish',
      'ssubscribe',
      'sunsubscribe',
      'spublish',
      'pubsub',
      'pubsub|numsub',
    ]) {
      assert.ok(has(n, P_PUBSUB), n);
    }
    for (const n of ['spublish', 'ssubscribe', 'sunsubscribe']) assert.ok(has(n, P_SHARD_CHANNEL), n);
    for (const n of ['multi', 'exec', 'discard', 'watch', 'unwatch']) assert.ok(has(n, P_TRANSACTION), n);
    for (const n of ['auth', 'hello', 'select', 'client', 'client|setname', 'quit', 'reset']) assert.ok(has(n, P_CONNECTION), n);
    for (const n of ['client', 'object', 'xinfo', 'xgroup', 'memory', 'config', 'script']) assert.ok(has(n, P_CONTAINER), n);
    assert.ok(has('post', P_SECURITY) && has('host:', P_SECURITY));
  });

  it('finds keys, including numkeys, STREAMS, STORE and subcommand forms', () => {
    assert.deepEqual(keysOf('GET k'), ['k']);
    assert.deepEqual(keysOf('get k'), ['k']);
    assert.deepEqual(keysOf('MSET a 1 b 2'), ['a', 'b']);
    assert.deepEqual(keysOf('MGET a b c'), ['a', 'b', 'c']);
    assert.deepEqual(keysOf('BLPOP a b 0'), ['a', 'b']);
    assert.deepEqual(keysOf('BITOP AND d a b'), ['d', 'a', 'b']);
    assert.deepEqual(keysOf('EVAL s 2 k1 k2 a'), ['k1', 'k2']);
    assert.deepEqual(keysOf('EVAL s 0'), []);
    assert.deepEqual(keysOf('EVAL s 3 k1 k2'), [], 'impossible count: no keys (redis replies with an error)');
    assert.deepEqual(keysOf('EVAL s -1 k1'), []);
    assert.deepEqual(keysOf('EVAL s 1abc k1'), ['k1'], 'numkeys read with atoi');
    assert.deepEqual(keysOf('FCALL f 1 k a'), ['k']);
    assert.deepEqual(keysOf('ZUNIONSTORE d 2 a b WEIGHTS 1 2'), ['d', 'a', 'b']);
    assert.deepEqual(keysOf('ZINTER 2 a b'), ['a', 'b']);
    assert.deepEqual(keysOf('SINTERCARD 2 a b LIMIT 5'), ['a', 'b']);
    assert.deepEqual(keysOf('LMPOP 2 a b LEFT'), ['a', 'b']);
    assert.deepEqual(keysOf('BLMPOP 0 1 a LEFT'), ['a']);
    assert.deepEqual(keysOf('BZMPOP 1.5 2 a b MIN'), ['a', 'b']);
    assert.deepEqual(keysOf('XREAD COUNT 1 BLOCK 0 STREAMS a b 0 0'), ['a', 'b']);
    assert.deepEqual(keysOf('XREAD STREAMS streams 0'), ['streams']);
    assert.deepEqual(keysOf('XREAD STREAMS a b 0'), [], 'odd count');
    assert.deepEqual(keysOf('XREADGROUP GROUP g c NOACK STREAMS s1 s2 > >'), ['s1', 's2']);
    assert.deepEqual(keysOf('SORT k BY w LIMIT 0 1 GET # STORE d'), ['k', 'd']);
    assert.deepEqual(keysOf('SORT k STORE a STORE b'), ['k', 'b']);
    assert.deepEqual(keysOf('SORT k'), ['k']);
    assert.deepEqual(keysOf('SORT_RO k BY w'), ['k']);
    assert.deepEqual(keysOf('OBJECT ENCODING k'), ['k']);
    assert.deepEqual(keysOf('MEMORY USAGE k'), ['k']);
    assert.deepEqual(keysOf('MEMORY STATS'), []);
    assert.deepEqual(keysOf('XINFO STREAM s'), ['s']);
    assert.deepEqual(keysOf('XGROUP CREATE s g $'), ['s']);
    assert.deepEqual(keysOf('GEORADIUS k 0 0 1 km STORE d'), ['k', 'd']);
    assert.deepEqual(keysOf('GEORADIUSBYMEMBER k m 1 km STOREDIST d'), ['k', 'd']);
    // Only the last destination is written, so only it routes (COMMAND GETKEYS,
    // which reads key specs, would list both).
    assert.deepEqual(keysOf('GEORADIUS k 0 0 1 km STOREDIST d2 STORE d1'), ['k', 'd1']);
    assert.deepEqual(keysOf('MIGRATE h 1 "" 0 5 KEYS a b'), ['a', 'b']);
    assert.deepEqual(keysOf('MIGRATE h 1 k 0 5'), ['k']);
    assert.deepEqual(keysOf('SPUBLISH ch msg'), ['ch'], 'sharded channels route like keys');
    assert.deepEqual(keysOf('SSUBSCRIBE a b'), ['a', 'b']);
    assert.deepEqual(keysOf('PING'), []);
    assert.deepEqual(keysOf('PUBLISH ch msg'), []);
    assert.deepEqual(keysOf('WATCH a b'), ['a', 'b']);
    assert.deepEqual(keysOf('RENAME a b'), ['a', 'b']);
    assert.deepEqual(keysOf('COPY a b'), ['a', 'b']);
    assert.equal(keysOf('NOSUCH a'), undefined, 'unknown command');
    assert.equal(keysOf('OBJECT nosuch k'), undefined, 'unknown subcommand');
    assert.deepEqual(keysOf('GET'), [], 'too short: no keys, never a crash');
    assert.deepEqual(keysOf('RENAME a'), []);
    assert.deepEqual(commandKeyIndexes('mset', argv('MSET a 1 b 2')), [1, 3]);
    assert.equal(resolveCommand('object', argv('OBJECT ENCODING k'))?.name, 'object|encoding');
    assert.equal(resolveCommand('object', argv('OBJECT'))?.name, 'object');
  });

  it('reports unknown commands in redis 7.0 format', () => {
    const s = (args: Buffer[]) => unknownCommandError(args).toString('latin1');
    assert.equal(s(argv('FOO a b')), "ERR unknown command 'FOO', with args beginning with: 'a' 'b' ");
    assert.equal(s(argv('foo')), "ERR unknown command 'foo', with args beginning with: ");
    assert.equal(
      s([Buffer.from('foo'), Buffer.from('a\x00b'), Buffer.from('c\r\nd')]),
      "ERR unknown command 'foo', with args beginning with: 'a' 'c  d' ",
    );
    const long = s(argv('foo ' + 'x'.repeat(200) + ' y'));
    assert.equal(long, `ERR unknown command 'foo', with args beginning with: '${'x'.repeat(128)}' `);
    assert.equal(
      encodeError(unknownCommandError(argv('FOO a'))).toString(),
      "-ERR unknown command 'FOO', with args beginning with: 'a' \r\n",
    );
  });

  it('checks arity and subcommands like redis', () => {
    const c = (s: string) => checkCommand(argv(s))?.toString('latin1');
    assert.equal(c('GET k'), undefined);
    assert.equal(c('GET'), "ERR wrong number of arguments for 'get' command");
    assert.equal(c('SET k'), "ERR wrong number of arguments for 'set' command");
    assert.equal(c('OBJECT'), "ERR wrong number of arguments for 'object' command");
    assert.equal(c('OBJECT ENCODING'), "ERR wrong number of arguments for 'object|encoding' command");
    assert.equal(c('OBJECT ENCODING k'), undefined);
    assert.equal(c('object nosuch'), "ERR unknown subcommand 'nosuch'. Try OBJECT HELP.");
    assert.equal(c('COMMAND'), undefined);
    assert.equal(c('PING'), undefined);
    assert.equal(c('nosuch x'), "ERR unknown command 'nosuch', with args beginning with: 'x' ");
    assert.equal(checkCommand([]), undefined);
  });

  it('keeps key lookups cheap', () => {
    const args = argv('GET somekey');
    const t = process.hrtime.bigint();
    for (let i = 0; i < 200_000; i++) commandKeys('get', args);
    const nsPerOp = Number(process.hrtime.bigint() - t) / 200_000;
    // Generous bound: catches an accidental O(table) scan, not CPU noise.
    assert.ok(nsPerOp < 5000, `${nsPerOp.toFixed(0)} ns per lookup`);
  });
});

// ---------------------------------------------------------------------------

describe('against redis-server', () => {
  let redis: ScratchRedis;
  let sock = '';

  before(async () => {
    redis = await startScratchRedis('proxy-commands');
    sock = redis.sock;
  });

  after(() => redis?.stop());

  /** Sends commands on one connection; resolves with each reply's raw bytes. */
  function send(cmds: (string | Buffer)[][]): Promise<Buffer[]> {
    const input = Buffer.concat(cmds.map((c) => encodeCommand(c)));
    return pipelineReplies(sock, input, (got) => got.length === cmds.length).then(({ replies }) => replies.map((x) => x.rawBuffer()));
  }

  it('the table matches COMMAND of this redis-server (arity, flags, key range, tips)', async (t) => {
    const [reply] = await send([['COMMAND']]);
    const entries = decodeReply(reply, { strings: true }) as RespValue[][];
    const info = String(decodeReply((await send([['INFO', 'server']]))[0], { strings: true }));
    if (!/redis_version:7\.0\./.test(info)) t.diagnostic('not redis 7.0: differences may be expected');
    const seen = new Set<string>();
    const compare = (e: RespValue[]) => {
      const name = e[0] as string;
      seen.add(name);
      const spec = getCommand(name);
      assert.ok(spec, `missing from the table: ${name}`);
      assert.equal(spec.arity, e[1], `${name} arity`);
      assert.deepEqual([...redisFlags(spec)].sort(), [...(e[2] as string[])].sort(), `${name} flags`);
      assert.deepEqual([spec.firstKey, spec.lastKey, spec.step], [e[3], e[4], e[5]], `${name} key range`);
      assert.deepEqual([...spec.tips].sort(), [...(e[7] as string[])].sort(), `${name} tips`);
    };
    for (const e of entries) {
      compare(e);
      for (const sub of e[9] as RespValue[][]) compare(sub);
    }
    for (const spec of COMMANDS.values()) {
      if (!(spec.proxy & P_SECURITY)) assert.ok(seen.has(spec.name), `not in redis: ${spec.name}`);
      for (const sub of spec.subcommands?.values() ?? []) assert.ok(seen.has(sub.name), `not in redis: ${sub.name}`);
    }
  });

  it('commandKeys agrees with COMMAND GETKEYS', async () => {
    const replies = await send(KEY_CORPUS.map((s) => ['COMMAND', 'GETKEYS', ...argv(s)]));
    KEY_CORPUS.forEach((s, i) => {
      const a = argv(s);
      const v = decodeReply(replies[i], { strings: true });
      // redis answers an error when there are no keys.
      const want = v instanceof ReplyError ? [] : (v as string[]);
      const got = commandKeys(a[0].toString().toLowerCase(), a)?.map((k) => k.toString('latin1'));
      assert.deepEqual(got, want, s);
    });
  });

  it('checkCommand produces the exact error redis replies', async () => {
    const replies = await send(ERROR_CORPUS);
    ERROR_CORPUS.forEach((args, i) => {
      const err = checkCommand(args);
      assert.ok(err, `expected an error for ${args.map((a) => a.toString('latin1')).join(' ')}`);
      assert.equal(encodeError(err).toString('latin1'), replies[i].toString('latin1'));
    });
  });
});
