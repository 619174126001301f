// This node's liveness and its write fence. It holds a liveness lease (its
// `live` record lapses when the process stops renewing it) and writes its
// heartbeat twice a second (coord/heartbeats.ts). Each heartbeat that lands
// extends the data plane's write fence; after a silence longer than the fence
// (a partition, or SIGSTOP of the whole node) this node may have been failed
// over, so writes stay fenced until `resync` (the reconciler) has converged
// on the current database map. When the fence closes: fence-rule.ts.
//
// The only raw etcd call of membership's lease is here (`client.lease`).
import type { Logger } from 'pino';
import type { StoreLease } from '../../coord/store.js';
import type { LiveRecord } from '../../coord/schema.js';
import type { ClusterStore } from '../../coord/store.js';
import type { Heartbeats } from '../../coord/heartbeats.js';
import { DEFAULT_TIMINGS } from './config.js';
import { ElectionWatch, type FenceTimes, type LeaderStatus, type QuorumSense, fenceDeadline } from './fence-rule.js';

/** How often this node writes its heartbeat, which renews its write fence. */
const STORE_PROBE_MS = 500;
/** Heartbeats in flight at most while they are not landing. */
const MAX_BEATS_IN_FLIGHT = 4;
/** How often, once the base fence nears, this node looks for an election it may ride out. */
const SENSE_MS = 250;
/** How far ahead of now one look may extend the fence (a tick or two late under load still finds it open). */
const EXTEND_STEP_MS = 1500;
/** The local etcd member is asked this often while heartbeats land (term changes are followed), every tick when not. */
const ELECTION_LOOK_MS = 1000;
/** Its answer counts for this long. */
const ELECTION_FRESH_MS = 1500;
/** After the local etcd member's term changed, an election still counts as in progress for this long. */
const ELECTION_SETTLE_MS = 3000;

/** What the fence rule looks at while heartbeats are not landing (wired by src/node/loops.ts). */
export interface QuorumSenses {
  /** The local etcd member's leader and term; undefined when it does not answer quickly. */
  leaderStatus(): Promise<LeaderStatus | undefined>;
  /** Other nodes heard over the control links lately. */
  heardPeers(): number;
  /** Is node `uid` (another node) heard over its control link lately? */
  hears(uid: number): boolean;
  /** The cluster's nodes, this one included. */
  clusterNodes(): number;
  /**
   * This node restarts its own etcd member on purpose (a CA rollover loads a
   * new trust list): its heartbeats stop for the restart (1.5-3.5 s), as in
   * an election, and the fence may ride it out the same way, heard by a
   * majority and never past the safe bound.
   */
  storeRestarting?(): boolean;
}

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
  /** The fence after the last landed heartbeat was sent (Timings.fenceMs); held to 80% of the TTL. */
  fenceMs?: number;
}

export class Liveness {
  private lease?: StoreLease;
  private livenessFailures = 0;
  /** When this node last reached the store (a heartbeat landed, counted from when it was sent); 0 before the first. */
  private storeContactAt = 0;
  /** Cut off longer than fenceAfterMs(): writes stay fenced until the map is current again. */
  private fenceLifting = false;
  /** When the latest heartbeat that landed was sent (also during a resync). */
  private lastLandedAt = 0;
  /** Until when the data plane was last told writes are allowed (ms since the epoch). */
  private grantedUntil = 0;
  private contactTimer?: NodeJS.Timeout;
  private senseTimer?: NodeJS.Timeout;
  /** Heartbeats sent and not yet landed or failed. */
  private beatsInFlight = 0;
  private sensing = false;
  /** The local etcd member's last answer, as the election watch read it. */
  private election_?: { at: number; inProgress: boolean; leader: string; leaderUid?: number };
  private stopped = false;
  private readonly startedAt: number;
  private times: FenceTimes;
  private senses?: QuorumSenses;
  private readonly election = new ElectionWatch(ELECTION_SETTLE_MS);
  /** The current silence was extended / the fence closed in it (logged once per silence). */
  private extendedLogged = false;
  private closedLogged = false;
  /** What the last look saw (logged when the fence closes). */
  private lastSense?: QuorumSense & { leader?: string; leaderUid?: number };
  /** How many times this node's write fence closed (a silence outlived it); for tests and metrics. */
  fencesClosed = 0;

