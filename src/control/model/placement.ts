// Databases' pure logic: shard placement, slot ranges, endpoint nodes, secrets.
// Reading and changing them in the store is coord/store.ts's (`bdbs`,
// `actions`, `seqs`).
import { randomBytes } from 'node:crypto';
import type { BdbRecord, NodeRecord, ShardPlacement } from '../../coord/schema.js';
import { SLOT_COUNT } from '../../proxy/slots.js';

export function newSecret(): string {
  return randomBytes(24).toString('base64url');
}

/** Split the 16384 slots into n contiguous, near-equal ranges. */
export function slotRanges(n: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) out.push([Math.floor((i * SLOT_COUNT) / n), Math.floor(((i + 1) * SLOT_COUNT) / n) - 1]);
  return out;
}

/**
 * Place masters round-robin over the nodes (fewest shards first), and each
 * replica on the next node after its master's, never on the master's node.
 */
export function placeShards(
  nodes: NodeRecord[],
  shardLoad: Map<number, number>,
  shardsCount: number,
  replication: boolean,
  firstShardUid: number,
  placement: 'dense' | 'sparse',
): ShardPlacement[] {
  const order = [...nodes].sort((a, b) => (shardLoad.get(a.uid) ?? 0) - (shardLoad.get(b.uid) ?? 0) || a.uid - b.uid).map((n) => n.uid);
  const ranges = slotRanges(shardsCount);
  const out: ShardPlacement[] = [];
  let uid = firstShardUid;
  for (let i = 0; i < shardsCount; i++) {
    const masterNode = placement === 'dense' ? order[0] : order[i % order.length];
    const master: ShardPlacement = { uid: uid++, role: 'master', node_uid: masterNode, slots: ranges[i] };
    out.push(master);
    if (replication) {
      const idx = order.indexOf(masterNode);
      const replicaNode = order[(idx + 1) % order.length];
      out.push({ uid: uid++, role: 'slave', node_uid: replicaNode, slots: ranges[i], master_uid: master.uid });
    }
  }
  return out;
}

/** The nodes that run an endpoint for this database. */
export function endpointNodes(b: BdbRecord, allNodes: number[]): number[] {
  const masters = b.shards.filter((s) => s.role === 'master');
  switch (b.proxy_policy) {
    case 'single':
      return masters.length ? [masters[0].node_uid] : [];
    case 'all-master-shards':
      return [...new Set(masters.map((s) => s.node_uid))].sort((a, z) => a - z);
    case 'all-nodes':
      return [...allNodes].sort((a, z) => a - z);
  }
}
