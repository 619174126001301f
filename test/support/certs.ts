// Test fixtures: a cluster's CA and plane bundles made with the real PKI code.
import { createCa, issueLocally, type Plane, type Issued } from '../../src/pki/pki.js';
import type { Bundle } from '../../src/tls/policy.js';

export interface FakeNodeCerts {
  uid: number;
  cp: Bundle;
  dp: Bundle;
}
export interface ClusterCerts {
  clusterId: string;
  ca: Issued;
  nodes: FakeNodeCerts[];
}

export async function makeClusterCerts(
  clusterId: string,
  uids: number[],
  addr = '127.0.0.1',
  validitySeconds = 3600,
): Promise<ClusterCerts> {
  const ca = await createCa(clusterId, clusterId);
  const nodes: FakeNodeCerts[] = [];
  for (const uid of uids) {
    const b: Partial<Record<Plane, Bundle>> = {};
    for (const plane of ['cp', 'dp'] as Plane[]) {
      const i = await issueLocally(ca, { clusterId, uid, plane, addr, validitySeconds });
      b[plane] = { certPem: i.certPem, keyPem: i.keyPem, caPem: ca.certPem };
    }
    nodes.push({ uid, cp: b.cp!, dp: b.dp! });
  }
  return { clusterId, ca, nodes };
}
