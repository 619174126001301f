// Full cluster restart (issue 8): a 3-node cluster holds three replicated
// 2-shard databases, one per `data_persistence` (aof, snapshot, disabled).
// Keys are written through an endpoint and every acknowledged write is
// recorded; then all three nodes get SIGTERM at once, every node exits on
// its own (status 0, no SIGKILL), no shard process is left, and all three
// start again with the same data directories. What each setting promises:
//   - aof: every acknowledged key, through the endpoint of every node;
//   - snapshot: every key acknowledged before the shutdown (each shard's
//     redis-server saves on SIGTERM, since Tessera configures save points);
//   - disabled: nothing (the database comes back active and empty).
// Then a full restart where the nodes stop one after another, as an operator
// stopping them one by one would: writes a master acknowledged after its
// replica's node had stopped must survive too, whatever order the nodes
// start again in.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Redis } from 'ioredis';
import { TestCluster, type TestNode, type BdbJson, createDb, waitDbStatus, waitFor } from '../support/cluster.js';
import { keySlot } from '../../src/proxy/slots.js';

const NET = 14;
const KEYS = 5000;
const cluster = new TestCluster(NET, 3);

type Mode = 'aof' | 'snapshot' | 'disabled';
const MODES: Mode[] = ['aof', 'snapshot', 'disabled'];
const PORTS: Record<Mode, number> = { aof: 14100, snapshot: 14200, disabled: 14300 };
const dbs = new Map<Mode, BdbJson>();
/** Per database: the indexes of `k:<i>` whose SET was answered OK before the shutdown. */
const acked = new Map<Mode, number[]>();

const value = (mode: Mode, i: number) => `${mode}-v${i}`;

/** Processes that belong to this cluster: working directory or command line under its root (shards chdir to their directory). */
function clusterProcesses(): { pid: number; what: string }[] {
  const out: { pid: number; what: string }[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const comm = fs.readFileSync(`/proc/${e}/comm`, 'utf8').trim();
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      let cwd = '';
      try {
        cwd = fs.readlinkSync(`/proc/${e}/cwd`);
      } catch {
        // a process exiting right now: its command line still tells
      }
      if (cwd.startsWith(cluster.root + '/') || cmd.includes(cluster.root))
        out.push({ pid: Number(e), what: `${comm} (cwd ${cwd}): ${cmd}` });
    } catch {
      // gone between readdir and read: not running
    }
  }
  return out;
}
const shardProcesses = () => clusterProcesses().filter((p) => p.what.startsWith('redis-server'));

/** SET k:0..count-1 through `through`'s endpoint, 250 in flight; returns the indexes answered OK. */
async function writeKeys(through: TestNode, mode: Mode, count: number): Promise<number[]> {
  const c = new Redis({ host: through.addr, port: PORTS[mode], maxRetriesPerRequest: 0 });
  const ok: number[] = [];
  try {
    for (let lo = 0; lo < count; lo += 250) {
      const batch = Array.from({ length: Math.min(250, count - lo) }, (_, j) => lo + j);
      const replies = await Promise.all(batch.map((i) => c.set(`k:${i}`, value(mode, i)).catch(() => undefined)));
      replies.forEach((r, j) => r === 'OK' && ok.push(batch[j]));
    }
  } finally {
    c.disconnect();
  }
  return ok;
}

/** The keys (by index) whose value through `through`'s endpoint is not what was written. */
async function missingThrough(through: TestNode, mode: Mode, prefix: string, idx: number[]): Promise<number[]> {
  const c = new Redis({ host: through.addr, port: PORTS[mode], maxRetriesPerRequest: 0 });
  try {
    const missing: number[] = [];
    for (let lo = 0; lo < idx.length; lo += 1000) {
      const part = idx.slice(lo, lo + 1000);
      if (!part.length) break;
      const vals = await c.mget(...part.map((i) => `${prefix}:${i}`));
      vals.forEach((v, j) => v !== value(mode, part[j]) && missing.push(part[j]));
    }
    return missing;
  } finally {
    c.disconnect();
  }
}

/** Wait until every database is active and every node's endpoints serve every slot range. */
async function waitAllServing(): Promise<void> {
  for (const mode of MODES) await waitDbStatus(cluster.nodes[0], dbs.get(mode)!.uid, 'active', 60_000);
  for (const mode of MODES) for (const n of cluster.nodes) await waitServing(n, mode);
}

