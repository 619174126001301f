// Runs on the cluster master: follows the replicas that node failover placed
// on other nodes (replica high availability) until their full sync is done,
// as one `replica_rebuild` action per database and failover
// (GET /v1/actions/{uid}): its progress is the mean of its replicas' sync
// progress as their nodes report it. A master elected later adopts the
// actions that are still running.
import type { Logger } from 'pino';
import { isFinished, type BdbRecord } from '../../coord/schema.js';
import type { ShardSync } from './bdb-controller.js';
import type { StoreHost } from '../../coord/store.js';

export const REBUILD_ACTION = 'replica_rebuild';
/** How often a master looks for rebuilds it does not follow yet (it was elected after they began). */
const ADOPT_EVERY_MS = 5_000;

export interface RebuildHost {
  databases(): BdbRecord[];
  /** What a shard's node last reported of its sync. */
  syncOf(bdbUid: number, shardUid: number, nodeUid: number): ShardSync | undefined;
}

interface Rebuild {
  bdb: number;
  shards: number[];
  progress: number;
  description: string;
}

export class ReplicaRebuilds {
  private readonly tracked = new Map<string, Rebuild>();
  private adoptedAt = 0;

  constructor(
    private readonly h: RebuildHost & StoreHost,
    private readonly log: Logger,
  ) {}

  private actions() {
    return this.h.store.actions;
  }

  /** A failover placed these replicas of database `bdb` on other nodes. */
  async begin(bdb: number, moved: { shard: number; from: number; to: number }[]): Promise<void> {
    const what = moved.map((m) => `shard ${m.shard} on node ${m.to} (was on node ${m.from})`).join(', ');
    const description = `rebuilding replica ${what} by a full sync from its master`;
    const a = await this.actions().create(REBUILD_ACTION, `bdb:${bdb}`, {
      status: 'active',
      description,
      steps: [`0% ${description}`],
      shard_uids: moved.map((m) => m.shard),
    });
    this.tracked.set(a.action_uid, { bdb, shards: moved.map((m) => m.shard), progress: 0, description });
    this.log.warn({ bdb, action: a.action_uid, moved }, 'replica rebuild started');
  }

  /** This node is no longer the master: the next one follows the rebuilds (it adopts them). */
  forget(): void {
    this.tracked.clear();
    this.adoptedAt = 0;
  }

  /** Called on the master only (FailoverController's loop). */
  async tick(): Promise<void> {
    if (Date.now() - this.adoptedAt >= ADOPT_EVERY_MS) {
      this.adoptedAt = Date.now();
      await this.adopt();
    }
    const dbs = new Map(this.h.databases().map((b) => [b.uid, b]));
    for (const [uid, r] of this.tracked) {
      const b = dbs.get(r.bdb);
      const shards = r.shards.map((su) => b?.shards.find((s) => s.uid === su));
      const gone = r.shards.filter((_, i) => !shards[i]);
      if (!b || gone.length) {
        const why = !b ? `database ${r.bdb} was deleted` : `shard ${gone.join(', ')} no longer exists (moved or removed)`;
        await this.actions().update(uid, { status: 'failed', error: why, description: why });
        this.tracked.delete(uid);
        continue;
      }
      const syncs = shards.map((s) => this.h.syncOf(b.uid, s!.uid, s!.node_uid));
      const progress = Math.floor(syncs.reduce((a, x) => a + (x?.progress ?? 0), 0) / syncs.length);
      const state = shards
        .map(
          (s, i) =>
            `shard ${s!.uid} on node ${s!.node_uid}: ${syncs[i] ? (syncs[i]!.status === 'in_progress' ? `full sync ${syncs[i]!.progress}%` : syncs[i]!.status === 'finished' ? 'in sync' : 'link down') : 'starting'}`,
        )
        .join('; ');
      if (syncs.every((x) => x?.status === 'finished')) {
        await this.actions().update(uid, { status: 'completed', progress: 100, description: `replica rebuilt and in sync: ${state}` });
        this.log.info({ bdb: b.uid, action: uid, shards: r.shards }, 'replica rebuild done');
        this.tracked.delete(uid);
      } else if (progress !== r.progress || state !== r.description) {
        await this.actions().update(uid, { progress, description: state });
        r.progress = progress;
        r.description = state;
      }
    }
  }

  /** Rebuilds a former master began: still running, so this master follows them. */
  private async adopt(): Promise<void> {
    for (const a of await this.actions().list()) {
      if (a.name !== REBUILD_ACTION || isFinished(a) || this.tracked.has(a.action_uid)) continue;
      const bdb = Number(/^bdb:(\d+)$/.exec(a.object_name)?.[1]);
      if (!Number.isInteger(bdb) || !a.shard_uids?.length) continue;
      this.tracked.set(a.action_uid, { bdb, shards: a.shard_uids, progress: a.progress, description: a.description ?? '' });
      this.log.info({ action: a.action_uid, bdb }, 'following a replica rebuild a former master began');
    }
  }
}
