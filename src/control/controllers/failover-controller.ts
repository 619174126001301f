// Runs on the cluster master: node failover. A member is dead once this
// master has seen no heartbeat of it (coord/heartbeats.ts) for
// `failover_timeout` seconds (never less than the liveness TTL, by when the
// node has fenced its own writes). Then, for every database with shards on
// it, in one compare-and-swap per database:
//   - each master shard there hands its slots to its replica on a live node,
//     and becomes that replica's replica, as do its other replicas;
//   - each replica shard there (the old masters included) is placed on
//     another live node, never its master's, to be rebuilt by a full sync
//     through the internode channel (replica high availability, `slave_ha`;
//     after `slave_ha_grace_period` more seconds, 0 by default), followed
//     as a `replica_rebuild` action (replica-rebuilds.ts).
// Reconcilers on every node then converge: the promoted replica drops
// REPLICAOF, endpoints route its slots to it, the moved replica starts on its
// new node. The decision is the master's alone and is made from the store,
// so two nodes never promote two replicas of one shard. Every node watches
// the heartbeats all the time, so a master elected after the node died (or
// because it was the master) counts the silence from the last heartbeat it
// saw, not from its election.
import type { Logger } from 'pino';
import type { LiveRecord, NodeRecord, ObservedRecord } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { StoreHost } from '../../coord/store.js';
import { ReplicaRebuilds, type RebuildHost } from './replica-rebuilds.js';
import { MasterLoop, type MasterLoopHost } from './master-loop.js';
import { nodeIsUp } from '../model/node-state.js';
import { bumped, isGone, planFailover, promote, type FailoverPlan } from '../model/shard-plans.js';
import { writeRefusalHandovers } from '../model/write-refusal.js';

/** What failover needs of its node's membership (src/node/loops.ts builds it from the membership parts). */
export interface FailoverHost extends RebuildHost, MasterLoopHost {
  readonly nodes: PrefixCache<NodeRecord>;
  readonly live: PrefixCache<LiveRecord>;
  /** Every node's observed records, watched (the node's one cache of them; its owner starts and stops it). */
  readonly observed: PrefixCache<ObservedRecord>;
  readonly uid: number;
  /** How long node `uid` has sent no heartbeat, in ms; undefined while this node's own view is not current. */
  silentMs(uid: number): number | undefined;
  /** The silence after which a node is dead (failover_timeout, at least the liveness TTL). */
  deadAfterMs(): number;
  /** Replica high availability: on, and how long past failover_timeout a node must stay dead before its replicas are rebuilt elsewhere. */
  replicaHa(): { enabled: boolean; graceSeconds: number };
  /** Nodes in maintenance mode (0.2): no replica is rebuilt on one, nor moved off one (it comes back). */
  inMaintenance?(): ReadonlySet<number>;
}

/** How often the master judges silence and reads handover reports (dead nodes are judged in seconds; this is a small part of it). */
const TICK_MS = 250;
/**
 * How long a master must be reported refusing writes (disk) before its replica takes over: more than
 * one report (a node reports every 2 s), so a refusal that clears by itself (a brief fsync error) moves nothing.
 */
export const WRITE_REFUSAL_HOLD_MS = 3000;

export class FailoverController {
  private readonly loop: MasterLoop;
  /** Nodes this master has logged as dead (to log each change once). */
  private readonly down = new Set<number>();
  private readonly reported = new Set<string>();
  /** Handover reports already logged as from a past run of their node (each logged once). */
  private readonly staleReports = new Set<string>();
  /** Promotions this node decided while master, by database uid (for the metrics). */
  readonly promotions = new Map<number, number>();
  private readonly rebuilds: ReplicaRebuilds;
  private rebuildsAt = 0;
  /** Every node's observed records: master shards there that ask for a handover (crashed, or returning with stale data). */
  private readonly observed: PrefixCache<ObservedRecord>;
  /** Promotions of the replica of a master refusing writes for its disk, by database uid (for the metrics). */
  readonly refusalPromotions = new Map<number, number>();
  /** Master shards seen refusing writes (disk) with a replica fit to take over, since when (this master's clock). */
  private readonly refusing = new Map<string, number>();

