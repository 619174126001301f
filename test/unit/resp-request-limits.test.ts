// The request parser's memory under hostile frames: a command of many
// arguments (offset mode, above BIG_ARGC) parses to the same arguments and raw
// bytes as the ordinary path, however it is split; an unfinished one holds
// about twice its bytes; a command trickled in tiny chunks keeps few views.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BIG_ARGC, RequestParser, type RespCommand } from '../../src/proxy/resp-request.js';
import { rng } from '../support/rng.js';

const frame = (args: Buffer[]) =>
  Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap((a) => [Buffer.from(`$${a.length}\r\n`), a, Buffer.from('\r\n')])]);

function parseAll(bytes: Buffer, cut: (n: number) => number): RespCommand[] {
  const p = new RequestParser();
  const out: RespCommand[] = [];
  for (let i = 0; i < bytes.length; ) {
    const n = Math.max(1, Math.min(bytes.length - i, cut(bytes.length - i)));
    p.push(Buffer.from(bytes.subarray(i, i + n))); // a fresh Buffer per chunk, as a socket gives
    i += n;
    for (let c = p.next(); c !== null; c = p.next()) out.push(c);
  }
  assert.equal(p.error, null);
  return out;
}

test('a command above BIG_ARGC parses to the same arguments and raw bytes, however it is cut', () => {
  const r = rng(7);
  const args = [Buffer.from('RPUSH'), Buffer.from('k')];
  for (let i = 0; i < BIG_ARGC + 500; i++) args.push(Buffer.from('x'.repeat(Math.floor(r() * 40)) + i));
  const small = [Buffer.from('SET'), Buffer.from('a'), Buffer.from('b')];
  const bytes = Buffer.concat([frame(small), frame(args), frame(small)]);
  for (const cut of [() => bytes.length, () => 1, () => 7, () => 1 + Math.floor(r() * 3000)]) {
    const cmds = parseAll(bytes, cut);
    assert.equal(cmds.length, 3);
    assert.equal(cmds[1].name, 'rpush');
    assert.equal(cmds[1].argc, args.length);
    assert.ok(cmds[1].args.every((a, i) => a.equals(args[i])));
    assert.ok(cmds[1].rawBuffer().equals(frame(args)));
    assert.ok(
      cmds[2].args.every((a, i) => a.equals(small[i])),
      'the parser goes on normally after it',
    );
  }
});

test('an unfinished *1000000 frame of one-byte arguments holds about twice its bytes', () => {
  const p = new RequestParser();
  const one = Buffer.from('$1\r\na\r\n');
  const chunk = Buffer.concat([Buffer.alloc(0), ...Array(9362).fill(one)]); // ~64 KiB, whole arguments
  global.gc?.();
  const m0 = process.memoryUsage();
  p.push(Buffer.from('*1000000\r\n'));
  let sent = 0;
  for (let i = 0; i < 106; i++) {
    // 106 × 9362 = 992,372 arguments, never completed
    p.push(Buffer.from(chunk));
    sent += chunk.length;
    assert.equal(p.next(), null);
  }
  assert.equal(p.error, null);
  assert.ok(p.pendingBytes >= sent, 'the query buffer counts what is held');
  // What the parser holds besides the chunks themselves: no view per argument, a view per chunk, 8 bytes of offsets per argument.
  const inner = p as unknown as { argv: unknown[]; rawPieces: Buffer[] | null; offs: Uint32Array | null };
  assert.equal(inner.argv.length, 0, 'no Buffer view per argument');
  assert.ok((inner.rawPieces?.length ?? 0) <= 107, `${inner.rawPieces?.length} views for 107 chunks`);
  assert.ok(inner.offs!.byteLength <= 2 * 8 * 992_372 + 8 * 4096, `${inner.offs!.byteLength} bytes of offsets`);
  // With --expose-gc, the heap as a whole: the bytes themselves plus the offsets (+ slack for the heap's noise).
  if (global.gc) {
    global.gc();
    const m1 = process.memoryUsage();
    const held = m1.heapUsed - m0.heapUsed + (m1.arrayBuffers - m0.arrayBuffers);
    assert.ok(held < sent * 4, `held ${(held / 1e6).toFixed(1)} MB for ${(sent / 1e6).toFixed(1)} MB sent`);
  }
});

test('a command trickled in tiny chunks keeps few views of them', () => {
  const p = new RequestParser();
  const bytes = frame([Buffer.from('SET'), Buffer.from('k'), Buffer.alloc(200_000, 0x61)]);
  for (let i = 0; i < bytes.length - 1; i += 3) {
    p.push(Buffer.from(bytes.subarray(i, Math.min(i + 3, bytes.length - 1))));
    assert.equal(p.next(), null);
  }
  const views = (p as unknown as { rawPieces: Buffer[] | null }).rawPieces?.length ?? 0;
  assert.ok(views < 2000, `${views} views for ${Math.ceil(bytes.length / 3)} chunks`);
  p.push(bytes.subarray(bytes.length - 1));
  const cmd = p.next()!;
  assert.ok(cmd.rawBuffer().equals(bytes));
  assert.equal(cmd.arg(2).length, 200_000);
});
