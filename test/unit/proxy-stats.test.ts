// The endpoint's traffic counters (proxy/stats.ts): each latency lands in the
// bucket whose bound is the first above it, by class; the snapshot that
// crosses to the metrics endpoint carries every count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLS_OTHER,
  CLS_READ,
  CLS_WRITE,
  EndpointStats,
  LATENCY_BOUNDS_US,
  LATENCY_BUCKETS,
  LATENCY_FINITE,
} from '../../src/proxy/stats.js';

test('latency buckets: 16 µs · 2^k bounds, found by clz32, the last one +Inf', () => {
  assert.equal(LATENCY_BOUNDS_US[0], 16);
  assert.equal(LATENCY_BOUNDS_US[LATENCY_FINITE - 1], 16 * 2 ** 16);
  const bucketOf = (us: number) => {
    const st = new EndpointStats();
    st.observe(CLS_READ, us);
    return [...st.latencyBuckets].indexOf(1);
  };
  // Every latency goes to the first bucket whose bound is above it.
  for (const us of [0, 0.4, 15.9, 16, 31, 32, 100, 999.5, 1000, 65_535, 65_536, 1_048_575, 1_048_576, 5e6, 3e9, 1e12]) {
    const k = bucketOf(us);
    const expected = LATENCY_BOUNDS_US.findIndex((b) => Math.floor(us) < b);
    assert.equal(k, expected === -1 ? LATENCY_FINITE : expected, `${us} µs`);
  }
});

test('counts by class, sums, connections, and a snapshot of plain arrays', () => {
  const st = new EndpointStats();
  st.requests[CLS_WRITE] += 2;
  st.observe(CLS_WRITE, 40);
  st.observe(CLS_WRITE, 300);
  st.observe(CLS_OTHER, 20);
  st.connections = 3;
  st.disconnections = 1;
  st.proxyDisconnections = 1;
  const s = st.snapshot(7, 1);
  assert.deepEqual(s.requests, [0, 2, 0]);
  assert.deepEqual(s.responses, [0, 2, 1]);
  assert.deepEqual(s.latencySumUs, [0, 340, 20]);
  assert.equal(s.latencyBuckets.length, 3);
  for (const b of s.latencyBuckets) assert.equal(b.length, LATENCY_BUCKETS);
  assert.equal(s.latencyBuckets[CLS_WRITE][2], 1); // 40 µs: under 64
  assert.equal(s.latencyBuckets[CLS_WRITE][5], 1); // 300 µs: under 512
  assert.equal(s.latencyBuckets[CLS_OTHER][1], 1); // 20 µs: under 32
  assert.deepEqual([s.bdbUid, s.connections, s.disconnections, s.proxyDisconnections, s.clients], [7, 3, 1, 1, 1]);
  assert.doesNotThrow(() => structuredClone(s));
});
