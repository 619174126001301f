// Heartbeats: how the cluster tells a dead (or cut-off) node from a live one
// without waiting for its liveness lease. Each node rewrites its beat key
// twice a second; every node watches all beats and notes, on its own clock,
// when it last saw each.
//
// Why not the lease alone: when the etcd leader changes, the new leader
// extends every lease by the election timeout plus a full TTL. A node that
// dies with the etcd leader on it (often the first node, also often the
// cluster master) kept its lease 8-9.5 s after its death, and failover waited
// for it.
//
// Why it is safe: a beat is a write through the etcd majority. A node fences
// its own writes a fixed time after it *sent* its last successful beat (its
// clock); the others count its silence from when they *saw* that beat (their
// clock, later still). So as long as the silence a node must show before it
// is judged (`deadAfterMs`) exceeds the fence, it has stopped taking writes
// before anyone acts on its silence. A node judges no one while its own beats
// are not coming back to it through the watch (its view is not current):
// after a pause of the whole process, timers may run before the watch has
// delivered what happened meanwhile.
import type { Etcd3, Lease } from 'etcd3';
import { KEYS, BeatRecord } from './schema.js';
import { PrefixCache, type WatchErrorInfo } from './watch.js';
import { etcdLeaseOf, type StoreLease } from './lease.js';

/** How old this node's own last seen beat may be for its view of the others to count. */
const OWN_VIEW_FRESH_MS = 1_500;

export class Heartbeats {
  private readonly cache: PrefixCache<BeatRecord>;
  /** Node uid → when this node last saw its beat (ms since the epoch, this node's clock). */
  private readonly seenAt = new Map<number, number>();
  private seq = 0;

  constructor(
    client: Etcd3,
    private readonly self: number,
  ) {
    this.cache = new PrefixCache(client, KEYS.beatsPrefix, BeatRecord);
    this.cache.on('change', (id: string) => {
      // A deletion (the lease went with a stopped node) is no sign of life.
      if (this.cache.items.has(id)) this.seenAt.set(Number(id), Date.now());
    });
  }

  /**
   * Malformed beats are left out by the cache; its owner may log them. A cut
   * or cancelled watch of the beats ('watchError', see PrefixCache) stops
   * `current()` until the beats are seen again.
   */
  on(event: 'malformed', fn: (err: Error) => void): void;
  on(event: 'watchError', fn: (err: Error, info: WatchErrorInfo) => void): void;
  on(event: 'malformed' | 'watchError', fn: (err: Error, info: WatchErrorInfo) => void): void {
    this.cache.on(event, fn);
  }

  /** The beats are loaded and watched live (false while the watch is cut or listed again). */
  hasSynced(): boolean {
    return this.cache.hasSynced();
  }

  async start(): Promise<void> {
    await this.cache.start();
    // What is already stored counts from now: silence is only what this node saw.
    const now = Date.now();
    for (const id of this.cache.items.keys()) this.seenAt.set(Number(id), now);
  }

  stop(): Promise<void> {
    return this.cache.stop();
  }

  /**
   * Write this node's beat, bound to its liveness lease (so it goes with the
   * lease); resolves once the majority has it, rejects after `deadlineMs`.
   */
  async beat(lease: StoreLease | Lease, deadlineMs: number): Promise<void> {
    const rec: BeatRecord = { seq: ++this.seq };
    await etcdLeaseOf(lease)
      .put(KEYS.beat(this.self))
      .value(JSON.stringify(rec))
      .options({ deadline: Date.now() + deadlineMs });
  }

  /** This node's own beats come back through the watch: its view of the others' is current. */
  current(now = Date.now()): boolean {
    const own = this.seenAt.get(this.self);
    return own !== undefined && now - own <= OWN_VIEW_FRESH_MS;
  }

  /**
   * How long node `uid` has been silent as this node saw it, in ms. A node
   * never seen beating counts from the first time it is asked about.
   */
  silentMs(uid: number, now = Date.now()): number {
    const seen = this.seenAt.get(uid);
    if (seen === undefined) {
      this.seenAt.set(uid, now);
      return 0;
    }
    return now - seen;
  }
}