  constructor(private readonly o: LivenessOptions) {
    this.startedAt = o.startedAt ?? Date.now();
    this.times = { baseMs: o.fenceMs ?? DEFAULT_TIMINGS.fenceMs, maxMs: o.liveTtlSeconds * 800, stepMs: EXTEND_STEP_MS };
  }

  /** What lets the fence ride out an election (control links, the local etcd member), and the base fence if set. */
  senseQuorum(senses: QuorumSenses, fenceMs?: number): void {
    this.senses = senses;
    if (fenceMs !== undefined) this.times = { ...this.times, baseMs: fenceMs };
  }

  /** Take the lease (the live record) and start the heartbeats. */
  async start(): Promise<void> {
    await this.holdLiveness();
    this.contactTimer = setInterval(() => this.probeStore(), STORE_PROBE_MS);
    this.contactTimer.unref();
    this.senseTimer = setInterval(() => this.sense(), SENSE_MS);
    this.senseTimer.unref();
    this.probeStore();
  }

  /** The current lease's id, to bind a key to this node's life (the master key); undefined before the first lease. */
  async leaseId(): Promise<string | undefined> {
    return this.lease?.grant();
  }

  /**
   * How long writes stay allowed after the last heartbeat was sent, at most
   * (fence-rule.ts): others fail this node over only after deadAfterMs() (at
   * least liveTtlSeconds) without seeing a heartbeat, so 80% of the TTL fences
   * first. Normally the fence is shorter (fenceMs).
   */
  fenceAfterMs(): number {
    return this.times.maxMs;
  }

  /** The base fence (ms after the last landed heartbeat was sent). */
  baseFenceMs(): number {
    return Math.min(this.times.baseMs, this.times.maxMs);
  }

  /** This node's view of the store is recent: it may act on it (failover decisions). */
  storeIsCurrent(): boolean {
    return !this.fenceLifting && this.storeContactAt !== 0 && Date.now() <= this.grantedUntil;
  }

  /** Stop beating (and renewing a lost lease): the others see this node fall silent from now on. */
  stopBeating(): void {
    this.stopped = true;
    if (this.contactTimer) clearInterval(this.contactTimer);
    if (this.senseTimer) clearInterval(this.senseTimer);
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
    if (!lease || this.stopped) return;
    // One at a time normally. While they are not landing (an etcd election), one
    // goes out every tick anyway, so the first one sent after the new leader is
    // up lands at once, instead of after the stuck ones' deadline (1 s).
    if (this.beatsInFlight >= (Date.now() - this.storeContactAt > STORE_PROBE_MS * 2 ? MAX_BEATS_IN_FLIGHT : 1)) return;
    const sent = Date.now();
    this.beatsInFlight++;
    this.o.beats
      .beat(lease, STORE_PROBE_MS * 2)
      .then(
        () => this.onStoreContact(sent),
        () => undefined, // a failed heartbeat is what the fence counts; a lost lease is re-granted by its own handler
      )
      .finally(() => this.beatsInFlight--);
  }

