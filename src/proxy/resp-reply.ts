/**
 * RESP replies, for the proxy's hot path: what a shard sends back.
 *
 * - `ReplyParser` only finds where each reply ends (RESP2 and RESP3, any
 *   nesting) and hands it back as a `RespReply`, so replies can be forwarded
 *   as they came.
 * - `decodeReply` turns a small reply into JS values (`RespValue`, with
 *   `ReplyError` for error replies) when the proxy must merge fan-out results.
 *
 * Client requests are read by `resp-request.ts`; the replies the proxy writes
 * itself are built by `resp-encode.ts`.
 *
 * For maintainers: `ReplyParser` is a resumable state machine that looks at
 * each byte once; a length line split across chunks is resumed, never
 * re-scanned. Chunks are kept by reference: raw ranges are `subarray` views of
 * them. Views stay valid as long as the caller does not reuse the chunk memory
 * it pushed, which holds for Buffers from a `net.Socket` 'data' event.
 */

import { CR, EMPTY, LF, MINUS } from './resp-bytes.js';

/** One complete reply from a shard, undecoded. */
export class RespReply {
  /**
   * Type byte of the reply's value ('+', '-', '$', '*', '>', …; an attribute
   * prefix is looked through), as a char code.
   */
  readonly type: number;
  /** The reply's exact bytes, as views of the pushed chunks. */
  readonly raw: Buffer[];
  readonly rawLength: number;

  constructor(type: number, raw: Buffer[], rawLength: number) {
    this.type = type;
    this.raw = raw;
    this.rawLength = rawLength;
  }

  /** True for `-ERR …` and RESP3 blob errors. */
  get isError(): boolean {
    return this.type === 0x2d || this.type === 0x21;
  }

  /** True for RESP3 out-of-band push data (pub/sub messages, invalidations). */
  get isPush(): boolean {
    return this.type === 0x3e;
  }

  rawBuffer(): Buffer {
    return this.raw.length === 1 ? this.raw[0] : Buffer.concat(this.raw, this.rawLength);
  }
}

const R_TYPE = 0; // at an element's type byte
const R_LINE = 1; // inside a simple line, looking for LF
const R_LEN = 2; // inside the length of a blob or aggregate
const R_BLOB = 3; // inside a blob's data and CRLF
const R_ERROR = 4;

// What a type byte introduces.
const T_BAD = 0;
const T_SIMPLE = 1; // + - : , # _ (
const T_BLOB = 2; // $ = !
const T_AGG = 3; // * ~ >
const T_MAP = 4; // %
const T_ATTR = 5; // |
const TYPE_KIND = new Uint8Array(256);
for (const c of '+-:,#_(') TYPE_KIND[c.charCodeAt(0)] = T_SIMPLE;
for (const c of '$=!') TYPE_KIND[c.charCodeAt(0)] = T_BLOB;
for (const c of '*~>') TYPE_KIND[c.charCodeAt(0)] = T_AGG;
TYPE_KIND['%'.charCodeAt(0)] = T_MAP;
TYPE_KIND['|'.charCodeAt(0)] = T_ATTR;

/**
 * Streaming splitter for a shard's replies (RESP2 and RESP3). It never
 * decodes content; it counts elements still owed by the current reply, which
 * is all nesting needs since elements arrive depth-first. A malformed stream
 * sets `error` and stops: the link is out of sync and must be dropped.
 */
export class ReplyParser {
  error: string | null = null;

  private cur: Buffer = EMPTY;
  private pos = 0;
  private queue: Buffer[] = [];
  private queued = 0;

  private state = R_TYPE;
  private start = 0;
  private rawPieces: Buffer[] | null = null;
  private rawLen = 0;
  private owed = 0; // elements still needed; 0 between replies
  private replyType = -1;
  private elemKind = T_BAD;
  private lineCR = false; // previous byte of a simple line was CR
  private numVal = 0;
  private numNeg = false;
  private numDigits = 0;
  private numCR = false;
  private blobLeft = 0;
  private crlfLeft = 0;

  push(chunk: Buffer): void {
    if (this.state === R_ERROR || chunk.length === 0) return;
    if (this.pos >= this.cur.length && this.queue.length === 0) {
      this.cur = chunk;
      this.pos = 0;
      this.start = 0;
    } else {
      this.queue.push(chunk);
      this.queued += chunk.length;
    }
  }

  get buffered(): number {
    return this.cur.length - this.pos + this.queued;
  }

  /** True between replies (nothing partially received). */
  get idle(): boolean {
    return this.owed === 0 && this.buffered === 0;
  }

