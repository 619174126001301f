/**
 * An endpoint's traffic counters, kept on the proxy's hot path: plain numbers
 * in typed arrays, no allocation per command, no lookup by label. A request
 * is counted when its reply slot is made (read, write or other, as Redis
 * Enterprise's `endpoint_*_requests`), and its latency — from the arrival of
 * the bytes that held it to the write of its reply — when the reply is
 * written, into a coarse histogram whose bucket is found with one
 * `Math.clz32` (bucket k holds latencies under 16·2^k µs).
 *
 * The metrics endpoint (api/metrics.ts) reads them through a snapshot, which
 * crosses from the data-plane worker to the main thread as plain arrays.
 */

export const CLS_READ = 0;
export const CLS_WRITE = 1;
export const CLS_OTHER = 2;
/** Not a request: a pub/sub message, an out-of-band push. */
export const CLS_NONE = -1;
export const CLASSES = ['read', 'write', 'other'] as const;

/** Finite buckets: 16 µs · 2^k for k = 0..LATENCY_FINITE-1 (16 µs … ~1.05 s); one more for +Inf. */
export const LATENCY_FINITE = 17;
export const LATENCY_BUCKETS = LATENCY_FINITE + 1;
/** The upper bounds (µs) of the finite buckets. */
export const LATENCY_BOUNDS_US: readonly number[] = Array.from({ length: LATENCY_FINITE }, (_, k) => 16 * 2 ** k);

/** Why an endpoint refused a client connection (client TLS, proxy/endpoint.ts). */
export type RefusalReason = 'plaintext_on_tls' | 'tls_on_plaintext' | 'client_cert' | 'tls_handshake';

/** What crosses the thread boundary; counts since the endpoint started (counters reset when the worker restarts). */
export interface EndpointStatsSnapshot {
  bdbUid: number;
  /** By class (read, write, other). */
  requests: number[];
  responses: number[];
  /** Sum of latencies by class, µs. */
  latencySumUs: number[];
  /** By class, LATENCY_BUCKETS non-cumulative counts each (the last is +Inf). */
  latencyBuckets: number[][];
  connections: number;
  /** Closed by the client. */
  disconnections: number;
  /** Closed by the proxy (protocol error, limits, the endpoint closing). */
  proxyDisconnections: number;
  clients: number;
  /** Connections refused, by reason. */
  refusals: Record<RefusalReason, number>;
}

export class EndpointStats {
  readonly requests = new Float64Array(3);
  readonly responses = new Float64Array(3);
  readonly latencySumUs = new Float64Array(3);
  readonly latencyBuckets = new Float64Array(3 * LATENCY_BUCKETS);
  connections = 0;
  disconnections = 0;
  proxyDisconnections = 0;
  readonly refusals: Record<RefusalReason, number> = { plaintext_on_tls: 0, tls_on_plaintext: 0, client_cert: 0, tls_handshake: 0 };

  /** One reply written, `us` after its request arrived. */
  observe(cls: number, us: number): void {
    this.responses[cls]++;
    this.latencySumUs[cls] += us;
    let k = us < 16 * 2 ** LATENCY_FINITE ? 32 - Math.clz32(us >>> 4) : LATENCY_FINITE;
    if (k > LATENCY_FINITE) k = LATENCY_FINITE;
    this.latencyBuckets[cls * LATENCY_BUCKETS + k]++;
  }

  snapshot(bdbUid: number, clients: number): EndpointStatsSnapshot {
    const buckets: number[][] = [];
    for (let c = 0; c < 3; c++) buckets.push([...this.latencyBuckets.subarray(c * LATENCY_BUCKETS, (c + 1) * LATENCY_BUCKETS)]);
    return {
      bdbUid,
      requests: [...this.requests],
      responses: [...this.responses],
      latencySumUs: [...this.latencySumUs],
      latencyBuckets: buckets,
      connections: this.connections,
      disconnections: this.disconnections,
      proxyDisconnections: this.proxyDisconnections,
      clients,
      refusals: { ...this.refusals },
    };
  }
}
