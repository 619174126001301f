// Node loss: a 3-node cluster runs a 2-shard replicated, encrypted database
// under steady load through a surviving node's endpoint; the node holding a
// master is SIGKILLed (its etcd and shards die with it). Every slot takes
// writes again within 10 s, no key acknowledged by its replica is lost, every
// master gets a replica on a live node again, and the killed node, started
// again with the same data directory, becomes active, serves the same data
// and never brings back a stale master.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Redis } from 'ioredis';
import { TestCluster, type TestNode, type BdbJson, createDb, waitFor, shardCli, sleep } from '../support/cluster.js';
import { keySlot } from '../../src/proxy/slots.js';

const cluster = new TestCluster(12, 3);
let db: BdbJson;
const KEYS = 2000;

before(async () => {
  await cluster.startAll();
  await cluster.form('failover.test');
  db = await createDb(cluster.nodes[0], {
    name: 'ha',
    memory_size: 200 << 20,
    shards_count: 2,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: 12900,
    data_internode_encryption: true,
  });
});
after(async () => {
  await cluster.stop();
});

const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;
async function bdb(n: TestNode): Promise<BdbJson> {
  return (await n.api<BdbJson>('GET', `/v1/bdbs/${db.uid}`)).body;
}
/** One key per shard's slot range, to probe that every slot range takes writes. */
function probeKeys(): string[] {
  const out: string[] = [];
  for (const lo of [0, 8192]) {
    for (let i = 0; ; i++) {
      const k = `probe:${i}`;
      const s = keySlot(k);
      if (s >= lo && s < lo + 8192) {
        out.push(k);
        break;
      }
    }
  }
  return out;
}

/** Milliseconds from `t0` until a write to every slot range through `through`'s endpoint succeeds. */
async function msUntilEverySlotWrites(through: TestNode, t0: number): Promise<number> {
  const probes = probeKeys();
  const p = new Redis({ host: through.addr, port: db.port, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 100 });
  p.on('error', () => undefined); // failures are what the loop waits out
  try {
    return await waitFor(
      'every slot range takes writes',
      async () => {
        for (const k of probes) if ((await p.set(k, 'x').catch(() => undefined)) !== 'OK') return false;
        return Date.now() - t0;
      },
      30_000,
      100,
    );
  } finally {
    p.disconnect();
  }
}

