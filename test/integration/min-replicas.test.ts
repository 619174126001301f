// min_replicas_to_write (Redis's own guard, per database; needs iptables and
// cgroup v2, skipped with the reason otherwise): off by default; set at
// create, by PUT and by `tune db`, applied to the shards as CONFIG SET; with
// it on, a master whose node is cut off refuses writes itself (-NOREPLICAS)
// within min_replicas_max_lag, whatever the proxy's fence does. Net 127.0.84.x.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, type TestNode, type BdbJson, createDb, waitFor, shardCli } from '../support/cluster.js';
import { NetworkCuts, cutsUnavailable } from '../support/partition.js';

const skip = cutsUnavailable();
const cluster = new TestCluster(84, 3);
let cuts: NetworkCuts | undefined;

before(async () => {
  if (skip) return;
  await cluster.startAll();
  cuts = new NetworkCuts(84, cluster.nodes);
  for (const n of cluster.nodes) cuts.attach(n);
  await cluster.form('min-replicas.test');
});
after(async () => {
  cuts?.close();
  if (!skip) await cluster.stop();
});

const nodeByUid = (uid: number): TestNode => cluster.nodes.find((n) => n.uidFromDisk === uid)!;

async function bdb(uid: number): Promise<BdbJson> {
  return (await cluster.nodes[0].api<BdbJson>('GET', `/v1/bdbs/${uid}`)).body;
}

/** CONFIG GET of a min-replicas setting on every shard of the database, once they all agree on `want`. */
async function shardsSay(b: BdbJson, key: string, want: string): Promise<void> {
  await waitFor(
    `every shard of db ${b.uid} has ${key} ${want}`,
    async () => {
      for (const s of (await bdb(b.uid)).shards) {
        const out = await shardCli(nodeByUid(s.node_uid), s.uid, ['CONFIG', 'GET', key]).catch(() => '');
        if (out.split('\n')[1]?.trim() !== want) return false;
      }
      return true;
    },
    30_000,
    200,
  );
}

test('min_replicas_to_write: off by default, set at create, by PUT and by tune db, applied to the shards', { skip }, async () => {
  const n1 = cluster.nodes[0];
  const plain = await createDb(n1, { name: 'plain', memory_size: 100 << 20, replication: true, port: 12841 });
  assert.equal((plain as unknown as { min_replicas_to_write?: number }).min_replicas_to_write, undefined);
  await shardsSay(plain, 'min-replicas-to-write', '0');
  // The cluster version reaches 0.2 shortly after the cluster forms; until then the guard is refused (409).
  let guarded: BdbJson | undefined;
  await waitFor(
    'the guarded database is created',
    async () => {
      const r = await n1.api<BdbJson>('POST', '/v1/bdbs', {
        name: 'guarded',
        memory_size: 100 << 20,
        replication: true,
        port: 12842,
        min_replicas_to_write: 1,
        min_replicas_max_lag: 1,
      });
      if (r.status === 409) return false;
      assert.equal(r.status, 200, JSON.stringify(r.body));
      guarded = r.body;
      return true;
    },
    30_000,
    500,
  );
  await waitFor('guarded is active', async () => (await bdb(guarded!.uid)).status === 'active', 60_000, 200);
  await shardsSay(guarded!, 'min-replicas-to-write', '1');
  await shardsSay(guarded!, 'min-replicas-max-lag', '1');
  // PUT turns it on for the plain one; tune db changes the lag; both reach the running shards.
  const put = await n1.api('PUT', `/v1/bdbs/${plain.uid}`, { min_replicas_to_write: 1 });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  await shardsSay(plain, 'min-replicas-to-write', '1');
  const t = await n1.cli(['tune', 'db', String(plain.uid), 'min_replicas_max_lag', '3']);
  assert.equal(t.code, 0, t.stderr + t.stdout);
  await shardsSay(plain, 'min-replicas-max-lag', '3');
  const bad = await n1.cli(['tune', 'db', String(plain.uid), 'min_replicas_to_write', '2']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr + bad.stdout, /min_replicas_to_write must be 0 \(off\) or 1/);
  const off = await n1.api('PUT', `/v1/bdbs/${plain.uid}`, { min_replicas_to_write: 0 });
  assert.equal(off.status, 200, JSON.stringify(off.body));
  await shardsSay(plain, 'min-replicas-to-write', '0');
});

test('with min_replicas_to_write 1, a master whose node is cut off refuses writes within the lag', { skip }, async () => {
  const b = (await cluster.nodes[0].api<BdbJson[]>('GET', '/v1/bdbs')).body.find((x) => x.name === 'guarded')!;
  await waitFor(
    'the replica is in sync',
    async () => {
      const rep = (await bdb(b.uid)).shards.find((s) => s.role === 'slave')!;
      return /master_link_status:up/.test(await shardCli(nodeByUid(rep.node_uid), rep.uid, ['INFO', 'replication']).catch(() => ''));
    },
    30_000,
    200,
  );
  const master = (await bdb(b.uid)).shards.find((s) => s.role === 'master')!;
  const node = nodeByUid(master.node_uid);
  // Straight to the shard (its unix socket, on its own node): the proxy's fence is not what is measured.
  assert.equal((await shardCli(node, master.uid, ['SET', 'before', 'x'])).trim(), 'OK');
  cuts!.isolate(node);
  const cutAt = Date.now();
  try {
    let refusedAfter = 0;
    let last = '';
    await waitFor(
      'the cut-off master refuses writes',
      async () => {
        last = (await shardCli(node, master.uid, ['SET', 'during', 'x']).catch((e: Error) => e.message)).trim();
        if (!/NOREPLICAS/.test(last)) return false;
        refusedAfter = Date.now() - cutAt;
        return true;
      },
      15_000,
      50,
    ).catch((e: Error) => assert.fail(`${e.message}; last answer: ${last}`));
    console.log(`# the cut-off master refused writes ${refusedAfter} ms after the cut (min_replicas_max_lag 1 s)`);
    // Redis counts a replica's lag in whole seconds from its last ACK (sent every second), checked each second.
    assert.ok(refusedAfter <= 1000 + 2500, `refused only after ${refusedAfter} ms`);
  } finally {
    cuts!.heal();
  }
});
