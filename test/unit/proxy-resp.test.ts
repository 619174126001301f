import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startScratchRedis, pipelineReplies, type ScratchRedis } from '../support/redis.js';
import {
  appendRaw,
  encodeArray,
  encodeBulk,
  encodeCommand,
  encodeError,
  encodeInteger,
  encodeSimple,
} from '../../src/proxy/resp-encode.js';
import { ReplyError, ReplyParser, decodeReply, type RespReply } from '../../src/proxy/resp-reply.js';
import { RequestParser, type RespCommand, type RequestParserOptions } from '../../src/proxy/resp-request.js';
import { splitInlineArgs } from '../../src/proxy/resp-inline.js';
import { rng } from '../support/rng.js';

const int = (r: () => number, n: number) => Math.floor(r() * n);
const B = (s: string) => Buffer.from(s, 'latin1');
/** A copy outside Node's shared pool, so `.buffer` identifies it. */
const unpooled = (b: Buffer) => {
  const u = Buffer.alloc(b.length);
  b.copy(u);
  return u;
};
const sameBytes = (a: readonly Buffer[], b: readonly Buffer[]) => a.length === b.length && a.every((x, i) => x.equals(b[i]));

interface Expected {
  name: string;
  args: Buffer[];
  raw: Buffer;
  inline: boolean;
}

/** Feeds chunks; returns the commands and the parser. */
/** Feeds chunks; returns the commands and the parser. */
function parseChunks(chunks: Iterable<Buffer>, opts?: RequestParserOptions): { cmds: RespCommand[]; p: RequestParser } {
  const p = new RequestParser(opts);
  const cmds: RespCommand[] = [];
  for (const c of chunks) {
    p.push(c);
    for (let cmd = p.next(); cmd !== null; cmd = p.next()) cmds.push(cmd);
  }
  return { cmds, p };
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

// Generators, so millions of tiny chunks are never alive at once.
function* randomChunks(buf: Buffer, r: () => number, max: number): Generator<Buffer> {
  for (let i = 0; i < buf.length; ) {
    const n = 1 + int(r, max);
    // Copies, so views into one chunk cannot accidentally be views into another.
    yield Buffer.from(buf.subarray(i, i + n));
    i += n;
  }
}

function* bytewise(buf: Buffer): Generator<Buffer> {
  for (let i = 0; i < buf.length; i++) yield buf.subarray(i, i + 1);
}

function checkCommands(got: RespCommand[], want: Expected[]): void {
  // Cheap comparisons first; assert (slow, but with a readable diff) only on a mismatch.
  const ok =
    got.length === want.length &&
    want.every((w, i) => {
      const g = got[i];
      return (
        g.name === w.name &&
        g.inline === w.inline &&
        g.argc === w.args.length &&
        sameBytes(g.args, w.args) &&
        g.rawLength === w.raw.length &&
        Buffer.concat(g.raw).equals(w.raw)
      );
    });
  if (ok) return;
  assert.equal(got.length, want.length, 'number of commands');
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    assert.equal(g.name, w.name, `name of #${i}`);
    assert.equal(g.inline, w.inline, `inline of #${i}`);
    assert.deepEqual(g.args, w.args, `args of #${i}`);
    assert.equal(g.rawLength, w.raw.length, `rawLength of #${i}`);
    assert.deepEqual(Buffer.concat(g.raw), w.raw, `raw of #${i}`);
  }
}

const NAMES = ['GET', 'set', 'Mget', 'hset', 'PING', 'zadd', 'XADD', 'eval', 'del', 'LPush', 'client', 'FOO.bar'];
const PLAIN = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:{}-+*$@#';

function randomArg(r: () => number, small = false): Buffer {
  const k = r();
  const n = k < 0.05 ? 0 : k < 0.9 || small ? 1 + int(r, 24) : k < 0.997 ? 100 + int(r, 900) : 5000 + int(r, 20000);
  const b = Buffer.allocUnsafe(n);
  // Binary on purpose: CR, LF, NUL, '*' and '$' inside bulks must not confuse the parser.
  for (let i = 0; i < n; i++) b[i] = r() < 0.2 ? [13, 10, 0, 42, 36][int(r, 5)] : int(r, 256);
  return b;
}

/** A random inline request and the argv redis would make of it. */
function randomInline(r: () => number): { line: Buffer; args: Buffer[] } {
  const args: Buffer[] = [B(NAMES[int(r, NAMES.length)])];
  const parts: string[] = [args[0].toString('latin1')];
  const nargs = int(r, 5);
  for (let i = 0; i < nargs; i++) {
    const kind = int(r, 3);
    const bytes: number[] = [];
    const len = int(r, 12);
    if (kind === 0) {
      for (let j = 0; j < Math.max(1, len); j++) bytes.push(PLAIN.charCodeAt(int(r, PLAIN.length)));
      parts.push(String.fromCharCode(...bytes));
    } else if (kind === 1) {
      let enc = '"';
      for (let j = 0; j < len; j++) {
        const c = r() < 0.3 ? int(r, 256) : 32 + int(r, 95);
        bytes.push(c);
        if (c === 0x22 || c === 0x5c) enc += '\\' + String.fromCharCode(c);
        else if (c === 10) enc += '\\n';
        else if (c === 13) enc += '\\r';
        else if (c === 9) enc += '\\t';
        else if (c < 32 || c > 126) enc += '\\x' + c.toString(16).padStart(2, '0');
        else enc += String.fromCharCode(c);
      }
      parts.push(enc + '"');
    } else {
      let enc = "'";
      for (let j = 0; j < len; j++) {
        const c = r() < 0.15 ? 0x27 : 32 + int(r, 95);
        if (c === 0x5c) continue; // a backslash before the closing quote would escape it
        bytes.push(c);
        enc += c === 0x27 ? "\\'" : String.fromCharCode(c);
      }
      parts.push(enc + "'");
    }
    args.push(Buffer.from(bytes));
  }
  const sep = () => (r() < 0.8 ? ' ' : [' \t', '  ', '\t'][int(r, 3)]);
  let line = (r() < 0.1 ? ' ' : '') + parts.join(sep()) + (r() < 0.1 ? ' ' : '');
  line += r() < 0.8 ? '\r\n' : '\n';
  return { line: B(line), args };
}

