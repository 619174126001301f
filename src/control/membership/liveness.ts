// This node's liveness and its write fence. It holds a liveness lease (its
// `live` record lapses when the process stops renewing it) and writes its
// heartbeat twice a second (coord/heartbeats.ts). Each heartbeat that lands
// extends the data plane's write fence; after a silence longer than the fence
// (a partition, or SIGSTOP of the whole node) this node may have been failed
// over, so writes stay fenced until `resync` (the reconciler) has converged
// on the current database map.
//
// The only raw etcd call of membership's lease is here (`client.lease`).
import type { Logger } from 'pino';
import type { StoreLease } from '../../coord/store.js';
import type { LiveRecord } from '../../coord/schema.js';
import type { ClusterStore } from '../../coord/store.js';
import type { Heartbeats } from '../../coord/heartbeats.js';

/** How often this node writes its heartbeat, which renews its write fence. */
const STORE_PROBE_MS = 500;

/** What the fence drives: the data plane's write fence, and the resync that must finish before it lifts. */
export interface FenceHooks {
  /** Writes stay allowed for `validForMs` more; `lifted`: after a silence, the map is current again. */
  renewContact(validForMs: number, lifted: boolean): void;
  /** Bring this node's database map up to date; rejects if it cannot yet (the next heartbeat retries). */
  resync(): Promise<void>;
}

export interface LivenessOptions {
  /** The store's client: the lease is granted through it. */
  store: ClusterStore;
  /** The heartbeats (the view's): this node's beat is written through it. */
  beats: Pick<Heartbeats, 'beat'>;
  uid: number;
  liveTtlSeconds: number;
  fence: FenceHooks;
  log: Logger;
  /** When this process started (the live record says so). */
  startedAt?: number;
}

export class Liveness {
  private lease?: StoreLease;
  private livenessFailures = 0;
  /** When this node last reached the store (a heartbeat landed, counted from when it was sent); 0 before the first. */
  private storeContactAt = 0;
  /** Cut off longer than fenceAfterMs(): writes stay fenced until the map is current again. */
  private fenceLifting = false;
  private contactTimer?: NodeJS.Timeout;
  private contactProbe = false;
  private stopped = false;
  private readonly startedAt: number;

  constructor(private readonly o: LivenessOptions) {
    this.startedAt = o.startedAt ?? Date.now();
  }

  /** Take the lease (the live record) and start the heartbeats. */
  async start(): Promise<void> {
    await this.holdLiveness();
    this.contactTimer = setInterval(() => this.probeStore(), STORE_PROBE_MS);
    this.contactTimer.unref();
    this.probeStore();
  }

  /** The current lease's id, to bind a key to this node's life (the master key); undefined before the first lease. */
  async leaseId(): Promise<string | undefined> {
    return this.lease?.grant();
  }

  /**
   * How long writes stay allowed after the last heartbeat was sent. Others
   * fail this node over only after deadAfterMs() (at least liveTtlSeconds)
   * without seeing a heartbeat, so 80% of the TTL fences first; heartbeats
   * come twice a second, so an etcd leader election (1.5-3 s) does not trip it.
   */
  fenceAfterMs(): number {
    return this.o.liveTtlSeconds * 800;
  }

  /** This node's view of the store is recent: it may act on it (failover decisions). */
  storeIsCurrent(): boolean {
    return !this.fenceLifting && this.storeContactAt !== 0 && Date.now() - this.storeContactAt <= this.fenceAfterMs();
  }

  /** Stop beating (and renewing a lost lease): the others see this node fall silent from now on. */
  stopBeating(): void {
    this.stopped = true;
    if (this.contactTimer) clearInterval(this.contactTimer);
  }

  /** Stop beating and give the lease back at once (the live record, the beat and a master key bound to it go with it). */
  async stop(): Promise<void> {
    this.stopBeating();
    const lease = this.lease;
    this.lease = undefined;
    await lease?.revoke().catch((e) => this.o.log.debug({ err: (e as Error).message }, 'lease not revoked; it expires after its TTL'));
  }

  /** A lease that lapses when this process stops renewing it: how the others see us go down. */
  private async holdLiveness(): Promise<void> {
    if (this.stopped) return;
    const { log } = this.o;
    const lease = this.o.store.leases.create(this.o.liveTtlSeconds);
    this.lease = lease;
    lease.on('lost', (err) => {
      if (this.stopped) return;
      if (this.livenessFailures === 0) log.warn({ err: err.message }, 'liveness lease lost; taking a new one');
      setTimeout(
        () =>
          void this.holdLiveness().catch((e) => {
            // Retried twice a second while the store is away: log the first and then every 20th, with the count.
            if (this.livenessFailures++ % 20 === 0)
              log.error({ err: (e as Error).message, failures: this.livenessFailures }, 'cannot renew liveness');
          }),
        500,
      );
    });
    const rec: LiveRecord = { uid: this.o.uid, started_time: new Date(this.startedAt).toISOString(), pid: process.pid };
    await this.o.store.nodes.putLive(lease, rec);
    if (this.livenessFailures > 0) log.info({ failures: this.livenessFailures }, 'liveness renewed again');
    this.livenessFailures = 0;
  }

  /**
   * Write this node's heartbeat. Only heartbeats renew the fence (counted
   * from when they were sent), because heartbeats are what the others judge
   * this node by; the lease library renews the lease itself on its own.
   */
  private probeStore(): void {
    const lease = this.lease;
    if (!lease || this.contactProbe || this.stopped) return;
    const sent = Date.now();
    this.contactProbe = true;
    this.o.beats
      .beat(lease, STORE_PROBE_MS * 2)
      .then(
        () => this.onStoreContact(sent),
        () => undefined, // a failed heartbeat is what the fence counts; a lost lease is re-granted by its own handler
      )
      .finally(() => (this.contactProbe = false));
  }

  /**
   * The store took a heartbeat. After a silence longer than the fence this
   * node's endpoints stay fenced until the database map is current, and only
   * then are writes allowed again.
   */
  private onStoreContact(at: number): void {
    if (this.stopped || this.fenceLifting || at < this.storeContactAt) return;
    const { fence, log } = this.o;
    const silentMs = at - this.storeContactAt;
    if (this.storeContactAt === 0 || silentMs <= this.fenceAfterMs()) {
      this.storeContactAt = at;
      fence.renewContact(this.fenceAfterMs() - (Date.now() - at), false);
      return;
    }
    this.fenceLifting = true;
    log.warn(
      { silent_ms: silentMs },
      'fencing: this node was cut off from the cluster store; writes through its endpoints are refused until its database map is current',
    );
    void (async () => {
      try {
        await fence.resync();
        this.storeContactAt = Date.now();
        fence.renewContact(this.fenceAfterMs(), true);
        log.info('fencing lifted: the database map is current');
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'fencing stays: cannot bring the database map up to date yet; the next renewal retries');
      } finally {
        this.fenceLifting = false;
      }
    })();
  }
}
