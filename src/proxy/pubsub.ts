/**
 * Pub/sub across shards.
 *
 * A channel lives on the shard of keySlot(channel) (PUBLISH is routed there);
 * a pattern is subscribed on every shard. Per shard, ONE subscription link
 * (RESP2) carries the subscriptions of all this endpoint's clients: a channel
 * is subscribed on the shard when its first client subscribes and
 * unsubscribed when its last one leaves. Pushes are fanned out to the client
 * sessions, which compute their own subscription counts, so each client sees
 * exactly what one redis-server would send it.
 *
 * A client's SUBSCRIBE is confirmed only once the shard has confirmed the
 * subscription, so a message published after the client saw the confirmation
 * is never lost. On a new link generation the hub opens a new link,
 * re-subscribes everything there and closes the old link once the new one has
 * confirmed it all (a message published in that instant may arrive twice,
 * never zero times).
 */

import type { Duplex } from 'node:stream';
import { encodeCommand } from './resp-encode.js';
import { ReplyParser, decodeReply, type RespValue } from './resp-reply.js';
import { encodePush, globMatch, K_MESSAGE, K_PMESSAGE, K_SMESSAGE, type Proto } from './replies.js';
import type { LinkHost } from './shard-link.js';

export const PS_CHANNEL = 0;
export const PS_PATTERN = 1;
export const PS_SHARD = 2;
const SUB_CMD = ['SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE'];
const UNSUB_CMD = ['UNSUBSCRIBE', 'PUNSUBSCRIBE', 'SUNSUBSCRIBE'];
const ACK_KINDS = new Set(['subscribe', 'unsubscribe', 'psubscribe', 'punsubscribe', 'ssubscribe', 'sunsubscribe']);

/** Something waiting for a subscription to be confirmed by the shard. */
export interface Waiter {
  ack(): void;
}

/** A session as the hub sees it. */
export interface Subscriber {
  deliver(msg: PushMessage): void;
}

/** One message, encoded lazily once per protocol for all its receivers. */
export class PushMessage {
  private b2: Buffer | null = null;
  private b3: Buffer | null = null;
  constructor(
    readonly kind: number,
    readonly pattern: Buffer | null,
    readonly channel: Buffer,
    readonly payload: Buffer,
  ) {}
  encoded(proto: Proto): Buffer {
    if (proto === 3) return (this.b3 ??= this.encode(3));
    return (this.b2 ??= this.encode(2));
  }
  private encode(proto: Proto): Buffer {
    if (this.kind === PS_PATTERN) return encodePush(proto, K_PMESSAGE, [this.pattern!, this.channel, this.payload]);
    return encodePush(proto, this.kind === PS_SHARD ? K_SMESSAGE : K_MESSAGE, [this.channel, this.payload]);
  }
}

export class Entry {
  readonly subs = new Set<Subscriber>();
  active = false;
  waiters: Waiter[] = [];
  constructor(
    readonly kind: number,
    readonly key: string,
    readonly name: Buffer,
  ) {}
  release(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) x.ack();
  }
}

interface Op {
  sub: boolean;
  entry: Entry;
}