/** A pipeline of random commands, with the requests redis skips mixed in. */
function randomPipeline(r: () => number, n: number, small = false): { input: Buffer; want: Expected[] } {
  const parts: Buffer[] = [];
  const want: Expected[] = [];
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.03) {
      parts.push(B(['\r\n', '\n', '   \r\n', '*0\r\n', '*-1\r\n'][int(r, 5)]));
      continue;
    }
    if (k < 0.2) {
      const { line, args } = randomInline(r);
      parts.push(line);
      want.push({ name: args[0].toString('latin1').toLowerCase(), args, raw: line, inline: true });
      continue;
    }
    const args: Buffer[] = [B(NAMES[int(r, NAMES.length)])];
    const nargs = int(r, 7);
    for (let j = 0; j < nargs; j++) args.push(randomArg(r, small));
    const raw = encodeCommand(args);
    parts.push(raw);
    want.push({ name: args[0].toString('latin1').toLowerCase(), args, raw, inline: false });
  }
  return { input: Buffer.concat(parts), want };
}

// Each input is PINGs then (maybe) a protocol error, so the same inputs
// can be replayed against a real redis-server below.
const ERROR_CASES: [label: string, input: string, error: string | null, pings?: number][] = [
  // [label, input, error (null: none, connection stays open), PINGs before]
  ['non-numeric count', '*abc\r\n', 'ERR Protocol error: invalid multibulk length'],
  ['count above INT_MAX', '*2147483648\r\n', 'ERR Protocol error: invalid multibulk length'],
  ['count with leading zero', '*01\r\n$4\r\nPING\r\n', 'ERR Protocol error: invalid multibulk length'],
  ['count -0', '*-0\r\n', 'ERR Protocol error: invalid multibulk length'],
  ['count with +', '*+1\r\n', 'ERR Protocol error: invalid multibulk length'],
  ['count with a space', '* 1\r\n', 'ERR Protocol error: invalid multibulk length'],
  ['count with a trailing space', '*1 \r\n', 'ERR Protocol error: invalid multibulk length'],
  ['empty count', '*\r\n', 'ERR Protocol error: invalid multibulk length'],
  ['count of 20 digits', '*99999999999999999999\r\n', 'ERR Protocol error: invalid multibulk length'],
  ['count below INT64_MIN', '*-9223372036854775809\r\n*1\r\n$4\r\nPING\r\n', 'ERR Protocol error: invalid multibulk length'],
  ['count of INT64_MIN is an empty request', '*-9223372036854775808\r\nPING\r\n', null, 1],
  ['count 0 and -1 are empty requests', '*0\r\n*-1\r\n*-5\r\nPING\r\n', null, 1],
  ['count of INT_MAX waits', '*2147483647\r\n', null],
  ['bulk length -1', '*1\r\n$-1\r\n', 'ERR Protocol error: invalid bulk length'],
  ['bulk length above 512MB', '*1\r\n$536870913\r\n', 'ERR Protocol error: invalid bulk length'],
  ['bulk length of 512MB waits', '*1\r\n$536870912\r\n', null],
  ['non-numeric bulk length', '*1\r\n$4x\r\nPING\r\n', 'ERR Protocol error: invalid bulk length'],
  ['bulk length with leading zero', '*1\r\n$04\r\nPING\r\n', 'ERR Protocol error: invalid bulk length'],
  ['empty bulk length', '*1\r\n$\r\n', 'ERR Protocol error: invalid bulk length'],
  ['bulk without $', '*1\r\n$4\r\nPING\r\n*1\r\nPING\r\n', "ERR Protocol error: expected '$', got 'P'", 1],
  ['bulk header starting with CR', '*1\r\n\r\n', "ERR Protocol error: expected '$', got ' '"],
  ['bulk header with a high byte', '*1\r\n\xc3\r\n', "ERR Protocol error: expected '$', got '\xc3'"],
  ['$ check waits for the line end', '*1\r\nx', null],
  ['unbalanced double quote', 'PING\r\nPING "a\r\n', 'ERR Protocol error: unbalanced quotes in request', 1],
  ['unbalanced single quote', "PING 'a\r\n", 'ERR Protocol error: unbalanced quotes in request'],
  ['text after a closing quote', 'PING "a"b\r\n', 'ERR Protocol error: unbalanced quotes in request'],
  ['text after a closing single quote', "PING 'a'b\r\n", 'ERR Protocol error: unbalanced quotes in request'],
  ['count line over 64KB', '*1' + '1'.repeat(65535), 'ERR Protocol error: too big mbulk count string'],
  ['count line of exactly 64KB waits', '*1' + '1'.repeat(65534), null],
  ['bulk line over 64KB', '*1\r\n$' + '1'.repeat(65536), 'ERR Protocol error: too big bulk count string'],
  ['inline over 64KB', 'P'.repeat(65537), 'ERR Protocol error: too big inline request'],
  ['inline of exactly 64KB waits', 'P'.repeat(65536), null],
  ['NUL in a count line stalls', '*1\x00\r\n$4\r\nPING\r\n', null],
  ['NUL in an inline request stalls', 'PING\r\nPI\x00NG\r\n', null, 1],
  ['NUL stall ends at 64KB', 'PING\r\n\x00' + 'x'.repeat(70000), 'ERR Protocol error: too big inline request', 1],
  ['NUL in a count line, then 64KB', '*1\x00\r\n' + 'x'.repeat(70000), 'ERR Protocol error: too big mbulk count string'],
  ['bulk CRLF is not checked', '*1\r\n$4\r\nPINGXY*1\r\n$4\r\nPING\r\n', null, 2],
  ['length-line LF is not checked', '*1\rX$4\r\nPINGXY', null, 1],
  ['LF-only inline', '\nPING\n', null, 1],
];

