/**
 * One client connection to the endpoint.
 *
 * Each command gets a reply slot in a FIFO (a linked list of `Slot`s). Slots
 * are filled in any order — by shard links, fan-out merges or locally — and
 * flushed to the client strictly in order, once per event-loop turn. A plain
 * single-key command costs one Slot object: the Slot is itself the sink the
 * shard link hands the reply to, and the reply's raw bytes go to the client
 * untouched.
 *
 * Ordering across connections. Commands for one shard normally all go on the
 * endpoint's shared link to it, so the shard runs them in the client's order.
 * Some need a connection of their own (blocking commands, WATCH…EXEC); a
 * command that would switch between the shared and the dedicated connection
 * waits ("stalls") until every reply owed on the other kind has arrived, so
 * no command can overtake an earlier one of the same client.
 *
 * The static dispatch tables (refused commands, the hot-path SIMPLE table, …),
 * canned commands and replies, and pure argument checks live in
 * session-tables.ts.
 */

import type net from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import { encodeBulk, encodeCommand, encodeError, encodeInteger } from './resp-encode.js';
import type { RespReply } from './resp-reply.js';
import { RequestParser, type RespCommand } from './resp-request.js';
import {
  CMD_NO_AUTH,
  COMMANDS,
  P_BLOCKING,
  P_CONNECTION,
  P_FANOUT,
  P_MULTIKEY_SPLIT,
  P_SECURITY,
  checkCommand,
  keyIndexes,
  resolveCommand,
  type CommandSpec,
} from './commands.js';
import { keySlot, keySlotOf } from './slots.js';
import {
  E_BAD_NAME,
  E_CLUSTERDOWN,
  E_CROSSSLOT,
  E_DB_RANGE,
  E_DISCARD_NO_MULTI,
  E_EXECABORT,
  E_EXEC_NO_MULTI,
  E_HELLO_NOAUTH,
  E_INVALID_CURSOR,
  E_LINK_LOST,
  E_MULTI_NESTED,
  E_NOAUTH,
  E_NOPASS,
  E_NOPROTO,
  E_NOT_INTEGER,
  E_NOT_IN_MULTI,
  E_NO_CLUSTER,
  E_PROTOVER,
  E_SYNTAX,
  E_WATCH_IN_MULTI,
  E_WRONGPASS,
  K_PONG,
  R_OK,
  R_PONG,
  R_QUEUED,
  R_RESET,
  encodeMap,
  encodePush,
  header,
  noPermError,
  nullArray,
  nullBulk,
  pubsubContextError,
  verbatim,
  type Proto,
} from './replies.js';
import {
  F_ALLOK,
  F_CONCAT,
  F_INFO,
  F_MAX,
  F_MGET,
  F_NUMSUB,
  F_ONEOK,
  F_RANDOM,
  F_SUM,
  F_UNION,
  Fanout,
  PublishSink,
  SCAN_MAX_SHARDS,
  SCAN_SHIFT,
  ScanSink,
  TxSink,
  type FanoutExtra,
  type ReplyTarget,
} from './fanout.js';
import { PS_CHANNEL, PS_PATTERN, PS_SHARD, type PushMessage, type Subscriber, type Waiter } from './pubsub.js';
import { L_CLOSED, ShardLink, type LinkHost, type LinkOwner, type Sink } from './shard-link.js';
import type { PubSubHub } from './pubsub.js';
import {
  DROP,
  EMPTY_ARRAY,
  EMPTY_SCAN,
  EXEC_RAW,
  MULTI_RAW,
  POLICY_MERGE,
  REFUSED,
  SIMPLE,
  SUBSCRIBE_FAMILY,
  SUB_ALLOWED,
  SUB_KIND,
  TX_CONTROL,
  UNSUB_KIND,
  UNWATCH_RAW,
  blocks,
  copiesToOtherDb,
  validName,
} from './session-tables.js';

// Slot kinds: what filling the slot must account for.
const K_LOCAL = 0; // answered by the proxy
const K_SHARED = 1; // on a shared link (or a fan-out over shared links)
const K_DED = 2; // on one of this client's dedicated links
const K_WAIT = 3; // waiting for pub/sub confirmations

// Session mode bits; the hot path runs only when none is set.
const M_NOAUTH = 1;
const M_MULTI = 2;
const M_SUB2 = 4; // RESP2 subscribed context
const M_PIN = 8; // WATCH holds a dedicated link
const M_DEDOUT = 16; // replies owed on dedicated links
const M_CLOSING = 32; // QUIT or protocol error: no more input

/** Slots not yet flushed before we stop reading the client (pipelining back-pressure). */
const MAX_PENDING = 16384;
/** Client output bytes queued in the socket before we stop reading its input. */
const OUT_HIGH = 8 * 1024 * 1024;
/** redis's client-output-buffer-limit for pubsub clients (hard limit). */
const PUBSUB_OUT_LIMIT = 32 * 1024 * 1024;
/** Our client-query-buffer-limit (redis: 1 GB). */
export const MAX_QUERY_BUFFER = 64 * 1024 * 1024;
const CONCAT_LIMIT = 64 * 1024;

/** One reply owed to the client, in order. Also the sink of its shard command. */
export class Slot implements Sink, ReplyTarget {
  next: Slot | null = null;
  data: Buffer | Buffer[] | null = null;
  done = false;
  constructor(
    readonly s: Session,
    readonly kind: number,
  ) {}

  onReply(r: RespReply | null): void {
    if (r === null) this.fill(E_LINK_LOST, true);
    else this.fill(r.raw.length === 1 ? r.raw[0] : r.raw, r.type === 0x2d || r.type === 0x21);
  }