  next(): RespReply | null {
    let buf = this.cur;
    let pos = this.pos;
    let len = buf.length;
    for (;;) {
      if (pos >= len) {
        if (this.state === R_ERROR || !this.nextChunk(len)) {
          this.pos = 0;
          return null;
        }
        buf = this.cur;
        pos = 0;
        len = buf.length;
      }
      switch (this.state) {
        case R_TYPE: {
          const t = buf[pos];
          if (this.owed === 0) {
            this.owed = 1;
            this.start = pos;
            this.rawPieces = null;
            this.rawLen = 0;
            this.replyType = -1;
          }
          const kind = TYPE_KIND[t];
          if (kind === T_BAD) return this.fail(`unexpected byte 0x${t.toString(16)} at the start of a reply element`);
          // Only the top-level value slot has owed === 1 (see RespReply.type).
          if (this.replyType < 0 && this.owed === 1 && kind !== T_ATTR) this.replyType = t;
          this.elemKind = kind;
          pos++;
          if (kind === T_SIMPLE) {
            this.state = R_LINE;
            this.lineCR = false;
          } else {
            this.state = R_LEN;
            this.numVal = 0;
            this.numNeg = false;
            this.numDigits = 0;
            this.numCR = false;
          }
          break;
        }

        case R_LINE: {
          const lf = buf.indexOf(LF, pos);
          if (lf < 0) {
            this.lineCR = buf[len - 1] === CR;
            pos = len;
            break;
          }
          if (!(lf > pos ? buf[lf - 1] === CR : this.lineCR)) return this.fail('LF without CR in a reply line');
          pos = lf + 1;
          const r = this.elementDone(0, buf, pos);
          if (r !== null) {
            this.pos = pos;
            return r;
          }
          break;
        }

        case R_LEN: {
          if (!this.numCR) {
            let v = this.numVal;
            let d = this.numDigits;
            while (pos < len) {
              const b = buf[pos];
              if (b >= 48 && b <= 57) {
                v = v * 10 + (b - 48);
                d++;
              } else if (b === MINUS && d === 0 && !this.numNeg) {
                this.numNeg = true;
              } else if (b === CR) {
                break;
              } else {
                return this.fail('invalid length in a reply');
              }
              pos++;
            }
            this.numVal = v;
            this.numDigits = d;
            if (pos === len) break;
            if (d === 0 || d > 15) return this.fail('invalid length in a reply');
            this.numCR = true;
            pos++;
            if (pos === len) break;
          }
          if (buf[pos] !== LF) return this.fail('length line without CRLF in a reply');
          pos++;
          const n = this.numNeg ? -this.numVal : this.numVal;
          if (n < -1) return this.fail('negative length in a reply');
          const kind = this.elemKind;
          if (kind === T_BLOB && n >= 0) {
            this.blobLeft = n;
            this.crlfLeft = 2;
            this.state = R_BLOB;
            break;
          }
          // A null ($-1, *-1) has no children.
          const children = n < 0 ? 0 : kind === T_AGG ? n : kind === T_MAP ? 2 * n : kind === T_ATTR ? 2 * n + 1 : 0;
          const r = this.elementDone(children, buf, pos);
          if (r !== null) {
            this.pos = pos;
            return r;
          }
          break;
        }

        case R_BLOB: {
          if (this.blobLeft > 0) {
            const take = Math.min(this.blobLeft, len - pos);
            this.blobLeft -= take;
            pos += take;
            if (this.blobLeft > 0) break;
          }
          while (this.crlfLeft > 0 && pos < len) {
            if (buf[pos] !== (this.crlfLeft === 2 ? CR : LF)) return this.fail('blob without CRLF in a reply');
            this.crlfLeft--;
            pos++;
          }
          if (this.crlfLeft > 0) break;
          const r = this.elementDone(0, buf, pos);
          if (r !== null) {
            this.pos = pos;
            return r;
          }
          break;
        }

        default:
          return null;
      }
    }
  }

  private elementDone(children: number, buf: Buffer, pos: number): RespReply | null {
    this.state = R_TYPE;
    this.owed += children - 1;
    if (this.owed > 0) return null;
    const last = buf.subarray(this.start, pos);
    const rawLen = this.rawLen + last.length;
    let raw: Buffer[];
    if (this.rawPieces === null) {
      raw = [last];
    } else {
      raw = this.rawPieces;
      if (last.length > 0) raw.push(last);
    }
    this.rawPieces = null;
    this.rawLen = 0;
    this.start = pos;
    return new RespReply(this.replyType, raw, rawLen);
  }

  private nextChunk(len: number): boolean {
    if (this.owed > 0 && len > this.start) {
      (this.rawPieces ??= []).push(this.cur.subarray(this.start, len));
      this.rawLen += len - this.start;
    }
    this.start = 0;
    const next = this.queue.shift();
    if (next === undefined) {
      this.cur = EMPTY;
      return false;
    }
    this.queued -= next.length;
    this.cur = next;
    return true;
  }

  private fail(message: string): null {
    this.error = `Protocol error: ${message}`;
    this.state = R_ERROR;
    this.cur = EMPTY;
    this.pos = 0;
    this.queue = [];
    this.queued = 0;
    this.rawPieces = null;
    return null;
  }
}

// ---------------------------------------------------------------------------
// Decoding small replies
// ---------------------------------------------------------------------------