test('SIGKILL of a node holding a master: writes resume within 10 s, no acknowledged key lost, replicas rebuilt, the node returns without a stale master', async () => {
  const masters = db.shards.filter((s) => s.role === 'master');
  assert.equal(masters.length, 2);
  // The victim holds a master and is not node 1 (whose endpoint the load uses).
  const victimUid = masters.map((m) => m.node_uid).find((u) => u !== cluster.nodes[0].uidFromDisk)!;
  assert.ok(victimUid !== undefined, JSON.stringify(db.shards));
  const victim = nodeByUid(victimUid);
  const survivor = cluster.nodes[0];

  // 2000 keys, each written with SET + WAIT 1 through the endpoint: acknowledged by its shard's replica.
  const c = new Redis({ host: survivor.addr, port: db.port, maxRetriesPerRequest: 0 });
  try {
    for (let i = 0; i < KEYS; i++) {
      await c.set(`k:${i}`, `v${i}`);
      assert.equal(await c.wait(1, 5000), 1, `WAIT 1 after k:${i}`);
    }
  } finally {
    c.disconnect();
  }

  // Steady load through the survivor, across the kill.
  const load = new Redis({
    host: survivor.addr,
    port: db.port,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => 100,
  });
  load.on('error', () => undefined); // counted below through the failed commands
  await new Promise<void>((r) => load.once('ready', () => r())); // without an offline queue, commands before this would fail
  let running = true;
  let ok = 0;
  let failed = 0;
  const errors = new Map<string, number>();
  const loop = (async () => {
    let i = 0;
    while (running) {
      try {
        await load.set(`load:${i++ % 500}`, String(i));
        ok++;
      } catch (e) {
        failed++;
        errors.set((e as Error).message, (errors.get((e as Error).message) ?? 0) + 1);
        await sleep(20);
      }
    }
  })();
  await sleep(1000);

  const t0 = Date.now();
  await victim.kill('SIGKILL');
  const resumedMs = await msUntilEverySlotWrites(survivor, t0);
  running = false;
  await loop;
  load.disconnect();
  console.log(
    `# writes to every slot resumed ${resumedMs} ms after SIGKILL; load: ${ok} ok, ${failed} failed during the window: ${JSON.stringify([...errors])}`,
  );
  assert.ok(resumedMs < 10_000, `writes resumed after ${resumedMs} ms`);

  // No acknowledged key lost.
  const r = new Redis({ host: survivor.addr, port: db.port, maxRetriesPerRequest: 0 });
  try {
    const vals = await r.mget(...Array.from({ length: KEYS }, (_, i) => `k:${i}`));
    const missing = vals.map((v, i) => (v === `v${i}` ? -1 : i)).filter((i) => i >= 0);
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} keys lost`);
  } finally {
    r.disconnect();
  }

  // Within 60 s every master has a replica on a live node, synced.
  const after = await waitFor(
    'every master has a live replica again',
    async () => {
      const b = await bdb(survivor);
      const ms = b.shards.filter((s) => s.role === 'master');
      const ok =
        ms.length === 2 &&
        ms.every(
          (m) =>
            m.node_uid !== victimUid &&
            b.shards.some((s) => s.master_uid === m.uid && s.node_uid !== victimUid && s.node_uid !== m.node_uid),
        );
      return ok ? b : undefined;
    },
    60_000,
    500,
  );
  for (const rep of after.shards.filter((s) => s.role === 'slave')) {
    await waitFor(
      `replica ${rep.uid} in sync`,
      async () => /master_link_status:up/.test(await shardCli(nodeByUid(rep.node_uid), rep.uid, ['INFO', 'replication']).catch(() => '')),
      60_000,
      500,
    );
    const n = Number(await shardCli(nodeByUid(rep.node_uid), rep.uid, ['DBSIZE']));
    assert.ok(n >= KEYS / 2 - 100, `rebuilt replica ${rep.uid} holds ${n} keys`);
  }

  // The database shows each replica's copy as finished (status: "SYNCING n%" while a full sync runs).
  let lastSync = '';
  await waitFor(
    'every replica reports its sync finished',
    async () => {
      const x = (
        await survivor.api<{ shards: { uid: number; role: string; status: string; sync?: { status: string; progress: number } }[] }>(
          'GET',
          `/v1/bdbs/${db.uid}`,
        )
      ).body;
      lastSync = JSON.stringify(x.shards);
      return x.shards.filter((s) => s.role === 'slave').every((s) => s.sync?.status === 'finished' && s.sync.progress === 100);
    },
    30_000,
    500,
  ).catch((e: Error) => assert.fail(`${e.message}: ${lastSync}`));

  // The rebuild is an action whose progress followed the full sync, and it finished.
  type ActionObj = {
    action_uid: string;
    name: string;
    object_name: string;
    status: string;
    progress: number;
    steps?: string[];
    shard_uids?: number[];
  };
  const rebuilt = await waitFor(
    'the replica_rebuild action completes',
    async () => {
      const res = (await survivor.api<ActionObj[] | { actions: ActionObj[] }>('GET', '/v1/actions')).body;
      const mine = (Array.isArray(res) ? res : res.actions).filter(
        (a) => a.name === 'replica_rebuild' && a.object_name === `bdb:${db.uid}`,
      );
      return mine.length && mine.every((a) => a.status === 'completed') ? mine : undefined;
    },
    30_000,
    500,
  );
  const steps = rebuilt.flatMap((a) => a.steps ?? []);
  assert.ok(
    steps.some((x) => /^0% rebuilding replica shard \d+ on node \d+ \(was on node \d+\)/.test(x)),
    JSON.stringify(steps),
  );
  assert.ok(
    steps.some((x) => /^100% replica rebuilt and in sync/.test(x)),
    JSON.stringify(steps),
  );
  assert.ok(rebuilt.every((a) => a.progress === 100 && a.shard_uids?.length));

  // /v1/shards (Redis Enterprise's shard objects) shows the new placement: nothing left on the dead node.
  type ShardObj = {
    uid: string;
    bdb_uid: number;
    node_uid: string;
    role: string;
    assigned_slots: string;
    status: string;
    sync?: { status: string };
  };
  const listed = (await survivor.api<ShardObj[]>('GET', '/v1/shards')).body.filter((s) => s.bdb_uid === db.uid);
  assert.equal(listed.length, 4);
  assert.deepEqual(
    listed.filter((s) => s.node_uid === String(victimUid)),
    [],
    'no shard listed on the dead node',
  );
  assert.deepEqual(
    listed
      .filter((s) => s.role === 'master')
      .map((s) => s.assigned_slots)
      .sort(),
    ['0-8191', '8192-16383'],
  );
  assert.ok(
    listed.filter((s) => s.role === 'slave').every((s) => s.sync?.status === 'finished'),
    `replicas show their sync: ${JSON.stringify(listed)}`,
  );
  const one = await survivor.api<ShardObj>('GET', `/v1/shards/${listed[0].uid}`);
  assert.equal(one.status, 200);
  assert.equal(one.body.uid, listed[0].uid);
  assert.equal((await survivor.api<{ error_code: string }>('GET', '/v1/shards/99999')).body.error_code, 'shard_not_found');
  assert.equal((await survivor.api('GET', '/v1/shards/abc')).status, 400);

  // The node returns with its data directory: active again, no shard placed on it, same data through its endpoint.
  await victim.start();
  await waitFor(
    'the returned node is active',
    async () => {
      const v = (await survivor.api<{ status: string }>('GET', `/v1/nodes/${victimUid}`)).body;
      return v.status === 'active';
    },
    30_000,
    500,
  );
  const final = await waitFor(
    'the database is active',
    async () => {
      const b = await bdb(survivor);
      return b.status === 'active' ? b : undefined;
    },
    30_000,
    500,
  );
  const finalMasters = final.shards.filter((s) => s.role === 'master');
  assert.equal(finalMasters.length, 2, 'one master per slot range, never two');
  assert.ok(
    finalMasters.every((m) => m.node_uid !== victimUid),
    'no stale master on the returned node',
  );
  const v = new Redis({ host: victim.addr, port: db.port, maxRetriesPerRequest: 0 });
  v.on('error', () => undefined); // refused until the returned node's endpoint listens; waited for below
  try {
    await waitFor('the returned node serves the database', async () => (await v.get('k:0').catch(() => undefined)) === 'v0', 30_000, 500);
    const vals = await v.mget(...Array.from({ length: KEYS }, (_, i) => `k:${i}`));
    assert.equal(vals.filter((x, i) => x === `v${i}`).length, KEYS, 'every key, through the returned node');
  } finally {
    v.disconnect();
  }
});

/** Write keys through an endpoint and wait until every master's replica acknowledged them (WAIT on the shard). */
async function writeAcked(through: TestNode, prefix: string, count: number): Promise<void> {
  const c = new Redis({ host: through.addr, port: db.port, maxRetriesPerRequest: 0 });
  try {
    for (let i = 0; i < count; i++) await c.set(`${prefix}:${i}`, `v${i}`);
  } finally {
    c.disconnect();
  }
  const b = await bdb(through);
  for (const m of b.shards.filter((s) => s.role === 'master')) {
    await waitFor(
      `replica of shard ${m.uid} acknowledges`,
      async () => (await shardCli(nodeByUid(m.node_uid), m.uid, ['WAIT', '1', '2000']).catch(() => '0')) === '1',
      60_000,
      200,
    );
  }
}
async function countReadable(through: TestNode, prefix: string, count: number): Promise<number> {
  const c = new Redis({ host: through.addr, port: db.port, maxRetriesPerRequest: 0 });
  try {
    const vals = await c.mget(...Array.from({ length: count }, (_, i) => `${prefix}:${i}`));
    return vals.filter((x, i) => x === `v${i}`).length;
  } finally {
    c.disconnect();
  }
}

test('a node that returns before the failover (killed and restarted at once) does not serve its stale masters: its replicas take over, no key lost', async () => {
  const n1 = cluster.nodes[0];
  // Long enough that the master never fails the node over: only the returning node's own fencing acts.
  assert.equal((await n1.api('PUT', '/v1/cluster/policy', { failover_timeout: 120 })).status, 200);
  try {
    await waitFor(
      'every master has a live replica',
      async () => {
        const b = await bdb(n1);
        return (
          b.status === 'active' && b.shards.filter((s) => s.role === 'master').every((m) => b.shards.some((s) => s.master_uid === m.uid))
        );
      },
      60_000,
      500,
    );
    await writeAcked(n1, 'quick', 1000);
    const b = await bdb(n1);
    const victimUid = b.shards
      .filter((s) => s.role === 'master')
      .map((m) => m.node_uid)
      .find((u) => u !== n1.uidFromDisk)!;
    const victim = nodeByUid(victimUid);
    const staleMasters = b.shards.filter((s) => s.role === 'master' && s.node_uid === victimUid).map((s) => s.uid);
    await victim.kill('SIGKILL');
    await victim.start();
    const after = await waitFor(
      "the returned node's masters are replicas and the database is active",
      async () => {
        const x = await bdb(n1);
        return x.status === 'active' && staleMasters.every((uid) => x.shards.find((s) => s.uid === uid)?.role === 'slave') ? x : undefined;
      },
      60_000,
      500,
    );
    for (const uid of staleMasters) {
      const s = after.shards.find((x) => x.uid === uid)!;
      assert.equal(s.role, 'slave', `shard ${uid} came back as a replica`);
    }
    assert.equal(await countReadable(n1, 'quick', 1000), 1000, 'no acknowledged key lost');
    assert.equal(await countReadable(victim, 'quick', 1000), 1000, 'the same data through the returned node');
    assert.match(fs.readFileSync(victim.logFile, 'utf8'), /fencing: this node returns/);
  } finally {
    await n1.api('PUT', '/v1/cluster/policy', { failover_timeout: 5 });
  }
});

test('SIGKILL of the cluster master node: another node becomes master and finishes the failover', async () => {
  const n = cluster.nodes[0];
  const masterUid = (await n.api<{ master_node_uid: number }>('GET', '/v1/cluster')).body.master_node_uid;
  const victim = nodeByUid(masterUid);
  const survivor = cluster.nodes.find((x) => x !== victim)!;
  await writeAcked(survivor, 'mk', 1000);
  const t0 = Date.now();
  await victim.kill('SIGKILL');
  const resumedMs = await msUntilEverySlotWrites(survivor, t0);
  console.log(`# cluster master killed: writes to every slot resumed ${resumedMs} ms after SIGKILL`);
  // Its node is shown down as soon as it was failed over (give or take the nodes' views), though etcd may still hold its lease (8-9.5 s when it led etcd).
  const shownDownMs = await waitFor(
    'the killed master node shown down',
    async () =>
      (await survivor.api<{ status: string }>('GET', `/v1/nodes/${masterUid}`)).body.status === 'down' ? Date.now() - t0 : undefined,
    5000,
    50,
  );
  console.log(`# the killed master node was shown down ${shownDownMs} ms after SIGKILL`);
  assert.ok(shownDownMs < resumedMs + 2000, `shown down ${shownDownMs} ms after SIGKILL; writes resumed at ${resumedMs} ms`);
  // Measured 5.0-5.5 s: the silence is counted from the master's last heartbeat, whatever etcd's
  // leader election does to the leases (they used to keep a dead master 8-10 s).
  assert.ok(resumedMs < 10_000, `writes resumed after ${resumedMs} ms`);
  const newMaster = await waitFor(
    'a new cluster master',
    async () => {
      const m = (await survivor.api<{ master_node_uid: number | null }>('GET', '/v1/cluster')).body.master_node_uid;
      return m && m !== masterUid ? m : undefined;
    },
    30_000,
    200,
  );
  assert.notEqual(newMaster, masterUid);
  assert.equal(await countReadable(survivor, 'mk', 1000), 1000, 'no acknowledged key lost');
  await waitFor(
    'every master has a replica on a live node',
    async () => {
      const b = await bdb(survivor);
      const ms = b.shards.filter((s) => s.role === 'master');
      return ms.every((m) => m.node_uid !== masterUid && b.shards.some((s) => s.master_uid === m.uid && s.node_uid !== masterUid));
    },
    60_000,
    500,
  );
  await victim.start();
  await waitFor(
    'the old master node is active again',
    async () => (await survivor.api<{ status: string }>('GET', `/v1/nodes/${masterUid}`)).body.status === 'active',
    30_000,
    500,
  );
});