  fill(data: Buffer | Buffer[], isErr: boolean): void {
    if (this.done) return;
    this.data = data;
    this.done = true;
    const s = this.s;
    if (isErr) s.ep.errors++;
    if (this.kind === K_SHARED) s.pendingShared--;
    else if (this.kind === K_DED && --s.dedOut === 0) s.mode &= ~M_DEDOUT;
    else if (this.kind === K_WAIT) s.waitSlots--;
    if (s.head === this || s.stalled !== null) s.markDirty();
  }
}


/**
 * What a session needs of the endpoint that accepted it. The endpoint
 * implements it; a session never sees the endpoint itself, so the two files
 * depend one way (endpoint → session), as shard links do through LinkHost.
 */
export interface SessionHost extends LinkHost {
  password: string | undefined;
  /** Link generation: links of an older one are replaced when idle. */
  readonly gen: number;
  /** slot → shard index (into shardUids), -1 when unserved. */
  readonly slotShard: Int16Array;
  readonly shardUids: number[];
  readonly shardCount: number;
  readonly sessions: Set<Session>;
  nextClientId: number;
  commands: number;
  errors: number;
  sharedLink(idx: number, proto: Proto): ShardLink;
  hub(idx: number): PubSubHub;
  hubIfAny(idx: number): PubSubHub | undefined;
  hasShard(uid: number): boolean;
  markSessionDirty(s: Session): void;
  removeSession(s: Session): void;
}

/** A (P|S)SUBSCRIBE's confirmations, sent once every shard involved confirmed. */
class SubWaiter implements Waiter {
  left = 0;
  parts: Buffer[] = [];
  private armed = false;
  constructor(private readonly slot: Slot) {}
  ack(): void {
    if (--this.left <= 0 && this.armed) this.slot.fill(Buffer.concat(this.parts), false);
  }
  arm(): void {
    this.armed = true;
    if (this.left <= 0) this.slot.fill(Buffer.concat(this.parts), false);
  }
}

interface Tx {
  parts: Buffer[];
  count: number;
  slot: number; // -1 until a command with keys is queued
  dirty: boolean;
}

export class Session implements LinkOwner, Subscriber {
  readonly id: number;
  proto: Proto = 2;
  mode = 0;
  head: Slot | null = null;
  tail: Slot | null = null;
  /** Slots in the FIFO. */
  queued = 0;
  /** Replies owed on shared links / on dedicated links. */
  pendingShared = 0;
  dedOut = 0;
  /** A command waiting for the other kind of connection to be drained. */
  stalled: RespCommand | null = null;
  /** (P|S)SUBSCRIBE confirmations not yet in. */
  waitSlots = 0;
  /** RESP3 pushes to write ahead of the FIFO (they are out of band). */
  private oob: Buffer[] | null = null;
  dirty = false;
  closed = false;
  name: Buffer | null = null;
  lastCmd = 'NULL';
  readonly created = Date.now();
  lastActive = Date.now();
  /** channels, patterns, shard channels: latin1 key → name as sent. */
  readonly subs: [Map<string, Buffer>, Map<string, Buffer>, Map<string, Buffer>] = [new Map(), new Map(), new Map()];

  private authed: boolean;
  private paused = false;
  /** The client is not reading its replies (socket buffer over OUT_HIGH): stop reading its commands. */
  private outBlocked = false;
  private readonly parser: RequestParser;
  private multi: Tx | null = null;
  private pin: ShardLink | null = null;
  private watchBroken = false;
  private readonly ded = new Map<number, ShardLink>();

  constructor(
    readonly ep: SessionHost,
    readonly socket: net.Socket,
  ) {
    this.id = ep.nextClientId++;
    this.authed = ep.password === undefined;
    this.parser = new RequestParser({ authRequired: !this.authed });
    if (!this.authed) this.mode |= M_NOAUTH;
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
    socket.on('drain', () => {
      this.outBlocked = false;
      if (this.paused && !this.closed) this.processInput();
    });
  }

  // -------------------------------------------------------------------------
  // Input

  private onData(chunk: Buffer): void {
    if ((this.mode & M_CLOSING) !== 0) return;
    this.lastActive = Date.now();
    this.parser.push(chunk);
    this.processInput();
  }

  private processInput(): void {
    if (this.closed) return;
    const p = this.parser;
    try {
      while ((this.mode & M_CLOSING) === 0) {
        let cmd = this.stalled;
        if (cmd !== null) {
          this.stalled = null;
        } else {
          if (this.queued >= MAX_PENDING || this.outBlocked) {
            this.pause();
            return;
          }
          cmd = p.next();
          if (cmd === null) break;
          this.ep.commands++;
        }
        if (!this.dispatch(cmd)) {
          this.stalled = cmd;
          this.pause();
          return;
        }
      }
      if ((this.mode & M_CLOSING) !== 0) return;
      if (p.error !== null) {
        // redis replies with the protocol error, then closes the connection.
        this.local(p.errorReply(), true);
        this.mode |= M_CLOSING;
        this.pause();
        return;
      }
      if (p.pendingBytes > MAX_QUERY_BUFFER) {
        this.ep.log.warn({ client: this.id, bytes: p.pendingBytes }, 'closing client that reached max query buffer length');
        this.destroy();
        return;
      }
      if (this.paused) {
        this.paused = false;
        this.socket.resume();
      }
    } catch (e) {
      this.ep.log.error({ client: this.id, err: String((e as Error)?.stack ?? e) }, 'client session failed');
      this.destroy();
    }
  }

