// The feature gate at the REST layer: a route that would write something
// older members cannot read asks `requireClusterFeature(m, 'resharding')`
// first, and the refusal is 409 cluster_version_too_old naming them.
import type { NodeRecord } from '../coord/schema.js';
import type { PrefixCache } from '../coord/watch.js';
import type { ClusterStore } from '../coord/store.js';
import { type Feature, type VersionView, requireFeature } from '../control/model/version-gates.js';

/** What the gate reads of the member: the store, and the members' records. */
export interface VersionedMember {
  readonly store: ClusterStore;
  readonly nodes: PrefixCache<NodeRecord>;
}

/** The stored cluster version and every published member's software version. */
export async function versionView(m: VersionedMember): Promise<VersionView> {
  const stored = await m.store.clusterVersion.get();
  const members = m.nodes
    .values()
    .filter((n) => n.addr)
    .map((n) => ({ uid: n.uid, software_version: n.software_version }));
  return { cluster_version: stored?.version, members };
}

/** Throws 409 cluster_version_too_old unless the cluster version allows `feature`. */
export async function requireClusterFeature(m: VersionedMember, feature: Feature): Promise<void> {
  requireFeature(await versionView(m), feature);
}
