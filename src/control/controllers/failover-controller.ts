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

/** What failover needs of its node's membership (src/node/loops.ts builds it from the membership parts). */
export interface FailoverHost extends RebuildHost, MasterLoopHost {
  readonly nodes: PrefixCache<NodeRecord>;
  readonly live: PrefixCache<LiveRecord>;
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

export { planFailover, type FailoverPlan };

export class FailoverController {
  private readonly loop: MasterLoop;
  /** Nodes this master has logged as dead (to log each change once). */
  private readonly down = new Set<number>();
  private readonly reported = new Set<string>();
  /** Promotions this node decided while master, by database uid (for the metrics). */
  readonly promotions = new Map<number, number>();
  private readonly rebuilds: ReplicaRebuilds;
  private rebuildsAt = 0;
  /** Every node's observed records: master shards there that ask for a handover (crashed, or returning with stale data). */
  private readonly observed: PrefixCache<ObservedRecord>;

  constructor(
    private readonly m: FailoverHost & StoreHost,
    private readonly log: Logger,
  ) {
    this.rebuilds = new ReplicaRebuilds(m, log);
    this.observed = m.store.observed.cache();
    this.observed.on('malformed', (err: Error) => this.log.warn({ err: err.message }, 'ignoring a malformed observed record'));
    this.loop = new MasterLoop(
      m,
      250,
      log,
      'failover tick',
      () => this.tick(),
      () => {
        this.down.clear();
        this.rebuilds.forget();
      },
    );
  }

  start(): void {
    this.m.live.on('change', this.loop.kick);
    this.observed.on('change', this.loop.kick);
    // Until it has loaded, handover reports wait; a failed start is retried by nothing, so it is logged loudly.
    this.observed
      .start()
      .catch((err) => this.log.error({ err: (err as Error).message }, 'cannot watch observed records: shard handovers wait'));
    this.loop.start();
  }

  /**
   * Master shards whose node reports a handover (reconcilers/bdb-reconciler.ts:
   * the shard crashed, or its node returns and it may lack writes its replica
   * took): a live replica is promoted, as in a node failover. A report of an
   * older generation is stale (the placement has changed since) and ignored.
   */
  private async handovers(): Promise<void> {
    for (const [key, o] of this.observed.items) {
      const asks = o.shards.filter((s) => s.handover && s.role === 'master');
      if (!asks.length) continue;
      const bdbUid = Number(key.split('/')[0]);
      const cached = this.m.databases().find((b) => b.uid === bdbUid);
      if (!cached || isGone(cached) || cached.generation !== o.generation) continue;
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

  private async tick(): Promise<void> {
    const now = Date.now();
    if (now - this.rebuildsAt >= 1000) {
      this.rebuildsAt = now;
      await this.rebuilds.tick();
    }
    await this.handovers();
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
    void this.observed.stop().catch((err) => this.log.warn({ err: (err as Error).message }, 'stopping the observed-record watch failed'));
  }
}
