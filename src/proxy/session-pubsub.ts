/**
 * A session's pub/sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH,
 * SPUBLISH and PUBSUB, and the bookkeeping of the session's subscriptions
 * (`Session.subs`) in the endpoint's per-shard hubs (pubsub.ts). Messages
 * reach the client through `Session.deliver` (session.ts), which owns the
 * reply FIFO.
 *
 * Handlers take the session as a SessionCore (session-core.ts); session.ts
 * and session-conn.ts call them.
 */

import type { RespCommand } from './resp-request.js';
import type { CommandSpec } from './commands.js';
import { keySlot } from './slots.js';
import { E_CLUSTERDOWN, E_CROSSSLOT, encodePush } from './replies.js';
import { F_MAX, F_NUMSUB, F_UNION, PublishSink, type ReplyTarget } from './fanout.js';
import { PS_CHANNEL, PS_PATTERN, PS_SHARD, type Waiter } from './pubsub.js';
import { SUB_KIND, UNSUB_KIND } from './session-tables.js';
import { K_SHARED, K_WAIT, M_SUB2, type SessionCore } from './session-core.js';
import { fanout } from './session-fanout.js';

/** A (P|S)SUBSCRIBE's confirmations, sent once every shard involved confirmed. */
class SubWaiter implements Waiter {
  left = 0;
  parts: Buffer[] = [];
  private armed = false;
  constructor(private readonly slot: ReplyTarget) {}
  ack(): void {
    if (--this.left <= 0 && this.armed) this.slot.fill(Buffer.concat(this.parts), false);
  }
  arm(): void {
    this.armed = true;
    if (this.left <= 0) this.slot.fill(Buffer.concat(this.parts), false);
  }
}

export function subscribe(s: SessionCore, kind: number, args: Buffer[]): boolean {
  const names = args.slice(1);
  if (kind === PS_SHARD) {
    const slot = keySlot(names[0]);
    for (const n of names) if (keySlot(n) !== slot) return s.reject(E_CROSSSLOT);
  }
  const w = new SubWaiter(s.enqueue(K_WAIT));
  s.waitSlots++;
  const set = s.subs[kind];
  for (const n of names) {
    const key = n.toString('latin1');
    if (!set.has(key)) set.set(key, n);
    w.parts.push(encodePush(s.proto, SUB_KIND[kind], [n, countFor(s, kind)]));
    if (kind === PS_PATTERN) {
      for (let i = 0; i < s.ep.shardCount; i++) if (!s.ep.hub(i).add(kind, key, n, s, w)) w.left++;
    } else {
      const shard = s.ep.slotShard[keySlot(n)];
      if (shard >= 0 && !s.ep.hub(shard).add(kind, key, n, s, w)) w.left++;
    }
  }
  updateSubMode(s);
  w.arm();
  return true;
}

export function unsubscribe(s: SessionCore, kind: number, args: Buffer[]): boolean {
  const set = s.subs[kind];
  const names = args.length > 1 ? args.slice(1) : [...set.values()];
  const parts: Buffer[] = [];
  if (names.length === 0) parts.push(encodePush(s.proto, UNSUB_KIND[kind], [null, countFor(s, kind)]));
  for (const n of names) {
    const key = n.toString('latin1');
    if (set.delete(key)) leave(s, kind, key, n);
    parts.push(encodePush(s.proto, UNSUB_KIND[kind], [n, countFor(s, kind)]));
  }
  updateSubMode(s);
  return s.local(Buffer.concat(parts));
}

function leave(s: SessionCore, kind: number, key: string, name: Buffer): void {
  if (kind === PS_PATTERN) {
    for (let i = 0; i < s.ep.shardCount; i++) s.ep.hub(i).remove(kind, key, s);
  } else {
    const shard = s.ep.slotShard[keySlot(name)];
    if (shard >= 0) s.ep.hub(shard).remove(kind, key, s);
  }
}

export function unsubscribeAll(s: SessionCore): void {
  for (let kind = 0; kind < 3; kind++) {
    for (const [key, n] of s.subs[kind]) leave(s, kind, key, n);
    s.subs[kind].clear();
  }
}

/** The count redis puts in (un)subscribe confirmations. */
function countFor(s: SessionCore, kind: number): number {
  return kind === PS_SHARD ? s.subs[2].size : s.subs[0].size + s.subs[1].size;
}

export function subCount(s: SessionCore): number {
  return s.subs[0].size + s.subs[1].size + s.subs[2].size;
}

export function updateSubMode(s: SessionCore): void {
  if (s.proto === 2 && subCount(s) > 0) s.mode |= M_SUB2;
  else s.mode &= ~M_SUB2;
}

export function publish(s: SessionCore, cmd: RespCommand, args: Buffer[], kind: number): boolean {
  const ch = args[1];
  const shard = s.ep.slotShard[keySlot(ch)];
  if (shard < 0) return s.reject(E_CLUSTERDOWN);
  if (s.dedOut > 0) return false;
  const hub = s.ep.hubIfAny(shard);
  const key = ch.toString('latin1');
  const slot = s.enqueue(K_SHARED);
  s.pendingShared++;
  const sink = new PublishSink(slot, (n) => {
    if (hub === undefined) return n;
    const c = hub.publishCounts(kind, key, ch, true);
    return Math.max(0, n - c.ours) + c.local;
  });
  s.ep.sharedLink(shard, s.proto).send(cmd.raw, cmd.rawLength, sink);
  return true;
}

export function pubsub(s: SessionCore, cmd: RespCommand, spec: CommandSpec, args: Buffer[]): boolean {
  switch (spec.name) {
    case 'pubsub|channels':
    case 'pubsub|shardchannels':
      return fanout(s, cmd, F_UNION);
    case 'pubsub|numpat':
      return fanout(s, cmd, F_MAX);
    case 'pubsub|numsub':
    case 'pubsub|shardnumsub': {
      const kind = spec.name === 'pubsub|numsub' ? PS_CHANNEL : PS_SHARD;
      return fanout(s, cmd, F_NUMSUB, {
        correct: (name, n) => {
          const shard = s.ep.slotShard[keySlot(name)];
          const hub = shard >= 0 ? s.ep.hubIfAny(shard) : undefined;
          if (hub === undefined) return n;
          const c = hub.publishCounts(kind, name.toString('latin1'), name, false);
          return Math.max(0, n - c.ours) + c.local;
        },
      });
    }
    default:
      void args;
      return s.sendShared(0, cmd);
  }
}
