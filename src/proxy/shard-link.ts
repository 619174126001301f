/**
 * One connection from the proxy to a shard.
 *
 * Shared links (one per shard and protocol version) multiplex every client's
 * commands: whatever is queued during one event-loop turn is written as ONE
 * write, and at most one batch is unanswered at a time — the next batch goes
 * out when the last reply of the previous one has arrived. Under load this
 * turns many tiny writes into few large ones, which is what keeps TLS links
 * within a few percent of plaintext. Replies are matched to their commands by
 * order (a FIFO of sinks) and handed over as raw byte views.
 *
 * Dedicated links (one per client and shard, `dedicated = true`) use the same
 * machinery for the commands that must not share a connection: blocking
 * commands and WATCH…EXEC.
 *
 * Relinking (new link generation): `retire(successor)` stops this link from
 * taking new work, moves its unwritten queue to the successor, and lets the
 * successor write only once every command already sent here has its reply
 * (`predecessor` gate), so a shard sees each client's commands in order even
 * while two connections to it exist.
 *
 * A master that becomes a replica under a shared link (a planned switchover:
 * its paused writes are answered -READONLY once it follows the new master)
 * has executed none of the commands from the first -READONLY on. Those
 * commands, and every later one of the batch, are queued again in order and
 * go to the slots' new master once the endpoint's map names it (or fail with
 * -CLUSTERDOWN when the hold runs out): no client sees -READONLY.
 */

import type { Duplex } from 'node:stream';
import { appendRaw } from './resp-encode.js';
import { ReplyParser, type RespReply } from './resp-reply.js';
import { E_MASTER_UNREACHABLE, type Proto } from './replies.js';
import { RequestParser } from './resp-request.js';

/** Receives the reply to one command; null when the link died first. */
export interface Sink {
  onReply(r: RespReply | null): void;
  /**
   * A sink that takes several replies (a MULTI…EXEC block) and got some of
   * them, whose commands are now re-sent whole to another shard: forget them.
   */
  rewind?(): void;
}

export type ShardConnector = (shardUid: number) => Promise<Duplex>;

export interface Logger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
}

/** What a link needs from the endpoint that owns it. */
export interface LinkHost {
  readonly connector: ShardConnector;
  readonly log: Logger;
  markLinkDirty(l: ShardLink): void;
  /** A stream was obtained (+1) or dropped (-1): stats().links. */
  countLink(delta: number): void;
  /** The shards' redis version, learnt from a link's HELLO reply. */
  serverVersion: string;
  /**
   * How long commands wait on a shared link whose shard is unreachable (or
   * not yet master) before they fail with -CLUSTERDOWN: long enough to cover
   * a node failover, after which the endpoint's new map moves them on.
   */
  readonly holdMs: number;
}

/** A client session owning dedicated links. */
export interface LinkOwner {
  onLinkIdle(l: ShardLink): void;
  onLinkGone(l: ShardLink): void;
}

export const L_IDLE = 0;
export const L_CONNECTING = 1;
export const L_READY = 2;
export const L_BACKOFF = 3;
export const L_CLOSED = 4;

const CONNECT_TIMEOUT_MS = 10_000;
/**
 * A batch unanswered this long makes a link open a fresh connection to its shard; not up within STALL_PROBE_MS,
 * the link is dead (a cut, a frozen node) and fails (a shared link holds its queue), not after TCP's 20 s; a slow
 * shard or blocking command lets it in. One probe per shard serves all links asking within STALL_CHECK_MS; a failed
 * one (`downAt`, `downEpoch`) fails the shared links opened before it at their next write: their queue is
 * held, not written into the cut.
 */
const STALL_CHECK_MS = 2000;
const STALL_PROBE_MS = 1500;
const probes = new WeakMap<ShardConnector, Map<number, { at: number; ok: Promise<boolean>; downAt?: number }>>();
let downEpoch = 0;
/** The reply every held command gets once its hold ran out. */
const UNREACHABLE = (() => {
  const p = new ReplyParser();
  p.push(E_MASTER_UNREACHABLE);
  return p.next()!;
})();
const HELLO3 = Buffer.from('*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n');
const HELLO = Buffer.from('*1\r\n$5\r\nHELLO\r\n');
const NO_BUFS: Buffer[] = [];
/**
 * The errors of a shard that is a replica now: a write (-READONLY), or an
 * EXEC whose block was queued while it was master (redis 7 aborts it).
 */
