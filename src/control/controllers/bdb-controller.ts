// Runs on the cluster master: moves each database's status along once every
// live node reports it has converged to the current generation (pending or
// active-change-pending → active; delete-pending → gone), and marks a
// creation failed when a node hits an error it cannot get past.
import type { Logger } from 'pino';
import type { BdbRecord, LiveRecord } from '../../coord/schema.js';
import type { ObservedShard } from '../../coord/schema.js';
import type { ObservedRecord } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore, StoreHost } from '../../coord/store.js';
import { MasterLoop, type MasterLoopHost } from './master-loop.js';
import { nodeIsUp, type NodeStateHost } from '../model/node-state.js';

/** A replica's copy of its master: `in_progress` (a full sync, with its progress), `finished` (streaming), `link_down`. */
export interface ShardSync {
  status: 'in_progress' | 'finished' | 'link_down';
  progress: number;
}

/** The sync state a node reported for one of its shards; undefined for a master. */
export function shardSync(s: ObservedShard): ShardSync | undefined {
  if (s.master_link_status === undefined) return undefined;
  if (s.sync_progress !== undefined) return { status: 'in_progress', progress: s.sync_progress };
  return s.master_link_status === 'up' ? { status: 'finished', progress: 100 } : { status: 'link_down', progress: 0 };
}

/** What the controller needs of its node's membership (src/node/loops.ts builds it from the membership parts). */
export interface ControllerHost extends MasterLoopHost, NodeStateHost {
  readonly live: PrefixCache<LiveRecord>;
  /** The node's watched databases and observed records (shared with its other loops; their owner starts and stops them). */
  readonly bdbs: PrefixCache<BdbRecord>;
  readonly observed: PrefixCache<ObservedRecord>;
}
export class BdbController {
  readonly observed: PrefixCache<ObservedRecord>;
  /** The databases' desired state, read from the store (not from this node's reconciler). */
  private readonly bdbs: PrefixCache<BdbRecord>;
  private readonly loop: MasterLoop;
  private readonly store: ClusterStore;

  constructor(
    private readonly m: ControllerHost & StoreHost,
    private readonly log: Logger,
  ) {
    this.store = m.store;
    // Malformed records are logged once by the caches' owner (observed) and by the reconciler (databases).
    this.observed = m.observed;
    this.bdbs = m.bdbs;
    this.loop = new MasterLoop(m, 1000, log, 'database controller tick', () => this.tick());
  }

  async start(): Promise<void> {
    this.observed.on('change', this.loop.kick);
    this.bdbs.on('change', this.loop.kick);
    this.loop.start();
  }

  /** Observed records of one database, by node uid. */
  observedOf(bdbUid: number): Map<number, ObservedRecord> {
    const out = new Map<number, ObservedRecord>();
    for (const [k, v] of this.observed.items) if (k.startsWith(`${bdbUid}/`)) out.set(v.node_uid, v);
    return out;
  }

  /** What node `nodeUid` last reported of shard `shardUid` of database `bdbUid`'s sync (a shard that moved is only reported by its node). */
  syncOf(bdbUid: number, shardUid: number, nodeUid: number): ShardSync | undefined {
    const o = this.observed.items.get(`${bdbUid}/${nodeUid}`);
    const s = o?.shards.find((x) => x.uid === shardUid);
    return s && shardSync(s);
  }

  private async tick(): Promise<void> {
    // A node that is down (failed over, or about to be) does not hold a change up.
    const liveNodes = [...this.m.live.items.keys()].map(Number).filter((n) => nodeIsUp(this.m, n));
    for (const b of this.bdbs.values()) {
      if (b.status === 'active' || b.status === 'creation-failed') continue;
      // A resharding (0.2) keeps its database changing until its controller (reshard.ts) is done.
      if (b.reshard && b.status !== 'delete-pending') continue;
      const obs = this.observedOf(b.uid);
      const current = liveNodes.map((n) => obs.get(n)).filter((o): o is ObservedRecord => !!o && o.generation === b.generation);
      const fatal = current.find((o) => o.fatal);
      if (fatal && b.status === 'pending') {
        this.log.warn({ bdb: b.uid, node: fatal.node_uid, err: fatal.error }, 'database creation failed');
        await this.store.bdbs.update(b.uid, (cur) =>
          cur.generation === b.generation ? { ...cur, status: 'creation-failed', error: fatal.error } : undefined,
        );
        await this.store.actions.finish(b.action_uid, 'failed', fatal.error);
        continue;
      }
      const done = current.length === liveNodes.length && current.every((o) => o.converged);
      if (!done) continue;
      if (b.status === 'delete-pending') {
        await this.store.bdbs.delete(b.uid);
        await this.store.observed.deleteOf(b.uid);
        await this.store.actions.finish(b.action_uid, 'completed');
        this.log.info({ bdb: b.uid }, 'database deleted');
      } else {
        await this.store.bdbs.update(b.uid, (cur) =>
          cur.generation === b.generation && cur.status !== 'delete-pending' ? { ...cur, status: 'active', error: undefined } : undefined,
        );
        await this.store.actions.finish(b.action_uid, 'completed');
        this.log.info({ bdb: b.uid, generation: b.generation }, 'database active');
      }
    }
  }

  async stop(): Promise<void> {
    this.loop.stop();
  }
}
