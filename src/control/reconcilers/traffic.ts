// What a node's databases are doing, for the metrics endpoint (this node's
// part) and the web UI's live chart (every node's, over the control RPC):
// the traffic counters of the endpoints in the data-plane worker, and the
// memory its shards use.
import type { DataplaneHost } from '../../dataplane/host.js';
import type { EndpointStatsSnapshot } from '../../proxy/stats.js';
import type { BdbReconciler, ShardMemory } from './bdb-reconciler.js';
import type { NodeRecord } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { RpcClient } from '../../internode/rpc.js';

export interface NodeTraffic {
  uid: number;
  /** When it was read, ms since the epoch (the UI's rates divide by the difference). */
  time: number;
  endpoints: EndpointStatsSnapshot[];
  shards: ShardMemory[];
}

export interface TrafficHost {
  readonly uid: number;
  readonly dataplane?: DataplaneHost;
  readonly reconciler?: BdbReconciler;
  readonly nodes: PrefixCache<NodeRecord>;
  rpc(uid: number): RpcClient | undefined;
}

export const TRAFFIC_RPC = 'traffic';

/** This node's part. */
export async function localTraffic(m: TrafficHost): Promise<NodeTraffic> {
  if (!m.dataplane) throw new Error('node is starting');
  const [endpoints, shards] = await Promise.all([m.dataplane.endpointStats(), m.reconciler?.shardMemory() ?? []]);
  return { uid: m.uid, time: Date.now(), endpoints, shards };
}

export type NodeTrafficResult =
  | { uid: number; addr: string; ok: true; traffic: NodeTraffic }
  | { uid: number; addr: string; ok: false; error: string };

/** Every node's part; a node that does not answer within the timeout is reported as such. */
export async function clusterTraffic(m: TrafficHost, timeoutMs = 2000): Promise<NodeTrafficResult[]> {
  const nodes = m.nodes
    .values()
    .filter((n) => n.addr)
    .sort((a, b) => a.uid - b.uid);
  return Promise.all(
    nodes.map(async (n): Promise<NodeTrafficResult> => {
      try {
        if (n.uid === m.uid) return { uid: n.uid, addr: n.addr, ok: true, traffic: await localTraffic(m) };
        const c = m.rpc(n.uid);
        if (!c) throw new Error('no control link to this node');
        return { uid: n.uid, addr: n.addr, ok: true, traffic: await c.call<NodeTraffic>(TRAFFIC_RPC, {}, timeoutMs) };
      } catch (err) {
        return { uid: n.uid, addr: n.addr, ok: false, error: (err as Error).message };
      }
    }),
  );
}
