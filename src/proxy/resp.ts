/**
 * RESP for the proxy's hot path.
 *
 * - `RequestParser` reads what clients send. It accepts exactly what
 *   redis-server 7.0 accepts (multibulk and inline), reports protocol errors
 *   with redis's own texts, and hands each command back with its original
 *   bytes so the proxy can forward them without re-encoding.
 * - `ReplyParser` reads what a shard sends back: it only finds where each
 *   reply ends (RESP2 and RESP3, any nesting), so replies can be forwarded as
 *   they came; `decodeReply` turns a small reply into JS values when the proxy
 *   must merge fan-out results.
 * - `encode*` build the few replies the proxy writes itself.
 *
 * Usage:
 *
 *   const p = new RequestParser();
 *   socket.on('data', (chunk) => {
 *     p.push(chunk);
 *     for (let cmd = p.next(); cmd !== null; cmd = p.next()) route(cmd);
 *     if (p.error !== null) { socket.end(p.errorReply()); }
 *   });
 *
 * For maintainers: both parsers are resumable state machines that look at each
 * byte once; a length line or an inline request split across chunks is
 * resumed, never re-scanned. Chunks are kept by reference: arguments and raw
 * ranges are `subarray` views of them, and bytes are copied only when one
 * argument straddles chunks (and then only when it is first read). Views stay
 * valid as long as the caller does not reuse the chunk memory it pushed, which
 * holds for Buffers from a `net.Socket` 'data' event.
 */

const CR = 13;
const LF = 10;
const STAR = 42; // '*'
const DOLLAR = 36; // '$'
const MINUS = 45; // '-'

/** redis's PROTO_INLINE_MAX_SIZE: the longest inline request or length line. */
export const PROTO_INLINE_MAX_SIZE = 64 * 1024;
/** redis's default proto-max-bulk-len. */
export const PROTO_MAX_BULK_LEN = 512 * 1024 * 1024;
/** redis 7.0 rejects a multibulk count above INT_MAX. */
export const PROTO_MAX_MULTIBULK_LEN = 2147483647;
/** Before AUTH, redis 7.0 refuses more than 10 arguments… */
export const PROTO_UNAUTH_MAX_MULTIBULK_LEN = 10;
/** …and bulks longer than 16 KiB. */
export const PROTO_UNAUTH_MAX_BULK_LEN = 16384;

const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

export interface RequestParserOptions {
  /** Longest bulk argument (redis `proto-max-bulk-len`); default 512 MiB. */
  maxBulkLength?: number;
  /** Largest multibulk count; default INT_MAX, as redis 7.0. */
  maxMultibulkLength?: number;
  /** Accept inline commands (`PING\r\n`); default true, as redis for clients. */
  allowInline?: boolean;
  /**
   * Require CRLF where redis merely skips two bytes (after a bulk, and after
   * the CR of a length line). Off by default: redis accepts `$3\r\nfooXY`, and
   * forwarding such bytes to a shard yields the same command either way.
   */
  strict?: boolean;
  /** Apply redis's pre-AUTH limits (10 arguments, 16 KiB bulks); default false. */
  authRequired?: boolean;
}

/**
 * One command from a client. `raw` holds its original bytes (views of the
 * pushed chunks, in order); arguments are views too and are only copied when
 * one straddled chunks, on first access.
 */
export class RespCommand {
  /** Command name, ASCII lower-cased (redis matches names case-insensitively). */
  readonly name: string;
  /** Number of arguments, the name included. */
  readonly argc: number;
  /** The command's exact bytes, as one or more views of the input chunks. */
  readonly raw: Buffer[];
  /** Total length of `raw`. */
  readonly rawLength: number;
  /** True when the client used the inline form (`GET foo\r\n`). */
  readonly inline: boolean;
  // An entry is a Buffer, or the pieces of an argument that straddled chunks.
  private readonly argv: (Buffer | Buffer[])[];
  private split: boolean;

  constructor(
    name: string,
    argv: (Buffer | Buffer[])[],
    split: boolean,
    raw: Buffer[],
    rawLength: number,
    inline: boolean,
  ) {
    this.name = name;
    this.argc = argv.length;
    this.argv = argv;
    this.split = split;
    this.raw = raw;
    this.rawLength = rawLength;
    this.inline = inline;
  }

