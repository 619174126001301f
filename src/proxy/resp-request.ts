/**
 * RESP requests, for the proxy's hot path: what clients send.
 *
 * `RequestParser` accepts exactly what redis-server 7.0 accepts (multibulk and
 * inline), reports protocol errors with redis's own texts, and hands each
 * command back as a `RespCommand` with its original bytes so the proxy can
 * forward them without re-encoding. `internName` and `splitInlineArgs`
 * (resp-inline.ts) read command names and inline requests as redis does.
 * Shard replies are read by `resp-reply.ts`; the replies the proxy writes
 * itself are built by `resp-encode.ts`.
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
 * For maintainers: the parser is a resumable state machine that looks at each
 * byte once; a length line or an inline request split across chunks is
 * resumed, never re-scanned. Chunks are kept by reference: arguments and raw
 * ranges are `subarray` views of them, and bytes are copied only when one
 * argument straddles chunks (and then only when it is first read). Views stay
 * valid as long as the caller does not reuse the chunk memory it pushed, which
 * holds for Buffers from a `net.Socket` 'data' event.
 *
 * A command with many arguments (more than BIG_ARGC) is held differently while
 * it arrives: its arguments are recorded as offsets (8 bytes each) instead of
 * Buffer views (about 100 bytes each), and runs of small chunks are merged,
 * so an unfinished frame (`*1000000` and a million one-byte bulks, never
 * completed) holds about twice its bytes, not twenty times. Its views are made
 * once it is complete. Ordinary commands keep the zero-copy path.
 */

import { CR, DOLLAR, EMPTY, LF, MINUS, STAR } from './resp-bytes.js';
import { internName, splitInlineArgs } from './resp-inline.js';

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

  constructor(name: string, argv: (Buffer | Buffer[])[], split: boolean, raw: Buffer[], rawLength: number, inline: boolean) {
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

/** Above this many arguments a command is parsed in offset mode (see the header). */
export const BIG_ARGC = 1024;
/** Runs of this many small chunk views in a command are merged into one copy. */
const MERGE_RUN = 64;
const SMALL_PIECE = 4096;

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

  // Offset mode (a command of more than BIG_ARGC arguments): each argument's
  // start and length within the command's bytes, in pairs.
  private big = false;
  private offs: Uint32Array | null = null;
  private nOffs = 0;
  private bulkStart = 0;

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
            this.big = count > BIG_ARGC;
            this.nOffs = 0;
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
            if (this.big) this.bulkStart = this.rawLen + pos - this.cmdStart;
            // Fast path: the whole bulk and its CRLF are in this chunk.
            if (len - pos >= blen + 2 && (!this.strict || (buf[pos + blen] === CR && buf[pos + blen + 1] === LF))) {
              if (this.big) this.pushOffset(this.bulkStart, blen);
              else this.argv.push(buf.subarray(pos, pos + blen));
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
            if (this.big) {
              // Offset mode: the bytes stay in the command's raw views; only skip them.
              const take = Math.min(avail, want);
              this.bulkGot += take;
              pos += take;
              if (this.bulkGot < this.bulkLen) break;
            } else if (this.bulkPieces === null && avail >= want) {
              this.bulkArg = buf.subarray(pos, pos + want);
              pos += want;
              this.bulkGot = this.bulkLen;
            } else {
              // The argument straddles chunks: keep views, join on first use.
              const take = Math.min(avail, want);
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
          if (this.big) {
            this.pushOffset(this.bulkStart, this.bulkLen);
          } else if (this.bulkArg !== null) {
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

  private pushOffset(start: number, length: number): void {
    let o = this.offs;
    if (o === null || this.nOffs + 2 > o.length) {
      const grown = new Uint32Array(Math.max(4096, (o?.length ?? 0) * 2));
      if (o !== null) grown.set(o.subarray(0, this.nOffs));
      this.offs = o = grown;
    }
    o[this.nOffs++] = start;
    o[this.nOffs++] = length;
  }

  /** The last bulk of an offset-mode command: one copy of its bytes, and a view per argument. */
  private bigDone(buf: Buffer, pos: number): RespCommand {
    const pieces = this.takeRaw(buf, pos);
    const joined = pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, this.rawLen);
    const o = this.offs!;
    const argv: Buffer[] = new Array(this.nOffs / 2);
    for (let i = 0, j = 0; j < this.nOffs; i++, j += 2) argv[i] = joined.subarray(o[j], o[j] + o[j + 1]);
    this.big = false;
    this.nOffs = 0;
    if (o.length > 65536) this.offs = null; // a huge one is not kept for the next command
    return new RespCommand(internName(argv[0]), argv, false, [joined], joined.length, false);
  }

  /** One bulk finished; returns the command when it was the last one. */
  private argDone(buf: Buffer, pos: number): RespCommand | null {
    if (--this.argsLeft > 0) {
      this.beginLine(LINE_BULK);
      return null;
    }
    this.state = S_START;
    if (this.big) return this.bigDone(buf, pos);
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
      const pieces = (this.rawPieces ??= []);
      pieces.push(this.cur.subarray(this.cmdStart, len));
      this.rawLen += len - this.cmdStart;
      if (pieces.length >= MERGE_RUN) mergeSmallRun(pieces);
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
    this.big = false;
    this.offs = null;
    this.nOffs = 0;
    return null;
  }
}

/**
 * A command arriving in many small chunks (a slow or hostile client) would
 * keep one view object per chunk; when the last MERGE_RUN views are all small,
 * they become one copy. Big chunks are never copied.
 */
function mergeSmallRun(pieces: Buffer[]): void {
  const from = pieces.length - MERGE_RUN;
  let total = 0;
  for (let i = from; i < pieces.length; i++) {
    if (pieces[i].length >= SMALL_PIECE) return;
    total += pieces[i].length;
  }
  const merged = Buffer.concat(pieces.slice(from), total);
  pieces.length = from;
  pieces.push(merged);
}

/** `%c` of a byte inside an error reply: redis turns CR and LF into spaces. */
function printable(b: number): string {
  return b === CR || b === LF ? ' ' : String.fromCharCode(b);
}