  private pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** Routes one command; false means "not now" (it stalls until replies drain). */
  private dispatch(cmd: RespCommand): boolean {
    if (this.mode === 0) {
      const r = SIMPLE.get(cmd.name);
      if (r !== undefined) {
        const argc = cmd.argc;
        if (r.arity > 0 ? argc === r.arity : argc >= -r.arity) {
          const k = cmd.arg(r.key);
          const idx = this.ep.slotShard[keySlotOf(k, 0, k.length)];
          if (idx >= 0) {
            this.lastCmd = cmd.name;
            const s = this.enqueue(K_SHARED);
            this.pendingShared++;
            this.ep.sharedLink(idx, this.proto).send(cmd.raw, cmd.rawLength, s);
            return true;
          }
        }
      }
    }
    return this.dispatchSlow(cmd);
  }

  private dispatchSlow(cmd: RespCommand): boolean {
    const name = cmd.name;
    const args = cmd.args;
    // The checks, in redis's processCommand order.
    const bad = checkCommand(args, name);
    if (bad !== undefined) return this.reject(encodeError(bad));
    const base = COMMANDS.get(name)!;
    const spec = resolveCommand(name, args) ?? base;
    if ((this.mode & M_NOAUTH) !== 0 && (base.flags & CMD_NO_AUTH) === 0) return this.reject(E_NOAUTH);
    if ((base.proxy & P_SECURITY) !== 0) {
      this.ep.log.warn({ client: this.id }, 'possible SECURITY ATTACK: HTTP request on the RESP port; connection closed');
      this.destroy();
      return true;
    }
    if (REFUSED.has(name) || REFUSED.has(spec.name)) return this.reject(noPermError(spec.name));
    if ((this.mode & M_SUB2) !== 0 && !SUB_ALLOWED.has(name)) return this.reject(pubsubContextError(spec.name));
    if ((this.mode & M_MULTI) !== 0 && !TX_CONTROL.has(name)) return this.queueTx(cmd, spec, args);
    this.lastCmd = spec.name;
    switch (name) {
      case 'ping':
        return this.ping(args);
      case 'echo':
        return this.local(encodeBulk(args[1]));
      case 'auth':
        return this.auth(args);
      case 'hello':
        return this.hello(args);
      case 'select':
        return this.select(args);
      case 'quit':
        this.local(R_OK);
        this.mode |= M_CLOSING;
        this.pause();
        return true;
      case 'reset':
        return this.reset();
      case 'client':
        return this.client(cmd, spec, args);
      case 'readonly':
      case 'readwrite':
      case 'asking':
      case 'cluster':
        return this.reject(E_NO_CLUSTER);
      case 'multi':
        if (this.multi !== null) return this.local(E_MULTI_NESTED, true);
        this.multi = { parts: [], count: 0, slot: -1, dirty: false };
        this.mode |= M_MULTI;
        return this.local(R_OK);
      case 'exec':
        return this.exec();
      case 'discard':
        return this.discard();
      case 'watch':
        return this.watch(cmd, spec, args);
      case 'unwatch':
        return this.unwatch(cmd);
      case 'subscribe':
        return this.subscribe(PS_CHANNEL, args);
      case 'psubscribe':
        return this.subscribe(PS_PATTERN, args);
      case 'ssubscribe':
        return this.subscribe(PS_SHARD, args);
      case 'unsubscribe':
        return this.unsubscribe(PS_CHANNEL, args);
      case 'punsubscribe':
        return this.unsubscribe(PS_PATTERN, args);
      case 'sunsubscribe':
        return this.unsubscribe(PS_SHARD, args);
      case 'publish':
        return this.publish(cmd, args, PS_CHANNEL);
      case 'spublish':
        return this.publish(cmd, args, PS_SHARD);
      case 'pubsub':
        return this.pubsub(cmd, spec, args);
      case 'dbsize':
        return this.fanout(cmd, F_SUM);
      case 'flushdb':
      case 'flushall':
        return this.fanout(cmd, F_ALLOK);
      case 'keys':
        return this.fanout(cmd, F_CONCAT);
      case 'randomkey':
        return this.fanout(cmd, F_RANDOM);
      case 'info':
        return this.fanout(cmd, F_INFO, { clients: this.ep.sessions.size });
      case 'scan':
        return this.scan(args);
    }
    return this.route(cmd, spec, args);
  }

  /** Default routing: by keys, else fan-out by the command's tips, else any shard. */
  private route(cmd: RespCommand, spec: CommandSpec, args: Buffer[]): boolean {
    const idx = keyIndexes(spec, args);
    if (idx.length === 0) {
      // The busy script holds the shared link: the kill must take another road.
      if (spec.name === 'script|kill' || spec.name === 'function|kill') return this.fanoutDedicated(cmd, F_ONEOK);
      if ((spec.proxy & P_FANOUT) !== 0 && spec.responsePolicy !== undefined) {
        const kind = POLICY_MERGE[spec.responsePolicy];
        if (kind !== undefined) return this.fanout(cmd, kind);
      }
      if (this.ep.shardCount === 0) return this.reject(E_CLUSTERDOWN);
      return this.sendShared(0, cmd);
    }
    const slot = keySlot(args[idx[0]]);
    for (let i = 1; i < idx.length; i++) {
      if (keySlot(args[idx[i]]) !== slot) {
        if ((spec.proxy & P_MULTIKEY_SPLIT) !== 0) return this.split(cmd, spec, args, idx);
        return this.reject(E_CROSSSLOT);
      }
    }
    const shard = this.ep.slotShard[slot];
    if (shard < 0) return this.reject(E_CLUSTERDOWN);
    // The database is db 0 only (SELECT is emulated): COPY may not reach
    // the shards' other databases.
    if (spec.name === 'copy' && copiesToOtherDb(args)) return this.reject(E_DB_RANGE);
    if ((spec.proxy & P_BLOCKING) !== 0 && blocks(spec.name, args)) return this.sendDedicated(shard, cmd.raw, cmd.rawLength);
    if (this.pin !== null && this.pin.shardUid === this.ep.shardUids[shard]) return this.sendDedicated(shard, cmd.raw, cmd.rawLength);
    return this.sendShared(shard, cmd);
  }