  /** Argument `i` (0 is the name as sent); copies only if it straddled chunks. */
  arg(i: number): Buffer {
    const a = this.argv[i];
    if (a === undefined) throw new RangeError(`argument ${i} out of range (argc ${this.argc})`);
    if (!Array.isArray(a)) return a;
    const joined = Buffer.concat(a);
    this.argv[i] = joined;
    return joined;
  }

  /** All arguments, the name first (argv as redis sees it). */
  get args(): Buffer[] {
    if (this.split) {
      for (let i = 0; i < this.argv.length; i++) this.arg(i);
      this.split = false;
    }
    return this.argv as Buffer[];
  }

  /** The raw bytes as one Buffer (copies only if there are several views). */
  rawBuffer(): Buffer {
    return this.raw.length === 1 ? this.raw[0] : Buffer.concat(this.raw, this.rawLength);
  }
}

// Parser states.
const S_START = 0; // at the first byte of a command
const S_LINE = 1; // inside a `*count` or `$len` line, looking for CR
const S_LINE_CR = 2; // saw the CR of a length line; one more byte ends it
const S_BULK = 3; // inside a bulk's data or its CRLF
const S_INLINE = 4; // inside an inline request, looking for LF
const S_STALL = 5; // saw a NUL before the line ended; see `stall`
const S_ERROR = 6;

const LINE_COUNT = 0;
const LINE_BULK = 1;
const LINE_INLINE = 2;

const TOO_BIG = [
  'ERR Protocol error: too big mbulk count string',
  'ERR Protocol error: too big bulk count string',
  'ERR Protocol error: too big inline request',
];

/**
 * Streaming parser for client requests. `push` chunks as they arrive, then
 * call `next` until it returns null. After a protocol error `next` returns
 * null for good and `error` holds redis's text: send `errorReply()` after the
 * replies of the commands already returned, then close the connection.
 * Empty requests (a blank inline line, `*0`, `*-1`) are consumed silently,
 * like redis does; their bytes belong to no command's `raw`.
 */
export class RequestParser {
  /** The protocol error (e.g. `ERR Protocol error: invalid bulk length`), or null. */
  error: string | null = null;
  /** See `RequestParserOptions.authRequired`; the proxy clears it after AUTH. */
  authRequired: boolean;

  private readonly maxBulk: number;
  private readonly maxMultibulk: number;
  private readonly allowInline: boolean;
  private readonly strict: boolean;

  private cur: Buffer = EMPTY;
  private pos = 0;
  private queue: Buffer[] = [];
  private queued = 0; // bytes in `queue`

  private state = S_START;
  // The command being parsed: where it starts in `cur`, and the views of the
  // chunks it already spans.
  private cmdStart = 0;
  private rawPieces: Buffer[] | null = null;
  private rawLen = 0;
  private argv: (Buffer | Buffer[])[] = [];
  private argvSplit = false;
  private argsLeft = 0;

  // Length-line state. The number is validated as redis's string2ll does
  // (no sign but '-', no leading zeros, at most 20 characters, fits in int64).
  private lineKind = LINE_COUNT;
  private lineLen = 0; // bytes since the line's first byte ('*', '$', …)
  private lineFirst = 0;
  private numVal = 0;
  private numBig: bigint | null = null; // exact value once doubles could round
  private numNeg = false;
  private numBad = false;
  private numZero = false;

  // Bulk state.
  private bulkLen = 0;
  private bulkGot = 0;
  private bulkPieces: Buffer[] | null = null;
  private bulkArg: Buffer | null = null;
  private crlfLeft = 0;

  // Inline state.
  private inlineStart = 0;
  private inlinePieces: Buffer[] | null = null;

  constructor(options: RequestParserOptions = {}) {
    this.maxBulk = options.maxBulkLength ?? PROTO_MAX_BULK_LEN;
    this.maxMultibulk = options.maxMultibulkLength ?? PROTO_MAX_MULTIBULK_LEN;
    this.allowInline = options.allowInline ?? true;
    this.strict = options.strict ?? false;
    this.authRequired = options.authRequired ?? false;
  }

