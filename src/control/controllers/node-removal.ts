// The last step of removing a node from the cluster: its certificates go on
// the deny list (every node then closes internode connections that use them),
// its records go, and its etcd member is removed. Run by the REST handler for
// a node without shards, and by the ShardOpsController at the end of a
// `remove_node` operation, once the node's shards have moved away.
import type { Logger } from 'pino';
import type { DenyRecord, NodeRecord } from '../../coord/schema.js';
import type { ClusterStore } from '../../coord/store.js';
import { PLANES } from '../../pki/pki.js';
import { OperatorError, notFound } from '../../util/errors.js';

export interface RemovedNode {
  uid: number;
  status: 'removed';
  denied_serials: string[];
}

export async function removeNodeRecords(store: ClusterStore, n: NodeRecord, log: Pick<Logger, 'warn'>): Promise<RemovedNode> {
  const uid = n.uid;
  const now = new Date().toISOString();
  const denied: string[] = [];
  const deny: DenyRecord[] = [];
  for (const plane of PLANES) {
    const meta = n.certificates?.[plane];
    if (!meta) continue;
    deny.push({ serial: meta.serial, node_uid: uid, plane, time: now });
    denied.push(meta.serial);
  }
  if (!(await store.nodes.removeAndDeny(uid, deny))) throw notFound('node_not_found', `node ${uid} does not exist`);
  const master = await store.master.get();
  if (master?.uid === uid) await store.master.delete();
  if (n.etcd_member_id) {
    try {
      await store.members.remove(n.etcd_member_id);
    } catch (err) {
      throw new OperatorError(
        'internal',
        'store_member_not_removed',
        `node ${uid} is removed and denied, but its etcd member could not be removed: ${(err as Error).message}`,
      );
    }
  }
  log.warn({ node: uid, denied }, 'node removed from the cluster; its certificates are denied');
  return { uid, status: 'removed', denied_serials: denied };
}
