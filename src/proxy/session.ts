/**
 * One client connection to the endpoint: the connection state machine.
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
 * This file holds the input processing, dispatch (the hot-path SIMPLE lookup,
 * then dispatchSlow and route), sending on shared and dedicated links, the
 * reply FIFO and its flush, and pub/sub message delivery. The rest lives in:
 *  - session-tables.ts: the static dispatch tables (refused commands, the
 *    hot-path SIMPLE table, …), canned commands and replies, and pure
 *    argument checks;
 *  - session-core.ts: slot kinds, mode bits, and the `SessionCore` interface
 *    (the state and primitives of a Session the handlers below may use);
 *  - session-conn.ts: connection commands (PING, AUTH, HELLO, SELECT, RESET,
 *    CLIENT and the CLIENT LIST line);
 *  - session-tx.ts: MULTI, EXEC, DISCARD, WATCH, UNWATCH and the queue;
 *  - session-pubsub.ts: (P|S)SUBSCRIBE, UNSUBSCRIBE, PUBLISH, PUBSUB;
 *  - session-fanout.ts: fan-outs to every shard, multi-key splits, SCAN.
 * The handlers are functions of a SessionCore and never import this file.
 */

import type net from 'node:net';
import { encodeBulk, encodeError } from './resp-encode.js';
import type { RespReply } from './resp-reply.js';
import { RequestParser, type RespCommand } from './resp-request.js';
import {
  CMD_NO_AUTH,
  CMD_READONLY,
  COMMANDS,
  P_BLOCKING,
  P_FANOUT,
  P_MULTIKEY_SPLIT,
  P_SECURITY,
  checkCommand,
  keyIndexes,
  resolveCommand,
  type CommandSpec,
} from './commands.js';
import { NO_RULE_SLOT } from './slots.js';
import {
  E_CLUSTERDOWN,
  E_NO_SHARD_KEY_RULE,
  E_CROSSSLOT,
  E_FENCED,
  E_DB_RANGE,
  E_LINK_LOST,
  E_NOAUTH,
  E_NO_CLUSTER,
  R_OK,
  noPermError,
  pubsubContextError,
  type Proto,
} from './replies.js';
import { F_ALLOK, F_CONCAT, F_INFO, F_ONEOK, F_RANDOM, F_SUM, type ReplyTarget } from './fanout.js';
import { PS_CHANNEL, PS_PATTERN, PS_SHARD, type PushMessage } from './pubsub.js';
import { L_CLOSED, ShardLink, type Sink } from './shard-link.js';
import { POLICY_MERGE, REFUSED, SIMPLE, SUB_ALLOWED, TX_CONTROL, blocks, copiesToOtherDb, writes } from './session-tables.js';
import {
  K_DED,
  K_LOCAL,
  K_SHARED,
  K_WAIT,
  M_CLOSING,
  M_DEDOUT,
  M_MULTI,
  M_NOAUTH,
  M_PIN,
  M_SUB2,
  type SessionCore,
  type SessionCoreHost,
  type Tx,
} from './session-core.js';
import { auth, client, hello, ping, reset, select } from './session-conn.js';
import { discard, exec, queueTx, startMulti, unwatch, watch } from './session-tx.js';
import { publish, pubsub, subscribe, unsubscribe, unsubscribeAll } from './session-pubsub.js';
import { fanout, fanoutDedicated, scan, split, wait } from './session-fanout.js';
import type { WriteFence } from './fence.js';
import { touchesHeld } from './slot-holds.js';
import { CLS_NONE, CLS_OTHER, CLS_READ, CLS_WRITE, type EndpointStats } from './stats.js';

/** Slots not yet flushed before we stop reading the client (pipelining back-pressure). */
const MAX_PENDING = 16384;
/** Client output bytes queued in the socket before we stop reading its input. */
const OUT_HIGH = 8 * 1024 * 1024;
/** redis's client-output-buffer-limit for pubsub clients (hard limit). */
const PUBSUB_OUT_LIMIT = 32 * 1024 * 1024;
/** Our client-query-buffer-limit (redis: 1 GB). */
export const MAX_QUERY_BUFFER = 64 * 1024 * 1024;
/** How long a closing connection's input is still read (and dropped) after its last reply. */
const LINGER_MS = 1000;
const CONCAT_LIMIT = 64 * 1024;