  private sendShared(shard: number, cmd: RespCommand): boolean {
    if (this.dedOut > 0) return false;
    const s = this.enqueue(K_SHARED);
    this.pendingShared++;
    this.ep.sharedLink(shard, this.proto).send(cmd.raw, cmd.rawLength, s);
    return true;
  }

  private sendDedicated(shard: number, raw: readonly Buffer[], len: number): boolean {
    if (this.pendingShared > 0) return false;
    const link = this.pin !== null && this.pin.shardUid === this.ep.shardUids[shard] ? this.pin : this.dedicatedLink(shard);
    return this.sendOn(link, raw, len);
  }

  private sendOn(link: ShardLink, raw: readonly Buffer[], len: number): true {
    const s = this.enqueue(K_DED);
    if (this.dedOut++ === 0) this.mode |= M_DEDOUT;
    link.send(raw, len, s);
    return true;
  }

  private dedicatedLink(shard: number): ShardLink {
    const uid = this.ep.shardUids[shard];
    let l = this.ded.get(uid);
    if (l !== undefined && (l.state === L_CLOSED || (!l.pinned && l.idle && (l.gen !== this.ep.gen || l.proto !== this.proto)))) {
      this.dropDedicated(l);
      l = undefined;
    }
    if (l === undefined) {
      l = new ShardLink(this.ep, uid, this.proto, this.ep.gen, true);
      l.owner = this;
      this.ded.set(uid, l);
      l.start();
    }
    return l;
  }

  private dropDedicated(l: ShardLink): void {
    l.owner = null;
    l.pinned = false;
    if (this.ded.get(l.shardUid) === l) this.ded.delete(l.shardUid);
    if (this.pin === l) {
      this.pin = null;
      this.mode &= ~M_PIN;
    }
    l.close();
  }

  /** LinkOwner: a dedicated link finished its work; replace it if it is of an old generation. */
  onLinkIdle(l: ShardLink): void {
    if (!l.pinned && (l.gen !== this.ep.gen || !this.ep.hasShard(l.shardUid))) this.dropDedicated(l);
  }

  /** LinkOwner: a dedicated link died. A WATCH on it is lost, so the EXEC must fail. */
  onLinkGone(l: ShardLink): void {
    if (this.ded.get(l.shardUid) === l) this.ded.delete(l.shardUid);
    if (this.pin === l) {
      this.pin = null;
      this.mode &= ~M_PIN;
      this.watchBroken = true;
    }
  }

  /** New link generation or shard map: stale idle dedicated links go now, busy ones when done. */
  relinkDedicated(): void {
    for (const l of [...this.ded.values()]) if (l.idle) this.onLinkIdle(l);
  }

  // -------------------------------------------------------------------------
  // Replies

  private enqueue(kind: number): Slot {
    const s = new Slot(this, kind);
    if (this.tail === null) this.head = s;
    else this.tail.next = s;
    this.tail = s;
    this.queued++;
    return s;
  }

  /** A reply the proxy answers itself. */
  private local(buf: Buffer, isErr = false): true {
    this.enqueue(K_LOCAL).fill(buf, isErr);
    return true;
  }

  /** An error that, like redis's rejectCommand, also dooms an open MULTI. */
  private reject(buf: Buffer): true {
    if (this.multi !== null) this.multi.dirty = true;
    return this.local(buf, true);
  }

  markDirty(): void {
    if (!this.dirty && !this.closed) {
      this.dirty = true;
      this.ep.markSessionDirty(this);
    }
  }

  /** Writes every finished slot at the head of the FIFO (once per tick). */
  flushOut(): void {
    this.dirty = false;
    if (this.closed) return;
    let s = this.head;
    let first: Buffer | null = null;
    let many: Buffer[] | null = null;
    let bytes = 0;
    if (this.oob !== null) {
      many = this.oob;
      this.oob = null;
      first = many[0];
      for (const b of many) bytes += b.length;
      if (many.length === 1) many = null;
    }
    while (s !== null && s.done) {
      const d = s.data!;
      if (Buffer.isBuffer(d)) {
        if (first === null) first = d;
        else (many ??= [first]).push(d);
        bytes += d.length;
      } else {
        for (const b of d) {
          if (first === null) first = b;
          else (many ??= [first]).push(b);
          bytes += b.length;
        }
      }
      s = s.next;
      this.queued--;
    }
    this.head = s;
    if (s === null) this.tail = null;
    const sock = this.socket;
    let flowing = true;
    if (many !== null) {
      if (bytes <= CONCAT_LIMIT) {
        flowing = sock.write(Buffer.concat(many, bytes));
      } else {
        sock.cork();
        for (const b of many) flowing = sock.write(b);
        sock.uncork();
      }
    } else if (first !== null) {
      flowing = sock.write(first);
    }
    if (!flowing && sock.writableLength > OUT_HIGH) this.outBlocked = true;
    if ((this.mode & M_CLOSING) !== 0) {
      if (s === null) sock.end();
      return;
    }
    if (this.stalled !== null || (this.paused && this.queued < MAX_PENDING / 2)) this.processInput();
  }

  // -------------------------------------------------------------------------
  // Connection commands