describe('RequestParser', () => {
  it('parses multibulk commands as zero-copy views of the chunk', () => {
    const input = unpooled(B('*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$3\r\nbar\r\n*2\r\n$3\r\nGeT\r\n$3\r\nfoo\r\n'));
    const { cmds, p } = parseChunks([input]);
    assert.equal(p.error, null);
    assert.equal(cmds.length, 2);
    assert.equal(cmds[0].name, 'set');
    assert.deepEqual(cmds[0].args.map(String), ['SET', 'foo', 'bar']);
    assert.equal(cmds[1].name, 'get');
    for (const c of cmds) {
      assert.equal(c.raw.length, 1);
      assert.equal(c.raw[0].buffer, input.buffer, 'raw is a view, not a copy');
      for (const a of c.args) assert.equal(a.buffer, input.buffer, 'args are views');
    }
    assert.equal(cmds[0].rawBuffer().toString(), '*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$3\r\nbar\r\n');
    assert.equal(p.buffered, 0);
  });

  it('joins an argument only when it straddles chunks, and only on access', () => {
    const input = unpooled(encodeCommand(['SET', 'key', 'x'.repeat(100)]));
    const cut = input.indexOf('xxx') + 50;
    const { cmds } = parseChunks([input.subarray(0, cut), input.subarray(cut)]);
    assert.equal(cmds.length, 1);
    const c = cmds[0];
    assert.equal(c.raw.length, 2, 'raw stays as two views');
    assert.equal(c.arg(1).buffer, input.buffer, 'the key is still a view');
    assert.equal(c.arg(2).toString(), 'x'.repeat(100));
    assert.notEqual(c.arg(2).buffer, input.buffer, 'the split value was joined');
    assert.equal(c.arg(2), c.arg(2), 'joined once');
  });

  it('parses inline commands like redis (quotes, escapes, blanks)', () => {
    const { cmds, p } = parseChunks([
      B('PING\r\n\r\n  \n\nset "a b" \'c\\\'d\' x\r\necho "\\x41\\x4g\\q\\n\\"\\\\" \'\\n\'\nECHO a\x0bb\r\nECHO \x0bab\r\nPING\r\r\n'),
    ]);
    assert.equal(p.error, null);
    assert.deepEqual(
      cmds.map((c) => [c.name, ...c.args.map((a) => a.toString('latin1'))]),
      [
        ['ping', 'PING'],
        ['set', 'set', 'a b', "c'd", 'x'],
        ['echo', 'echo', 'Ax4gq\n"\\', '\\n'],
        ['echo', 'ECHO', 'a\x0bb'],
        ['echo', 'ECHO', 'ab'],
        ['ping', 'PING'],
      ],
    );
    assert.ok(cmds.every((c) => c.inline));
    assert.equal(cmds[0].rawBuffer().toString(), 'PING\r\n');
    assert.equal(cmds[1].rawBuffer().toString(), "set \"a b\" 'c\\'d' x\r\n", 'blank lines belong to no command');
  });

  it('splitInlineArgs matches sdssplitargs on edge cases', () => {
    const s = (x: string) => splitInlineArgs(B(x))?.map((a) => a.toString('latin1')) ?? null;
    assert.deepEqual(s(''), []);
    assert.deepEqual(s(' \t '), []);
    assert.deepEqual(s('a"b c"d'), null, 'closing quote must be followed by a blank');
    assert.deepEqual(s('a"b c" d'), ['ab c', 'd']);
    assert.deepEqual(s('"abc'), null);
    assert.deepEqual(s("'abc"), null);
    assert.deepEqual(s('"a\\"'), null, 'escaped quote does not close');
    assert.deepEqual(s('""'), ['']);
    assert.deepEqual(s("''"), ['']);
    assert.deepEqual(s('"\\x41"'), ['A']);
    assert.deepEqual(s('"\\x4"'), ['x4']);
    assert.deepEqual(s("'a\\b'"), ['a\\b'], "single quotes only unescape \\'");
    assert.deepEqual(s('a\fb'), ['a\fb'], '\\f ends no token (only blanks are skipped)');
    assert.deepEqual(s('\fa'), ['a']);
    assert.deepEqual(s('"a"\tb'), ['a', 'b']);
  });

  it('lower-cases names ASCII-only and reuses cached strings', () => {
    const { cmds } = parseChunks([encodeCommand(['GET', 'k']), encodeCommand(['gEt', 'k']), encodeCommand([B('\xc0GET'), 'k'])]);
    assert.equal(cmds[0].name, 'get');
    assert.equal(cmds[1].name, 'get');
    assert.equal(cmds[2].name, '\xc0get', 'latin1 letters are not folded, as in redis');
  });

  for (const seed of [1, 2, 3]) {
    it(`fuzz: 3000 random commands in random chunks, 300 byte-by-byte (seed ${seed})`, () => {
      const r = rng(seed);
      const { input, want } = randomPipeline(r, 3000);
      checkCommands(parseChunks([input]).cmds, want);
      checkCommands(parseChunks(randomChunks(input, r, 8)).cmds, want);
      checkCommands(parseChunks(randomChunks(input, r, 300)).cmds, want);
      checkCommands(parseChunks(randomChunks(input, r, 20000)).cmds, want);
      const small = randomPipeline(r, 300);
      const { cmds, p } = parseChunks(bytewise(small.input));
      checkCommands(cmds, small.want);
      assert.equal(p.error, null);
      assert.equal(p.buffered, 0);
    });
  }

  it('fuzz: a pipeline split at every possible boundary, into two and three chunks', () => {
    const r = rng(42);
    // Small args keep the quadratic sweep fast; big args are covered above.
    const { input, want } = randomPipeline(r, 60, true);
    for (let i = 0; i <= input.length; i++) {
      checkCommands(parseChunks(splitAt(input, [i])).cmds, want);
    }
    for (let i = 0; i < 400; i++) {
      const a = int(r, input.length + 1);
      const b = a + int(r, input.length + 1 - a);
      checkCommands(parseChunks(splitAt(input, [a, b])).cmds, want);
    }
  });

  it('pushing more chunks before calling next works (queued chunks)', () => {
    const r = rng(7);
    const { input, want } = randomPipeline(r, 500);
    const p = new RequestParser();
    for (const c of randomChunks(input, r, 50)) p.push(c);
    assert.equal(p.buffered, input.length);
    const cmds: RespCommand[] = [];
    for (let c = p.next(); c !== null; c = p.next()) cmds.push(c);
    checkCommands(cmds, want);
    assert.equal(p.buffered, 0);
  });

  it('returns nothing for an incomplete command, then completes it', () => {
    const p = new RequestParser();
    p.push(B('*2\r\n$3\r\nGET\r\n$3\r\nfo'));
    assert.equal(p.next(), null);
    assert.equal(p.error, null);
    p.push(B('o\r'));
    assert.equal(p.next(), null);
    p.push(B('\n'));
    const c = p.next();
    assert.ok(c);
    assert.deepEqual(c.args.map(String), ['GET', 'foo']);
  });

  for (const [label, input, error, pings = 0] of ERROR_CASES) {
    it(`protocol: ${label}`, () => {
      const bytes = B(input);
      for (const chunks of [[bytes], bytewise(bytes)]) {
        const { cmds, p } = parseChunks(chunks);
        assert.equal(p.error, error);
        assert.equal(cmds.length, pings);
        for (const c of cmds) assert.equal(c.name, 'ping');
        if (error !== null) {
          assert.deepEqual(p.errorReply(), B(`-${error}\r\n`));
          // Dead for good.
          p.push(encodeCommand(['PING']));
          assert.equal(p.next(), null);
          assert.equal(p.error, error);
        }
      }
    });
  }

  it('protocol: pre-AUTH limits (authRequired)', () => {
    const e = (input: string) => parseChunks([B(input)], { authRequired: true }).p.error;
    assert.equal(e('*11\r\n'), 'ERR Protocol error: unauthenticated multibulk length');
    assert.equal(e('*10\r\n'), null);
    assert.equal(e('*1\r\n$16385\r\n'), 'ERR Protocol error: unauthenticated bulk length');
    assert.equal(e('*1\r\n$16384\r\n'), null);
    // The proxy lifts the limit once AUTH succeeded.
    const p = new RequestParser({ authRequired: true });
    p.push(encodeCommand(['AUTH', 'pw']));
    assert.equal(p.next()?.name, 'auth');
    p.authRequired = false;
    p.push(encodeCommand(['MSET', ...Array(20).fill('x')]));
    assert.equal(p.next()?.argc, 21);
  });

  it('protocol: strict mode insists on CRLF', () => {
    const e = (input: string) => parseChunks(bytewise(B(input)), { strict: true });
    assert.equal(e('*1\r\n$4\r\nPINGXY').p.error, 'ERR Protocol error: expected CRLF');
    assert.equal(e('*1\r\n$4\r\nPING\rX').p.error, 'ERR Protocol error: expected CRLF');
    assert.equal(e('*1\rX').p.error, 'ERR Protocol error: expected CRLF');
    assert.equal(e('*1\r\n$4\r\nPING\r\n').cmds.length, 1);
  });

  it('protocol: options (no inline, smaller limits)', () => {
    const a = parseChunks([B('PING\r\n')], { allowInline: false });
    assert.equal(a.p.error, "ERR Protocol error: expected '*', got 'P'");
    const b = parseChunks([B('*1\r\n$11\r\n')], { maxBulkLength: 10 });
    assert.equal(b.p.error, 'ERR Protocol error: invalid bulk length');
    const c = parseChunks([B('*5\r\n')], { maxMultibulkLength: 4 });
    assert.equal(c.p.error, 'ERR Protocol error: invalid multibulk length');
  });

  it('commands before an error in the same chunk come out first', () => {
    const { cmds, p } = parseChunks([B('*1\r\n$4\r\nPING\r\nECHO hi\r\n*x\r\n*1\r\n$4\r\nPING\r\n')]);
    assert.deepEqual(
      cmds.map((c) => c.name),
      ['ping', 'echo'],
    );
    assert.equal(p.error, 'ERR Protocol error: invalid multibulk length');
  });
});