export class PubSubHub {
  readonly maps: [Map<string, Entry>, Map<string, Entry>, Map<string, Entry>] = [new Map(), new Map(), new Map()];
  private link: PubSubLink | null = null;
  private olds: PubSubLink[] = [];
  private attempts = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    readonly host: LinkHost,
    readonly shardUid: number,
    private gen: number,
  ) {}

  /** Adds a subscriber; true when the shard already confirmed the subscription. */
  add(kind: number, key: string, name: Buffer, s: Subscriber, w: Waiter): boolean {
    if (this.closed) return true;
    let e = this.maps[kind].get(key);
    if (e === undefined) {
      e = new Entry(kind, key, name);
      this.maps[kind].set(key, e);
      if (this.link === null) this.newLink();
      else this.link.send({ sub: true, entry: e });
    }
    e.subs.add(s);
    if (e.active || this.closed) return true;
    e.waiters.push(w);
    return false;
  }

  remove(kind: number, key: string, s: Subscriber): void {
    const e = this.maps[kind].get(key);
    if (e === undefined || !e.subs.delete(s) || e.subs.size > 0) return;
    this.maps[kind].delete(key);
    // Nobody waits for a subscription that is already gone.
    e.release();
    if (this.link !== null) this.link.send({ sub: false, entry: e });
  }

  /** How many receivers a PUBLISH to `channel` reached that the shard counted as our link(s). */
  publishCounts(kind: number, key: string, channel: Buffer, withPatterns: boolean): { ours: number; local: number } {
    const links = (this.link !== null ? 1 : 0) + this.olds.length;
    let ours = 0;
    let local = 0;
    const e = this.maps[kind].get(key);
    if (e !== undefined) {
      if (e.active) ours += links;
      local += e.subs.size;
    }
    if (kind === PS_CHANNEL && withPatterns) {
      for (const p of this.maps[PS_PATTERN].values()) {
        if (!globMatch(p.name, channel)) continue;
        if (p.active) ours += links;
        local += p.subs.size;
      }
    }
    return { ours, local };
  }

  /** A new current link, subscribed to every entry. */
  private newLink(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const l = new PubSubLink(this, this.gen);
    this.link = l;
    l.start();
    this.resubscribe(l);
  }

  /** New link generation: subscribe everything on a new link, then drop the old one. */
  relink(gen: number): void {
    this.gen = gen;
    const old = this.link;
    if (old === null) return; // a pending reconnect will use the new generation
    this.olds.push(old);
    this.newLink();
  }

  private resubscribe(l: PubSubLink): void {
    let n = 0;
    for (const m of this.maps) {
      for (const e of m.values()) {
        l.send({ sub: true, entry: e }, true);
        n++;
      }
    }
    l.resubLeft = n;
    if (n === 0) this.retireOlds();
  }

  private retireOlds(): void {
    const olds = this.olds;
    this.olds = [];
    for (const o of olds) o.retire();
  }

  onAck(l: PubSubLink, op: Op, resub: boolean): void {
    const e = op.entry;
    if (op.sub && this.maps[e.kind].get(e.key) === e && !e.active) {
      e.active = true;
      e.release();
    }
    if (resub && l === this.link && --l.resubLeft === 0) this.retireOlds();
  }

  onMessage(kind: number, pattern: Buffer | null, channel: Buffer, payload: Buffer): void {
    const e = this.maps[kind].get((kind === PS_PATTERN ? pattern! : channel).toString('latin1'));
    if (e === undefined || e.subs.size === 0) return;
    const msg = new PushMessage(kind, pattern, channel, payload);
    for (const s of e.subs) s.deliver(msg);
  }

  onLinkFailed(l: PubSubLink): void {
    if (l !== this.link) {
      this.olds = this.olds.filter((x) => x !== l);
      return;
    }
    this.link = null;
    for (const m of this.maps) for (const e of m.values()) e.active = false;
    if (this.closed) return;
    // Reconnect and subscribe everything again; messages in between are lost.
    const n = this.attempts++;
    const delay = n === 0 ? 0 : Math.min(1000, 50 * 2 ** Math.min(n, 5));
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.closed || this.link !== null) return;
      this.newLink();
    }, delay);
    this.timer.unref();
  }

  onLinkUp(): void {
    this.attempts = 0;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.link?.close();
    this.link = null;
    for (const o of this.olds) o.close();
    this.olds = [];
    for (const m of this.maps) for (const e of m.values()) e.release();
  }

  /** Every entry (for moving channels when the shard map changes). */
  entries(kind: number): IterableIterator<Entry> {
    return this.maps[kind].values();
  }
}

/** The subscription connection of a hub. */
class PubSubLink {
  resubLeft = 0;
  private stream: Duplex | null = null;
  private parser = new ReplyParser();
  // Commands awaiting their confirmation; op null is a PING (see retire).
  private ops: { op: Op | null; resub: boolean }[] = [];
  private unsent: Buffer[] = [];
  private state = 0; // 0 connecting, 1 ready, 2 closed
  private retiring = false;

  constructor(
    private readonly hub: PubSubHub,
    readonly gen: number,
  ) {}

  start(): void {
    const host = this.hub.host;
    let p: Promise<Duplex>;
    try {
      p = host.connector(this.hub.shardUid);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (s) => {
        if (this.state === 2) {
          s.on('error', () => {});
          s.destroy();
          return;
        }
        try {
          this.attach(s);
        } catch (e) {
          this.gone(s, e as Error);
        }
      },
      (e: unknown) => {
        host.log.warn({ shard: this.hub.shardUid, err: String((e as Error)?.message ?? e) }, 'pubsub link connect failed');
        if (this.state === 2) return;
        this.state = 2;
        this.hub.onLinkFailed(this);
      },
    );
  }

