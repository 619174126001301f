// Pause and resume: every process of a node that holds a master (daemon,
// etcd, shards) is SIGSTOPped for 15 s, long enough to be failed over, then
// SIGCONTed. Its endpoint refuses writes until its database map is current
// (write fencing), so a slot never has two writable masters: every write any
// endpoint acknowledged, before, during and after the pause, is in the
// final data, and no key acknowledged by a replica is lost.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { TestCluster, type TestNode, type BdbJson, createDb, waitFor, shardCli, sleep } from '../support/cluster.js';
import { keySlot } from '../../src/proxy/slots.js';

const cluster = new TestCluster(15, 3);
let db: BdbJson;

before(async () => {
  await cluster.startAll();
  await cluster.form('pause.test');
  db = await createDb(cluster.nodes[0], {
    name: 'paused',
    memory_size: 200 << 20,
    shards_count: 2,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: 12950,
    data_internode_encryption: true,
  });
});
after(async () => {
  for (const pid of paused) signal(pid, 'SIGCONT');
  await cluster.stop();
});

const paused: number[] = [];
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* the process is gone: nothing to stop or resume */
  }
}
/** The node's daemon and every process under it (etcd, shards), by PID. */
function processTree(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    let kids = '';
    try {
      kids = execFileSync('pgrep', ['-P', String(out[i])], { encoding: 'utf8' });
    } catch {
      /* pgrep exits 1 when there are none */
    }
    for (const k of kids.split('\n').filter(Boolean)) out.push(Number(k));
  }
  return out;
}

const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;
async function bdb(n: TestNode): Promise<BdbJson> {
  return (await n.api<BdbJson>('GET', `/v1/bdbs/${db.uid}`)).body;
}
/** A key whose slot a given master serves. */
function keysIn(slots: [number, number], prefix: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const s = keySlot(`${prefix}:${i}`);
    if (s >= slots[0] && s <= slots[1]) out.push(`${prefix}:${i}`);
  }
  return out;
}

