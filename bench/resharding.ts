// Resharding benchmark: how long 2 → 4 shards takes for a given amount of
// data, the longest write pause, and the latency of a steady load before and
// during.
//
//   npm run bench:reshard                         (BENCH_RESHARD_MB=100)
//   BENCH_RESHARD_MB=100,1024 npm run bench:reshard   (100 MB, then 1 GB)
//
// For each size, a fresh 3-node cluster on 127.0.62.x runs a 2-shard
// replicated, encrypted database filled with that many megabytes of 1 KB
// values. A steady load (4 clients, SET of new keys, each latency recorded)
// runs through the endpoint of a node 5 s before and all through the
// resharding. Printed per size: the time from PUT shards_count 4 to the
// action's completion; p50/p99/max latency before and during; the longest
// write pause of a chunk as the controller measured it (holds to flip, from
// the action's steps) and the slowest single SET seen by the load; the load
// average before and after (the figures mean little without it on a shared
// machine). TESSERA_TEST_NET moves the cluster to another loopback net.
import os from 'node:os';
import { Redis } from 'ioredis';
import { TestCluster, type BdbJson, createDb, waitFor, sleep } from '../test/support/cluster.js';

const SIZES = (process.env.BENCH_RESHARD_MB ?? '100').split(',').map(Number);
const PORT = 12620;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};
const fmt = (xs: number[]) =>
  `p50 ${pct(xs, 50).toFixed(2)} ms, p99 ${pct(xs, 99).toFixed(2)} ms, max ${Math.max(...xs).toFixed(1)} ms (${xs.length} SETs)`;

class Load {
  phase: 'before' | 'during' = 'before';
  readonly lat = { before: [] as number[], during: [] as number[] };
  failed = 0;
  private running = true;
  private readonly clients: Redis[] = [];
  private readonly loops: Promise<void>[] = [];
  constructor(host: string, clients: number) {
    for (let c = 0; c < clients; c++) {
      const r = new Redis({ host, port: PORT, maxRetriesPerRequest: 0 });
      r.on('error', () => undefined);
      this.clients.push(r);
      this.loops.push(
        (async () => {
          for (let i = 0; this.running; i++) {
            const t0 = performance.now();
            try {
              await r.set(`load:${c}:${i}`, 'v');
              this.lat[this.phase].push(performance.now() - t0);
            } catch {
              this.failed++;
            }
          }
        })(),
      );
    }
  }
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const c of this.clients) c.disconnect();
  }
}

async function run(mb: number): Promise<void> {
  const cluster = new TestCluster(62, 3);
  try {
    await cluster.startAll();
    await cluster.form('bench.reshard');
    const [n1, n2, n3] = cluster.nodes;
    const db = await createDb(n1, {
      name: 'bench-reshard',
      memory_size: (mb * 4 + 512) * 1024 * 1024,
      shards_count: 2,
      sharding: true,
      replication: true,
      proxy_policy: 'all-nodes',
      port: PORT,
      data_internode_encryption: true,
    });
    const c = new Redis({ host: n1.addr, port: PORT });
    const value = 'x'.repeat(1000);
    const t0 = Date.now();
    for (let i = 0; i < mb * 1000; i += 2000) {
      const p = c.pipeline();
      for (let j = i; j < Math.min(mb * 1000, i + 2000); j++) p.set(`fill:${j}`, value);
      await p.exec();
    }
    c.disconnect();
    console.log(`${mb} MB: filled in ${Date.now() - t0} ms`);
    const load = new Load(n3.addr, 4);
    await sleep(5000);
    const avgBefore = os.loadavg().map((x) => x.toFixed(2));
    load.phase = 'during';
    const t1 = Date.now();
    const r = await n2.api<BdbJson>('PUT', `/v1/bdbs/${db.uid}`, { shards_count: 4, sharding: true });
    if (r.status !== 200) throw new Error(`reshard: ${r.status} ${JSON.stringify(r.body)}`);
    const a = await waitFor(
      'resharding done',
      async () => {
        const x = (await n1.api<{ status: string; steps?: string[]; error?: string }>('GET', `/v1/actions/${r.body.action_uid}`)).body;
        return x.status === 'completed' || x.status === 'failed' ? x : undefined;
      },
      3_600_000,
      500,
    );
    const ms = Date.now() - t1;
    await load.stop();
    if (a.status !== 'completed') throw new Error(`resharding failed: ${a.error}`);
    const pauses = (a.steps ?? []).map((s) => Number(/write pause (\d+) ms/.exec(s)?.[1] ?? NaN)).filter((x) => !Number.isNaN(x));
    console.log(`${mb} MB: 2 → 4 shards in ${(ms / 1000).toFixed(1)} s (${pauses.length} chunks)`);
    console.log(
      `${mb} MB: longest write pause of a chunk ${Math.max(...pauses)} ms (median ${pct(pauses, 50)} ms); load failures ${load.failed}`,
    );
    console.log(`${mb} MB: latency before: ${fmt(load.lat.before)}`);
    console.log(`${mb} MB: latency during: ${fmt(load.lat.during)}`);
    const avgAfter = os.loadavg().map((x) => x.toFixed(2));
    console.log(
      `${mb} MB: load average (1/5/15 min) ${avgBefore.join(' ')} before, ${avgAfter.join(' ')} after; ${os.cpus().length} cores`,
    );
  } finally {
    await cluster.stop();
  }
}

for (const mb of SIZES) await run(mb);
process.exit(0);
