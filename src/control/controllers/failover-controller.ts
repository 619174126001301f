// Runs on the cluster master: node failover. A member is dead once this
// master has seen no heartbeat of it (coord/heartbeats.ts) for
// `failover_timeout` seconds (never less than the liveness TTL, by when the
// node has fenced its own writes). Then, for every database with shards on
// it, in one compare-and-swap per database:
//   - each master shard there hands its slots to its replica on a live node,
//     and becomes that replica's replica;
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
import type { LiveRecord, NodeRecord, ShardPlacement } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { StoreHost } from '../../coord/store.js';
import { ReplicaRebuilds, type RebuildHost } from './replica-rebuilds.js';
import { MasterLoop, type MasterLoopHost } from './master-loop.js';
import { nodeIsUp } from '../model/node-state.js';

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
}

export interface FailoverPlan {
  shards: ShardPlacement[];
  promoted: { failed: number; promoted: number; node: number }[];
  moved: { shard: number; from: number; to: number }[];
}

/**
 * The new placement of one database after the loss of `dead` nodes, or
 * undefined when nothing can change: masters there are failed over, and
 * replicas on the `rebuild` ones (dead past the replica grace period; by
 * default all dead nodes) are placed elsewhere. Pure: the same record and
 * node sets give the same plan.
 */
export function planFailover(
  shards: readonly ShardPlacement[],
  dead: ReadonlySet<number>,
  liveNodes: readonly number[],
  rebuild: ReadonlySet<number> = dead,
): FailoverPlan | undefined {
  const next = shards.map((s) => ({ ...s }));
  const plan: FailoverPlan = { shards: next, promoted: [], moved: [] };
  const alive = (n: number) => !dead.has(n) && liveNodes.includes(n);
  for (const m of next) {
    if (m.role !== 'master' || !dead.has(m.node_uid)) continue;
    const r = next.find((s) => s.role === 'slave' && s.master_uid === m.uid && alive(s.node_uid));
    if (!r) continue; // no replica to take over: the slots wait for the node
    r.role = 'master';
    r.master_uid = undefined;
    r.slots = m.slots;
    m.role = 'slave';
    m.master_uid = r.uid;
    plan.promoted.push({ failed: m.uid, promoted: r.uid, node: r.node_uid });
  }
  for (const s of next) {
    if (s.role !== 'slave' || !dead.has(s.node_uid) || !rebuild.has(s.node_uid)) continue;
    const master = next.find((x) => x.uid === s.master_uid);
    if (!master || !alive(master.node_uid)) continue; // nothing live to copy from
    // Never beside its master; otherwise the live node holding fewest of this database's shards.
    const load = (n: number) => next.filter((x) => x.node_uid === n).length;
    const to = liveNodes.filter((n) => alive(n) && n !== master.node_uid).sort((a, b) => load(a) - load(b) || a - b)[0];
    if (to === undefined) continue;
    plan.moved.push({ shard: s.uid, from: s.node_uid, to });
    s.node_uid = to;
  }
  return plan.promoted.length || plan.moved.length ? plan : undefined;
}

export class FailoverController {
  private readonly loop: MasterLoop;
  /** Nodes this master has logged as dead (to log each change once). */
  private readonly down = new Set<number>();
  private readonly reported = new Set<string>();
  /** Promotions this node decided while master, by database uid (for the metrics). */
  readonly promotions = new Map<number, number>();
  private readonly rebuilds: ReplicaRebuilds;
  private rebuildsAt = 0;

  constructor(
    private readonly m: FailoverHost & StoreHost,
    private readonly log: Logger,
  ) {
    this.rebuilds = new ReplicaRebuilds(m, log);
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
    this.loop.start();
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    if (now - this.rebuildsAt >= 1000) {
      this.rebuildsAt = now;
      await this.rebuilds.tick();
    }
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
    const rebuild = new Set(ha.enabled ? [...dead].filter((u) => silence.get(u)! >= waitMs + ha.graceSeconds * 1000) : []);
    for (const b of this.m.databases()) {
      if (b.status === 'delete-pending' || b.status === 'creation-failed') continue;
      if (!b.shards.some((s) => dead.has(s.node_uid))) continue;
      let plan: FailoverPlan | undefined;
      await this.m.store.bdbs.update(b.uid, (cur) => {
        plan = planFailover(cur.shards, dead, liveNodes, rebuild);
        if (!plan) return undefined;
        return {
          ...cur,
          shards: plan.shards,
          generation: cur.generation + 1,
          status: cur.status === 'pending' ? cur.status : 'active-change-pending',
          last_changed_time: new Date().toISOString(),
        };
      });
      if (plan) {
        for (const p of plan.promoted) this.log.warn({ bdb: b.uid, ...p, dead: [...dead] }, 'failover: replica promoted to master');
        if (plan.promoted.length) this.promotions.set(b.uid, (this.promotions.get(b.uid) ?? 0) + plan.promoted.length);
        for (const mv of plan.moved) this.log.warn({ bdb: b.uid, ...mv }, 'failover: replica rebuilt on another node');
        if (plan.moved.length) await this.rebuilds.begin(b.uid, plan.moved);
      } else if (rebuild.size === dead.size || !ha.enabled) {
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