function isDemotedReply(r: RespReply): boolean {
  const t = r.raw[0].toString('latin1', 0, 56);
  return t.startsWith('-READONLY ') || t.startsWith('-EXECABORT Transaction discarded because of: READONLY');
}
/** Batches up to this size are joined into one buffer; larger ones use writev. */
const CONCAT_LIMIT = 64 * 1024;

export class ShardLink {
  state = L_IDLE;
  stream: Duplex | null = null;
  /** Set by the pool when this link must not take new work. */
  retired = false;
  /** In the endpoint's dirty list already. */
  dirty = false;
  /** Dedicated link holding a client's WATCH state. */
  pinned = false;
  owner: LinkOwner | null = null;
  /** Link to the same shard that must drain before this one writes. */
  predecessor: ShardLink | null = null;
  successor: ShardLink | null = null;

  private parser = new ReplyParser();
  // Queued (not yet written) commands: their bytes and their sinks.
  private qbufs: Buffer[] = [];
  private qsinks: Sink[] = [];
  private qbytes = 0;
  // The last queued bytes as a range of a client chunk, grown while commands
  // arrive back to back in that chunk; made into one Buffer when closed.
  private runAB: ArrayBufferLike | null = null;
  private runStart = 0;
  private runEnd = 0;
  // The batch on the wire: its bytes (kept for a re-send, see notMasterAnymore) and sinks.
  private fbufs: Buffer[] = NO_BUFS;
  private fsinks: Sink[] = [];
  private fhead = 0;
  private attempts = 0;
  private timer: NodeJS.Timeout | null = null;
  // Unreachable shard: since when, the timer ending the hold, and whether it
  // has ended (new commands then fail at once until the link is back).
  private downSince = 0;
  private holdTimer: NodeJS.Timeout | null = null;
  private failFast = false;
  // Stall watch (shared links): when the batch on the wire went out, when a reply last came, the check's timer.
  private batchAt = 0;
  private replyAt = 0;
  private stallTimer: NodeJS.Timeout | null = null;
  private attachedAt = 0;
  private seenDownEpoch = 0;

  constructor(
    readonly host: LinkHost,
    readonly shardUid: number,
    readonly proto: Proto,
    readonly gen: number,
    readonly dedicated: boolean,
  ) {}

  /** Commands written and not yet answered. */
  get inflight(): number {
    return this.fsinks.length - this.fhead;
  }

  /** Nothing written unanswered and nothing queued. */
  get idle(): boolean {
    return this.fhead === this.fsinks.length && this.qsinks.length === 0;
  }