/** One reply owed to the client, in order. Also the sink of its shard command. */
export class Slot implements Sink, ReplyTarget {
  next: Slot | null = null;
  data: Buffer | Buffer[] | null = null;
  done = false;
  /** The request's class (stats.ts), CLS_NONE when the slot answers no request. */
  cls = CLS_NONE;
  /** When the request's bytes arrived (performance.now(), ms). */
  t = 0.5;
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
 * The part the command handlers use (slot map, shared links, hubs, …) is
 * SessionCoreHost, in session-core.ts.
 */
export interface SessionHost extends SessionCoreHost {
  /** Link generation: links of an older one are replaced when idle. */
  readonly gen: number;
  readonly sessions: Set<Session>;
  nextClientId: number;
  commands: number;
  errors: number;
  hasShard(uid: number): boolean;
  markSessionDirty(s: Session): void;
  removeSession(s: Session): void;
  /** Writes are refused while this node may have been failed over. */
  readonly fence: WriteFence;
  /** A key's slot, for a key lying in `buf[start, end)` (the hot path hashes it in place). */
  keySlotOf(buf: Uint8Array, start: number, end: number): number;
  /** Request, latency and connection counters (read by the metrics endpoint). */
  readonly traffic: EndpointStats;
}

/**
 * A client connection. As a SessionCore it is what the command handlers of
 * session-conn/tx/pubsub/fanout.ts work on (and, through that, a LinkOwner
 * of its dedicated links and a Subscriber of the pub/sub hubs). Members
 * marked @internal are for those handlers only.
 */
export class Session implements SessionCore {
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
  /** When the bytes being parsed arrived (performance.now(), ms): the start of their commands' latency. */
  private rxAt = 0.5;
  /** The class of the command being dispatched; its first reply slot takes it (stats.ts). */
  private cls = CLS_NONE;
  /** channels, patterns, shard channels: latin1 key → name as sent. */
  readonly subs: [Map<string, Buffer>, Map<string, Buffer>, Map<string, Buffer>] = [new Map(), new Map(), new Map()];