  private ping(args: Buffer[]): boolean {
    if ((this.mode & M_SUB2) !== 0) {
      return this.local(Buffer.concat([header('*', 2), K_PONG, encodeBulk(args.length > 1 ? args[1] : '')]));
    }
    return this.local(args.length > 1 ? encodeBulk(args[1]) : R_PONG);
  }

  private checkUser(user: Buffer, pass: Buffer): boolean {
    if (user.toString('latin1') !== 'default') return false;
    const pw = this.ep.password;
    if (pw === undefined) return true; // "nopass" default user
    const a = createHash('sha256').update(pass).digest();
    const b = createHash('sha256').update(pw).digest();
    return timingSafeEqual(a, b);
  }

  private setAuthed(ok: boolean): void {
    this.authed = ok;
    this.parser.authRequired = !ok;
    if (ok) this.mode &= ~M_NOAUTH;
    else this.mode |= M_NOAUTH;
  }

  private auth(args: Buffer[]): boolean {
    if (args.length > 3) return this.reject(E_SYNTAX);
    let ok: boolean;
    if (args.length === 2) {
      if (this.ep.password === undefined) return this.reject(E_NOPASS);
      ok = this.checkUser(Buffer.from('default'), args[1]);
    } else {
      ok = this.checkUser(args[1], args[2]);
    }
    if (!ok) return this.reject(E_WRONGPASS);
    this.setAuthed(true);
    return this.local(R_OK);
  }

  private hello(args: Buffer[]): boolean {
    let ver: number = this.proto;
    if (args.length >= 2) {
      const v = args[1].toString('latin1');
      if (!/^-?(0|[1-9][0-9]{0,18})$/.test(v)) return this.reject(E_PROTOVER);
      ver = Number(v);
      if (ver < 2 || ver > 3) return this.reject(E_NOPROTO);
    }
    let user: Buffer | undefined;
    let pass: Buffer | undefined;
    let setname: Buffer | undefined;
    for (let j = 2; j < args.length; j++) {
      const more = args.length - 1 - j;
      const opt = args[j].toString('latin1').toLowerCase();
      if (opt === 'auth' && more >= 2) {
        user = args[j + 1];
        pass = args[j + 2];
        j += 2;
      } else if (opt === 'setname' && more >= 1) {
        setname = args[j + 1];
        if (!validName(setname)) return this.reject(E_BAD_NAME);
        j++;
      } else {
        return this.reject(encodeError(`ERR Syntax error in HELLO option '${args[j].toString('latin1')}'`));
      }
    }
    // Replies after a protocol switch come from other links: let earlier
    // commands finish first so none is overtaken.
    if (ver !== this.proto && (this.pendingShared > 0 || this.dedOut > 0)) return false;
    if (user !== undefined) {
      if (!this.checkUser(user, pass!)) return this.reject(E_WRONGPASS);
      this.setAuthed(true);
    }
    if (!this.authed) return this.reject(E_HELLO_NOAUTH);
    if (setname !== undefined) this.name = setname.length > 0 ? setname : null;
    if (ver !== this.proto && this.pin !== null) {
      // The WATCH lives on a connection of the old protocol; give it up and
      // let EXEC report an abort (always a safe answer) rather than reply in
      // the wrong protocol.
      this.dropDedicated(this.pin);
      this.watchBroken = true;
    }
    this.proto = ver as Proto;
    this.updateSubMode();
    return this.local(
      encodeMap(this.proto, [
        ['server', encodeBulk('redis')],
        ['version', encodeBulk(this.ep.serverVersion)],
        ['proto', encodeInteger(this.proto)],
        ['id', encodeInteger(this.id)],
        ['mode', encodeBulk('standalone')],
        ['role', encodeBulk('master')],
        ['modules', EMPTY_ARRAY],
      ]),
    );
  }

  private select(args: Buffer[]): boolean {
    const v = args[1].toString('latin1');
    if (!/^-?(0|[1-9][0-9]{0,9})$/.test(v) || Math.abs(Number(v)) > 2147483647) return this.reject(E_NOT_INTEGER);
    return Number(v) === 0 ? this.local(R_OK) : this.reject(E_DB_RANGE);
  }

  private reset(): boolean {
    if (this.pendingShared > 0 || this.dedOut > 0) return false;
    this.multi = null;
    this.mode &= ~M_MULTI;
    this.watchBroken = false;
    if (this.pin !== null) this.dropDedicated(this.pin); // closing it drops the WATCH
    this.unsubscribeAll();
    this.name = null;
    this.proto = 2;
    this.setAuthed(this.ep.password === undefined);
    this.updateSubMode();
    return this.local(R_RESET);
  }

  private client(cmd: RespCommand, spec: CommandSpec, args: Buffer[]): boolean {
    switch (spec.name) {
      case 'client|setname':
        if (!validName(args[2])) return this.reject(E_BAD_NAME);
        this.name = args[2].length > 0 ? args[2] : null;
        return this.local(R_OK);
      case 'client|getname':
        return this.local(this.name === null ? nullBulk(this.proto) : encodeBulk(this.name));
      case 'client|id':
        return this.local(encodeInteger(this.id));
      case 'client|info':
        return this.local(verbatim(this.proto, this.infoLine()));
      case 'client|list': {
        let list = [...this.ep.sessions];
        for (let i = 2; i < args.length; i++) {
          const opt = args[i].toString('latin1').toLowerCase();
          if (opt === 'type' && i + 1 < args.length) {
            const t = args[++i].toString('latin1').toLowerCase();
            if (t === 'normal') list = list.filter((s) => s.subCount() === 0);
            else if (t === 'pubsub') list = list.filter((s) => s.subCount() > 0);
            else if (t === 'master' || t === 'replica' || t === 'slave') list = [];
            else return this.reject(encodeError(`ERR Unknown client type '${args[i].toString('latin1')}'`));
          } else if (opt === 'id' && i + 1 < args.length) {
            const ids = new Set(args.slice(i + 1).map((a) => Number(a.toString('latin1'))));
            list = list.filter((s) => ids.has(s.id));
            break;
          } else {
            return this.reject(E_SYNTAX);
          }
        }
        return this.local(verbatim(this.proto, list.map((s) => s.infoLine()).join('')));
      }
      case 'client|no-evict':
        return this.local(R_OK);
      default:
        // HELP, GETREDIR, TRACKINGINFO: harmless on any shard.
        return this.sendShared(0, cmd);
    }
  }