// ---------------------------------------------------------------------------

/** A random RESP3 value, encoded; `depth` bounds nesting. */
function randomReply(r: () => number, depth: number): Buffer {
  const k = int(r, depth > 0 ? 20 : 12);
  switch (k) {
    case 0:
      return B('+OK\r\n');
    case 1:
      return B(`-ERR something ${int(r, 100)}\r\n`);
    case 2:
      return B(`:${int(r, 2000) - 1000}\r\n`);
    case 3:
      return encodeBulk(randomArg(r));
    case 4:
      return B('$-1\r\n');
    case 5:
      return B(`,${(r() * 100 - 50).toFixed(3)}\r\n`);
    case 6:
      return B(r() < 0.5 ? '#t\r\n' : '#f\r\n');
    case 7:
      return B('_\r\n');
    case 8:
      return B('(3492890328409238509324850943850943825024385\r\n');
    case 9: {
      const body = Buffer.concat([B('txt:'), randomArg(r)]);
      return Buffer.concat([B(`=${body.length}\r\n`), body, B('\r\n')]);
    }
    case 10: {
      const body = randomArg(r);
      return Buffer.concat([B(`!${body.length}\r\n`), body, B('\r\n')]);
    }
    case 11:
      return B(r() < 0.5 ? '*-1\r\n' : '*0\r\n');
    default: {
      const t = '*%~>|*%'[int(r, 7)];
      const n = int(r, 4);
      const parts: Buffer[] = [B(`${t}${n}\r\n`)];
      const m = t === '%' || t === '|' ? 2 * n : n;
      for (let i = 0; i < m; i++) parts.push(randomReply(r, depth - 1));
      if (t === '|') parts.push(randomReply(r, depth - 1)); // the value the attribute describes
      return Buffer.concat(parts);
    }
  }
}

