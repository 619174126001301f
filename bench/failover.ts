// Node-loss benchmark: how long a node's loss takes every slot of a database
// away, and how long the rebuild of a lost replica takes.
//
//   npm run bench:failover     (BENCH_FAILOVER_ROUNDS=5, BENCH_FAILOVER_MB=200: 100 MB per shard)
//
// A 3-node cluster on 127.0.19.x runs a 2-shard replicated, encrypted
// database filled with BENCH_FAILOVER_MB megabytes. Each round, under a
// steady SET load through a surviving node's endpoint (each write confirmed
// with WAIT 1 by batches), the node holding a master is SIGKILLed; the round
// measures:
//   - failover: from the kill until a write to every slot range succeeds;
//   - failed: commands of the load that failed meanwhile;
//   - rebuild: from the kill until every master has a synced replica on a
//     live node again (a full sync of one shard's data over the encrypted
//     internode channel);
//   - lost: confirmed keys missing afterwards (must be 0).
// The killed node is started again before the next round. Prints each round,
// then the median and the worst.
import { Redis } from 'ioredis';
import { TestCluster, type TestNode, type BdbJson, createDb, waitFor, shardCli, sleep } from '../test/support/cluster.js';
import { keySlot } from '../src/proxy/slots.js';

const ROUNDS = Number(process.env.BENCH_FAILOVER_ROUNDS ?? 5);
const MB = Number(process.env.BENCH_FAILOVER_MB ?? 200);
const PORT = 12990;

