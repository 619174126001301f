// The one check behind both refusals of a node older than the cluster version:
// a joiner, by the member it asks (before anything changes), and this node at
// start with the data directory of a newer cluster (before it publishes or
// acts on anything). 0.1.0 nodes cannot be taught it; see control/reconcilers/master-version-guard.ts.
import type { Logger } from 'pino';
import type { ClusterStore } from '../../coord/store.js';
import { admits, nodeTooOld, UNSTATED_SOFTWARE_VERSION, VERSION_HEADER } from '../model/version-gates.js';
import { SOFTWARE_VERSION } from '../membership/config.js';

/** A joiner's request to a member: it names its version in a header (a 0.1.0 member ignores it, and refuses unknown body fields). */
export const joinNodeCall = <B>(body: B) => ({ path: '/v1/cluster/join_node', headers: { [VERSION_HEADER]: SOFTWARE_VERSION }, body });

/**
 * Throws 409 cluster_version_too_old, in one line naming `who`, when
 * `software` (a joiner that says nothing runs 0.1.0) is older than the stored
 * cluster version; the store is waited for first when the member is starting.
 */
export async function requireAdmitted(
  m: { store: ClusterStore; waitReady?(): Promise<void> },
  who: string,
  software = UNSTATED_SOFTWARE_VERSION,
  log?: Logger,
): Promise<void> {
  await m.waitReady?.();
  const cv = (await m.store.clusterVersion.get())?.version;
  if (admits(cv, software)) return;
  const refusal = nodeTooOld(who, software, cv!);
  log?.warn({ software_version: software, cluster_version: cv }, refusal.message);
  throw refusal;
}
