// Removing a node that hosts no shard (POST /v1/nodes/{uid}/actions/remove):
// queued as a `remove_node` action with nothing to migrate, like the removal
// of a node with shards (control/controllers/shard-ops.ts `requestNodeRemoval`),
// so one path does it: the cluster master's ShardOpsController denies the
// node's certificates and removes its records and etcd member
// (control/controllers/node-removal.ts), resumed by the next master if this
// one goes. Release 0.1.0 masters run such an action the same way.
import type { ActionRecord, ShardOpRecord } from '../../coord/schema.js';
import { isFinished } from '../../coord/schema.js';
import type { ClusterStore } from '../../coord/store.js';

/**
 * Queue the removal of node `node` (which hosts no shard), or answer the
 * removal of it already under way.
 */
export async function queueNodeRemoval(
  store: Pick<ClusterStore, 'actions' | 'shardOps'>,
  node: number,
  log: { info(o: object, msg: string): void },
): Promise<ActionRecord> {
  for (const o of await store.shardOps.list()) {
    if (o.kind !== 'remove_node' || o.node_uid !== node) continue;
    const a = await store.actions.get(o.action_uid);
    if (a && !isFinished(a)) return a;
  }
  const action = await store.actions.create('remove_node', `node:${node}`);
  const op: ShardOpRecord = {
    kind: 'remove_node',
    items: [],
    node_uid: node,
    action_uid: action.action_uid,
    created_time: new Date().toISOString(),
  };
  await store.shardOps.put(op);
  log.info({ action: action.action_uid, node }, 'node removal requested: it hosts no shard');
  return action;
}