const cluster = new TestCluster(19, 3);
const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;
async function bdb(n: TestNode, uid: number): Promise<BdbJson> {
  return (await n.api<BdbJson>('GET', `/v1/bdbs/${uid}`)).body;
}
function probeKeys(): string[] {
  return [0, 8192].map((lo) => {
    for (let i = 0; ; i++) if (keySlot(`probe:${i}`) >= lo && keySlot(`probe:${i}`) < lo + 8192) return `probe:${i}`;
  });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function fill(through: TestNode): Promise<void> {
  const c = new Redis({ host: through.addr, port: PORT, maxRetriesPerRequest: 0 });
  const value = 'x'.repeat(1000);
  const n = MB * 1000;
  for (let i = 0; i < n; i += 1000) {
    const p = c.pipeline();
    for (let j = i; j < Math.min(n, i + 1000); j++) p.set(`fill:${j}`, value);
    await p.exec();
  }
  c.disconnect();
}

async function main(): Promise<void> {
  await cluster.startAll();
  await cluster.form('bench.failover');
  const db = await createDb(cluster.nodes[0], {
    name: 'bench-ha',
    memory_size: (MB * 4 + 200) << 20,
    shards_count: 2,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: PORT,
    data_internode_encryption: true,
  });
  await fill(cluster.nodes[0]);
  console.log(`# filled with ${MB} MB (${MB * 1000} keys of 1 kB)`);
  const rows: { failover: number; failed: number; rebuild: number; lost: number }[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const any = cluster.nodes.find((n) => n.running)!;
    const b = await waitFor(
      'every master has a synced replica',
      async () => {
        const x = await bdb(any, db.uid);
        return x.status === 'active' &&
          x.shards.filter((s) => s.role === 'master').every((m) => x.shards.some((s) => s.master_uid === m.uid))
          ? x
          : undefined;
      },
      300_000,
      500,
    );
    const masterNodes = b.shards.filter((s) => s.role === 'master').map((s) => s.node_uid);
    const victim = nodeByUid(masterNodes[round % masterNodes.length]);
    const survivor = cluster.nodes.find((n) => n !== victim && n.running)!;
    for (const m of b.shards.filter((s) => s.role === 'master')) {
      await waitFor(
        'replica in sync',
        async () => (await shardCli(nodeByUid(m.node_uid), m.uid, ['WAIT', '1', '1000']).catch(() => '0')) === '1',
        300_000,
        500,
      );
    }

    // Load: SETs, confirmed by WAIT 1 every 50, on a connection that is up before the kill.
    const load = new Redis({ host: survivor.addr, port: PORT, maxRetriesPerRequest: 0, enableReadyCheck: false });
    load.on('error', () => undefined); // failures are counted per command
    await waitFor(
      "the survivor's endpoint serves",
      async () => (await load.set('ready', '1').catch(() => undefined)) === 'OK',
      60_000,
      200,
    );
    let running = true;
    let failed = 0;
    const errors = new Map<string, number>();
    const confirmed: string[] = [];
    const loop = (async () => {
      let i = 0;
      let batch: string[] = [];
      while (running) {
        const k = `r${round}:${i++}`;
        try {
          await load.set(k, 'v');
          batch.push(k);
          if (batch.length === 50) {
            const acked = await load.wait(1, 2000);
            if (acked >= 1) confirmed.push(...batch);
            else errors.set(`WAIT answered ${acked}`, (errors.get(`WAIT answered ${acked}`) ?? 0) + 1);
            batch = [];
          }
        } catch (e) {
          errors.set((e as Error).message, (errors.get((e as Error).message) ?? 0) + 1);
          failed++;
          batch = [];
          await sleep(10);
        }
      }
    })();
    await sleep(1000);
    const t0 = Date.now();
    await victim.kill('SIGKILL');
    const probe = new Redis({ host: survivor.addr, port: PORT, maxRetriesPerRequest: 0, enableReadyCheck: false });
    probe.on('error', () => undefined);
    const failover = await waitFor(
      'every slot takes writes',
      async () => {
        for (const k of probeKeys()) if ((await probe.set(k, 'x').catch(() => undefined)) !== 'OK') return false;
        return Date.now() - t0;
      },
      60_000,
      50,
    );
    probe.disconnect();
    running = false;
    await loop;
    load.disconnect();
    const victimUid = victim.uidFromDisk!;
    const rebuild = await waitFor(
      'every master has a synced replica on a live node',
      async () => {
        const x = await bdb(survivor, db.uid);
        const ms = x.shards.filter((s) => s.role === 'master');
        for (const m of ms) {
          const r = x.shards.find((s) => s.master_uid === m.uid && s.node_uid !== victimUid);
          if (!r) return false;
          if (!/master_link_status:up/.test(await shardCli(nodeByUid(r.node_uid), r.uid, ['INFO', 'replication']).catch(() => '')))
            return false;
        }
        return Date.now() - t0;
      },
      600_000,
      250,
    );
    const c = new Redis({ host: survivor.addr, port: PORT, maxRetriesPerRequest: 0 });
    let lost = 0;
    for (let i = 0; i < confirmed.length; i += 1000) {
      const vals = await c.mget(...confirmed.slice(i, i + 1000));
      lost += vals.filter((v) => v !== 'v').length;
    }
    c.disconnect();
    rows.push({ failover, failed, rebuild, lost });
    console.log(
      `round ${round}: failover ${failover} ms, ${failed} commands failed, replica rebuilt ${rebuild} ms after the kill, ${lost} of ${confirmed.length} confirmed keys lost`,
    );
    for (const [m, n] of errors) console.log(`  ${n} × ${m}`);
    await victim.start();
    await waitFor(
      'the node is back',
      async () => (await survivor.api<{ status: string }>('GET', `/v1/nodes/${victimUid}`)).body.status === 'active',
      120_000,
      500,
    );
  }
  const f = rows.map((r) => r.failover);
  const rb = rows.map((r) => r.rebuild);
  console.log(
    `failover: median ${median(f)} ms, worst ${Math.max(...f)} ms; failed commands: median ${median(rows.map((r) => r.failed))}, worst ${Math.max(...rows.map((r) => r.failed))}`,
  );
  console.log(
    `rebuild of a ${MB / 2} MB shard's replica: median ${median(rb)} ms, worst ${Math.max(...rb)} ms; confirmed keys lost: ${rows.reduce((a, r) => a + r.lost, 0)}`,
  );
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => cluster.stop());