  /** @internal Only setAuthed() changes it. */ authed: boolean;
  private paused = false;
  /** Closing after QUIT or a protocol error: the last reply is out, input is dropped until LINGER_MS. */
  private lingering = false;
  /** The client is not reading its replies (socket buffer over OUT_HIGH): stop reading its commands. */
  private outBlocked = false;
  private readonly parser: RequestParser;
  /** @internal The open MULTI's queue (session-tx.ts). */ multi: Tx | null = null;
  /** @internal The dedicated link WATCH holds (session-tx.ts). */ pin: ShardLink | null = null;
  /** @internal The link holding the WATCH was lost: EXEC must abort. */ watchBroken = false;
  /** @internal Shard uids written to since the last WAIT (session-fanout.ts). */ readonly wrote = new Set<number>();
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
    socket.on('error', () => this.destroy(true));
    socket.on('close', () => this.destroy(true));
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
    this.rxAt = performance.now();
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
        this.cls = CLS_OTHER;
        const done = this.dispatch(cmd);
        this.cls = CLS_NONE; // a slot made later (a pub/sub message) answers no request
        if (!done) {
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

  /** @internal Authenticated or not (AUTH, HELLO, RESET); the parser limits what an unauthenticated client may send. */
  setAuthed(ok: boolean): void {
    this.authed = ok;
    this.parser.authRequired = !ok;
    if (ok) this.mode &= ~M_NOAUTH;
    else this.mode |= M_NOAUTH;
  }

  /** Routes one command; false means "not now" (it stalls until replies drain). */
  private dispatch(cmd: RespCommand): boolean {
    if (this.mode === 0) {
      const r = SIMPLE.get(cmd.name);
      if (r !== undefined) {
        const argc = cmd.argc;
        if (r.arity > 0 ? argc === r.arity : argc >= -r.arity) {
          const k = cmd.arg(r.key);
          const slot = this.ep.keySlotOf(k, 0, k.length);
          if (this.ep.holds.held[slot] !== 0) return this.waitHeld();
          const idx = this.ep.slotShard[slot];
          if (idx >= 0) {
            if (r.write) {
              if (this.ep.fence.fenced) return this.dispatchSlow(cmd); // refused there
              this.wrote.add(this.ep.shardUids[idx]);
            }
            this.lastCmd = cmd.name;
            this.cls = r.write ? CLS_WRITE : CLS_READ;
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
    this.cls = writes(spec) ? CLS_WRITE : (spec.flags & CMD_READONLY) !== 0 ? CLS_READ : CLS_OTHER;
    if ((base.proxy & P_SECURITY) !== 0) {
      this.ep.log.warn({ client: this.id }, 'possible SECURITY ATTACK: HTTP request on the RESP port; connection closed');
      this.destroy();
      return true;
    }
    if (REFUSED.has(name) || REFUSED.has(spec.name)) return this.reject(noPermError(spec.name));
    if ((this.mode & M_SUB2) !== 0 && !SUB_ALLOWED.has(name)) return this.reject(pubsubContextError(spec.name));
    if ((this.mode & M_MULTI) !== 0 && !TX_CONTROL.has(name)) return queueTx(this, cmd, spec, args);
    // A resharding's cut-over holds these slots: wait (in order), never fail.
    if (this.ep.holds.active && touchesHeld(this.ep, this.multi, name, spec, args)) return this.waitHeld();
    if (name === 'exec' ? this.multi !== null && !this.multi.dirty : writes(spec)) {
      if (this.ep.fence.fenced) return this.reject(E_FENCED);
      this.noteWrites(spec, args);
    }
    this.lastCmd = spec.name;
    switch (name) {
      case 'ping':
        return ping(this, args);
      case 'echo':
        return this.local(encodeBulk(args[1]));
      case 'auth':
        return auth(this, args);
      case 'hello':
        return hello(this, args);
      case 'select':
        return select(this, args);
      case 'quit':
        this.local(R_OK);
        this.mode |= M_CLOSING;
        this.pause();
        return true;
      case 'reset':
        return reset(this);
      case 'client':
        return client(this, cmd, spec, args);
      case 'readonly':
      case 'readwrite':
      case 'asking':
      case 'cluster':
        return this.reject(E_NO_CLUSTER);
      case 'multi':
        return startMulti(this);
      case 'exec':
        return exec(this);
      case 'discard':
        return discard(this);
      case 'watch':
        return watch(this, cmd, spec, args);
      case 'unwatch':
        return unwatch(this, cmd);
      case 'subscribe':
        return subscribe(this, PS_CHANNEL, args);
      case 'psubscribe':
        return subscribe(this, PS_PATTERN, args);
      case 'ssubscribe':
        return subscribe(this, PS_SHARD, args);
      case 'unsubscribe':
        return unsubscribe(this, PS_CHANNEL, args);
      case 'punsubscribe':
        return unsubscribe(this, PS_PATTERN, args);
      case 'sunsubscribe':
        return unsubscribe(this, PS_SHARD, args);
      case 'publish':
        return publish(this, cmd, args, PS_CHANNEL);
      case 'spublish':
        return publish(this, cmd, args, PS_SHARD);
      case 'pubsub':
        return pubsub(this, cmd, spec, args);
      case 'dbsize':
        return fanout(this, cmd, F_SUM);
      case 'flushdb':
      case 'flushall':
        return fanout(this, cmd, F_ALLOK);
      case 'keys':
        return fanout(this, cmd, F_CONCAT);
      case 'randomkey':
        return fanout(this, cmd, F_RANDOM);
      case 'info':
        return fanout(this, cmd, F_INFO, { clients: this.ep.sessions.size });
      case 'wait':
        return wait(this, args);
      case 'scan':
        return scan(this, args);
    }
    return this.route(cmd, spec, args);
  }

  /** Stall until the hold ends (the endpoint wakes us). */
  private waitHeld(): false {
    this.ep.holds.wait(this);
    return false;
  }

  /** The shards a write (or an EXEC) reaches, for WAIT: its keys' shards, else every shard. */
  private noteWrites(spec: CommandSpec, args: Buffer[]): void {
    const ep = this.ep;
    const tx = this.multi;
    const idx = tx !== null ? [] : keyIndexes(spec, args);
    if (tx !== null && tx.slot >= 0) {
      const i = ep.slotShard[tx.slot];
      if (i >= 0) this.wrote.add(ep.shardUids[i]);
    } else if (idx.length === 0) {
      for (const uid of ep.shardUids) this.wrote.add(uid);
    } else {
      for (const k of idx) {
        const i = ep.slotShard[ep.keySlot(args[k])];
        if (i >= 0) this.wrote.add(ep.shardUids[i]);
      }
    }
  }

  /** Default routing: by keys, else fan-out by the command's tips, else any shard. */
  private route(cmd: RespCommand, spec: CommandSpec, args: Buffer[]): boolean {
    const idx = keyIndexes(spec, args);
    if (idx.length === 0) {
      // The busy script holds the shared link: the kill must take another road.
      if (spec.name === 'script|kill' || spec.name === 'function|kill') return fanoutDedicated(this, cmd, F_ONEOK);
      if ((spec.proxy & P_FANOUT) !== 0 && spec.responsePolicy !== undefined) {
        const kind = POLICY_MERGE[spec.responsePolicy];
        if (kind !== undefined) return fanout(this, cmd, kind);
      }
      if (this.ep.shardCount === 0) return this.reject(E_CLUSTERDOWN);
      return this.sendShared(0, cmd);
    }
    const slot = this.ep.keySlot(args[idx[0]]);
    if (slot === NO_RULE_SLOT) return this.reject(E_NO_SHARD_KEY_RULE);
    for (let i = 1; i < idx.length; i++) {
      if (this.ep.keySlot(args[idx[i]]) !== slot) {
        if ((spec.proxy & P_MULTIKEY_SPLIT) !== 0) return split(this, cmd, spec, args, idx);
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

  /** @internal */ sendShared(shard: number, cmd: RespCommand): boolean {
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

  /** @internal */ sendOn(link: ShardLink, raw: readonly Buffer[], len: number): true {
    const s = this.enqueue(K_DED);
    if (this.dedOut++ === 0) this.mode |= M_DEDOUT;
    link.send(raw, len, s);
    return true;
  }

  /** @internal */ dedicatedLink(shard: number): ShardLink {
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

  /** @internal */ dropDedicated(l: ShardLink): void {
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

  /** @internal */ enqueue(kind: number): Slot {
    const s = new Slot(this, kind);
    const cls = this.cls;
    if (cls !== CLS_NONE) {
      s.cls = cls;
      s.t = this.rxAt;
      this.ep.traffic.requests[cls]++;
      this.cls = CLS_NONE;
    }
    if (this.tail === null) this.head = s;
    else this.tail.next = s;
    this.tail = s;
    this.queued++;
    return s;
  }

  /** @internal A reply the proxy answers itself. */
  local(buf: Buffer, isErr = false): true {
    this.enqueue(K_LOCAL).fill(buf, isErr);
    return true;
  }

  /** @internal An error that, like redis's rejectCommand, also dooms an open MULTI. */
  reject(buf: Buffer): true {
    if (this.multi !== null) this.multi.dirty = true;
    return this.local(buf, true);
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
    let now = -1;
    const traffic = this.ep.traffic;
    while (s?.done) {
      if (s.cls !== CLS_NONE) {
        if (now < 0) now = performance.now();
        traffic.observe(s.cls, (now - s.t) * 1000);
      }
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
      // As redis after QUIT or a protocol error: the last reply goes out, then
      // the connection is closed for good. Input is read and dropped for a
      // moment first (LINGER_MS): closing a socket with unread input sends a
      // reset, which makes the client's kernel discard the reply it has not
      // read yet. A client still sending after that is cut off.
      if (s === null && !this.lingering) {
        this.lingering = true;
        sock.end();
        sock.resume();
        setTimeout(() => this.destroy(), LINGER_MS).unref();
      }
      return;
    }
    if (this.stalled !== null || (this.paused && this.queued < MAX_PENDING / 2)) this.processInput();
  }

  // -------------------------------------------------------------------------

  /** Closes the connection and everything it holds. Safe to call twice. `byClient`: the client closed it. */
  destroy(byClient = false): void {
    if (this.closed) return;
    this.closed = true;
    if (byClient) this.ep.traffic.disconnections++;
    else this.ep.traffic.proxyDisconnections++;
    this.mode |= M_CLOSING;
    this.socket.destroy();
    for (const l of [...this.ded.values()]) this.dropDedicated(l);
    this.pin = null;
    unsubscribeAll(this);
    this.multi = null;
    this.head = this.tail = null;
    this.stalled = null;
    this.ep.removeSession(this);
  }
}