/** End of the element starting at `pos` (test oracle, independent of ReplyParser). */
function skipElement(buf: Buffer, pos: number): number {
  const eol = buf.indexOf('\r\n', pos);
  const n = Number(buf.toString('latin1', pos + 1, eol));
  let p = eol + 2;
  const t = String.fromCharCode(buf[pos]);
  const children = '*~>'.includes(t) ? n : t === '%' ? 2 * n : t === '|' ? 2 * n + 1 : 0;
  if ('$=!'.includes(t)) return n < 0 ? p : p + n + 2;
  for (let i = 0; i < children; i++) p = skipElement(buf, p);
  return p;
}

/** Type byte of a reply's value, looking through attributes. */
function typeOf(reply: Buffer): number {
  let pos = 0;
  while (reply[pos] === 0x7c) {
    const eol = reply.indexOf('\r\n', pos);
    const n = Number(reply.toString('latin1', pos + 1, eol));
    pos = eol + 2;
    for (let i = 0; i < 2 * n; i++) pos = skipElement(reply, pos);
  }
  return reply[pos];
}

function parseReplies(chunks: Iterable<Buffer>): { replies: RespReply[]; p: ReplyParser } {
  const p = new ReplyParser();
  const replies: RespReply[] = [];
  for (const c of chunks) {
    p.push(c);
    for (let x = p.next(); x !== null; x = p.next()) replies.push(x);
  }
  return { replies, p };
}

function checkReplies(got: RespReply[], want: Buffer[]): void {
  const ok =
    got.length === want.length &&
    want.every((w, i) => got[i].rawLength === w.length && Buffer.concat(got[i].raw).equals(w) && got[i].type === typeOf(w));
  if (ok) return;
  assert.equal(got.length, want.length, 'number of replies');
  for (let i = 0; i < want.length; i++) {
    assert.deepEqual(Buffer.concat(got[i].raw), want[i], `raw of reply #${i}`);
    assert.equal(got[i].rawLength, want[i].length);
    assert.equal(got[i].type, typeOf(want[i]), `type of reply #${i}`);
  }
}