  constructor(
    private readonly m: FailoverHost & StoreHost,
    private readonly log: Logger,
    /** How often the master looks (the unit tests look more often). */
    tickMs = TICK_MS,
    /** How long a refusal must last before the handover (the unit tests wait less). */
    private readonly refusalHoldMs = WRITE_REFUSAL_HOLD_MS,
  ) {
    this.rebuilds = new ReplicaRebuilds(m, log);
    this.observed = m.observed;
    this.loop = new MasterLoop(
      m,
      tickMs,
      log,
      'failover tick',
      () => this.tick(),
      () => {
        this.down.clear();
        this.refusing.clear();
        this.rebuilds.forget();
      },
    );
  }

  start(): void {
    this.m.live.on('change', this.loop.kick);
    this.observed.on('change', this.loop.kick);
    this.loop.start();
  }

  /**
   * Master shards whose node reports a handover (reconcilers/bdb-reconciler.ts:
   * the shard crashed, or its node returns and it may lack writes its replica
   * took): a live replica is promoted, as in a node failover. A report is
   * acted on only while it is current: of the database's generation (else the
   * placement has changed since), and from the node's current incarnation,
   * the `started_time` of its live record (else a process that is gone asked:
   * a report written while a node shut down must not move the slots of a
   * shard that came back clean). No live record: node failover decides.
   */
  private async handovers(): Promise<void> {
    for (const [key, o] of this.observed.items) {
      const asks = o.shards.filter((s) => s.handover && s.role === 'master');
      if (!asks.length) continue;
      const bdbUid = Number(key.split('/')[0]);
      const cached = this.m.databases().find((b) => b.uid === bdbUid);
      if (!cached || isGone(cached) || cached.generation !== o.generation) continue;
      if (!this.currentIncarnation(key, o)) continue;
      for (const ask of asks) {
        const replicaOf = (shards: readonly { uid: number; role: string; node_uid: number; master_uid?: number }[]) =>
          shards.find((x) => x.role === 'slave' && x.master_uid === ask.uid && nodeIsUp(this.m, x.node_uid));
        const m = cached.shards.find((x) => x.uid === ask.uid);
        if (m?.role !== 'master' || m.node_uid !== o.node_uid || !replicaOf(cached.shards)) continue;
        let promoted: number | undefined;
        await this.m.store.bdbs.update(bdbUid, (cur) => {
          if (isGone(cur) || cur.generation !== o.generation) return undefined;
          const r = replicaOf(cur.shards);
          const shards = r && promote(cur.shards, ask.uid, r.uid);
          if (!shards) return undefined;
          promoted = r.uid;
          return bumped(cur, shards);
        });
        if (promoted === undefined) continue;
        this.log.warn(
          { bdb: bdbUid, failed: ask.uid, promoted, node: o.node_uid, why: ask.handover },
          'handover: replica promoted to master',
        );
        this.promotions.set(bdbUid, (this.promotions.get(bdbUid) ?? 0) + 1);
        break; // the generation moved on: the next report is read on the next tick
      }
    }
  }

  /**
   * Master shards that refuse writes for a disk reason (a full disk: MISCONF) while a replica on another node
   * is up and in sync: once that has lasted `refusalHoldMs`, the replica is promoted as in a handover, and
   * the old master follows it as a replica (it resyncs by itself once its disk has room again).
   */
  private async writeRefusals(): Promise<void> {
    const byBdb = new Map<number, ObservedRecord[]>();
    for (const [key, o] of this.observed.items) {
      // Only reports of the node's current run: a past run's shards are gone.
      if (o.incarnation === undefined || o.incarnation !== this.m.live.items.get(String(o.node_uid))?.started_time) continue;
      const bdbUid = Number(key.split('/')[0]);
      byBdb.set(bdbUid, [...(byBdb.get(bdbUid) ?? []), o]);
    }
    const seen = new Set<string>();
    const now = Date.now();
    for (const b of this.m.databases()) {
      if (isGone(b) || !byBdb.has(b.uid)) continue;
      for (const h of writeRefusalHandovers(b, byBdb.get(b.uid)!, (u) => nodeIsUp(this.m, u))) {
        const key = `${b.uid}:${h.masterUid}@${h.masterNode}/${b.generation}`;
        seen.add(key);
        const since = this.refusing.get(key) ?? now;
        if (!this.refusing.has(key)) {
          this.refusing.set(key, now);
          this.log.warn({ bdb: b.uid, shard: h.masterUid, node: h.masterNode, why: h.reason }, 'master shard refuses writes');
        }
        if (now - since < this.refusalHoldMs) continue;
        let promoted = false;
        await this.m.store.bdbs.update(b.uid, (cur) => {
          if (isGone(cur) || cur.generation !== b.generation) return undefined;
          const shards = promote(cur.shards, h.masterUid, h.replicaUid);
          if (!shards) return undefined;
          promoted = true;
          return bumped(cur, shards);
        });
        if (!promoted) continue;
        this.log.warn(
          { bdb: b.uid, failed: h.masterUid, promoted: h.replicaUid, node: h.masterNode, why: h.reason, refused_ms: now - since },
          'master shard refuses writes: replica promoted to master',
        );
        this.refusalPromotions.set(b.uid, (this.refusalPromotions.get(b.uid) ?? 0) + 1);
        break; // the generation moved on: the next case is read on the next tick
      }
    }
    for (const key of [...this.refusing.keys()]) if (!seen.has(key)) this.refusing.delete(key);
  }

