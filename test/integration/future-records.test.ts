// Records a newer version writes (issue 20): a 3-node cluster with a
// replicated 2-shard database; into the store go a field no schema knows, a
// database status and a shard-operation kind from the future. Every node
// keeps serving, passes the unknown field through when it rewrites the
// record, reports the records it cannot read (once, in its log), and keeps
// every shard's files on disk, also a node that restarts while the database
// record is unreadable (it would once have removed the files of every shard
// it did not see wanted). Once the record reads again, that node converges.
//
// Addresses: 127.0.51.1-3 (TestCluster net 51; TESSERA_TEST_NET moves it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { TestCluster, type TestNode, type BdbJson, createDb, waitDbStatus, waitFor } from '../support/cluster.js';
import { etcdClient, etcdPaths } from '../../src/coord/etcd.js';
import { KEYS } from '../../src/coord/schema.js';

const cluster = new TestCluster(51, 3);
const PORT = 15151;
let db: BdbJson;

before(async () => {
  await cluster.startAll();
  await cluster.form();
});

after(async () => {
  await cluster.stop();
});

/** The shard directories in a node's data directory. */
const shardDirs = (n: TestNode): string[] => {
  try {
    return fs
      .readdirSync(path.join(n.dataDir, 'shards'))
      .filter((e) => /^\d+$/.test(e))
      .sort();
  } catch {
    return [];
  }
};

async function getThrough(n: TestNode, key: string): Promise<string | null> {
  const c = new Redis({ host: n.addr, port: PORT, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 200 });
  c.on('error', () => undefined); // refused until the endpoint listens; the caller waits
  try {
    return await waitFor(
      `${n.addr}:${PORT} answers`,
      async () =>
        c
          .get(key)
          .then((v) => ({ v }))
          .catch(() => undefined),
      30_000,
      200,
    ).then((r) => r.v);
  } finally {
    c.disconnect();
  }
}

const occurrences = (text: string, re: RegExp) => (text.match(new RegExp(re.source, 'g')) ?? []).length;
const logOf = (n: TestNode) => fs.readFileSync(n.logFile, 'utf8');

test('unknown fields pass through, future values are not understood, and no node removes a shard it cannot account for', async () => {
  const [n1] = cluster.nodes;
  db = await createDb(n1, {
    name: 'future',
    memory_size: 100 << 20,
    port: PORT,
    sharding: true,
    shards_count: 2,
    replication: true,
    proxy_policy: 'all-nodes',
  });
  const w = new Redis({ host: n1.addr, port: PORT, maxRetriesPerRequest: 0 });
  for (let i = 0; i < 50; i++) await w.set(`k:${i}`, `v${i}`);
  w.disconnect();
  const before = new Map(cluster.nodes.map((n) => [n.addr, shardDirs(n)]));
  // The node to restart: one that holds no master shard (two masters, three nodes), so the others serve every slot meanwhile.
  const masters = new Set(db.shards.filter((x) => x.role === 'master').map((x) => x.node_uid));
  const n2 = cluster.nodes.find((n) => !masters.has(n.uidFromDisk!))!;
  assert.ok(n2, `a node without a master shard: ${JSON.stringify(db.shards)}`);
  assert.ok(before.get(n2.addr)!.length > 0, 'the restarted node holds a replica');
  const others = cluster.nodes.filter((n) => n !== n2);
  assert.equal([...before.values()].flat().length, 4, JSON.stringify([...before]));

  const store = etcdClient(n1.addr, 3341, etcdPaths(n1.dataDir));
  try {
    const key = KEYS.bdb(db.uid);
    const stored = () => store.get(key).json() as Promise<Record<string, unknown>>;

    // 1. A field no schema knows is kept, through a rewrite by the REST API and the master's controller.
    await store.put(key).value(JSON.stringify({ ...(await stored()), future_field: { from: '9.9' } }));
    const put = await n1.api('PUT', `/v1/bdbs/${db.uid}`, { memory_size: 120 << 20 });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await waitDbStatus(n1, db.uid, 'active');
    const rewritten = await stored();
    assert.equal(rewritten.memory_size, 120 << 20);
    assert.deepEqual(rewritten.future_field, { from: '9.9' });

    // 2. A shard operation of a future kind, and a database status from the future.
    const mark = new Map(cluster.nodes.map((n) => [n.addr, logOf(n).length]));
    const now = new Date().toISOString();
    await store
      .put(KEYS.shardOp('9999'))
      .value(JSON.stringify({ action_uid: '9999', kind: 'kind_of_a_later_release', items: [], created_time: now }));
    await store
      .put(key)
      .value(JSON.stringify({ ...rewritten, status: 'status_of_a_later_release', generation: Number(rewritten.generation) + 1 }));

    // 3. A node restarts while it cannot read the database's record.
    await n2.kill('SIGTERM');
    mark.set(n2.addr, logOf(n2).length);
    await n2.start();
    await waitFor('the restarted node reports its reading', () => /database record not understood/.test(logOf(n2)), 30_000);
    // Give its reconciler passes time to do what it would do (it runs every 2 s and on every change).
    await new Promise((r) => setTimeout(r, 6000));

    for (const n of cluster.nodes) {
      assert.deepEqual(shardDirs(n), before.get(n.addr), `shard files on ${n.addr}`);
      const r = await n.api<unknown[]>('GET', '/v1/nodes');
      assert.equal(r.status, 200, `${n.addr} REST`);
      // Reported once (since the record changed, or since the node started): the record is not understood, and why.
      const log = logOf(n).slice(mark.get(n.addr));
      assert.equal(
        occurrences(log, new RegExp(`stored record at /tessera/bdbs/${db.uid} is malformed: /status`)),
        1,
        `${n.addr} reports the database record once`,
      );
    }
    // The nodes that ran the database before keep serving it as they last understood it.
    for (const n of others) for (const i of [7, 8, 9, 10]) assert.equal(await getThrough(n, `k:${i}`), `v${i}`);
    // The shard-operation record: every node's shard-operations cache reports it once; the master acts on nothing.
    for (const n of cluster.nodes) {
      const log = logOf(n).slice(mark.get(n.addr));
      assert.equal(occurrences(log, /stored record at \/tessera\/shard_ops\/9999 is malformed: \/kind/), 1, `${n.addr}: shard operation`);
    }

    // 4. The record readable again (an upgrade done, say): the restarted node converges on it and serves.
    await store.delete().key(KEYS.shardOp('9999'));
    await store.put(key).value(JSON.stringify({ ...rewritten, generation: Number(rewritten.generation) + 2 }));
    await waitDbStatus(n1, db.uid, 'active');
    for (const i of [7, 8, 9, 10]) assert.equal(await getThrough(n2, `k:${i}`), `v${i}`);
    for (const n of cluster.nodes) assert.deepEqual(shardDirs(n), before.get(n.addr), `shard files on ${n.addr} after`);
  } finally {
    store.close();
  }
});