describe('ReplyParser', () => {
  it('splits RESP2 replies, including nulls and nested arrays', () => {
    const input = unpooled(B('+OK\r\n-ERR x\r\n:-5\r\n$3\r\nfoo\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n*1\r\n$0\r\n\r\n:1\r\n'));
    const { replies, p } = parseReplies([input]);
    assert.equal(p.error, null);
    assert.deepEqual(
      replies.map((x) => x.rawBuffer().toString()),
      ['+OK\r\n', '-ERR x\r\n', ':-5\r\n', '$3\r\nfoo\r\n', '$-1\r\n', '*-1\r\n', '*0\r\n', '*2\r\n*1\r\n$0\r\n\r\n:1\r\n'],
    );
    assert.ok(replies[1].isError);
    assert.ok(
      replies.every((x) => x.raw.length === 1 && x.raw[0].buffer === input.buffer),
      'views',
    );
    assert.ok(p.idle);
  });

  it('treats an attribute and the value after it as one reply, typed by the value', () => {
    const input = B('|1\r\n+ttl\r\n:3\r\n>2\r\n+message\r\n+hi\r\n+OK\r\n');
    const { replies } = parseReplies(bytewise(input));
    assert.equal(replies.length, 2);
    assert.equal(replies[0].type, 0x3e);
    assert.ok(replies[0].isPush);
    assert.equal(replies[1].rawBuffer().toString(), '+OK\r\n');
  });

  for (const seed of [11, 12, 13]) {
    it(`fuzz: 2000 nested RESP3 replies split at random (seed ${seed})`, () => {
      const r = rng(seed);
      const want: Buffer[] = [];
      for (let i = 0; i < 2000; i++) want.push(randomReply(r, 4));
      const input = Buffer.concat(want);
      checkReplies(parseReplies([input]).replies, want);
      checkReplies(parseReplies(randomChunks(input, r, 7)).replies, want);
      checkReplies(parseReplies(randomChunks(input, r, 500)).replies, want);
      const { replies, p } = parseReplies(bytewise(input));
      checkReplies(replies, want);
      assert.equal(p.error, null);
      assert.ok(p.idle);
    });
  }

  it('fuzz: replies split at every boundary', () => {
    const r = rng(99);
    let want: Buffer[] = [];
    let input = Buffer.alloc(0);
    do {
      want = [];
      for (let i = 0; i < 40; i++) want.push(randomReply(r, 3));
      input = Buffer.concat(want);
    } while (input.length > 3000);
    for (let i = 0; i <= input.length; i++) checkReplies(parseReplies(splitAt(input, [i])).replies, want);
  });

  it('reports a malformed stream and stops', () => {
    for (const bad of ['?x\r\n', '$3\r\nfooXY', '*x\r\n', '$-2\r\n', '+OK\n', '$3\r\nfoo\r\r', '$\r\n']) {
      const { replies, p } = parseReplies(bytewise(B(bad)));
      assert.equal(replies.length, 0, bad);
      assert.match(p.error ?? '', /^Protocol error: /, JSON.stringify(bad));
    }
  });
});

describe('decodeReply', () => {
  it('decodes RESP2 and RESP3 values', () => {
    assert.equal(decodeReply(B('+OK\r\n')), 'OK');
    assert.equal(decodeReply(B(':42\r\n')), 42);
    assert.equal(decodeReply(B(':-9007199254740993\r\n')), -9007199254740993n);
    assert.deepEqual(decodeReply(B('$3\r\nfoo\r\n')), B('foo'));
    assert.equal(decodeReply(B('$3\r\nfoo\r\n'), { strings: true }), 'foo');
    assert.equal(decodeReply(B('$-1\r\n')), null);
    assert.equal(decodeReply(B('*-1\r\n')), null);
    assert.equal(decodeReply(B('_\r\n')), null);
    assert.equal(decodeReply(B('#t\r\n')), true);
    assert.equal(decodeReply(B(',1.5\r\n')), 1.5);
    assert.equal(decodeReply(B(',-inf\r\n')), -Infinity);
    assert.ok(Number.isNaN(decodeReply(B(',nan\r\n'))));
    assert.equal(decodeReply(B('(12345678901234567890\r\n')), 12345678901234567890n);
    assert.equal(decodeReply(B('=9\r\ntxt:hello\r\n'), { strings: true }), 'hello');
    const err = decodeReply(B('-WRONGTYPE Operation against a key\r\n'));
    assert.ok(err instanceof ReplyError);
    assert.equal(err.code, 'WRONGTYPE');
    assert.equal(err.message, 'WRONGTYPE Operation against a key');
    const blobErr = decodeReply(B('!8\r\nERR a\r\nb\r\n'));
    assert.ok(blobErr instanceof ReplyError && blobErr.message === 'ERR a\r\nb');
    // SCAN-style reply, as a fan-out merge sees it.
    assert.deepEqual(decodeReply(B('*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n'), { strings: true }), ['0', ['a', 'b']]);
    const m = decodeReply(B('%2\r\n$1\r\na\r\n:1\r\n+b\r\n~1\r\n:2\r\n'));
    assert.ok(m instanceof Map);
    assert.deepEqual(
      [...m.entries()],
      [
        ['a', 1],
        ['b', [2]],
      ],
    );
    assert.equal(decodeReply(B('|1\r\n+k\r\n+v\r\n:7\r\n')), 7);
    assert.deepEqual(decodeReply([B('*2\r\n:1'), B('\r\n:2\r\n')]), [1, 2]);
  });

  it('throws on incomplete or trailing input', () => {
    assert.throws(() => decodeReply(B('$3\r\nfo')));
    assert.throws(() => decodeReply(B('*2\r\n:1\r\n')));
    assert.throws(() => decodeReply(B('+OK\r\n+OK\r\n')));
    assert.throws(() => decodeReply(B('?\r\n')));
  });
});

