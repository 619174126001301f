// Every node: keeps a node older than the cluster version from being the
// cluster master. A 0.1.0 node cannot be taught to refuse itself: restarted
// into a 0.2 cluster (a downgrade), it runs as it always did and may win the
// next master election, and then its controllers would act on records they
// cannot read. So a member that runs at least the cluster version takes the
// master key from such a holder (RE's change_master: the key rebound to this
// node's own liveness lease), and says so. The older node sees the key change
// and steps down; should it claim the key again after a later election, the
// next check takes it back.
import type { Logger } from 'pino';
import type { ClusterVersionRecord, NodeRecord } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore } from '../../coord/store.js';
import { admits, type VersionView } from '../model/version-gates.js';

const EVERY_MS = 2_000;

export interface VersionGuardHost {
  readonly uid: number;
  readonly store: ClusterStore;
  readonly nodes: PrefixCache<NodeRecord>;
  readonly masterUid?: number;
  /** False while this node may have been cut off from the store. */
  storeIsCurrent(): boolean;
}

export class MasterVersionGuard {
  private timer?: NodeJS.Timeout;
  private busy = false;
  /** Older members already reported, so each is logged once. */
  private readonly reported = new Set<string>();
  /** The stored cluster version, watched: what this node's 0.2 behaviours ask through `view()`. */
  private readonly version: PrefixCache<ClusterVersionRecord>;

  constructor(
    private readonly h: VersionGuardHost,
    private readonly software: string,
    private readonly log: Logger,
    private readonly everyMs = EVERY_MS,
  ) {
    this.version = h.store.clusterVersion.cache();
  }

  async start(): Promise<void> {
    await this.version.start();
    this.timer = setInterval(() => void this.check(), this.everyMs);
    this.timer.unref();
    void this.check();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.version.stop();
  }

  /** The cluster version and the members' versions now, for `clusterAtLeast(guard.view(), '0.2')` (model/version-gates.ts). */
  view(): VersionView {
    const members = this.h.nodes
      .values()
      .filter((n) => n.addr)
      .map((n) => ({ uid: n.uid, software_version: n.software_version }));
    return { cluster_version: this.version.items.get('')?.version, members };
  }

  private async check(): Promise<void> {
    if (this.busy || !this.h.storeIsCurrent()) return;
    this.busy = true;
    try {
      const cv = this.version.items.get('')?.version;
      if (cv === undefined || !admits(cv, this.software)) return; // no version decided yet, or this node is not one to step in
      for (const n of this.h.nodes.values()) {
        if (!n.addr || admits(cv, n.software_version)) continue;
        const key = `${n.uid}@${n.software_version}`;
        if (!this.reported.has(key)) {
          this.reported.add(key);
          this.log.error(
            { node: n.uid, software_version: n.software_version, cluster_version: cv },
            `node ${n.uid} runs Tessera ${n.software_version}, older than the cluster version ${cv}: it is kept from the master role; stop it and start it with ${cv} or later`,
          );
        }
      }
      const holder = this.h.masterUid;
      const rec = holder === undefined ? undefined : this.h.nodes.items.get(String(holder));
      if (!rec?.software_version || admits(cv, rec.software_version)) return;
      const r = await this.h.store.master.handTo({ uid: this.h.uid, since: new Date().toISOString() });
      if (r === 'done')
        this.log.warn(
          { previous: holder, software_version: rec.software_version, cluster_version: cv },
          'elected cluster master: the previous master runs a version older than the cluster version',
        );
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'master version check failed; the next check retries');
    } finally {
      this.busy = false;
    }
  }
}
