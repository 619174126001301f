// A disk that fills (issue 23): 3 nodes; node 2's shard files (its data
// directory's `shards`) on a 64 MB tmpfs; a replicated database with
// appendonly (data_persistence aof) whose master is on node 2, under a steady
// writer through node 1's endpoint. A file of zeros fills the tmpfs until the
// master's AOF writes fail. Then: clients get Redis-like errors (MISCONF) with
// bounded latency, never a hang; /v1/shards detailed_status and `status` show
// it; node_insufficient_disk_aofrw is raised on node 2; the cluster master
// promotes the replica on another node and writes succeed again; node 2 stays
// up; no acknowledged key is lost. After the filler is deleted, node 2's shard
// (now a replica) catches up by itself, status is OK and the alert clears.
// The figures (errors, time to failover, time to recover) are printed.
//
// Needs root for `mount -t tmpfs` (skipped, saying so, where it is refused).
// Addresses: 127.0.83.x (or TESSERA_TEST_NET), port 12983.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { TestCluster, type BdbJson, createDb, waitFor, sleep } from '../support/cluster.js';
import { Load, readBack } from '../support/load.js';

const cluster = new TestCluster(83, 3);
const [n1, n2, n3] = cluster.nodes;
const PORT = 12983;
const shardsDir = path.join(n2.dataDir, 'shards');
const filler = path.join(shardsDir, 'filler.zeros');
let mounted = false;
let skip: string | false = false;
let db: BdbJson;

type ShardView = {
  uid: string;
  node_uid: string;
  role: string;
  status: string;
  detailed_status: string;
  sync?: { status: string };
  write_refused?: { reason: string };
};
type Alert = { state: boolean; severity: string; change_value: { state: boolean; shards?: { uid: number; reason: string }[] } };

const uidOf = (n: typeof n1) => n.uidFromDisk!;
async function shards(): Promise<ShardView[]> {
  return (await n1.api<ShardView[]>('GET', '/v1/shards')).body;
}
async function aofrwAlert(): Promise<Alert> {
  return (await n1.api<Alert>('GET', `/v1/nodes/alerts/${uidOf(n2)}/node_insufficient_disk_aofrw`)).body;
}
async function bdb(): Promise<BdbJson> {
  return (await n1.api<BdbJson>('GET', `/v1/bdbs/${db.uid}`)).body;
}
const masterOf = (b: BdbJson) => b.shards.find((s) => s.role === 'master')!;

/** One client whose every command's time is noted, refused or not: a hang would show here. */
class LatencyProbe {
  slowestMs = 0;
  replies = 0;
  private running = true;
  private readonly r: Redis;
  private readonly done: Promise<void>;
  constructor(host: string) {
    this.r = new Redis({ host, port: PORT, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 100 });
    this.r.on('error', () => undefined); // every outcome is timed below
    this.done = this.loop();
  }
  private async loop(): Promise<void> {
    await new Promise((resolve) => this.r.once('ready', resolve));
    for (let i = 0; this.running; i++) {
      const t0 = performance.now();
      await this.r.set(`probe:${i}`, 'x').catch(() => undefined); // refused: its time counts all the same
      this.slowestMs = Math.max(this.slowestMs, performance.now() - t0);
      this.replies++;
      await sleep(20);
    }
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    this.r.disconnect();
  }
}