  subCount(): number {
    return this.subs[0].size + this.subs[1].size + this.subs[2].size;
  }

  /** One CLIENT LIST / CLIENT INFO line, with redis 7.0's fields. */
  infoLine(): string {
    const sk = this.socket;
    const now = Date.now();
    let flags = '';
    if (this.subCount() > 0) flags += 'P';
    if (this.multi !== null) flags += 'x';
    if (this.dedOut > 0) flags += 'b';
    if (flags === '') flags = 'N';
    const name = this.name === null ? '' : this.name.toString('latin1');
    return (
      `id=${this.id} addr=${sk.remoteAddress}:${sk.remotePort} laddr=${sk.localAddress}:${sk.localPort} fd=-1 name=${name} ` +
      `age=${Math.floor((now - this.created) / 1000)} idle=${Math.floor((now - this.lastActive) / 1000)} flags=${flags} db=0 ` +
      `sub=${this.subs[0].size} psub=${this.subs[1].size} ssub=${this.subs[2].size} multi=${this.multi === null ? -1 : this.multi.count} ` +
      `qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=${this.lastCmd} ` +
      `user=default redir=-1 resp=${this.proto}\n`
    );
  }

  // -------------------------------------------------------------------------
  // Transactions

  private queueTx(cmd: RespCommand, spec: CommandSpec, args: Buffer[]): boolean {
    const tx = this.multi!;
    const name = cmd.name;
    // Connection state and fan-outs cannot run inside one shard's transaction.
    if ((spec.proxy & P_CONNECTION) !== 0 || SUBSCRIBE_FAMILY.has(name) || name === 'scan' || name === 'keys' || name === 'dbsize' || name === 'randomkey' || name === 'info') {
      return this.reject(E_NOT_IN_MULTI);
    }
    const idx = name === 'publish' ? [1] : keyIndexes(spec, args);
    if (idx.length === 0 && (spec.proxy & P_FANOUT) !== 0) return this.reject(E_NOT_IN_MULTI);
    if (idx.length > 0) {
      const slot = keySlot(args[idx[0]]);
      for (let i = 1; i < idx.length; i++) if (keySlot(args[idx[i]]) !== slot) return this.reject(E_CROSSSLOT);
      if (tx.slot >= 0 && tx.slot !== slot) return this.reject(E_CROSSSLOT);
      const shard = this.ep.slotShard[slot];
      if (shard < 0) return this.reject(E_CLUSTERDOWN);
      if (this.pin !== null && this.pin.shardUid !== this.ep.shardUids[shard]) return this.reject(E_CROSSSLOT);
      tx.slot = slot;
    }
    for (const b of cmd.raw) tx.parts.push(b);
    tx.count++;
    return this.local(R_QUEUED);
  }

  private exec(): boolean {
    const tx = this.multi;
    if (tx === null) return this.local(E_EXEC_NO_MULTI, true);
    const runs = !tx.dirty && !this.watchBroken;
    if (runs && (this.pin !== null ? this.pendingShared > 0 : this.dedOut > 0)) return false;
    this.multi = null;
    this.mode &= ~M_MULTI;
    if (tx.dirty) {
      this.unwatchQuietly();
      return this.local(E_EXECABORT, true);
    }
    if (this.watchBroken) {
      // The connection holding the WATCH died: report an aborted EXEC, the
      // answer redis gives when a watched key changed.
      this.watchBroken = false;
      this.unwatchQuietly();
      return this.local(nullArray(this.proto));
    }
    if (tx.count === 0 && this.pin === null) return this.local(EMPTY_ARRAY);
    const block = Buffer.concat([MULTI_RAW, ...tx.parts, EXEC_RAW]);
    const n = tx.count + 2;
    if (this.pin !== null) {
      const link = this.pin;
      const s = this.enqueue(K_DED);
      if (this.dedOut++ === 0) this.mode |= M_DEDOUT;
      link.sendBuf(block, new TxSink(s, n), n);
      this.unpin();
      return true;
    }
    let shard = 0;
    if (tx.slot >= 0) shard = this.ep.slotShard[tx.slot];
    if (shard < 0 || this.ep.shardCount === 0) return this.local(E_CLUSTERDOWN, true);
    const s = this.enqueue(K_SHARED);
    this.pendingShared++;
    this.ep.sharedLink(shard, this.proto).sendBuf(block, new TxSink(s, n), n);
    return true;
  }

  private discard(): boolean {
    if (this.multi === null) return this.local(E_DISCARD_NO_MULTI, true);
    this.multi = null;
    this.mode &= ~M_MULTI;
    this.watchBroken = false;
    this.unwatchQuietly();
    return this.local(R_OK);
  }