  /** Queue a chunk of client bytes. Chunks are kept by reference, not copied. */
  push(chunk: Buffer): void {
    if (this.state === S_ERROR || chunk.length === 0) return;
    if (this.pos >= this.cur.length && this.queue.length === 0) {
      // Parsing is between chunks: the old one was already accounted for.
      this.cur = chunk;
      this.pos = 0;
      this.cmdStart = 0;
      this.inlineStart = 0;
    } else {
      this.queue.push(chunk);
      this.queued += chunk.length;
    }
  }

  /** Bytes pushed but not yet parsed (for query-buffer limits). */
  get buffered(): number {
    return this.cur.length - this.pos + this.queued;
  }

  /**
   * Bytes held for commands not yet returned: the unparsed input plus the
   * part of a command already consumed (a big bulk arriving in pieces). This
   * is redis's query buffer, for the client-query-buffer-limit check.
   */
  get pendingBytes(): number {
    const partial = this.state === S_START || this.state === S_ERROR ? 0 : this.rawLen;
    return partial + this.buffered;
  }

  /** The RESP error reply for `error` (redis writes the byte of `got '%c'` raw). */
  errorReply(): Buffer {
    return Buffer.from(`-${this.error ?? 'ERR Protocol error'}\r\n`, 'latin1');
  }

