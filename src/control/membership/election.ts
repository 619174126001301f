// Master election: the master key exists while its holder's liveness lease
// does. Whoever finds it absent creates it (a create-only transaction, so one
// wins); when the master stops renewing, the key goes with its lease. A
// holder silent as long as a dead node is replaced by compare-and-swap; RE's
// change_master hands the key to another live node; a node being removed
// resigns for good. A node in maintenance mode stands back while a live node
// that is not can take the role (RE never makes it the master then), and
// campaigns only once the role has stayed free as long as a dead node's
// silence. Emits 'change' (the new master's uid, or undefined).
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { MasterRecord } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore } from '../../coord/store.js';
import { conflict } from '../../util/errors.js';

/** How often a node checks whether the master key is free or its holder silent. */
const MASTER_CHECK_MS = 250;

export interface ElectionOptions {
  store: ClusterStore;
  /** The master key, watched (the view's cache). */
  master: PrefixCache<MasterRecord>;
  uid: number;
  /** This node's liveness: the lease the key is bound to, and whether its view is current. */
  liveness: { leaseId(): Promise<string | undefined>; storeIsCurrent(): boolean };
  /** How long a node has been silent, and when that makes it dead (the view). */
  view: {
    silentMs(uid: number): number | undefined;
    deadAfterMs(): number;
    /** Who is live (the liveness records): a node in maintenance mode stands back for one of them. */
    live?: { readonly items: ReadonlyMap<string, unknown> };
  };
  log: Logger;
  /** How often to check the key (tests shorten it). */
  checkMs?: number;
}

export class Election extends EventEmitter {
  private current?: number;
  /** Gave the master role up (being removed): never campaigns again. */
  private resigned = false;
  private takingOver = false;
  /** Since when this node, in maintenance mode, has been standing back (the role free or its holder silent). */
  private standingBackSince?: number;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private readonly onChange = () => this.onMasterChange();

  constructor(private readonly o: ElectionOptions) {
    super();
  }

  /** The cluster master as this node last saw it. */
  get masterUid(): number | undefined {
    return this.current;
  }

  isMaster(): boolean {
    return !this.resigned && this.current === this.o.uid;
  }

  /** Follow the key and campaign: at once, then every checkMs. */
  async start(): Promise<void> {
    await this.o.master.start();
    this.o.master.on('change', this.onChange);
    this.onMasterChange();
    this.timer = setInterval(() => {
      void this.claim();
      void this.takeOver();
    }, this.o.checkMs ?? MASTER_CHECK_MS);
    this.timer.unref();
    await this.claim();
  }

  /** Stop campaigning (the key goes with the lease, which liveness revokes). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.o.master.off('change', this.onChange);
  }

  /** Create the key if it is absent: one create-only transaction, so one claimant wins. */
  private async claim(): Promise<void> {
    const { uid, log } = this.o;
    if (this.stopped || this.resigned || this.o.master.items.size > 0) return;
    try {
      if (await this.standsBack()) return;
      const lease = await this.o.liveness.leaseId();
      if (lease === undefined) return;
      const rec: MasterRecord = { uid, since: new Date().toISOString() };
      if (await this.o.store.master.claim(rec, lease)) log.info({ uid }, 'elected cluster master');
    } catch (err) {
      log.debug({ err: (err as Error).message }, 'master claim failed');
    }
  }

  /**
   * Take the master role from a holder that has been silent as long as a
   * dead node (deadAfterMs): it has fenced itself by then, and its master key
   * would otherwise last as long as its lease, which an etcd leader change
   * extends by seconds. One compare-and-swap on the key, so one node wins; a
   * holder that was only cut off learns it from the key when it is back.
   */
  private async takeOver(): Promise<void> {
    const { uid, log, view } = this.o;
    const holder = this.o.master.values()[0]?.uid;
    if (this.stopped || this.resigned || this.takingOver || holder === undefined || holder === uid) return;
    const silent = view.silentMs(holder);
    if (silent === undefined || silent < view.deadAfterMs() || !this.o.liveness.storeIsCurrent()) return;
    this.takingOver = true;
    try {
      if (await this.standsBack()) return;
      const lease = await this.o.liveness.leaseId();
      if (lease === undefined) return;
      // False when the key is gone meanwhile (claim takes it) or another node holds it now.
      const rec: MasterRecord = { uid, since: new Date().toISOString() };
      if (await this.o.store.master.takeOver(holder, rec, lease))
        log.warn(
          { uid, previous: holder, silent_ms: silent },
          'elected cluster master: the previous master sent no heartbeat for longer than the failover timeout',
        );
    } catch (err) {
      log.debug({ err: (err as Error).message }, 'master takeover failed; the next check retries');
    } finally {
      this.takingOver = false;
    }
  }

  /**
   * True while this node is in maintenance mode (any state: entering, on or
   * leaving) and another live node that is not could take the role: that node
   * campaigns at its next check. Only the election's rare moments read the
   * store here (the key free, or its holder silent). After deadAfterMs of
   * standing back (the others cannot win: their store is behind, say) it
   * campaigns anyway: a master in maintenance beats none.
   */
  private async standsBack(): Promise<boolean> {
    const { uid, view, log } = this.o;
    const inMaintenance = new Set((await this.o.store.maintenanceMode.list()).map((r) => r.node_uid));
    if (!inMaintenance.has(uid)) {
      this.standingBackSince = undefined;
      return false;
    }
    const others = [...(view.live?.items.keys() ?? [])]
      .map(Number)
      .filter((u) => u !== uid && !inMaintenance.has(u) && (view.silentMs(u) ?? 0) < view.deadAfterMs());
    if (others.length === 0) {
      this.standingBackSince = undefined;
      return false;
    }
    const now = Date.now();
    this.standingBackSince ??= now;
    if (now - this.standingBackSince < view.deadAfterMs()) return true;
    log.warn({ uid, others }, 'in maintenance mode, but no other node took the master role: campaigning');
    return false;
  }

  private onMasterChange(): void {
    const uid = this.o.master.values()[0]?.uid;
    const changed = uid !== this.current;
    if (changed) this.o.log.info({ master: uid }, 'cluster master changed');
    if (uid !== undefined) this.standingBackSince = undefined;
    this.current = uid;
    if (changed) this.emit('change', uid);
    if (uid === undefined) void this.claim();
  }

  /**
   * Make node `target` the cluster master (RE's change_master): the master
   * key is rewritten bound to the target's own liveness lease, so it lasts
   * exactly as long as the target is alive, as if it had won the election.
   * The current master's controllers stop at their next step (they check
   * isMaster) and the target's resume what they left.
   */
  async handTo(target: number): Promise<void> {
    const r = await this.o.store.master.handTo({ uid: target, since: new Date().toISOString() });
    if (r === 'down') throw conflict('node_down', `node ${target} is down: only a live node can become the master`);
    if (r === 'went_down') throw conflict('node_down', `node ${target} went down while it was made the master`);
    this.o.log.warn({ master: target, by: this.o.uid }, 'cluster master changed by request');
  }

  /**
   * Give the master role up for good: this node is being removed. It no
   * longer campaigns, and its master key goes (only if still its own), so
   * another node is elected at once.
   */
  async resign(why: string): Promise<void> {
    this.resigned = true;
    this.o.log.warn({ why }, 'giving up the cluster master role; this node no longer campaigns');
    // Only the uid of the stored record is compared; false (nothing to do) when another node holds the key or none does.
    await this.o.store.master.resign(this.o.uid);
  }
}