  /**
   * The store took a heartbeat. After a silence longer than the fence this
   * node's endpoints stay fenced until the database map is current, and only
   * then are writes allowed again.
   */
  private onStoreContact(at: number): void {
    if (at > this.lastLandedAt) this.lastLandedAt = at;
    if (this.stopped || this.fenceLifting || at < this.storeContactAt) return;
    const { fence, log } = this.o;
    const silentMs = at - this.storeContactAt;
    // Sent while writes were still allowed: no gap in which this node could have been failed over unnoticed.
    if (this.storeContactAt === 0 || at <= this.grantedUntil) {
      if (this.extendedLogged) log.info({ silent_ms: silentMs }, 'heartbeats land again; the fence extension ends');
      this.storeContactAt = at;
      this.extendedLogged = false;
      this.closedLogged = false;
      // Never shorter than already granted: a heartbeat sent early in an election may land late, after an extension.
      this.grant(Math.max(this.grantedUntil, fenceDeadline(at, Date.now(), this.times)), false);
      return;
    }
    this.fenceLifting = true;
    log.warn(
      { silent_ms: silentMs },
      'fencing: this node was cut off from the cluster store; writes through its endpoints are refused until its database map is current',
    );
    void (async () => {
      try {
        const resyncFrom = Date.now();
        await fence.resync();
        // Counted, as always, from when the proof of contact was sent: the resync's own reads, or a
        // heartbeat sent since. Not from now: a resync slow under load must not stretch the fence
        // into the next cut (flapping).
        const contact = Math.max(resyncFrom, this.lastLandedAt);
        this.storeContactAt = contact;
        this.extendedLogged = false;
        this.closedLogged = false;
        this.grant(fenceDeadline(contact, Date.now(), this.times), true);
        log.info({ fence_left_ms: this.grantedUntil - Date.now() }, 'fencing lifted: the database map is current');
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'fencing stays: cannot bring the database map up to date yet; the next renewal retries');
      } finally {
        this.fenceLifting = false;
      }
    })();
  }

  private grant(deadline: number, lifted: boolean): void {
    this.grantedUntil = deadline;
    this.o.fence.renewContact(deadline - Date.now(), lifted);
  }

  /**
   * Each tick: while heartbeats are not landing, send more; look at the
   * local etcd member (in the background, its answer kept for the next
   * ticks); as the fence nears, extend it a step if the rule allows (an
   * election seen, a majority heard now); note when it closes. Never reopens
   * a closed fence: that takes a landed heartbeat.
   */
  private sense(): void {
    if (this.stopped || this.storeContactAt === 0) return;
    const now = Date.now();
    const silentMs = now - this.storeContactAt;
    if (silentMs > STORE_PROBE_MS * 2) this.probeStore();
    if (this.fenceLifting) return;
    const { log } = this.o;
    if (now > this.grantedUntil) {
      if (!this.closedLogged) {
        this.closedLogged = true;
        this.fencesClosed++;
        log.warn(
          { silent_ms: silentMs, fence_ms: this.grantedUntil - this.storeContactAt, last_sense: this.lastSense },
          'write fence closed: no heartbeat landed in time; writes through this node are refused',
        );
      }
      return;
    }
    const senses = this.senses;
    if (!senses) return;
    if (silentMs > STORE_PROBE_MS || now - (this.election_?.at ?? 0) > ELECTION_LOOK_MS) void this.lookAtElection(senses);
    if (this.grantedUntil - now > this.times.stepMs || this.grantedUntil >= this.storeContactAt + this.times.maxMs) return;
    const seen = this.election_ && now - this.election_.at <= ELECTION_FRESH_MS ? this.election_ : undefined;
    const q: QuorumSense = {
      electionInProgress: (seen?.inProgress ?? false) || (senses.storeRestarting?.() ?? false),
      heardNodes: 1 + senses.heardPeers(),
      clusterNodes: senses.clusterNodes(),
    };
    this.lastSense = { ...q, leader: seen?.leader, leaderUid: seen?.leaderUid };
    const deadline = fenceDeadline(this.storeContactAt, now, this.times, q);
    if (deadline <= this.grantedUntil) return;
    if (!this.extendedLogged) {
      this.extendedLogged = true;
      log.info(
        { silent_ms: silentMs, ...q, planned_store_restart: senses.storeRestarting?.() ?? false },
        "fence extended: an etcd election (or this node's planned etcd restart) is in progress and a majority of the nodes is heard",
      );
    }
    this.grant(deadline, false);
  }

  /** Ask the local etcd member for its leader and term; what it says is kept (`election_`) for the ticks. */
  private async lookAtElection(senses: QuorumSenses): Promise<void> {
    if (this.sensing) return;
    this.sensing = true;
    try {
      const status = await senses.leaderStatus();
      // A member that does not answer shows no election: the last answer ages out, and the short fence stands.
      if (!status) return;
      const at = Date.now();
      const inProgress = this.election.observe(status, at, (uid) => uid !== this.o.uid && !senses.hears(uid));
      this.election_ = { at, inProgress, leader: status.leader, leaderUid: status.leaderUid };
    } catch (err) {
      this.o.log.debug({ err: (err as Error).message }, 'cannot read the local etcd member status; no fence extension from it');
    } finally {
      this.sensing = false;
    }
  }
}