  /** The next complete command, or null when more bytes are needed (or after an error). */
  next(): RespCommand | null {
    let buf = this.cur;
    let pos = this.pos;
    let len = buf.length;
    for (;;) {
      if (pos >= len) {
        if (this.state === S_ERROR) return null;
        if (!this.nextChunk(len)) {
          this.pos = pos;
          this.atEndOfInput();
          return null;
        }
        buf = this.cur;
        pos = 0;
        len = buf.length;
      }
      switch (this.state) {
        case S_START: {
          this.cmdStart = pos;
          this.rawPieces = null;
          this.rawLen = 0;
          if (buf[pos] === STAR) {
            this.beginLine(LINE_COUNT);
            this.lineLen = 1;
            pos++;
          } else if (this.allowInline) {
            this.state = S_INLINE;
            this.lineKind = LINE_INLINE;
            this.lineLen = 0;
            this.inlineStart = pos;
            this.inlinePieces = null;
          } else {
            return this.fail(`ERR Protocol error: expected '*', got '${printable(buf[pos])}'`);
          }
          break;
        }

        case S_LINE: {
          if (this.lineLen === 0) {
            // First byte of a bulk header: redis only checks it is '$' once the
            // whole line is in, so keep it for then.
            const b = buf[pos];
            this.lineFirst = b;
            if (b === 0) {
              this.state = S_STALL;
              break;
            }
            if (b === CR) {
              pos++;
              this.state = S_LINE_CR;
              break;
            }
            this.lineLen = 1;
            pos++;
          }
          // The hot loop: digits of a length, parsed while looking for CR.
          let val = this.numVal;
          let n = this.lineLen;
          let bad = this.numBad;
          while (pos < len) {
            const b = buf[pos];
            if (b === CR) break;
            if (b === 0) break;
            if (!bad) {
              if (n >= 21) {
                // string2ll rejects 21+ characters; stop accumulating so a
                // long digit run costs nothing.
                bad = true;
              } else if (b >= 48 && b <= 57) {
                if (n === 1) {
                  if (b === 48) this.numZero = true;
                  else val = b - 48;
                } else if (this.numZero || (this.numNeg && n === 2 && b === 48)) {
                  bad = true;
                } else if (this.numBig !== null) {
                  this.numBig = this.numBig * 10n + BigInt(b - 48);
                } else {
                  val = val * 10 + (b - 48);
                  if (val >= 1e14) this.numBig = BigInt(val); // still exact here
                }
              } else if (b === MINUS && n === 1) {
                this.numNeg = true;
              } else {
                bad = true;
              }
            }
            n++;
            pos++;
          }
          this.numVal = val;
          this.lineLen = n;
          this.numBad = bad;
          if (pos < len) {
            if (buf[pos] === 0) {
              this.state = S_STALL;
            } else {
              pos++;
              this.state = S_LINE_CR;
            }
          }
          break;
        }

        case S_LINE_CR: {
          // redis skips the byte after CR without looking at it.
          if (this.strict && buf[pos] !== LF) return this.fail('ERR Protocol error: expected CRLF');
          pos++;
          if (this.lineKind === LINE_COUNT) {
            const count = this.lineValue();
            if (count === null || count > this.maxMultibulk) {
              return this.fail('ERR Protocol error: invalid multibulk length');
            }
            if (this.authRequired && count > PROTO_UNAUTH_MAX_MULTIBULK_LEN) {
              return this.fail('ERR Protocol error: unauthenticated multibulk length');
            }
            if (count <= 0) {
              // An empty request: redis drops it and reads on.
              this.state = S_START;
              break;
            }
            this.argsLeft = count;
            this.argv = [];
            this.argvSplit = false;
            this.beginLine(LINE_BULK);
          } else {
            if (this.lineFirst !== DOLLAR) {
              return this.fail(`ERR Protocol error: expected '$', got '${printable(this.lineFirst)}'`);
            }
            const blen = this.lineValue();
            if (blen === null || blen < 0 || blen > this.maxBulk) {
              return this.fail('ERR Protocol error: invalid bulk length');
            }
            if (this.authRequired && blen > PROTO_UNAUTH_MAX_BULK_LEN) {
              return this.fail('ERR Protocol error: unauthenticated bulk length');
            }
            this.bulkLen = blen;
            this.bulkGot = 0;
            this.bulkPieces = null;
            this.bulkArg = blen === 0 ? EMPTY : null;
            this.crlfLeft = 2;
            this.state = S_BULK;
            // Fast path: the whole bulk and its CRLF are in this chunk.
            if (len - pos >= blen + 2 && (!this.strict || (buf[pos + blen] === CR && buf[pos + blen + 1] === LF))) {
              this.argv.push(buf.subarray(pos, pos + blen));
              pos += blen + 2;
              const cmd = this.argDone(buf, pos);
              if (cmd !== null) {
                this.pos = pos;
                return cmd;
              }
            }
          }
          break;
        }

        case S_BULK: {
          if (this.bulkGot < this.bulkLen) {
            const want = this.bulkLen - this.bulkGot;
            const avail = len - pos;
            if (this.bulkPieces === null && avail >= want) {
              this.bulkArg = buf.subarray(pos, pos + want);
              pos += want;
              this.bulkGot = this.bulkLen;
            } else {
              // The argument straddles chunks: keep views, join on first use.
              const take = avail < want ? avail : want;
              (this.bulkPieces ??= []).push(buf.subarray(pos, pos + take));
              this.bulkGot += take;
              pos += take;
              if (this.bulkGot < this.bulkLen) break;
            }
          }
          while (this.crlfLeft > 0 && pos < len) {
            if (this.strict && buf[pos] !== (this.crlfLeft === 2 ? CR : LF)) {
              return this.fail('ERR Protocol error: expected CRLF');
            }
            this.crlfLeft--;
            pos++;
          }
          if (this.crlfLeft > 0) break;
          if (this.bulkArg !== null) {
            this.argv.push(this.bulkArg);
          } else {
            this.argv.push(this.bulkPieces ?? EMPTY);
            this.argvSplit = true;
          }
          this.bulkArg = null;
          this.bulkPieces = null;
          const cmd = this.argDone(buf, pos);
          if (cmd !== null) {
            this.pos = pos;
            return cmd;
          }
          break;
        }

        case S_INLINE: {
          let i = pos;
          while (i < len) {
            const b = buf[i];
            if (b === LF || b === 0) break;
            i++;
          }
          this.lineLen += i - pos;
          pos = i;
          if (pos === len) break;
          if (buf[pos] === 0) {
            // redis looks for the LF with strchr(), which stops at a NUL.
            this.state = S_STALL;
            break;
          }
          let line: Buffer;
          if (this.inlinePieces === null) {
            line = buf.subarray(this.inlineStart, pos);
          } else {
            this.inlinePieces.push(buf.subarray(this.inlineStart, pos));
            line = Buffer.concat(this.inlinePieces);
            this.inlinePieces = null;
          }
          pos++;
          if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
          const argv = splitInlineArgs(line);
          if (argv === null) return this.fail('ERR Protocol error: unbalanced quotes in request');
          this.state = S_START;
          if (argv.length === 0) break; // a blank line: skipped, as redis does
          const cmd = new RespCommand(internName(argv[0]), argv, false, this.takeRaw(buf, pos), this.rawLen, true);
          this.pos = pos;
          return cmd;
        }

        case S_STALL: {
          // redis never finds the end of a line with a NUL in it (strchr), so it
          // waits until the line outgrows PROTO_INLINE_MAX_SIZE and fails.
          this.lineLen += len - pos;
          pos = len;
          this.rawPieces = null;
          this.inlinePieces = null;
          break;
        }

        default:
          return null;
      }
    }
  }