  private watch(cmd: RespCommand, spec: CommandSpec, args: Buffer[]): boolean {
    if (this.multi !== null) return this.local(E_WATCH_IN_MULTI, true);
    const idx = keyIndexes(spec, args);
    const slot = keySlot(args[idx[0]]);
    for (let i = 1; i < idx.length; i++) if (keySlot(args[idx[i]]) !== slot) return this.reject(E_CROSSSLOT);
    const shard = this.ep.slotShard[slot];
    if (shard < 0) return this.reject(E_CLUSTERDOWN);
    const uid = this.ep.shardUids[shard];
    // All watched keys must live on one shard: the one EXEC will run on.
    if (this.pin !== null && this.pin.shardUid !== uid) return this.reject(E_CROSSSLOT);
    if (this.watchBroken) return this.local(R_OK);
    if (this.pendingShared > 0) return false;
    const link = this.pin ?? this.dedicatedLink(shard);
    link.pinned = true;
    this.pin = link;
    this.mode |= M_PIN;
    return this.sendOn(link, cmd.raw, cmd.rawLength);
  }

  private unwatch(cmd: RespCommand): boolean {
    this.watchBroken = false;
    if (this.pin === null) return this.local(R_OK);
    if (this.pendingShared > 0) return false;
    this.sendOn(this.pin, cmd.raw, cmd.rawLength);
    this.unpin();
    return true;
  }

  /** Drops WATCH state without a reply of its own (EXECABORT, DISCARD). */
  private unwatchQuietly(): void {
    if (this.pin === null) return;
    this.pin.sendBuf(UNWATCH_RAW, DROP);
    this.unpin();
  }

  private unpin(): void {
    const l = this.pin;
    if (l === null) return;
    this.pin = null;
    this.mode &= ~M_PIN;
    l.pinned = false;
    if (l.idle) this.onLinkIdle(l);
  }

  // -------------------------------------------------------------------------
  // Pub/sub

  private subscribe(kind: number, args: Buffer[]): boolean {
    const names = args.slice(1);
    if (kind === PS_SHARD) {
      const slot = keySlot(names[0]);
      for (const n of names) if (keySlot(n) !== slot) return this.reject(E_CROSSSLOT);
    }
    const w = new SubWaiter(this.enqueue(K_WAIT));
    this.waitSlots++;
    const set = this.subs[kind];
    for (const n of names) {
      const key = n.toString('latin1');
      if (!set.has(key)) set.set(key, n);
      w.parts.push(encodePush(this.proto, SUB_KIND[kind], [n, this.countFor(kind)]));
      if (kind === PS_PATTERN) {
        for (let i = 0; i < this.ep.shardCount; i++) if (!this.ep.hub(i).add(kind, key, n, this, w)) w.left++;
      } else {
        const shard = this.ep.slotShard[keySlot(n)];
        if (shard >= 0 && !this.ep.hub(shard).add(kind, key, n, this, w)) w.left++;
      }
    }
    this.updateSubMode();
    w.arm();
    return true;
  }

  private unsubscribe(kind: number, args: Buffer[]): boolean {
    const set = this.subs[kind];
    const names = args.length > 1 ? args.slice(1) : [...set.values()];
    const parts: Buffer[] = [];
    if (names.length === 0) parts.push(encodePush(this.proto, UNSUB_KIND[kind], [null, this.countFor(kind)]));
    for (const n of names) {
      const key = n.toString('latin1');
      if (set.delete(key)) this.leave(kind, key, n);
      parts.push(encodePush(this.proto, UNSUB_KIND[kind], [n, this.countFor(kind)]));
    }
    this.updateSubMode();
    return this.local(Buffer.concat(parts));
  }

  private leave(kind: number, key: string, name: Buffer): void {
    if (kind === PS_PATTERN) {
      for (let i = 0; i < this.ep.shardCount; i++) this.ep.hub(i).remove(kind, key, this);
    } else {
      const shard = this.ep.slotShard[keySlot(name)];
      if (shard >= 0) this.ep.hub(shard).remove(kind, key, this);
    }
  }

  private unsubscribeAll(): void {
    for (let kind = 0; kind < 3; kind++) {
      for (const [key, n] of this.subs[kind]) this.leave(kind, key, n);
      this.subs[kind].clear();
    }
  }

  /** The count redis puts in (un)subscribe confirmations. */
  private countFor(kind: number): number {
    return kind === PS_SHARD ? this.subs[2].size : this.subs[0].size + this.subs[1].size;
  }

  private updateSubMode(): void {
    if (this.proto === 2 && this.subCount() > 0) this.mode |= M_SUB2;
    else this.mode &= ~M_SUB2;
  }

  /** Subscriber: a message for one of our subscriptions. */
  deliver(msg: PushMessage): void {
    if (this.closed) return;
    if (this.proto === 3 && this.waitSlots === 0) {
      // A RESP3 push may come between any two replies, as redis sends it,
      // so it does not wait behind a pending reply (a BLPOP, say). It only
      // waits for a pending subscribe confirmation, which must come first.
      (this.oob ??= []).push(msg.encoded(3));
      this.markDirty();
    } else {
      this.enqueue(K_LOCAL).fill(msg.encoded(this.proto), false);
    }
    if (this.socket.writableLength > PUBSUB_OUT_LIMIT) {
      this.ep.log.warn({ client: this.id }, 'closing subscriber over the output buffer limit');
      this.destroy();
    }
  }

  private publish(cmd: RespCommand, args: Buffer[], kind: number): boolean {
    const ch = args[1];
    const shard = this.ep.slotShard[keySlot(ch)];
    if (shard < 0) return this.reject(E_CLUSTERDOWN);
    if (this.dedOut > 0) return false;
    const hub = this.ep.hubIfAny(shard);
    const key = ch.toString('latin1');
    const s = this.enqueue(K_SHARED);
    this.pendingShared++;
    const sink = new PublishSink(s, (n) => {
      if (hub === undefined) return n;
      const c = hub.publishCounts(kind, key, ch, true);
      return Math.max(0, n - c.ours) + c.local;
    });
    this.ep.sharedLink(shard, this.proto).send(cmd.raw, cmd.rawLength, sink);
    return true;
  }

