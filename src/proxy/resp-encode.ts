/**
 * RESP encoders: the few replies and commands the proxy writes itself
 * (errors, simple strings, integers, bulks, arrays, multibulk commands for
 * shards), plus `appendRaw`, which batches forwarded views for one write.
 * Parsing lives in `resp-request.ts` (client requests) and `resp-reply.ts`
 * (shard replies).
 */

import { CR, DOLLAR, LF, STAR } from './resp-bytes.js';

/** RESP2 null bulk string. */
export const NULL_BULK: Buffer = Buffer.from('$-1\r\n');
/** RESP2 null array. */
export const NULL_ARRAY: Buffer = Buffer.from('*-1\r\n');
export const OK: Buffer = Buffer.from('+OK\r\n');

/** A command as a multibulk request (what clients send). */
export function encodeCommand(args: readonly (string | Buffer)[]): Buffer {
  const n = args.length;
  let size = 3 + decLen(n);
  const lens = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const a = args[i];
    const l = typeof a === 'string' ? Buffer.byteLength(a, 'utf8') : a.length;
    lens[i] = l;
    size += 5 + decLen(l) + l;
  }
  const out = Buffer.allocUnsafe(size);
  let p = writeHeader(out, 0, STAR, n);
  for (let i = 0; i < n; i++) {
    const a = args[i];
    p = writeHeader(out, p, DOLLAR, lens[i]);
    p += typeof a === 'string' ? out.write(a, p, 'utf8') : a.copy(out, p);
    out[p++] = CR;
    out[p++] = LF;
  }
  return out;
}

/**
 * An error reply. `msg` includes its code (`ERR …`, `WRONGTYPE …`); CR and LF
 * inside become spaces, as redis does, so user text cannot break the stream.
 */
export function encodeError(msg: string | Buffer): Buffer {
  return line(0x2d, msg);
}

/** A simple-string reply (`+OK`). */
export function encodeSimple(msg: string | Buffer): Buffer {
  return line(0x2b, msg);
}

export function encodeInteger(n: number | bigint): Buffer {
  if (typeof n === 'number' && !Number.isInteger(n)) throw new RangeError(`not an integer: ${n}`);
  return Buffer.from(`:${n}\r\n`, 'latin1');
}

/** A bulk string, or the RESP2 null bulk for null. */
export function encodeBulk(data: Buffer | string | null): Buffer {
  if (data === null) return NULL_BULK;
  const l = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
  const out = Buffer.allocUnsafe(5 + decLen(l) + l);
  let p = writeHeader(out, 0, DOLLAR, l);
  p += typeof data === 'string' ? out.write(data, p, 'utf8') : data.copy(out, p);
  out[p++] = CR;
  out[p] = LF;
  return out;
}

/** An array of already-encoded items (or the RESP2 null array for null). */
export function encodeArray(items: readonly Buffer[] | null): Buffer {
  if (items === null) return NULL_ARRAY;
  let size = 3 + decLen(items.length);
  for (const it of items) size += it.length;
  const out = Buffer.allocUnsafe(size);
  let p = writeHeader(out, 0, STAR, items.length);
  for (const it of items) p += it.copy(out, p);
  return out;
}

/**
 * Appends views to `out`, merging a view with the previous one when they are
 * adjacent in the same chunk, so a pipeline of commands bound for one shard
 * is written as one slice instead of one per command.
 */
export function appendRaw(out: Buffer[], views: readonly Buffer[]): void {
  for (const v of views) {
    if (v.length === 0) continue;
    const last = out.length > 0 ? out[out.length - 1] : undefined;
    if (last !== undefined && last.buffer === v.buffer && last.byteOffset + last.length === v.byteOffset) {
      out[out.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + v.length);
    } else {
      out.push(v);
    }
  }
}

function line(prefix: number, msg: string | Buffer): Buffer {
  const body = typeof msg === 'string' ? Buffer.from(msg, 'utf8') : msg;
  const out = Buffer.allocUnsafe(body.length + 3);
  out[0] = prefix;
  body.copy(out, 1);
  for (let i = 1; i <= body.length; i++) {
    if (out[i] === CR || out[i] === LF) out[i] = 32;
  }
  out[body.length + 1] = CR;
  out[body.length + 2] = LF;
  return out;
}

function decLen(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

function writeHeader(out: Buffer, p: number, prefix: number, n: number): number {
  out[p++] = prefix;
  p += out.write(String(n), p, 'latin1');
  out[p++] = CR;
  out[p++] = LF;
  return p;
}