/** An error reply (`-ERR …`, `!…`), decoded. `code` is its first word. */
export class ReplyError extends Error {
  readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = 'ReplyError';
    const sp = message.indexOf(' ');
    this.code = sp < 0 ? message : message.slice(0, sp);
  }
}

export type RespValue = string | Buffer | number | bigint | boolean | null | ReplyError | RespValue[] | Map<RespValue, RespValue>;

export interface DecodeOptions {
  /** Decode bulk strings as UTF-8 strings instead of Buffers. */
  strings?: boolean;
}

/**
 * Decodes one complete reply into JS values, for merging fan-out results:
 * simple strings → string; bulk and verbatim strings → Buffer (or string);
 * integers → number, or bigint beyond 2^53; doubles → number; big numbers →
 * bigint; booleans; nulls → null; errors → ReplyError; arrays, sets and
 * pushes → arrays; maps → Map whose string keys are JS strings. Attributes
 * are skipped. Throws on incomplete or malformed input.
 */
export function decodeReply(input: Buffer | readonly Buffer[], options: DecodeOptions = {}): RespValue {
  const buf = Buffer.isBuffer(input) ? input : input.length === 1 ? input[0] : Buffer.concat(input);
  const d = new Decoder(buf, options.strings === true);
  const v = d.value();
  if (d.pos !== buf.length) throw new Error('decodeReply: trailing bytes after the reply');
  return v;
}

class Decoder {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly strings: boolean,
  ) {}

  private line(): string {
    const lf = this.buf.indexOf(LF, this.pos);
    if (lf < 0 || lf === this.pos || this.buf[lf - 1] !== CR) throw new Error('decodeReply: incomplete or malformed line');
    const s = this.buf.toString('utf8', this.pos, lf - 1);
    this.pos = lf + 1;
    return s;
  }

  private length(): number {
    const s = this.line();
    if (!/^-?\d+$/.test(s)) throw new Error(`decodeReply: invalid length ${JSON.stringify(s)}`);
    return Number(s);
  }

  private blob(n: number): Buffer {
    const end = this.pos + n;
    if (end + 2 > this.buf.length || this.buf[end] !== CR || this.buf[end + 1] !== LF) {
      throw new Error('decodeReply: incomplete or malformed bulk');
    }
    const b = this.buf.subarray(this.pos, end);
    this.pos = end + 2;
    return b;
  }

  value(): RespValue {
    if (this.pos >= this.buf.length) throw new Error('decodeReply: incomplete reply');
    const t = this.buf[this.pos++];
    switch (t) {
      case 0x2b: // +
        return this.line();
      case 0x2d: // -
        return new ReplyError(this.line());
      case 0x3a: {
        // :
        const s = this.line();
        const n = Number(s);
        if (!/^-?\d+$/.test(s)) throw new Error(`decodeReply: invalid integer ${JSON.stringify(s)}`);
        return Number.isSafeInteger(n) ? n : BigInt(s);
      }
      case 0x2c: {
        // ,
        const s = this.line().toLowerCase();
        if (s === 'inf' || s === '+inf') return Infinity;
        if (s === '-inf') return -Infinity;
        if (s === 'nan') return NaN;
        const n = Number(s);
        if (Number.isNaN(n)) throw new Error(`decodeReply: invalid double ${JSON.stringify(s)}`);
        return n;
      }
      case 0x28: // (
        return BigInt(this.line());
      case 0x23: {
        // #
        const s = this.line();
        if (s !== 't' && s !== 'f') throw new Error(`decodeReply: invalid boolean ${JSON.stringify(s)}`);
        return s === 't';
      }
      case 0x5f: // _
        this.line0();
        return null;
      case 0x24: // $
      case 0x3d: // =
      case 0x21: {
        // !
        const n = this.length();
        if (n < 0) return null;
        let b = this.blob(n);
        if (t === 0x21) return new ReplyError(b.toString('utf8'));
        if (t === 0x3d) b = b.subarray(4); // "txt:" / "mkd:" format prefix
        return this.strings ? b.toString('utf8') : b;
      }
      case 0x2a: // *
      case 0x7e: // ~
      case 0x3e: {
        // >
        const n = this.length();
        if (n < 0) return null;
        const a: RespValue[] = [];
        for (let i = 0; i < n; i++) a.push(this.value());
        return a;
      }
      case 0x25: {
        // %
        const n = this.length();
        if (n < 0) return null;
        const m = new Map<RespValue, RespValue>();
        for (let i = 0; i < n; i++) {
          let k = this.value();
          if (Buffer.isBuffer(k)) k = k.toString('utf8');
          m.set(k, this.value());
        }
        return m;
      }
      case 0x7c: {
        // | attribute: metadata about the next value, which is the reply
        const n = this.length();
        for (let i = 0; i < 2 * n; i++) this.value();
        return this.value();
      }
      default:
        throw new Error(`decodeReply: unexpected type byte 0x${t.toString(16)}`);
    }
  }

  private line0(): void {
    if (this.buf[this.pos] !== CR || this.buf[this.pos + 1] !== LF) throw new Error('decodeReply: malformed null');
    this.pos += 2;
  }
}