async function bdb(mode: Mode): Promise<BdbJson> {
  const n = cluster.nodes.find((x) => x.running)!;
  return (await n.api<BdbJson>('GET', `/v1/bdbs/${dbs.get(mode)!.uid}`)).body;
}
const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;

async function dbsize(through: TestNode, mode: Mode): Promise<number> {
  const c = new Redis({ host: through.addr, port: PORTS[mode], maxRetriesPerRequest: 0 });
  try {
    return await c.dbsize();
  } finally {
    c.disconnect();
  }
}

/** Wait until `through`'s endpoint of `mode`'s database answers commands for every slot range. */
async function waitServing(through: TestNode, mode: Mode): Promise<void> {
  const c = new Redis({
    host: through.addr,
    port: PORTS[mode],
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => 200,
  });
  c.on('error', () => undefined); // refused until the endpoint listens; waited for below
  try {
    await waitFor(
      `${through.addr}:${PORTS[mode]} serves`,
      async () => {
        for (const k of PROBES) if ((await c.get(k).catch(() => 'ERR')) === 'ERR') return false;
        return true;
      },
      60_000,
      250,
    );
  } finally {
    c.disconnect();
  }
}

/** One key in each half of the slot space, i.e. on each of a 2-shard database's masters. */
const PROBES = [0, 8192].map((lo) => {
  for (let i = 0; ; i++) if (keySlot(`probe:${i}`) >= lo && keySlot(`probe:${i}`) < lo + 8192) return `probe:${i}`;
});

before(async () => {
  await cluster.startAll();
  await cluster.form('restart.test');
  const n1 = cluster.nodes[0];
  for (const mode of MODES) {
    dbs.set(
      mode,
      await createDb(n1, {
        name: `p-${mode}`,
        memory_size: 100 << 20,
        shards_count: 2,
        sharding: true,
        replication: true,
        proxy_policy: 'all-nodes',
        port: PORTS[mode],
        data_persistence: mode,
      }),
    );
  }
  for (const mode of MODES) acked.set(mode, await writeKeys(n1, mode, KEYS));
});

after(async () => {
  await cluster.stop();
  const left = shardProcesses();
  assert.deepEqual(left, [], 'no shard process is left after the test');
});

test('SIGTERM to every node at once: each exits by itself, nothing of the cluster is left running, and all three start again', async () => {
  assert.equal(shardProcesses().length, 12, 'three databases, four shards each, run before the shutdown');
  const t0 = Date.now();
  // Each must exit by itself: the SIGKILL fallback (60 s) must not be needed.
  await Promise.all(cluster.nodes.map((n) => n.kill('SIGTERM', 60_000)));
  console.log(`# every node exited ${Date.now() - t0} ms after SIGTERM`);
  for (const n of cluster.nodes)
    assert.deepEqual(
      { addr: n.addr, code: n.proc!.exitCode, signal: n.proc!.signalCode },
      { addr: n.addr, code: 0, signal: null },
      `node ${n.addr} exited by itself`,
    );
  assert.deepEqual(clusterProcesses(), [], 'no shard, etcd or other process of the cluster is left');

  const t1 = Date.now();
  await cluster.startAll();
  await waitAllServing();
  console.log(`# every database active and served by every node ${Date.now() - t1} ms after the start`);
});

test('aof: every acknowledged key survives the full restart, through the endpoint of every node', async () => {
  const idx = acked.get('aof')!;
  assert.equal(idx.length, KEYS, 'every write was acknowledged before the shutdown');
  for (const n of cluster.nodes) {
    const missing = await missingThrough(n, 'aof', 'k', idx);
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${idx.length} acknowledged keys missing through ${n.addr}`);
  }
});

test('snapshot: every key acknowledged before the shutdown survives (redis-server saves on SIGTERM), through every node', async () => {
  const idx = acked.get('snapshot')!;
  assert.equal(idx.length, KEYS, 'every write was acknowledged before the shutdown');
  for (const n of cluster.nodes) {
    const missing = await missingThrough(n, 'snapshot', 'k', idx);
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${idx.length} acknowledged keys missing through ${n.addr}`);
  }
});

test('disabled (the default): a full restart loses the data; the database comes back active and empty', async () => {
  assert.equal(acked.get('disabled')!.length, KEYS);
  for (const n of cluster.nodes) assert.equal(await dbsize(n, 'disabled'), 0, `through ${n.addr}`);
});