describe('encode', () => {
  it('encodes commands and replies', () => {
    assert.equal(encodeCommand(['SET', 'k€', B('\r\n')]).toString(), '*3\r\n$3\r\nSET\r\n$4\r\nk€\r\n$2\r\n\r\n\r\n');
    assert.equal(encodeCommand([]).toString(), '*0\r\n');
    assert.equal(encodeError('ERR bad\r\nthing').toString(), '-ERR bad  thing\r\n');
    assert.equal(encodeError(B('ERR x')).toString(), '-ERR x\r\n');
    assert.equal(encodeSimple('OK').toString(), '+OK\r\n');
    assert.equal(encodeInteger(-12).toString(), ':-12\r\n');
    assert.equal(encodeInteger(2n ** 64n).toString(), ':18446744073709551616\r\n');
    assert.throws(() => encodeInteger(1.5));
    assert.equal(encodeBulk(null).toString(), '$-1\r\n');
    assert.equal(encodeBulk('').toString(), '$0\r\n\r\n');
    assert.equal(encodeBulk(B('abc')).toString(), '$3\r\nabc\r\n');
    assert.equal(encodeArray([encodeInteger(1), encodeBulk(null)]).toString(), '*2\r\n:1\r\n$-1\r\n');
    assert.equal(encodeArray(null).toString(), '*-1\r\n');
    const long = 'x'.repeat(12345);
    assert.deepEqual(decodeReply(encodeBulk(long), { strings: true }), long);
  });

  it('round-trips through the parser', () => {
    const r = rng(5);
    const args = [B('HSET'), ...Array.from({ length: 10 }, () => randomArg(r))];
    const { cmds } = parseChunks([encodeCommand(args)]);
    assert.deepEqual(cmds[0].args, args);
  });

  it('appendRaw merges adjacent views of one chunk', () => {
    const input = B('*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n');
    const { cmds } = parseChunks([input]);
    const out: Buffer[] = [];
    appendRaw(out, cmds[0].raw);
    appendRaw(out, cmds[2].raw);
    assert.equal(out.length, 2, 'not adjacent');
    const out2: Buffer[] = [];
    for (const c of cmds) appendRaw(out2, c.raw);
    assert.equal(out2.length, 1);
    assert.deepEqual(out2[0], input);
  });
});

// ---------------------------------------------------------------------------
// Against a real redis-server, when one is installed.

