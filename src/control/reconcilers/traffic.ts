// What a node's databases are doing, for the metrics endpoint (this node's
// part) and the web UI's live chart (every node's, over the control RPC):
// the traffic counters of the endpoints in the data-plane worker, and the
// memory its shards use.
import type { EndpointStatsSnapshot } from '../../proxy/stats.js';
import type { ShardMemory } from './bdb-reconciler.js';
import type { NodeRecord } from '../../coord/schema.js';

export interface NodeTraffic {
  uid: number;
  /** When it was read, ms since the epoch (the UI's rates divide by the difference). */
  time: number;
  endpoints: EndpointStatsSnapshot[];
  shards: ShardMemory[];
}

/** This node's side: its data-plane worker's endpoint counters and its shards' memory (src/node wires them). */
export interface LocalTrafficHost {
  readonly uid: number;
  readonly dataplane: { endpointStats(): Promise<EndpointStatsSnapshot[]> };
  readonly shards: { shardMemory(): Promise<ShardMemory[]> };
}

/** The asking side: the nodes, and the control RPC (in-process for this node). */
export interface TrafficHost {
  readonly nodes: { values(): NodeRecord[] };
  call<T>(uid: number, method: string, params: object, timeoutMs?: number): Promise<T>;
}

export const TRAFFIC_RPC = 'traffic';

/** This node's part. */
export async function localTraffic(m: LocalTrafficHost): Promise<NodeTraffic> {
  const [endpoints, shards] = await Promise.all([m.dataplane.endpointStats(), m.shards.shardMemory()]);
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
        return { uid: n.uid, addr: n.addr, ok: true, traffic: await m.call<NodeTraffic>(n.uid, TRAFFIC_RPC, {}, timeoutMs) };
      } catch (err) {
        return { uid: n.uid, addr: n.addr, ok: false, error: (err as Error).message };
      }
    }),
  );
}
