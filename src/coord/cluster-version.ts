// The stored cluster version (/tessera/cluster_version): written by the
// cluster master only (control/controllers/cluster-version.ts), never lowered,
// read by every node (control/model/version-gates.ts says what it gates).
import type { Etcd3 } from 'etcd3';
import { ClusterVersionRecord, KEYS } from './schema.js';
import { readRecord, updateRecord } from './records.js';
import { PrefixCache } from './watch.js';

export class ClusterVersionStore {
  constructor(private readonly c: Etcd3) {}

  /** The stored cluster version; null until a 0.2 (or later) master has decided one. */
  get(): Promise<ClusterVersionRecord | null> {
    return readRecord(this.c, KEYS.clusterVersion, ClusterVersionRecord);
  }

  /**
   * Store `next` as the cluster version, compare-and-swap, only if it is above
   * the stored one by `higher(next, stored)`: the cluster version never goes
   * down, even when two masters race. Resolves with the stored record after.
   */
  raise(next: string, higher: (a: string, b: string) => boolean): Promise<ClusterVersionRecord | undefined> {
    return updateRecord(this.c, KEYS.clusterVersion, ClusterVersionRecord, (cur) =>
      cur && !higher(next, cur.version) ? undefined : { ...cur, version: next, updated_time: new Date().toISOString() },
    );
  }

  /** A watched copy of the cluster version (one item, '', once decided; start it). */
  cache(): PrefixCache<ClusterVersionRecord> {
    return new PrefixCache(this.c, KEYS.clusterVersion, ClusterVersionRecord);
  }
}