test('after the restart: one master per slot range, each with a replica on another node, and only the 12 shards run', async () => {
  for (const mode of MODES) {
    const b = await bdb(mode);
    const masters = b.shards.filter((s) => s.role === 'master');
    assert.deepEqual(masters.map((m) => m.assigned_slots).sort(), ['0-8191', '8192-16383'], `${mode}: ${JSON.stringify(b.shards)}`);
    for (const m of masters)
      assert.ok(
        b.shards.some((s) => s.master_uid === m.uid && s.node_uid !== m.node_uid),
        `${mode}: master ${m.uid} has a replica on another node`,
      );
  }
  await waitFor('exactly 12 shard processes', async () => shardProcesses().length === 12, 10_000, 250);
});

// A returning master whose files hold every write it acknowledged (aof) comes back as master: fencing
// it in favour of its replica (older here: it stopped first) would make it copy the older data.
test("aof, nodes stopped one after another: writes acknowledged after the replica's node stopped survive the full restart", async () => {
  const n1 = cluster.nodes[0];
  // The cluster master must not fail the stopped node over meanwhile: this is a full restart, not a node loss.
  assert.equal((await n1.api('PUT', '/v1/cluster/policy', { failover_timeout: 300 })).status, 200);
  try {
    const b = await bdb('aof');
    const m = b.shards.find((s) => s.role === 'master')!;
    const r = b.shards.find((s) => s.master_uid === m.uid)!;
    const a = nodeByUid(m.node_uid); // holds the master
    const rn = nodeByUid(r.node_uid); // holds its replica
    const c = cluster.nodes.find((x) => x !== a && x !== rn)!;
    const [lo, hi] = m.assigned_slots.split('-').map(Number);
    const keys: string[] = [];
    for (let i = 0; keys.length < 1000; i++) if (keySlot(`after:${i}`) >= lo && keySlot(`after:${i}`) <= hi) keys.push(`after:${i}`);

    // 1. The replica's node stops.
    await rn.kill('SIGTERM', 60_000);
    assert.equal(rn.proc!.exitCode, 0);
    // 2. The master, alone now, acknowledges writes in its slot range.
    // No ready check: its INFO goes to every shard, and the stopped node's masters hold it (then CLUSTERDOWN).
    const w = new Redis({ host: a.addr, port: PORTS.aof, maxRetriesPerRequest: 0, enableReadyCheck: false });
    const ok: string[] = [];
    try {
      for (const k of keys) if ((await w.set(k, `${k}-v`).catch(() => undefined)) === 'OK') ok.push(k);
    } finally {
      w.disconnect();
    }
    assert.equal(ok.length, keys.length, 'the master acknowledged every write with its replica stopped');
    // 3. The other two nodes stop together: the whole cluster is down.
    await Promise.all([a, c].map((n) => n.kill('SIGTERM', 60_000)));
    assert.deepEqual(clusterProcesses(), [], 'nothing of the cluster is left running');
    // 4. They start again: the replica's node first (with the third, for the store's quorum), then the master's.
    await Promise.all([rn, c].map((n) => n.start()));
    await waitFor(
      "the replica's node is active",
      async () => (await c.api<{ status: string }>('GET', `/v1/nodes/${r.node_uid}`)).body.status === 'active',
      30_000,
      250,
    );
    await a.start();
    await waitAllServing();

    const roleNow = (await bdb('aof')).shards.find((s) => s.uid === m.uid)?.role;
    console.log(`# shard ${m.uid}, the master that took the writes alone, is ${roleNow} after the restart`);
    for (const n of cluster.nodes) {
      const cl = new Redis({ host: n.addr, port: PORTS.aof, maxRetriesPerRequest: 0 });
      try {
        const vals = await cl.mget(...ok);
        const missing = ok.filter((k, i) => vals[i] !== `${k}-v`);
        assert.deepEqual(missing.slice(0, 5), [], `${missing.length} of ${ok.length} acknowledged keys missing through ${n.addr}`);
      } finally {
        cl.disconnect();
      }
      const older = await missingThrough(n, 'aof', 'k', acked.get('aof')!);
      assert.deepEqual(older.slice(0, 10), [], `${older.length} earlier keys missing through ${n.addr}`);
    }
  } finally {
    await cluster.nodes
      .find((x) => x.running)
      ?.api('PUT', '/v1/cluster/policy', { failover_timeout: 5 })
      .catch(() => undefined);
  }
});
