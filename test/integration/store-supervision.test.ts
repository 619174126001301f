// A node's own etcd member dies (SIGKILL): the daemon restarts it with its
// data directory, the node's REST API answers 503 store_unavailable (never a
// 500 with gRPC text) until then and 200 again within 15 s, and since the node
// itself and its shards never stopped, nothing is failed over or shown down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { TestCluster, type BdbJson, createDb, waitFor, sleep } from '../support/cluster.js';

const cluster = new TestCluster(13, 3);
const [n1, n2] = cluster.nodes;
let db: BdbJson;

before(async () => {
  await cluster.startAll();
  await cluster.form('store.test');
  db = await createDb(n1, {
    name: 'st',
    memory_size: 100 << 20,
    shards_count: 2,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: 13900,
  });
});
after(async () => {
  await cluster.stop();
});

/** The pid of a node's etcd member, found by its data directory. */
function etcdPid(dataDir: string): number | undefined {
  try {
    const out = execFileSync('pgrep', ['-f', `data-dir ${dataDir}/etcd `])
      .toString()
      .trim();
    return Number(out.split('\n')[0]) || undefined;
  } catch {
    return undefined; // pgrep found nothing
  }
}

test("SIGKILL of a node's etcd member: restarted, REST 503 store_unavailable meanwhile and 200 within 15 s, no failover, no shard shown down", async () => {
  const pid = etcdPid(n2.dataDir);
  assert.ok(pid, 'etcd member of node 2 found');
  const placement = JSON.stringify(
    (await n1.api<BdbJson>('GET', `/v1/bdbs/${db.uid}`)).body.shards.map((s) => [s.uid, s.role, s.node_uid]),
  );
  const logFrom = fs.statSync(n2.logFile).size;
  const t0 = Date.now();
  process.kill(pid, 'SIGKILL');
  const seen = new Map<string, number>();
  let backMs = -1;
  await waitFor(
    'node 2 REST answers again',
    async () => {
      const r = await n2
        .api<{ error_code?: string }>('GET', `/v1/bdbs/${db.uid}`)
        .catch((e: Error) => ({ status: -1, body: { error_code: e.message } }));
      const key = `${r.status} ${r.status === 200 ? '' : ((r.body as { error_code?: string }).error_code ?? '')}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      if (r.status === 200 && Date.now() - t0 > 300) {
        backMs = Date.now() - t0;
        return true;
      }
      return false;
    },
    30_000,
    100,
  );
  console.log(`# REST of node 2 answered 200 again ${backMs} ms after its etcd was killed; answers seen: ${JSON.stringify([...seen])}`);
  assert.ok(backMs < 15_000, `back after ${backMs} ms`);
  for (const k of seen.keys()) assert.match(k, /^(200 |503 store_unavailable)$/, `unexpected answer ${k}`);
  const newPid = etcdPid(n2.dataDir);
  assert.ok(newPid && newPid !== pid, 'a new etcd process');
  assert.match(fs.readFileSync(n2.logFile, 'utf8').slice(logFrom), /etcd member exited unexpectedly; restarting it/);

  // Past the failover timeout: the node never went down, so nothing moved and every shard serves.
  await sleep(6000);
  const b = (await n1.api<BdbJson>('GET', `/v1/bdbs/${db.uid}`)).body;
  assert.equal(JSON.stringify(b.shards.map((s) => [s.uid, s.role, s.node_uid])), placement, 'no failover');
  assert.equal(b.status, 'active');
  assert.deepEqual(
    b.shards.filter((s) => s.status !== 'active').map((s) => s.uid),
    [],
    'no shard shown down',
  );
  const nodes = (await n1.api<{ uid: number; status: string }[]>('GET', '/v1/nodes')).body;
  assert.ok(
    nodes.every((n) => n.status === 'active'),
    JSON.stringify(nodes),
  );
});