  private attach(s: Duplex): void {
    this.stream = s;
    this.hub.host.countLink(1);
    this.state = 1;
    this.hub.onLinkUp();
    s.on('data', (c: Buffer) => this.onData(s, c));
    s.on('error', (e: Error) => this.gone(s, e));
    s.on('close', () => this.gone(s, null));
    s.resume();
    if (this.unsent.length > 0) s.write(Buffer.concat(this.unsent));
    this.unsent = [];
  }

  send(op: Op, resub = false): void {
    if (this.state === 2) return;
    this.ops.push({ op, resub });
    const buf = encodeCommand([(op.sub ? SUB_CMD : UNSUB_CMD)[op.entry.kind], op.entry.name]);
    if (this.stream !== null) this.stream.write(buf);
    else this.unsent.push(buf);
  }

  /**
   * Close once everything the shard sent before now has arrived. The
   * successor's subscriptions are confirmed, so messages published from now
   * on reach it; the PING's reply comes after every message published
   * before, which may still be on their way over this link.
   */
  retire(): void {
    if (this.retiring) return;
    this.retiring = true;
    if (this.state === 2) return;
    this.ops.push({ op: null, resub: false });
    const ping = encodeCommand(['PING']);
    if (this.stream !== null) this.stream.write(ping);
    else this.unsent.push(ping);
  }

  close(): void {
    if (this.state === 2) return;
    this.state = 2;
    const s = this.stream;
    this.stream = null;
    if (s !== null) {
      this.hub.host.countLink(-1);
      s.on('error', () => {});
      s.end();
      setTimeout(() => s.destroy(), 2000).unref();
    }
  }

  private gone(s: Duplex, err: Error | null): void {
    if (s !== this.stream) return;
    this.stream = null;
    this.hub.host.countLink(-1);
    s.destroy();
    if (this.state === 2) return;
    this.state = 2;
    this.hub.host.log.warn({ shard: this.hub.shardUid, err: err?.message ?? 'closed' }, 'pubsub link lost');
    this.hub.onLinkFailed(this);
  }

  private onData(s: Duplex, chunk: Buffer): void {
    if (s !== this.stream) return;
    const p = this.parser;
    p.push(chunk);
    try {
      for (let r = p.next(); r !== null; r = p.next()) {
        const v = decodeReply(r.raw);
        if (Array.isArray(v) && v.length >= 3 && Buffer.isBuffer(v[0])) {
          const kind = v[0].toString('latin1');
          if (kind === 'message') {
            this.hub.onMessage(PS_CHANNEL, null, v[1] as Buffer, v[2] as Buffer);
            continue;
          }
          if (kind === 'pmessage' && v.length === 4) {
            this.hub.onMessage(PS_PATTERN, v[1] as Buffer, v[2] as Buffer, v[3] as Buffer);
            continue;
          }
          if (kind === 'smessage') {
            this.hub.onMessage(PS_SHARD, null, v[1] as Buffer, v[2] as Buffer);
            continue;
          }
          if (ACK_KINDS.has(kind)) {
            this.acked();
            continue;
          }
        }
        if (Array.isArray(v) && v.length === 2 && Buffer.isBuffer(v[0]) && v[0].toString('latin1') === 'pong') {
          this.acked();
          continue;
        }
        if (r.isError) {
          // A refused (un)subscribe still consumes its op.
          this.hub.host.log.warn({ shard: this.hub.shardUid, reply: describe(v) }, 'pubsub command refused by shard');
          this.acked();
        }
      }
    } catch (e) {
      this.hub.host.log.error({ err: String(e) }, 'pubsub link reply handling failed');
      this.gone(s, e as Error);
      return;
    }
    if (p.error !== null) this.gone(s, new Error(p.error));
  }

  private acked(): void {
    const o = this.ops.shift();
    if (o === undefined) return;
    if (o.op !== null) this.hub.onAck(this, o.op, o.resub);
    if (this.retiring && this.ops.length === 0) this.close();
  }
}

function describe(v: RespValue): string {
  return v instanceof Error ? v.message : String(v);
}
