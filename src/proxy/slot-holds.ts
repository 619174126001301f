// Slot holds: the short write pause of a resharding's cut-over. While slots
// are held, a command touching one of them is not sent: its session stalls
// (as it does waiting for replies of the other link kind), so the client's
// later commands keep their order behind it, and nothing fails. A hold ends
// when the endpoint's map gives the slots to another shard (the cut-over
// happened), when it is released (given up), or at its deadline (the one who
// asked for it is gone); the stalled sessions then dispatch again, by the
// map as it is then.
import { SLOT_COUNT } from './slots.js';
import { keyIndexes, type CommandSpec } from './commands.js';

/** A session that stalled on a held slot: woken when the hold ends. */
export interface HeldWaiter {
  markDirty(): void;
}

interface Hold {
  ranges: [number, number][];
  /** The shard that served the slots when the hold began. */
  from: number;
  /** Who asked for it: only they release it (a master that lost its role must not end its successor's hold). */
  token?: string;
  timer: NodeJS.Timeout;
  since: number;
}

export class SlotHolds {
  /** slot → number of holds on it (0: not held). */
  readonly held = new Uint8Array(SLOT_COUNT + 1);
  private holds = new Set<Hold>();
  private waiters = new Set<HeldWaiter>();

  constructor(private readonly onEnd: (ranges: [number, number][], ms: number, why: string) => void) {}

  get active(): boolean {
    return this.holds.size > 0;
  }

  /** Is any of `slots` held? */
  any(slots: Iterable<number>): boolean {
    if (this.holds.size === 0) return false;
    for (const x of slots) if (x >= 0 && this.held[x] !== 0) return true;
    return false;
  }

  wait(w: HeldWaiter): void {
    this.waiters.add(w);
  }

  add(ranges: [number, number][], from: number, timeoutMs: number, token?: string): void {
    const h: Hold = { ranges, from, token, since: performance.now(), timer: setTimeout(() => this.end(h, 'deadline'), timeoutMs) };
    h.timer.unref();
    this.holds.add(h);
    for (const [a, b] of ranges) for (let x = Math.max(0, a); x <= Math.min(SLOT_COUNT - 1, b); x++) this.held[x]++;
  }

  /** End the holds on exactly these ranges (released by who asked for them: the same token, if they gave one). */
  release(ranges: [number, number][], token?: string): void {
    const key = JSON.stringify(ranges);
    for (const h of [...this.holds]) if (JSON.stringify(h.ranges) === key && h.token === token) this.end(h, 'released');
  }

  /** The map changed: holds whose slots `from` no longer serves end (the cut-over is done). */
  mapChanged(serves: (shardUid: number, slot: number) => boolean): void {
    for (const h of [...this.holds]) {
      if (!h.ranges.some(([a, b]) => serves(h.from, a) || serves(h.from, b))) this.end(h, 'moved');
    }
  }

  clear(): void {
    for (const h of [...this.holds]) this.end(h, 'closed');
  }

  private end(h: Hold, why: string): void {
    if (!this.holds.delete(h)) return;
    clearTimeout(h.timer);
    for (const [a, b] of h.ranges) for (let x = Math.max(0, a); x <= Math.min(SLOT_COUNT - 1, b); x++) this.held[x]--;
    const ws = this.waiters;
    this.waiters = new Set();
    for (const w of ws) w.markDirty();
    this.onEnd(h.ranges, performance.now() - h.since, why);
  }
}

/** Does the command (an EXEC: its transaction) touch a slot `ep` holds? */
export function touchesHeld(
  ep: { readonly holds: SlotHolds; keySlot(key: Uint8Array | string): number },
  multi: { slot: number } | null,
  name: string,
  spec: CommandSpec,
  args: Buffer[],
): boolean {
  const h = ep.holds.held;
  if (name === 'exec') return multi !== null && multi.slot >= 0 && h[multi.slot] !== 0;
  for (const k of keyIndexes(spec, args)) if (h[ep.keySlot(args[k])] !== 0) return true;
  return false;
}