  private beginLine(kind: number): void {
    this.state = S_LINE;
    this.lineKind = kind;
    this.lineLen = 0;
    this.numVal = 0;
    this.numBig = null;
    this.numNeg = false;
    this.numBad = false;
    this.numZero = false;
  }

  /** The parsed length, or null where redis's string2ll would fail. */
  private lineValue(): number | null {
    const n = this.lineLen - 1; // characters after the type byte
    if (this.numBad || n === 0 || n >= 21 || (this.numNeg && n === 1)) return null;
    if (this.numBig !== null) {
      const v = this.numNeg ? -this.numBig : this.numBig;
      if (v > 9223372036854775807n || v < -9223372036854775808n) return null;
      // Beyond 2^53 only the sign matters to the callers' range checks.
      return this.numNeg ? -Number.MAX_VALUE : Number.MAX_VALUE;
    }
    return this.numNeg ? -this.numVal : this.numVal;
  }

  /** One bulk finished; returns the command when it was the last one. */
  private argDone(buf: Buffer, pos: number): RespCommand | null {
    if (--this.argsLeft > 0) {
      this.beginLine(LINE_BULK);
      return null;
    }
    this.state = S_START;
    const argv = this.argv;
    this.argv = [];
    let first = argv[0];
    if (Array.isArray(first)) {
      first = Buffer.concat(first);
      argv[0] = first;
    }
    const raw = this.takeRaw(buf, pos);
    return new RespCommand(internName(first), argv, this.argvSplit, raw, this.rawLen, false);
  }

  /** Views of the current command's bytes, which end at `pos` in `buf`. */
  private takeRaw(buf: Buffer, pos: number): Buffer[] {
    const last = buf.subarray(this.cmdStart, pos);
    this.rawLen += last.length;
    const pieces = this.rawPieces;
    this.rawPieces = null;
    this.cmdStart = pos;
    if (pieces === null) return [last];
    if (last.length > 0) pieces.push(last);
    return pieces;
  }

  /** Moves to the next queued chunk, keeping views of what the current command spans. */
  private nextChunk(len: number): boolean {
    const st = this.state;
    if (st !== S_START && st !== S_STALL && len > this.cmdStart) {
      (this.rawPieces ??= []).push(this.cur.subarray(this.cmdStart, len));
      this.rawLen += len - this.cmdStart;
    }
    if (st === S_INLINE && len > this.inlineStart) {
      (this.inlinePieces ??= []).push(this.cur.subarray(this.inlineStart, len));
    }
    this.cmdStart = 0;
    this.inlineStart = 0;
    const next = this.queue.shift();
    if (next === undefined) {
      this.cur = EMPTY;
      return false;
    }
    this.queued -= next.length;
    this.cur = next;
    return true;
  }

  /** All input consumed: redis's "too big" checks happen at this point. */
  private atEndOfInput(): void {
    this.pos = 0;
    const st = this.state;
    if ((st === S_LINE || st === S_INLINE || st === S_STALL) && this.lineLen > PROTO_INLINE_MAX_SIZE) {
      this.fail(TOO_BIG[this.lineKind]);
    }
  }

  private fail(message: string): null {
    this.error = message;
    this.state = S_ERROR;
    this.cur = EMPTY;
    this.pos = 0;
    this.queue = [];
    this.queued = 0;
    this.argv = [];
    this.rawPieces = null;
    this.bulkPieces = null;
    this.inlinePieces = null;
    return null;
  }
}

/** `%c` of a byte inside an error reply: redis turns CR and LF into spaces. */
function printable(b: number): string {
  return b === CR || b === LF ? ' ' : String.fromCharCode(b);
}

// Command names repeat endlessly; a small shared cache, keyed by a
// case-folded hash of the bytes, returns the lower-case string without
// allocating. Bounded, so a client inventing names cannot grow it.
const NAME_CACHE = new Map<number, string>();
const NAME_CACHE_MAX = 2048;