  /** Does report `o` (at `key`) come from its node's current run? A stale one is logged once. */
  private currentIncarnation(key: string, o: ObservedRecord): boolean {
    const started = this.m.live.items.get(String(o.node_uid))?.started_time;
    if (o.incarnation !== undefined && o.incarnation === started) return true;
    const seen = `${key}@${o.incarnation}/${o.generation}`;
    if (!this.staleReports.has(seen)) {
      this.staleReports.add(seen);
      this.log.info(
        { node: o.node_uid, key, reported_by: o.incarnation ?? null, running: started ?? null },
        'ignoring a handover report of a run of the node that is not its current one',
      );
    }
    return false;
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    if (now - this.rebuildsAt >= 1000) {
      this.rebuildsAt = now;
      await this.rebuilds.tick();
    }
    await this.handovers();
    await this.writeRefusals();
    const members = this.m.nodes
      .values()
      .filter((n) => n.addr)
      .map((n) => n.uid);
    const silence = new Map<number, number>();
    for (const u of members) {
      if (u === this.m.uid) continue;
      const ms = this.m.silentMs(u);
      if (ms === undefined) return; // this node's own heartbeats are not coming back: it judges no one
      silence.set(u, ms);
    }
    const waitMs = this.m.deadAfterMs();
    const dead = new Set([...silence].filter(([, ms]) => ms >= waitMs).map(([u]) => u));
    for (const u of dead)
      if (!this.down.has(u)) this.log.warn({ node: u, silent_ms: silence.get(u) }, 'node is down (no heartbeat for the failover timeout)');
    for (const u of this.down) if (!dead.has(u) && members.includes(u)) this.log.info({ node: u }, 'node is up again');
    this.down.clear();
    for (const u of dead) this.down.add(u);
    if (!dead.size) return;
    const liveNodes = members.filter((u) => nodeIsUp(this.m, u));
    const ha = this.m.replicaHa();
    const maint = this.m.inMaintenance?.() ?? new Set<number>();
    const rebuild = new Set(ha.enabled ? [...dead].filter((u) => !maint.has(u) && silence.get(u)! >= waitMs + ha.graceSeconds * 1000) : []);
    for (const b of this.m.databases()) {
      if (isGone(b)) continue;
      if (!b.shards.some((s) => dead.has(s.node_uid))) continue;
      let plan: FailoverPlan | undefined;
      await this.m.store.bdbs.update(b.uid, (cur) => {
        plan = planFailover(cur.shards, dead, liveNodes, rebuild, maint);
        if (!plan) return undefined;
        return bumped(cur, plan.shards);
      });
      if (plan) {
        for (const p of plan.promoted) this.log.warn({ bdb: b.uid, ...p, dead: [...dead] }, 'failover: replica promoted to master');
        if (plan.promoted.length) this.promotions.set(b.uid, (this.promotions.get(b.uid) ?? 0) + plan.promoted.length);
        for (const mv of plan.moved) this.log.warn({ bdb: b.uid, ...mv }, 'failover: replica rebuilt on another node');
        if (plan.moved.length) await this.rebuilds.begin(b.uid, plan.moved);
      } else if (
        (rebuild.size === dead.size || !ha.enabled) &&
        // With replica HA off, a replica left on a dead node after its master's failover is expected, not stuck.
        b.shards.some((s) => dead.has(s.node_uid) && (s.role === 'master' || ha.enabled))
      ) {
        const key = `${b.uid}:${[...dead].join(',')}`;
        if (!this.reported.has(key)) {
          this.reported.add(key);
          this.log.error(
            { bdb: b.uid, dead: [...dead] },
            'failover: shards stay on the dead node (no replica on a live node, or no other live node to rebuild on)',
          );
        }
      }
    }
  }

  stop(): void {
    this.loop.stop();
  }
}
