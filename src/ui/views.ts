// What the web UI's own routes answer (ui/server.ts), shared with the page
// (web/) as types only.
import type { VerifyReport } from '../internode/verify.js';

export type NodeMetrics =
  | { uid: number; addr: string; ok: false; error: string }
  | {
      uid: number;
      addr: string;
      ok: true;
      /** When the node read its counters (ms since the epoch). */
      time: number;
      /** The node serves an endpoint of the database. */
      endpoint: boolean;
      /** Cumulative since the node's data plane started. */
      requests: number;
      responses: number;
      latency_sum_us: number;
      /** Non-cumulative counts per bucket (upper bounds in latency_bounds_us; the last is +Inf). */
      latency_buckets: number[];
      /** Clients connected now. */
      clients: number;
      /** Bytes used by the database's shards on the node. */
      used_memory: number;
    };

export interface DatabaseMetrics {
  bdb_uid: number;
  time: number;
  latency_bounds_us: number[];
  nodes: NodeMetrics[];
}

export interface VerifyEncryptionView {
  report: VerifyReport;
  /** Nodes whose connections could not be listed: the verdict does not cover them. */
  unreachable: { uid: number; addr: string; error: string }[];
}