describe('against redis-server', () => {
  let redis: ScratchRedis;
  let sock = '';

  before(async () => {
    redis = await startScratchRedis('proxy-resp', () => ['--enable-debug-command', 'yes']);
    sock = redis.sock;
  });

  after(() => redis?.stop());

  /**
   * Sends `input`; resolves with everything received and whether redis
   * closed. No fixed window (the machine may be loaded): it waits for the
   * close when one is expected, and otherwise for `expectBytes` and then
   * `quietMs` more without a close; `timeoutMs` ends either wait.
   */
  function exchange(
    input: Buffer,
    expectBytes: number,
    expectClose: boolean,
    quietMs = 400,
    timeoutMs = 10_000,
  ): Promise<{ data: Buffer; closed: boolean }> {
    return new Promise((resolve, reject) => {
      const s = net.connect(sock);
      const bufs: Buffer[] = [];
      let got = 0;
      let done = false;
      let quiet: NodeJS.Timeout | undefined;
      const finish = (closed: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(quiet);
        clearTimeout(limit);
        s.destroy();
        resolve({ data: Buffer.concat(bufs), closed });
      };
      const armQuiet = () => {
        if (!expectClose && !quiet && got >= expectBytes) quiet = setTimeout(() => finish(false), quietMs);
      };
      s.on('data', (d) => {
        bufs.push(d);
        got += d.length;
        armQuiet();
      });
      s.on('close', () => finish(true));
      s.on('error', (e) => (done ? undefined : reject(e)));
      const limit = setTimeout(() => finish(false), timeoutMs);
      s.write(input);
      armQuiet();
    });
  }

  it('replies to every protocol case exactly as the parser predicts', async () => {
    // Each case's PINGs answer +PONG; then redis writes the error and closes.
    const cases: [string, string][] = [
      // Not the 512MB one: redis would reserve the memory for it.
      ...ERROR_CASES.filter(([label]) => !label.includes('512MB')).map(([l, i]): [string, string] => [l, i]),
      ['empty requests, then PING', '*0\r\n*-1\r\n\r\n  \r\nPING\r\n'],
      ['binary inline ECHO', "ECHO \"\\x00\\xff\"\r\nECHO '\\''\r\n"],
      ['LF-only and CR-CR-LF inline', '\nPING\nPING\r\r\n'],
    ];
    const predicted = cases.map(([, input]) => {
      const { cmds, p } = parseChunks([B(input)]);
      const want = Buffer.concat([
        ...cmds.map((c) => (c.name === 'ping' ? B('+PONG\r\n') : encodeBulk(c.arg(1)))),
        p.error === null ? Buffer.alloc(0) : p.errorReply(),
      ]);
      return { want, closes: p.error !== null };
    });
    const results = await Promise.all(cases.map(([, input], i) => exchange(B(input), predicted[i].want.length, predicted[i].closes)));
    cases.forEach(([label], i) => {
      assert.deepEqual(results[i].data.toString('latin1'), predicted[i].want.toString('latin1'), label);
      assert.equal(results[i].closed, predicted[i].closes, `${label}: closed`);
    });
  });

  it('ReplyParser splits a 5,000-command RESP2 pipeline exactly', async () => {
    const r = rng(2024);
    const cmds: Buffer[][] = [];
    const big = Buffer.alloc(200_000, 'v');
    for (let i = 0; i < 5000; i++) {
      const k = B(`key:${int(r, 50)}`);
      const v = randomArg(r);
      const pick = int(r, 16);
      const c = [
        ['SET', k, v],
        ['GET', k],
        ['GET', B(`missing:${i}`)],
        ['INCR', B(`ctr:${int(r, 5)}`)],
        ['RPUSH', B(`list:${int(r, 5)}`), v, v],
        ['LRANGE', B(`list:${int(r, 5)}`), B('0'), B('5')],
        ['HSET', B(`hash:${int(r, 5)}`), v, v],
        ['HGETALL', B(`hash:${int(r, 5)}`)],
        ['MGET', k, B('nope'), B(`key:${int(r, 50)}`)],
        ['XADD', B('stream'), B('*'), B('f'), v],
        ['XRANGE', B('stream'), B('-'), B('+'), B('COUNT'), B('3')],
        ['SCAN', B('0'), B('COUNT'), B('5')],
        ['NOSUCHCOMMAND', v],
        ['ECHO', i % 500 === 0 ? big : v],
        ['PING'],
        ['SMEMBERS', B(`list:${int(r, 5)}`)], // WRONGTYPE error
      ][pick];
      cmds.push(c as Buffer[]);
    }
    cmds[0] = [B('FLUSHALL')];
    const input = Buffer.concat(cmds.map((c) => encodeCommand(c)));

    // The request side must see the same 5,000 commands in the bytes we send.
    const req = parseChunks(randomChunks(input, r, 70000));
    assert.equal(req.cmds.length, 5000);
    assert.deepEqual(Buffer.concat(req.cmds.flatMap((c) => c.raw)), input);

    const { replies, received, parser: p } = await pipelineReplies(sock, input, (got) => got.length >= 5000);
    assert.equal(p.error, null);
    assert.equal(replies.length, 5000);
    assert.ok(p.idle, 'nothing left over');
    const all = Buffer.concat(received);
    assert.deepEqual(Buffer.concat(replies.flatMap((x) => x.raw)), all);
    // Spot-check content through decodeReply.
    for (let i = 0; i < 5000; i++) {
      const name = cmds[i][0].toString();
      const v = decodeReply(replies[i].raw);
      if (name === 'ECHO') assert.deepEqual(v, cmds[i][1]);
      if (name === 'PING') assert.equal(v, 'PONG');
      if (name === 'NOSUCHCOMMAND') assert.ok(v instanceof ReplyError && v.code === 'ERR' && replies[i].isError);
      if (name === 'MGET') assert.ok(Array.isArray(v) && v.length === 3 && v[1] === null);
    }
    // And re-split the same bytes at random.
    const again = parseReplies(randomChunks(all, r, 3000)).replies;
    assert.deepEqual(
      again.map((x) => x.rawLength),
      replies.map((x) => x.rawLength),
    );
  });

  it('ReplyParser handles RESP3 (maps, sets, doubles, attributes, pushes, big numbers)', async () => {
    const cmds: string[][] = [['HELLO', '3'], ['FLUSHALL']];
    for (let i = 0; i < 300; i++) {
      cmds.push(['HSET', `h${i % 7}`, `f${i}`, `${i}`]);
      cmds.push(['HGETALL', `h${i % 7}`]);
      cmds.push(['SADD', `s${i % 3}`, `${i}`]);
      cmds.push(['SMEMBERS', `s${i % 3}`]);
      cmds.push(['ZADD', 'z', `${i}.5`, `m${i}`]);
      cmds.push(['ZSCORE', 'z', `m${i}`]);
      cmds.push(['GET', 'nothing']);
      cmds.push(['DEBUG', 'PROTOCOL', ['attrib', 'push', 'bignum', 'verbatim', 'true', 'null', 'double', 'map', 'set'][i % 9]]);
    }
    const input = Buffer.concat(cmds.map((c) => encodeCommand(c)));
    const pushes = cmds.filter((c) => c[2] === 'push').length;
    const { replies, received } = await pipelineReplies(sock, input, (got) => got.length >= cmds.length + pushes);
    assert.equal(replies.filter((x) => !x.isPush).length, cmds.length);
    assert.equal(replies.filter((x) => x.isPush).length, pushes);
    assert.deepEqual(Buffer.concat(replies.flatMap((x) => x.raw)), Buffer.concat(received));
    const types = new Set(replies.map((x) => String.fromCharCode(x.type)));
    for (const t of '%~,_>(=#') assert.ok(types.has(t), `saw type ${t}`);
    const nonPush = replies.filter((x) => !x.isPush);
    const hello = decodeReply(nonPush[0].raw, { strings: true });
    assert.ok(hello instanceof Map && hello.get('proto') === 3);
    const attribIdx = cmds.findIndex((c) => c[2] === 'attrib');
    assert.equal(nonPush[attribIdx].type, 0x24, 'attribute looked through to the bulk');
    assert.equal(decodeReply(nonPush[attribIdx].raw, { strings: true }), 'Some real reply following the attribute');
    const zscore = cmds.findIndex((c) => c[0] === 'ZSCORE');
    assert.equal(decodeReply(nonPush[zscore].raw), 0.5);
  });
});
