// Runs on the cluster master: decides the cluster version, the lowest
// major.minor software version among the members, and stores it
// (/tessera/cluster_version). It only ever goes up: once every member runs
// 0.2, the cluster is 0.2, and a node older than that is refused at join and
// at start (control/bootstrap/daemon.ts, api/routes/join.ts) rather than
// lowering it. Gated features and 0.2 behaviours read it (control/model/version-gates.ts).
import type { Logger } from 'pino';
import type { NodeRecord } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore } from '../../coord/store.js';
import { compareMinor, nextClusterVersion } from '../model/version-gates.js';
import { MasterLoop, type MasterLoopHost } from './master-loop.js';

const EVERY_MS = 5_000;

export interface ClusterVersionHost extends MasterLoopHost {
  readonly store: ClusterStore;
  readonly nodes: PrefixCache<NodeRecord>;
}

/** The members' software versions: records a node has published in full (the first node's stub has none yet). */
export function memberVersions(nodes: Iterable<Partial<NodeRecord>>): string[] {
  return [...nodes].filter((n) => n.addr && typeof n.software_version === 'string').map((n) => n.software_version!);
}

export class ClusterVersionController {
  private readonly loop: MasterLoop;
  private readonly onNodes = (): void => this.loop.kick();

  constructor(
    private readonly h: ClusterVersionHost,
    private readonly log: Logger,
    everyMs = EVERY_MS,
  ) {
    this.loop = new MasterLoop(h, everyMs, log, 'cluster version decision', () => this.tick());
  }

  start(): void {
    this.h.nodes.on('change', this.onNodes);
    this.loop.start();
    this.loop.kick();
  }

  async close(): Promise<void> {
    this.h.nodes.off('change', this.onNodes);
    this.loop.stop();
  }

  private async tick(): Promise<void> {
    // A member whose record this node cannot read is counted as unknown: no raise until every member is read.
    if (this.h.nodes.notUnderstood.size) return;
    const store = this.h.store.clusterVersion;
    const stored = (await store.get())?.version;
    const next = nextClusterVersion(stored, memberVersions(this.h.nodes.values()));
    if (next === undefined) return;
    const rec = await store.raise(next, (a, b) => compareMinor(a, b) > 0);
    if (rec?.version === next) this.log.info({ from: stored ?? null, to: next }, 'cluster version raised');
  }
}
