// The last step of removing a node from the cluster: its certificates go on
// the deny list (every node then closes internode connections that use them),
// its records go, and its etcd member is removed. Run by the REST handler for
// a node without shards, and by the ShardOpsController at the end of a
// `remove_node` operation, once the node's shards have moved away.
import type { Logger } from 'pino';
import type { Etcd3 } from 'etcd3';
import { KEYS, DenyRecord, MasterRecord, type NodeRecord } from '../coord/schema.js';
import { readRecord } from '../coord/records.js';
import { PLANES } from '../pki/pki.js';
import { OperatorError, notFound } from '../util/errors.js';

export interface RemovedNode {
  uid: number;
  status: 'removed';
  denied_serials: string[];
}

export async function removeNodeRecords(client: Etcd3, n: NodeRecord, log: Pick<Logger, 'warn'>): Promise<RemovedNode> {
  const uid = n.uid;
  const now = new Date().toISOString();
  const denied: string[] = [];
  const ops = [];
  for (const plane of PLANES) {
    const meta = n.certificates?.[plane];
    if (!meta) continue;
    const rec: DenyRecord = { serial: meta.serial, node_uid: uid, plane, time: now };
    ops.push(client.put(KEYS.deny(meta.serial)).value(JSON.stringify(rec)));
    denied.push(meta.serial);
  }
  ops.push(client.delete().key(KEYS.node(uid)), client.delete().key(KEYS.live(uid)), client.delete().key(KEYS.alerts(uid)));
  const r = await client.if(KEYS.node(uid), 'Create', '>', 0).then(...ops).commit();
  if (!r.succeeded) throw notFound('node_not_found', `node ${uid} does not exist`);
  const master = await readRecord(client, KEYS.master, MasterRecord);
  if (master?.uid === uid) await client.delete().key(KEYS.master);
  if (n.etcd_member_id) {
    try {
      await client.cluster.memberRemove({ ID: n.etcd_member_id });
    } catch (err) {
      throw new OperatorError('internal', 'store_member_not_removed', `node ${uid} is removed and denied, but its etcd member could not be removed: ${(err as Error).message}`);
    }
  }
  log.warn({ node: uid, denied }, 'node removed from the cluster; its certificates are denied');
  return { uid, status: 'removed', denied_serials: denied };
}