test('SIGSTOP of a whole node for 15 s, then SIGCONT: it is failed over, fences its writes, and no acknowledged write is lost', async () => {
  const n1 = cluster.nodes[0];
  const b0 = await waitFor(
    'every master has a live replica',
    async () => {
      const b = await bdb(n1);
      return b.status === 'active' && b.shards.filter((s) => s.role === 'master').every((m) => b.shards.some((s) => s.master_uid === m.uid))
        ? b
        : undefined;
    },
    60_000,
    500,
  );
  const victimMaster = b0.shards.find((s) => s.role === 'master' && s.node_uid !== n1.uidFromDisk)!;
  const victim = nodeByUid(victimMaster.node_uid);
  const range = victimMaster.assigned_slots.split('-').map(Number) as [number, number];
  const hot = keysIn(range, 'hot', 200);

  // Acknowledged writes before the pause (each confirmed by WAIT 1 through the endpoint).
  const w = new Redis({ host: n1.addr, port: db.port, maxRetriesPerRequest: 0 });
  const acked = new Map<string, string>();
  for (const k of hot.slice(0, 100)) {
    await w.set(k, 'before');
    assert.equal(await w.wait(1, 5000), 1, `WAIT 1 after writing ${k}`);
    acked.set(k, 'before');
  }

  // A client of the victim's endpoint, connected before the pause.
  const onVictim = new Redis({
    host: victim.addr,
    port: db.port,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  onVictim.on('error', () => undefined); // its replies are what the test reads
  await new Promise<void>((r) => onVictim.once('ready', () => r()));
  assert.equal(await onVictim.set(hot[100], 'victim-before'), 'OK');
  acked.set(hot[100], 'victim-before');

  const pids = processTree(victim.proc!.pid!);
  assert.ok(pids.length >= 3, `daemon, etcd and shards: ${pids.join(',')}`);
  for (const pid of pids) {
    signal(pid, 'SIGSTOP');
    paused.push(pid);
  }
  const t0 = Date.now();
  // Writes through node 1 go on; they wait out the failover (the proxy holds them) and succeed.
  let i = 0;
  const during: Promise<void>[] = [];
  while (Date.now() - t0 < 15_000) {
    const k = hot[110 + (i++ % 40)];
    const v = `during:${i}`;
    during.push(
      w.set(k, v).then(
        () => void acked.set(k, v),
        () => undefined, // an unacknowledged write may or may not have happened
      ),
    );
    await sleep(100);
  }
  await Promise.all(during);
  const failedOver = await bdb(n1);
  const promoted = failedOver.shards.find((s) => s.role === 'master' && s.assigned_slots === victimMaster.assigned_slots)!;
  assert.notEqual(promoted.node_uid, victim.uidFromDisk, "the paused node's master was failed over");

  // Resume, and write through the victim's endpoint at once, on the connection opened before.
  for (const pid of pids) signal(pid, 'SIGCONT');
  paused.length = 0;
  const replies: { k: string; v: string; r: string }[] = [];
  const t1 = Date.now();
  let j = 0;
  while (Date.now() - t1 < 8000) {
    const k = hot[160 + (j % 40)];
    const v = `after:${j++}`;
    const r = await onVictim.set(k, v).then(
      (x) => String(x),
      (e: Error) => e.message,
    );
    replies.push({ k, v, r });
    if (r === 'OK') acked.set(k, v);
    await sleep(50);
  }
  onVictim.disconnect();
  const refused = replies.filter((x) => x.r !== 'OK');
  const okCount = replies.length - refused.length;
  console.log(
    `# after SIGCONT: ${refused.length} writes refused through the resumed node (first: ${refused[0]?.r}), then ${okCount} accepted`,
  );
  assert.ok(
    refused.length > 0 && /CLUSTERDOWN|fenced|connection/.test(refused[0].r),
    `the resumed node first refuses writes: ${JSON.stringify(replies.slice(0, 3))}`,
  );
  assert.ok(okCount > 0, 'and then serves them again through the current master');

  // The final data holds every acknowledged write: nothing went to a stale master.
  const settled = await waitFor(
    'the database is active with one master per range',
    async () => {
      const b = await bdb(n1);
      return b.status === 'active' && b.shards.filter((s) => s.role === 'master').length === 2 ? b : undefined;
    },
    60_000,
    500,
  );
  assert.ok(
    settled.shards.filter((s) => s.role === 'master').every((m) => m.node_uid !== victim.uidFromDisk || m.uid !== victimMaster.uid),
    'the stale master did not come back as master',
  );
  for (const through of [n1, victim]) {
    const c = new Redis({ host: through.addr, port: db.port, maxRetriesPerRequest: 0 });
    try {
      const keys = [...acked.keys()];
      const vals = await waitFor(
        `every acknowledged write through ${through.addr}`,
        async () => {
          const v = await c.mget(...keys);
          return v.every((x, n) => x === acked.get(keys[n])) ? v : undefined;
        },
        20_000,
        500,
      ).catch(async () => c.mget(...keys));
      const lost = keys.filter((k, n) => vals[n] !== acked.get(k));
      assert.deepEqual(
        lost.map((k) => `${k}=${acked.get(k)} got ${vals[keys.indexOf(k)]}`).slice(0, 5),
        [],
        `${lost.length} acknowledged writes lost`,
      );
    } finally {
      c.disconnect();
    }
  }
  w.disconnect();
  assert.match(fs.readFileSync(victim.logFile, 'utf8'), /fencing: this node was cut off/);
  // The old master is a replica of the current one (rebuilt where the failover placed it), in sync.
  const old = (await bdb(n1)).shards.find((s) => s.uid === victimMaster.uid)!;
  assert.equal(old.role, 'slave');
  await waitFor(
    'the old master is a synced replica',
    async () =>
      /role:slave[\s\S]*master_link_status:up/.test(
        await shardCli(nodeByUid(old.node_uid), old.uid, ['INFO', 'replication']).catch(() => ''),
      ),
    60_000,
    500,
  );
});

test('loss of 2 of 3 nodes (etcd majority lost): the survivor serves reads of its masters, fences writes, REST answers 503; all comes back with the nodes', async () => {
  const n1 = cluster.nodes[0];
  const b = await waitFor(
    'the database is active',
    async () => {
      const x = await bdb(n1);
      return x.status === 'active' ? x : undefined;
    },
    60_000,
    500,
  );
  // The survivor holds a master: that slot range stays readable.
  const mine = b.shards.find((s) => s.role === 'master')!;
  const survivor = nodeByUid(mine.node_uid);
  const keys = keysIn(mine.assigned_slots.split('-').map(Number) as [number, number], 'maj', 50);
  const c = new Redis({ host: survivor.addr, port: db.port, maxRetriesPerRequest: 0, enableReadyCheck: false });
  for (const k of keys) await c.set(k, 'v');
  assert.equal(await c.wait(1, 5000), 1);

  const others = cluster.nodes.filter((n) => n !== survivor);
  await Promise.all(others.map((n) => n.kill('SIGKILL')));
  const t0 = Date.now();
  // Writes stop with a clear error once the fence applies (within the lease's 80%, 4 s).
  const fencedAfter = await waitFor(
    'writes are fenced on the survivor',
    async () => {
      const r = await c.set(keys[0], 'w').then(String, (e: Error) => e.message);
      return /CLUSTERDOWN This node lost contact/.test(r) ? Date.now() - t0 : undefined;
    },
    15_000,
    200,
  );
  console.log(`# 2 of 3 nodes lost: writes fenced on the survivor ${fencedAfter} ms after the loss`);
  assert.equal(await c.get(keys[1]), 'v', 'reads of its own masters go on');
  const put = await survivor.api<{ error_code: string }>('PUT', '/v1/cluster/policy', { failover_timeout: 6 });
  assert.equal(put.status, 503);
  assert.equal(put.body.error_code, 'store_unavailable');
  c.disconnect();

  // The nodes come back: the store has its majority again, writes are allowed, nothing was lost.
  await Promise.all(others.map((n) => n.start()));
  const c2 = new Redis({ host: survivor.addr, port: db.port, maxRetriesPerRequest: 0, enableReadyCheck: false });
  try {
    await waitFor('writes are allowed again', async () => (await c2.set(keys[0], 'again').catch(() => undefined)) === 'OK', 60_000, 500);
    const vals = await c2.mget(...keys.slice(1));
    assert.ok(
      vals.every((v) => v === 'v'),
      'no key lost',
    );
  } finally {
    c2.disconnect();
  }
});