  start(): void {
    if (this.state === L_CLOSED) return;
    this.state = L_CONNECTING;
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      this.connectFailed(new Error('connect timeout'));
    }, CONNECT_TIMEOUT_MS);
    let p: Promise<Duplex>;
    try {
      p = this.host.connector(this.shardUid);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (s) => {
        clearTimeout(timer);
        if (settled || this.state === L_CLOSED) {
          // Too late (timed out or closed meanwhile): nobody wants it.
          s.on('error', () => {});
          s.destroy();
          return;
        }
        settled = true;
        try {
          this.attach(s);
        } catch (e) {
          s.destroy();
          this.fail(e as Error);
        }
      },
      (e: unknown) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        this.connectFailed(e);
      },
    );
  }

  private attach(s: Duplex): void {
    this.stream = s;
    this.attachedAt = Date.now();
    this.parser = new ReplyParser();
    this.host.countLink(1);
    s.on('data', (c: Buffer) => this.onData(s, c));
    s.on('error', (e: Error) => this.onStreamGone(s, e));
    s.on('close', () => this.onStreamGone(s, null));
    (s as { setNoDelay?: (b: boolean) => void }).setNoDelay?.(true);
    s.resume();
    this.state = L_READY;
    // RESP3 links switch protocol before anything else (HELLO 3); RESP2 ones
    // send a bare HELLO, which only tells the server version. The handshake
    // is just the first reply in the FIFO; queued commands follow it.
    this.fsinks.push(new HelloSink(this));
    s.write(this.proto === 3 ? HELLO3 : HELLO);
  }

  private markDirty(): void {
    if (!this.dirty) {
      this.dirty = true;
      this.host.markLinkDirty(this);
    }
  }

  /** Queue a client's command (its raw views) for this shard. */
  send(views: readonly Buffer[], length: number, sink: Sink): void {
    if (this.state === L_CLOSED) {
      sink.onReply(null);
      return;
    }
    if (this.failFast) {
      sink.onReply(UNREACHABLE);
      return;
    }
    if (views.length === 1) {
      // A pipeline of commands from one chunk becomes one slice, without a
      // Buffer object per command.
      const v = views[0];
      if (v.buffer === this.runAB && v.byteOffset === this.runEnd) {
        this.runEnd += v.length;
      } else {
        if (this.runAB !== null) this.closeRun();
        this.runAB = v.buffer;
        this.runStart = v.byteOffset;
        this.runEnd = v.byteOffset + v.length;
      }
    } else {
      if (this.runAB !== null) this.closeRun();
      appendRaw(this.qbufs, views);
    }
    this.qbytes += length;
    this.qsinks.push(sink);
    if (!this.dirty && this.fhead === this.fsinks.length) this.markDirty();
  }

  /** Queue bytes the proxy built; `replies` replies are expected, all for `sink`. */
  sendBuf(buf: Buffer, sink: Sink, replies = 1): void {
    if (this.state === L_CLOSED || this.failFast) {
      for (let i = 0; i < replies; i++) sink.onReply(this.failFast ? UNREACHABLE : null);
      return;
    }
    if (this.runAB !== null) this.closeRun();
    this.qbufs.push(buf);
    this.qbytes += buf.length;
    for (let i = 0; i < replies; i++) this.qsinks.push(sink);
    if (!this.dirty && this.fhead === this.fsinks.length) this.markDirty();
  }

  /** Write the queued batch if the wire is free (called once per tick). */
  flush(): void {
    this.dirty = false;
    const s = this.stream;
    if (this.state !== L_READY || s === null || this.predecessor !== null) return;
    if (this.fhead !== this.fsinks.length || this.qsinks.length === 0) return;
    if (!this.dedicated && this.seenDownEpoch !== downEpoch && this.probedDown()) return;
    if (this.runAB !== null) this.closeRun();
    const bufs = this.qbufs;
    const bytes = this.qbytes;
    const spare = this.fsinks;
    spare.length = 0;
    this.fsinks = this.qsinks;
    this.fhead = 0;
    this.qsinks = spare;
    this.qbufs = [];
    this.qbytes = 0;
    this.fbufs = bufs;
    this.batchAt = Date.now();
    if (this.stallTimer === null) this.watchStall(STALL_CHECK_MS);
    if (bufs.length === 1) {
      s.write(bufs[0]);
    } else if (bytes <= CONCAT_LIMIT) {
      s.write(Buffer.concat(bufs, bytes));
    } else {
      s.cork();
      for (const b of bufs) s.write(b);
      s.uncork();
    }
  }

  private onData(s: Duplex, chunk: Buffer): void {
    if (s !== this.stream) return;
    if (this.stallTimer !== null) this.replyAt = Date.now();
    const p = this.parser;
    p.push(chunk);
    for (let r = p.next(); r !== null; r = p.next()) {
      if (this.fhead >= this.fsinks.length) {
        // RESP3 out-of-band data we never asked for (no tracking, no
        // subscriptions here): skip it. Anything else is a desync.
        if (r.isPush) continue;
        this.fail(new Error('reply without a command'));
        return;
      }
      if (r.isPush && this.proto === 3) continue;
      if (r.isError && !this.dedicated && isDemotedReply(r) && this.notMasterAnymore()) return;
      const sink = this.fsinks[this.fhead++];
      try {
        sink.onReply(r);
      } catch (e) {
        this.host.log.error({ err: String((e as Error)?.stack ?? e), shard: this.shardUid }, 'reply handler failed');
      }
      if (this.stream !== s) return; // the handler closed us
    }
    if (p.error !== null) {
      this.fail(new Error(p.error));
      return;
    }
    if (this.fhead === this.fsinks.length && this.fhead > 0) this.batchDone();
  }

  /**
   * The shard answered -READONLY: it was demoted under this link. The
   * commands from that reply's group on (a MULTI…EXEC block is one group)
   * were not executed; they are queued again, ahead of the queue, and the
   * link waits for a master as after a lost connection. False when they
   * cannot be re-sent (no heir to go to, or the bytes do not split into one
   * command per reply): the reply is then delivered as it is.
   */
  private notMasterAnymore(): boolean {
    if (this.retired && this.successor === null) return false;
    const sinks = this.fsinks;
    const k = this.fhead;
    let g = k;
    while (g > 0 && sinks[g - 1] === sinks[k]) g--;
    const p = new RequestParser();
    for (const b of this.fbufs) p.push(b);
    const cmds: Buffer[] = [];
    for (let c = p.next(); c !== null; c = p.next()) cmds.push(c.rawBuffer());
    if (p.error !== null || cmds.length !== sinks.length) {
      this.host.log.error(
        { shard: this.shardUid, commands: cmds.length, replies: sinks.length },
        'shard answered READONLY; its batch does not split into one command per reply, so the error goes to the clients',
      );
      return false;
    }
    const again = sinks.slice(g);
    if (g < k) sinks[k].rewind?.();
    const s = this.stream;
    if (s !== null) {
      this.stream = null;
      this.host.countLink(-1);
      s.on('error', () => {}); // closing it: nothing more is read from it
      s.destroy();
    }
    this.fsinks = [];
    this.fhead = 0;
    this.fbufs = NO_BUFS;
    if (this.runAB !== null) this.closeRun();
    const bytes = cmds.slice(g);
    this.qbufs = bytes.concat(this.qbufs);
    this.qsinks = again.concat(this.qsinks);
    for (const b of bytes) this.qbytes += b.length;
    this.host.log.warn(
      { shard: this.shardUid, requeued: again.length, retired: this.retired },
      'shard is a replica now (READONLY): its unexecuted commands wait for the new master',
    );
    if (this.retired) {
      // The endpoint's map already names the heir: the commands go there now.
      this.moveQueueTo(this.successor!);
      this.close();
    } else {
      this.connectFailed(new Error('shard answered READONLY: it is a replica now'));
    }
    return true;
  }

  /** The batch on the wire is fully answered. */
  private batchDone(): void {
    this.fsinks.length = 0;
    this.fhead = 0;
    this.fbufs = NO_BUFS;
    if (this.retired) {
      this.close();
      this.handOff();
    } else if (this.qsinks.length > 0) {
      this.markDirty();
    } else if (this.owner !== null) {
      this.owner.onLinkIdle(this);
    }
  }

  /** Opens the successor's gate (it inherits ours, if we had one). */
  private handOff(): void {
    const succ = this.successor;
    if (succ === null) return;
    this.successor = null;
    succ.predecessor = this.predecessor;
    if (this.predecessor !== null) this.predecessor.successor = succ;
    this.predecessor = null;
    if (succ.predecessor === null && succ.qsinks.length > 0) succ.markDirty();
  }

  /**
   * Stop taking work: queued commands move to `successor` (or fail when there
   * is none); the link closes once its batch on the wire is answered — or,
   * with `drainMs`, after that long at most: a shard that left the map (its
   * node failed over) may never answer (SIGSTOP, a partition), and its
   * successor must not wait for it forever. Its unanswered commands then fail
   * (outcome unknown, as with a lost connection).
   */
  retire(successor: ShardLink | null, drainMs?: number): void {
    if (this.retired) return;
    this.retired = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.endHold();
    if (successor !== null) this.moveQueueTo(successor);
    else this.failQueued();
    if (successor !== null) {
      this.successor = successor;
      successor.predecessor = this;
    }
    if (this.state !== L_READY || this.inflight === 0) {
      this.close();
      this.handOff();
    } else if (drainMs !== undefined) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.host.log.warn(
          { shard: this.shardUid, unanswered: this.inflight },
          'shard left the map without answering; its commands in flight fail',
        );
        this.close();
      }, drainMs);
      this.timer.unref();
    }
  }

  /** Our unwritten commands go ahead of `successor`'s. */
  private moveQueueTo(successor: ShardLink): void {
    if (this.runAB !== null) this.closeRun();
    if (successor.runAB !== null) successor.closeRun();
    successor.qbufs = this.qbufs.concat(successor.qbufs);
    successor.qsinks = this.qsinks.concat(successor.qsinks);
    successor.qbytes += this.qbytes;
    this.qbufs = [];
    this.qsinks = [];
    this.qbytes = 0;
  }

  /** Drop the connection now; whatever is still owed fails. */
  close(): void {
    if (this.state === L_CLOSED) return;
    this.state = L_CLOSED;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    this.endHold();
    const s = this.stream;
    this.stream = null;
    if (s !== null) {
      this.host.countLink(-1);
      s.on('error', () => {});
      s.end();
      // A shard that never closes its side must not keep the socket alive.
      setTimeout(() => s.destroy(), 2000).unref();
    }
    this.failInflight();
    this.failQueued();
    this.handOff();
    if (this.owner !== null) this.owner.onLinkGone(this);
  }

  private onStreamGone(s: Duplex, err: Error | null): void {
    if (s !== this.stream) return;
    this.fail(err ?? new Error('connection closed by shard'));
  }

  /** The connection broke: commands on the wire fail; shared links reconnect. */
  fail(err: Error): void {
    const s = this.stream;
    if (s !== null) {
      this.stream = null;
      this.host.countLink(-1);
      s.on('error', () => {});
      s.destroy();
    }
    if (this.state === L_CLOSED) return;
    this.host.log.warn({ shard: this.shardUid, proto: this.proto, dedicated: this.dedicated, err: err.message }, 'shard link lost');
    this.failInflight();
    if (this.dedicated || this.retired) {
      this.close();
      return;
    }
    this.handOff();
    this.state = L_BACKOFF;
    this.startHold();
    this.scheduleReconnect();
  }

  private connectFailed(e: unknown): void {
    if (this.state === L_CLOSED) return;
    if (this.attempts < 2 || this.attempts % 20 === 0) {
      this.host.log.warn(
        { shard: this.shardUid, attempt: this.attempts + 1, err: String((e as Error)?.message ?? e) },
        'shard connect failed',
      );
    }
    if (this.dedicated || this.retired) {
      this.close();
      return;
    }
    // Queued commands wait (a failover may be on its way) until the hold runs out.
    this.state = L_BACKOFF;
    this.startHold();
    this.scheduleReconnect();
  }

  /**
   * The shard answered HELLO as a replica: it is not (yet) the master the map
   * names, e.g. a replica the failover just promoted whose node has not run
   * REPLICAOF NO ONE yet. Nothing was written but the HELLO, so the queue
   * waits for the next attempt instead of meeting -READONLY.
   */
  notMaster(): void {
    const s = this.stream;
    if (s === null) return;
    this.stream = null;
    this.host.countLink(-1);
    s.on('error', () => {});
    s.destroy();
    this.fsinks.length = 0;
    this.fhead = 0;
    this.connectFailed(new Error('shard is a replica, not the master'));
  }

  /** Linked and answering as master: held commands go out, new ones queue again. */
  ready(): void {
    this.endHold();
    this.attempts = 0;
  }

  /** Check, after `ms`, that the batch on the wire is being answered (see STALL_CHECK_MS). */
  private watchStall(ms: number): void {
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      const s = this.stream;
      if (s === null || this.state !== L_READY || this.inflight === 0) return;
      const since = Math.max(this.batchAt, this.replyAt);
      if (Date.now() - since < STALL_CHECK_MS) return this.watchStall(STALL_CHECK_MS - (Date.now() - since));
      void this.probePath().then((ok) => {
        if (s !== this.stream) return; // the link moved on meanwhile
        // Answered meanwhile (a cut healed while the probe waited): the link works.
        if (ok || Math.max(this.batchAt, this.replyAt) !== since) this.watchStall(STALL_CHECK_MS);
        else this.fail(new Error(`no reply for ${Date.now() - since} ms and the shard cannot be reached`));
      });
    }, ms);
    this.stallTimer.unref();
  }

  /** Whether a fresh connection to the shard comes up within STALL_PROBE_MS; answered -BUSY or -LOADING is up too. */
  private probePath(): Promise<boolean> {
    let byShard = probes.get(this.host.connector);
    if (byShard === undefined) probes.set(this.host.connector, (byShard = new Map()));
    const last = byShard.get(this.shardUid);
    if (last !== undefined && Date.now() - last.at < STALL_CHECK_MS) return last.ok;
    const ok = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), STALL_PROBE_MS);
      const end = (up: boolean) => (clearTimeout(timer), resolve(up)); // after the timeout: ignored
      Promise.resolve()
        .then(() => this.host.connector(this.shardUid))
        .then(
          (probe) => {
            probe.on('error', () => {}); // only its opening mattered
            probe.destroy();
            end(true);
          },
          (e: unknown) => end(/\b(BUSY|LOADING)\b/.test(String((e as Error)?.message ?? e))),
        );
    });
    const entry: { at: number; ok: Promise<boolean>; downAt?: number } = { at: Date.now(), ok };
    byShard.set(this.shardUid, entry);
    void ok.then((up) => up || ((entry.downAt = Date.now()), downEpoch++));
    return ok;
  }

  /** Another link's probe found this shard unreachable since this link connected: fail it before it writes. */
  private probedDown(): boolean {
    this.seenDownEpoch = downEpoch;
    const downAt = probes.get(this.host.connector)?.get(this.shardUid)?.downAt ?? 0;
    if (downAt <= this.attachedAt) return false;
    this.fail(new Error('shard unreachable: a probe of its path failed'));
    return true;
  }

  private startHold(): void {
    if (this.downSince !== 0) return;
    this.downSince = Date.now();
    this.holdTimer = setTimeout(() => {
      this.holdTimer = null;
      this.failFast = true;
      this.host.log.warn(
        { shard: this.shardUid, held_ms: Date.now() - this.downSince },
        'shard unreachable past the hold; its commands fail with CLUSTERDOWN until it is back',
      );
      this.failQueued(UNREACHABLE);
    }, this.host.holdMs);
    this.holdTimer.unref();
  }

  private endHold(): void {
    if (this.holdTimer !== null) {
      clearTimeout(this.holdTimer);
      this.holdTimer = null;
    }
    this.downSince = 0;
    this.failFast = false;
  }

  private scheduleReconnect(): void {
    const n = this.attempts++;
    const delay = n === 0 ? 0 : Math.min(1000, 50 * 2 ** Math.min(n, 5));
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.state === L_BACKOFF) this.start();
    }, delay);
    this.timer.unref();
  }

  private failInflight(): void {
    const sinks = this.fsinks;
    const head = this.fhead;
    this.fsinks = [];
    this.fhead = 0;
    this.fbufs = NO_BUFS;
    for (let i = head; i < sinks.length; i++) sinks[i].onReply(null);
  }

  private closeRun(): void {
    this.qbufs.push(Buffer.from(this.runAB as ArrayBuffer, this.runStart, this.runEnd - this.runStart));
    this.runAB = null;
  }

  private failQueued(reply: RespReply | null = null): void {
    const sinks = this.qsinks;
    this.qsinks = [];
    this.qbufs = [];
    this.qbytes = 0;
    this.runAB = null;
    for (const s of sinks) s.onReply(reply);
  }
}

/** Swallows a link's HELLO reply, noting the server version. */
class HelloSink implements Sink {
  constructor(private readonly link: ShardLink) {}
  onReply(r: RespReply | null): void {
    if (r === null) return;
    if (r.isError) {
      this.link.fail(new Error(`HELLO refused by shard: ${r.rawBuffer().toString().trim()}`));
      return;
    }
    const text = r.rawBuffer().toString('latin1');
    const m = /version\r\n\$\d+\r\n([^\r]+)\r\n/.exec(text);
    if (m !== null) this.link.host.serverVersion = m[1];
    if (/role\r\n\$7\r\nreplica\r\n/.test(text)) this.link.notMaster();
    else this.link.ready();
  }
}