test('failover_timeout is a cluster setting (REST and tune cluster), validated', async () => {
  const n = cluster.nodes.find((x) => x.running)!;
  const get = await n.api<{ failover_timeout: number }>('GET', '/v1/cluster/policy');
  assert.equal(get.body.failover_timeout, 5);
  const t = await n.cli(['tune', 'cluster', 'failover_timeout', '7']);
  assert.equal(t.code, 0, t.stderr);
  assert.equal((await n.api<{ failover_timeout: number }>('GET', '/v1/cluster/policy')).body.failover_timeout, 7);
  const bad = await n.cli(['tune', 'cluster', 'failover_timeout', 'soon']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /failover_timeout must be a whole number of seconds/);
  const badRest = await n.api<{ error_code: string }>('PUT', '/v1/cluster/policy', { failover_timeout: 0 });
  assert.equal(badRest.status, 400);
  await n.api('PUT', '/v1/cluster/policy', { failover_timeout: 5 });
  // Replica high availability: RE's slave_ha and slave_ha_grace_period (ours defaults to 0 s).
  const ha = await n.api<{ slave_ha: boolean; slave_ha_grace_period: number }>('GET', '/v1/cluster/policy');
  assert.deepEqual([ha.body.slave_ha, ha.body.slave_ha_grace_period], [true, 0]);
  const g = await n.cli(['tune', 'cluster', 'slave_ha_grace_period', '30', 'slave_ha', 'disabled']);
  assert.equal(g.code, 0, g.stderr);
  const ha2 = await n.api<{ slave_ha: boolean; slave_ha_grace_period: number }>('GET', '/v1/cluster/policy');
  assert.deepEqual([ha2.body.slave_ha, ha2.body.slave_ha_grace_period], [false, 30]);
  const badGrace = await n.cli(['tune', 'cluster', 'slave_ha_grace_period', '-1']);
  assert.notEqual(badGrace.code, 0);
  assert.match(badGrace.stderr, /slave_ha_grace_period must be a whole number of seconds/);
  assert.equal((await n.api('PUT', '/v1/cluster/policy', { slave_ha_grace_period: 'soon' })).status, 400);
  await n.api('PUT', '/v1/cluster/policy', { slave_ha: true, slave_ha_grace_period: 0 });
});