/** The ASCII-lower-cased latin1 string of a command name. */
export function internName(b: Buffer): string {
  const n = b.length;
  if (n > 32) return asciiLower(b);
  let h = n;
  for (let i = 0; i < n; i++) {
    let c = b[i];
    if (c >= 65 && c <= 90) c |= 32;
    h = Math.imul(h ^ c, 16777619);
  }
  const hit = NAME_CACHE.get(h);
  if (hit !== undefined && hit.length === n) {
    let i = 0;
    for (; i < n; i++) {
      let c = b[i];
      if (c >= 65 && c <= 90) c |= 32;
      if (hit.charCodeAt(i) !== c) break;
    }
    if (i === n) return hit;
  }
  const s = asciiLower(b);
  if (hit === undefined && NAME_CACHE.size < NAME_CACHE_MAX) NAME_CACHE.set(h, s);
  return s;
}

function asciiLower(b: Buffer): string {
  const s = b.toString('latin1');
  // toLowerCase would also fold latin1 letters; redis folds ASCII only.
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      let out = '';
      for (let j = 0; j < s.length; j++) {
        const c = s.charCodeAt(j);
        out += String.fromCharCode(c >= 65 && c <= 90 ? c | 32 : c);
      }
      return out;
    }
  }
  return s.toLowerCase();
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13); // C isspace(): " \t\n\v\f\r"
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Splits an inline request into arguments exactly as redis's sdssplitargs():
 * blanks separate arguments; "double quotes" take \xHH, \n, \r, \t, \b, \a
 * and \<any>; 'single quotes' take \'; a closing quote must be followed by a
 * blank or the end. Returns null on unbalanced quotes. Unquoted arguments
 * are views of `line`.
 */
export function splitInlineArgs(line: Buffer): Buffer[] | null {
  const out: Buffer[] = [];
  const n = line.length;
  let p = 0;
  for (;;) {
    while (p < n && isSpace(line[p])) p++;
    if (p >= n) return out;
    const start = p;
    let bytes: number[] | null = null; // used once a quote makes a copy necessary
    let inq = false;
    let insq = false;
    let end = -1;
    for (;;) {
      const c = p < n ? line[p] : 0;
      if (inq) {
        if (c === 0x5c && p + 3 < n && line[p + 1] === 0x78 && hexVal(line[p + 2]) >= 0 && hexVal(line[p + 3]) >= 0) {
          bytes!.push(hexVal(line[p + 2]) * 16 + hexVal(line[p + 3]));
          p += 3;
        } else if (c === 0x5c && p + 1 < n) {
          p++;
          const e = line[p];
          bytes!.push(e === 0x6e ? 10 : e === 0x72 ? 13 : e === 0x74 ? 9 : e === 0x62 ? 8 : e === 0x61 ? 7 : e);
        } else if (c === 0x22) {
          if (p + 1 < n && !isSpace(line[p + 1])) return null;
          p++;
          break;
        } else if (p >= n) {
          return null;
        } else {
          bytes!.push(c);
        }
      } else if (insq) {
        if (c === 0x5c && p + 1 < n && line[p + 1] === 0x27) {
          p++;
          bytes!.push(0x27);
        } else if (c === 0x27) {
          if (p + 1 < n && !isSpace(line[p + 1])) return null;
          p++;
          break;
        } else if (p >= n) {
          return null;
        } else {
          bytes!.push(c);
        }
      } else if (c === 32 || c === 10 || c === 13 || c === 9 || p >= n) {
        end = p;
        if (p < n) p++;
        break;
      } else if (c === 0x22 || c === 0x27) {
        if (bytes === null) bytes = Array.from(line.subarray(start, p));
        if (c === 0x22) inq = true;
        else insq = true;
      } else if (bytes !== null) {
        bytes.push(c);
      }
      p++;
    }
    out.push(bytes !== null ? Buffer.from(bytes) : line.subarray(start, end));
  }
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

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

export type RespValue =
  | string
  | Buffer
  | number
  | bigint
  | boolean
  | null
  | ReplyError
  | RespValue[]
  | Map<RespValue, RespValue>;

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

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

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
