// A database's live traffic on its page: operations per second and latency,
// drawn with uPlot from GET /ui/bdbs/{uid}/metrics (this node asks every
// node for its endpoint's counters; the same counters 8070 exports to
// Prometheus). Rates are the difference between two reads of each node's
// cumulative counters; a node that does not answer is shown as down and left
// out of the sums until it answers again.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { call } from '../api.js';
import type { DatabaseMetrics, NodeMetrics } from '../../views.js';
import { errorMessage, facts, fill, fmtBytes, h } from '../dom.js';

/** How often the chart reads the counters, and how much history it keeps. */
export const METRICS_EVERY_MS = 2000;
const POINTS = 90;

type Up = Extract<NodeMetrics, { ok: true }>;

/** The smallest bucket bound under which `q` of the observations fall (an upper estimate of that quantile), µs. */
function quantileUs(buckets: number[], bounds: number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  let acc = 0;
  for (let k = 0; k < buckets.length; k++) {
    acc += buckets[k];
    if (acc >= q * total) return k < bounds.length ? bounds[k] : Infinity;
  }
  return Infinity;
}

const fmtMs = (us: number | null) =>
  us === null ? '—' : us === Infinity ? '> 1 s' : us >= 1000 ? `${(us / 1000).toFixed(us >= 10_000 ? 0 : 1)} ms` : `${Math.round(us)} µs`;

export function databaseMetrics(uid: number): { el: HTMLElement; dispose(): void } {
  const now = h('div', { class: 'placeholder' }, 'Reading the nodes’ counters…');
  const chartBox = h('div', { class: 'chart', role: 'img', 'aria-label': 'Operations per second and average latency, last 3 minutes' });
  const nodesLine = h('p', { class: 'muted metrics-nodes' });
  const problem = h('div');
  const el = h('div', { class: 'metrics' }, problem, now, chartBox, nodesLine);

  const xs: number[] = [];
  const ops: (number | null)[] = [];
  const lat: (number | null)[] = [];
  let plot: uPlot | undefined;
  let prev = new Map<number, Up>();
  let timer: number | undefined;
  let disposed = false;

  const draw = () => {
    const data: uPlot.AlignedData = [xs, ops, lat];
    if (plot) {
      plot.setData(data);
      return;
    }
    const width = Math.max(320, Math.min(900, chartBox.clientWidth || 640));
    plot = new uPlot(
      {
        width,
        height: 220,
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true },
          ops: { auto: true, range: (_u, _min, max) => [0, Math.max(1, max)] },
          ms: { auto: true, range: (_u, _min, max) => [0, Math.max(0.1, max)] },
        },
        series: [
          {},
          { label: 'Operations/s', scale: 'ops', stroke: '#2f6fb3', width: 2, value: (_u, v) => (v === null ? '—' : v.toFixed(0)) },
          { label: 'Average latency (ms)', scale: 'ms', stroke: '#c0582b', width: 2, value: (_u, v) => (v === null ? '—' : v.toFixed(2)) },
        ],
        axes: [{}, { scale: 'ops', label: 'ops/s' }, { scale: 'ms', side: 1, label: 'ms', grid: { show: false } }],
      },
      data,
      chartBox,
    );
  };

  const tick = async () => {
    let m: DatabaseMetrics;
    try {
      m = await call<DatabaseMetrics>('GET', `/ui/bdbs/${uid}/metrics`, undefined, { background: true });
      fill(problem);
    } catch (err) {
      fill(problem, errorMessage(err));
      return;
    }
    let dReq = 0;
    let dResp = 0;
    let dSum = 0;
    let dt = 0;
    let counted = 0;
    const dBuckets = new Array<number>(m.latency_bounds_us.length + 1).fill(0);
    let clients = 0;
    let memory = 0;
    const next = new Map<number, Up>();
    for (const n of m.nodes) {
      if (!n.ok) continue;
      next.set(n.uid, n);
      clients += n.clients;
      memory += n.used_memory;
      const p = prev.get(n.uid);
      // A node whose counters went back (its data plane restarted) starts over from this read.
      if (!p || n.time <= p.time || n.requests < p.requests) continue;
      dReq += n.requests - p.requests;
      dResp += n.responses - p.responses;
      dSum += n.latency_sum_us - p.latency_sum_us;
      n.latency_buckets.forEach((c, k) => (dBuckets[k] += c - (p.latency_buckets[k] ?? 0)));
      dt = Math.max(dt, (n.time - p.time) / 1000);
      counted++;
    }
    prev = next;
    const rate = counted && dt > 0 ? dReq / dt : null;
    const avgUs = dResp > 0 ? dSum / dResp : null;
    if (counted) {
      xs.push(m.time / 1000);
      ops.push(rate);
      lat.push(avgUs === null ? null : avgUs / 1000);
      while (xs.length > POINTS) {
        xs.shift();
        ops.shift();
        lat.shift();
      }
      draw();
    }
    const down = m.nodes.filter((n) => !n.ok);
    fill(
      now,
      facts([
        ['Operations/s', rate === null ? '—' : rate.toFixed(0)],
        ['Average latency', fmtMs(avgUs)],
        ['99th percentile latency', fmtMs(quantileUs(dBuckets, m.latency_bounds_us, 0.99))],
        ['Connected clients', String(clients)],
        ['Used memory', fmtBytes(memory)],
      ]),
    );
    now.className = 'metrics-now';
    nodesLine.textContent = [
      `From ${m.nodes.filter((n) => n.ok && n.endpoint).length} endpoint(s); every ${METRICS_EVERY_MS / 1000} s.`,
      ...down.map((n) => `Node ${n.uid} (${n.addr}) is down: ${n.ok ? '' : n.error}`),
    ].join(' ');
  };

  const loop = async () => {
    await tick();
    if (!disposed) timer = window.setTimeout(() => void loop(), METRICS_EVERY_MS);
  };
  void loop();
  return {
    el,
    dispose: () => {
      disposed = true;
      window.clearTimeout(timer);
      plot?.destroy();
    },
  };
}