/** Write zeros until the file system is full (ENOSPC); returns the bytes written. */
function fill(file: string): number {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20);
  let total = 0;
  try {
    for (;;) {
      try {
        total += fs.writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
    }
    // The last partial page, byte by byte would be slow: small writes until none fits.
    for (const size of [4096, 512, 64, 1]) {
      for (;;) {
        try {
          total += fs.writeSync(fd, chunk.subarray(0, size));
        } catch {
          break; // ENOSPC: no room for this size, try a smaller one
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return total;
}

before(async () => {
  await cluster.startAll();
  await cluster.form('diskfull.test');
  // Mounted after the join (a join replaces the data directory's contents) and before any shard runs here.
  fs.mkdirSync(shardsDir, { recursive: true, mode: 0o700 });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'tmpfs', shardsDir], { stdio: 'pipe' });
    mounted = true;
  } catch (err) {
    skip = `mount -t tmpfs is not permitted here (${(err as Error).message.split('\n')[0]})`;
    return;
  }
  db = await createDb(n1, {
    name: 'full',
    memory_size: 100 << 20,
    shards_count: 1,
    replication: true,
    proxy_policy: 'all-nodes',
    port: PORT,
    data_persistence: 'aof',
  });
  await inSync();
  // Put the master on node 2: a failover if its replica is there, else a migration of the master.
  const m = masterOf(db);
  if (m.node_uid !== uidOf(n2)) {
    const replica = db.shards.find((s) => s.role === 'slave')!;
    const r =
      replica.node_uid === uidOf(n2)
        ? await n1.api<{ action_uid: string }>('POST', `/v1/shards/${m.uid}/actions/failover`, {})
        : await n1.api<{ action_uid: string }>('POST', `/v1/shards/${m.uid}/actions/migrate`, { target_node_uid: uidOf(n2) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitFor(
      'master on node 2',
      async () => {
        const a = (await n1.api<{ status: string }>('GET', `/v1/actions/${r.body.action_uid}`)).body;
        if (a.status === 'failed') throw new Error(`moving the master failed: ${JSON.stringify(a)}`);
        db = await bdb();
        return a.status === 'completed' && masterOf(db).node_uid === uidOf(n2);
      },
      60_000,
      250,
    );
  }
  await inSync();
});

/** Both shards of the database ok, the replica's copy finished. */
async function inSync(): Promise<void> {
  await waitFor(
    'every shard ok and in sync',
    async () => {
      const v = (await shards()).filter((s) => db.shards.some((x) => String(x.uid) === s.uid));
      return v.length === 2 && v.every((s) => s.detailed_status === 'ok' && (s.role === 'master' || s.sync?.status === 'finished'));
    },
    60_000,
    250,
  );
}

after(async () => {
  // Whatever happened: the filler goes, the nodes stop, the tmpfs is unmounted (before the directories are removed).
  fs.rmSync(filler, { force: true });
  await Promise.all(cluster.nodes.map((n) => n.kill('SIGTERM')));
  if (mounted) {
    try {
      execFileSync('umount', [shardsDir], { stdio: 'pipe' });
    } catch (err) {
      // Still busy (a shard that did not exit yet): lazily, so the directory can go.
      console.log(`# umount: ${(err as Error).message.split('\n')[0]}; unmounting lazily`);
      execFileSync('umount', ['-l', shardsDir], { stdio: 'pipe' });
    }
  }
  await cluster.stop();
});

test('a full disk: MISCONF to clients, shown, alerted, failed over, and recovered once space is freed', async (t) => {
  if (skip) return t.skip(skip);
  const oldMaster = masterOf(db);
  const load = new Load('via-n1', n1, PORT, 2);
  const probe = new LatencyProbe(n3.addr);
  try {
    await waitFor('writes acknowledged', async () => load.ok > 100, 20_000, 100);
    const before = load.snapshot();
    const filled = fill(filler);
    const tFull = Date.now();
    console.log(`# filled node 2's shard file system with ${(filled / 2 ** 20).toFixed(1)} MB of zeros`);

    // Clients see Redis's own MISCONF reply.
    await waitFor('MISCONF errors', async () => (load.errors.get('MISCONF') ?? 0) > 0, 20_000, 50);
    const tRefused = Date.now();

    // Shown while the master refuses writes (before the failover): /v1/shards, the alert on node 2, and `status`.
    const seen: { v?: ShardView; a?: Alert; cli?: string } = {};
    await waitFor(
      'detailed_status misconf, the alert raised and status showing MISCONF',
      async () => {
        const [v, a, st] = await Promise.all([
          shards().then((all) => all.find((s) => s.uid === String(oldMaster.uid))),
          aofrwAlert(),
          n1.cli(['status']),
        ]);
        if (v?.detailed_status === 'misconf') seen.v ??= v;
        if (a.state) seen.a ??= a;
        if (new RegExp(`redis:${oldMaster.uid} .*MISCONF`).test(st.stdout) && /writes refused/.test(st.stdout)) seen.cli ??= st.stdout;
        return seen.v && seen.a && seen.cli;
      },
      20_000,
      50,
    );
    console.log(`# status while the master refuses writes:\n${seen.cli}`);
    assert.equal(seen.v!.write_refused?.reason, 'aof_write');
    assert.equal(seen.a!.severity, 'ERROR');
    assert.ok(seen.a!.change_value.shards?.some((s) => s.uid === oldMaster.uid));

    // Failed over: the replica on another node is master, and writes succeed again.
    const after = await waitFor(
      'the replica promoted',
      async () => {
        const b = await bdb();
        return masterOf(b).node_uid !== uidOf(n2) ? b : undefined;
      },
      30_000,
      100,
    );
    const tFailover = Date.now();
    const okAt = load.ok;
    await waitFor('writes succeed again', async () => load.ok > okAt + 50, 20_000, 50);
    const tWrites = Date.now();
    const newMaster = masterOf(after);
    assert.equal(
      after.shards.find((s) => s.uid === oldMaster.uid)?.role,
      'slave',
      `the old master follows the new one: ${JSON.stringify(after.shards)}`,
    );
    assert.ok(n2.running, 'node 2 stays up');

    // `status` while node 2's disk is still full: the old master, now a replica, cannot sync (its copy needs
    // disk) and is not OK; node 2's file system is reported full (node_persistent_storage).
    const st = await waitFor(
      'status shows the full disk',
      async () => {
        const r = await n1.cli(['status', 'issues_only']);
        return /node_persistent_storage/.test(r.stdout) && new RegExp(`redis:${oldMaster.uid} `).test(r.stdout) ? r : undefined;
      },
      20_000,
      250,
    );
    console.log(`# status issues_only while full:\n${st.stdout}`);

    // Free the space: node 2's shard catches up by itself, everything says OK, the alert clears.
    fs.rmSync(filler);
    const tFreed = Date.now();
    await waitFor(
      'status OK and the alerts clear',
      async () => {
        const [v, a, storage, st] = await Promise.all([
          shards().then((all) => all.filter((s) => db.shards.some((x) => String(x.uid) === s.uid))),
          aofrwAlert(),
          n1.api<Alert>('GET', `/v1/nodes/alerts/${uidOf(n2)}/node_persistent_storage`).then((r) => r.body),
          n1.cli(['status', 'issues_only']),
        ]);
        const synced = v.every(
          (s) => s.detailed_status === 'ok' && s.status === 'active' && (s.role === 'master' || s.sync?.status === 'finished'),
        );
        // issues_only lists no shard row and no alert once everything is OK.
        const quiet = !/redis:\d/.test(st.stdout) && !/ALERTS:/.test(st.stdout);
        return v.length === 2 && synced && !a.state && !storage.state && quiet;
      },
      90_000,
      250,
    );
    const tRecovered = Date.now();
    const during = load.snapshot();
    await load.stop();
    await probe.stop();
    const errs = [...during.errors].map(([k, v]) => [k, v - (before.errors.get(k) ?? 0)] as const).filter(([, v]) => v > 0);
    console.log(
      `# errors while full: ${during.failed - before.failed} (${errs.map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}); ` +
        `first MISCONF ${tRefused - tFull} ms after the disk filled; replica promoted ${tFailover - tRefused} ms after the first MISCONF, ` +
        `writes acknowledged again ${tWrites - tRefused} ms after it; recovered (status OK, alert clear) ${tRecovered - tFreed} ms after the filler was deleted; ` +
        `slowest command (refused or not) ${probe.slowestMs.toFixed(0)} ms over ${probe.replies} probes, slowest acknowledged SET ${load.maxMs.toFixed(0)} ms`,
    );
    // Only Redis-like errors; none hung: the endpoint's hold is at most 12 s, and a refusal is answered at once.
    for (const [k] of errs) assert.match(k, /^(MISCONF|READONLY|CLUSTERDOWN|TRYAGAIN)$/, `unexpected error kind ${k}`);
    assert.ok(probe.slowestMs < 12_000, `a command took ${probe.slowestMs} ms`);

    // No acknowledged key lost: all read back through node 3's endpoint, from the new master.
    const wrong = await readBack(n3, PORT, load.acked);
    assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} of ${load.acked.size} acknowledged keys lost or wrong`);
    console.log(`# ${load.acked.size} acknowledged keys read back; new master redis:${newMaster.uid} on node ${newMaster.node_uid}`);
  } finally {
    await load.stop();
    await probe.stop();
  }
});