  private pubsub(cmd: RespCommand, spec: CommandSpec, args: Buffer[]): boolean {
    switch (spec.name) {
      case 'pubsub|channels':
      case 'pubsub|shardchannels':
        return this.fanout(cmd, F_UNION);
      case 'pubsub|numpat':
        return this.fanout(cmd, F_MAX);
      case 'pubsub|numsub':
      case 'pubsub|shardnumsub': {
        const kind = spec.name === 'pubsub|numsub' ? PS_CHANNEL : PS_SHARD;
        return this.fanout(cmd, F_NUMSUB, {
          correct: (name, n) => {
            const shard = this.ep.slotShard[keySlot(name)];
            const hub = shard >= 0 ? this.ep.hubIfAny(shard) : undefined;
            if (hub === undefined) return n;
            const c = hub.publishCounts(kind, name.toString('latin1'), name, false);
            return Math.max(0, n - c.ours) + c.local;
          },
        });
      }
      default:
        void args;
        return this.sendShared(0, cmd);
    }
  }

  // -------------------------------------------------------------------------
  // Fan-out

  private fanout(cmd: RespCommand, kind: number, extra?: FanoutExtra): boolean {
    const n = this.ep.shardCount;
    if (n === 0) return this.reject(E_CLUSTERDOWN);
    if (this.dedOut > 0) return false;
    const s = this.enqueue(K_SHARED);
    this.pendingShared++;
    const f = new Fanout(s, kind, n, this.proto, extra);
    for (let i = 0; i < n; i++) this.ep.sharedLink(i, this.proto).send(cmd.raw, cmd.rawLength, f.sink(i));
    return true;
  }

  /** A fan-out over this client's dedicated links. */
  private fanoutDedicated(cmd: RespCommand, kind: number): boolean {
    const n = this.ep.shardCount;
    if (n === 0) return this.reject(E_CLUSTERDOWN);
    if (this.pendingShared > 0) return false;
    const s = this.enqueue(K_DED);
    if (this.dedOut++ === 0) this.mode |= M_DEDOUT;
    const f = new Fanout(s, kind, n, this.proto);
    for (let i = 0; i < n; i++) this.dedicatedLink(i).send(cmd.raw, cmd.rawLength, f.sink(i));
    return true;
  }

  /** MGET/MSET/DEL/EXISTS/UNLINK/TOUCH over several shards: one sub-command per shard. */
  private split(cmd: RespCommand, spec: CommandSpec, args: Buffer[], idx: number[]): boolean {
    if (spec.name === 'mset' && args.length % 2 === 0) return this.reject(encodeError("ERR wrong number of arguments for 'mset' command"));
    const step = spec.step;
    const groups = new Map<number, { args: Buffer[]; pos: number[] }>();
    for (let j = 0; j < idx.length; j++) {
      const k = idx[j];
      const shard = this.ep.slotShard[keySlot(args[k])];
      if (shard < 0) return this.reject(E_CLUSTERDOWN);
      let g = groups.get(shard);
      if (g === undefined) {
        g = { args: [args[0]], pos: [] };
        groups.set(shard, g);
      }
      for (let i = 0; i < step; i++) g.args.push(args[k + i]);
      g.pos.push(j);
    }
    // All on one shard (different slots): the shard runs it whole, atomically.
    if (groups.size === 1) return this.sendShared(groups.keys().next().value!, cmd);
    if (this.dedOut > 0) return false;
    const kind = spec.name === 'mget' ? F_MGET : spec.name === 'mset' ? F_ALLOK : F_SUM;
    const positions: number[][] = [];
    const s = this.enqueue(K_SHARED);
    this.pendingShared++;
    const f = new Fanout(s, kind, groups.size, this.proto, { positions, total: idx.length });
    let i = 0;
    for (const [shard, g] of groups) {
      positions.push(g.pos);
      this.ep.sharedLink(shard, this.proto).sendBuf(encodeCommand(g.args), f.sink(i++));
    }
    return true;
  }

  private scan(args: Buffer[]): boolean {
    const c = args[1].toString('latin1');
    if (!/^\+?[0-9]{1,20}$/.test(c)) return this.reject(E_INVALID_CURSOR);
    const cursor = BigInt(c.replace('+', ''));
    if (cursor >= 1n << 64n) return this.reject(E_INVALID_CURSOR);
    const n = this.ep.shardCount;
    if (n === 0) return this.reject(E_CLUSTERDOWN);
    if (n > SCAN_MAX_SHARDS) return this.reject(encodeError('ERR too many shards for SCAN'));
    const shard = Number(cursor & BigInt(SCAN_MAX_SHARDS - 1));
    if (shard >= n) return this.local(EMPTY_SCAN);
    if (this.dedOut > 0) return false;
    const sub = encodeCommand([args[0], (cursor >> SCAN_SHIFT).toString(), ...args.slice(2)]);
    const s = this.enqueue(K_SHARED);
    this.pendingShared++;
    this.ep.sharedLink(shard, this.proto).sendBuf(sub, new ScanSink(s, this.proto, shard, n));
    return true;
  }

  // -------------------------------------------------------------------------

  /** Closes the connection and everything it holds. Safe to call twice. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.mode |= M_CLOSING;
    this.socket.destroy();
    for (const l of [...this.ded.values()]) this.dropDedicated(l);
    this.pin = null;
    this.unsubscribeAll();
    this.multi = null;
    this.head = this.tail = null;
    this.stalled = null;
    this.ep.removeSession(this);
  }
}
