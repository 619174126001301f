// The start of the rolling upgrade (issue 20): three 0.1.0 nodes (the
// previous release, built from its commit) hold a replicated, sharded,
// encrypted database while a writer writes through one of them; one node is
// emptied with the old release's own `failover` and `migrate`, stopped with
// SIGTERM, and started with the working tree's build on the same data
// directory. It must run beside the 0.1.0 nodes: rejoin, show its version,
// take shards back, and the writer must lose no acknowledged write.
//
// Addresses: 127.0.52.11-13 (written here: run it under flock /tmp/tessera-integ.lock
// if another file might use them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { BIN, PASSWORD, TestNode, USER, type BdbJson, type CliResult, createDb, waitDbStatus, waitFor } from '../support/cluster.js';
import { previousReleaseBin } from '../support/previous-release.js';
import { etcdClient, etcdPaths } from '../../src/coord/etcd.js';
import { storeOf } from '../../src/coord/store.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-test-52u-'));
const PORT = 15252;
let oldBin: string;
let nodes: TestNode[] = [];
let dbUid: number;

function run(bin: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      bin,
      args,
      { timeout: 300_000, env: { ...process.env, TESSERA_USERNAME: USER, TESSERA_PASSWORD: PASSWORD } },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}

/** The old release's CLI against node `n`. */
const oldCli = (n: TestNode, args: string[]) => run(oldBin, ['--node', n.addr, ...args]);

before(async () => {
  oldBin = await previousReleaseBin();
  nodes = [11, 12, 13].map((h, i) => new TestNode(`127.0.52.${h}`, path.join(root, `n${i + 1}`), [], oldBin));
  await Promise.all(nodes.map((n) => n.start()));
  const c = await oldCli(nodes[0], ['cluster', 'create', 'name', 'up.local', 'username', USER, 'password', PASSWORD]);
  assert.equal(c.code, 0, c.stderr);
  for (const n of nodes.slice(1)) {
    const j = await oldCli(n, ['cluster', 'join', 'nodes', nodes[0].addr, 'username', USER, 'password', PASSWORD]);
    assert.equal(j.code, 0, j.stderr);
  }
});

after(async () => {
  await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
  if (!process.env.TESSERA_KEEP_TEST_DIRS) fs.rmSync(root, { recursive: true, force: true });
});

/** Writes `w:<i>` through `n`'s endpoint until stopped; remembers which were acknowledged and the errors seen. */
function startWriter(n: TestNode) {
  const c = new Redis({ host: n.addr, port: PORT, maxRetriesPerRequest: 0, enableOfflineQueue: false });
  c.on('error', () => undefined); // counted per command below
  const acked: number[] = [];
  const errors: string[] = [];
  let stop = false;
  const done = (async () => {
    for (let i = 0; !stop; i++) {
      try {
        if ((await c.set(`w:${i}`, `v${i}`)) === 'OK') acked.push(i);
      } catch (e) {
        errors.push((e as Error).message);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  })();
  return {
    acked,
    errors,
    async stop() {
      stop = true;
      await done;
      c.disconnect();
    },
  };
}

const nodeOf = (uid: number) => nodes.find((n) => n.uidFromDisk === uid)!;
const bdbOf = async (via: TestNode, uid: number) => (await via.api<BdbJson>('GET', `/v1/bdbs/${uid}`)).body;

/** Empty node `uid` with the old release's own commands through `via`: its masters fail over, then every shard migrates away. */
async function empty(via: TestNode, dbUid: number, uid: number, cliBin?: string): Promise<void> {
  const cmd = (args: string[]) => run(cliBin ?? oldBin, ['--node', via.addr, ...args]);
  let b = await bdbOf(via, dbUid);
  for (const s of b.shards.filter((x) => x.node_uid === uid && x.role === 'master')) {
    // A replica may still be syncing (a database just created, or a shard just moved): the planned failover
    // refuses that with replica_not_in_sync, as an operator would see; ask again until it is in sync.
    let f = await cmd(['failover', 'db', String(dbUid), 'shard', String(s.uid)]);
    for (let i = 0; i < 30 && f.code !== 0 && /replica_not_in_sync/.test(f.stderr); i++) {
      await new Promise((r) => setTimeout(r, 1000));
      f = await cmd(['failover', 'db', String(dbUid), 'shard', String(s.uid)]);
    }
    assert.equal(f.code, 0, `failover of shard ${s.uid}: ${f.stderr}`);
  }
  b = await bdbOf(via, dbUid);
  for (const s of b.shards.filter((x) => x.node_uid === uid)) {
    // The node that holds neither this shard nor its peer (master or replica of the same slots).
    const peer = b.shards.find((x) => x.uid !== s.uid && x.assigned_slots === s.assigned_slots)!;
    const target = nodes.find((n) => n.uidFromDisk !== uid && n.uidFromDisk !== peer.node_uid)!;
    const m = await cmd(['migrate', 'db', String(dbUid), 'shard', String(s.uid), 'target_node', String(target.uidFromDisk)]);
    assert.equal(m.code, 0, `migration of shard ${s.uid}: ${m.stderr}`);
    b = await bdbOf(via, dbUid);
  }
  assert.deepEqual(
    b.shards.filter((x) => x.node_uid === uid),
    [],
  );
}

test('a node upgraded to this build runs beside 0.1.0 nodes, takes shards back, and no acknowledged write is lost', async () => {
  const [n1] = nodes;
  const db = await createDb(n1, {
    name: 'up',
    memory_size: 100 << 20,
    port: PORT,
    sharding: true,
    shards_count: 2,
    replication: true,
    data_internode_encryption: true,
    proxy_policy: 'all-nodes',
  });
  // Upgrade a node that is not the one the writer goes through, nor the cluster master.
  const clusterInfo = (await n1.api<{ master_node_uid: number }>('GET', '/v1/cluster')).body;
  const up = nodes.find((n) => n !== n1 && n.uidFromDisk !== clusterInfo.master_node_uid)!;
  const upUid = up.uidFromDisk!;
  dbUid = db.uid;
  const writer = startWriter(n1);
  let b: BdbJson;
  try {
    await waitFor('writes acknowledged', () => writer.acked.length > 50, 30_000);

    await empty(n1, db.uid, upUid);

    // Stop it and start this build on the same data directory.
    await up.kill('SIGTERM');
    const upgraded = new TestNode(up.addr, up.dataDir, [], BIN);
    nodes[nodes.indexOf(up)] = upgraded;
    await upgraded.start();
    await waitFor(
      'the upgraded node shown as 0.2.0 and active by a 0.1.0 node',
      async () => {
        const ns = (await n1.api<{ uid: number; status: string; software_version: string }[]>('GET', '/v1/nodes')).body;
        const me = ns.find((n) => n.uid === upUid);
        return me?.status === 'active' && me.software_version === '0.2.0';
      },
      60_000,
    );
    // The upgraded node answers, and the cluster is still at 0.1 (a 0.1.0 master decides nothing; nothing is stored).
    const cl = await upgraded.api<{ cluster_version: string; software_version: string }>('GET', '/v1/cluster');
    assert.equal(cl.status, 200, JSON.stringify(cl.body));
    assert.equal(cl.body.cluster_version, '0.1');
    assert.equal(cl.body.software_version, '0.2.0');
    // This build's status says the upgrade is under way.
    const st = await run(BIN, ['--node', upgraded.addr, 'status']);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /Cluster version: 0\.1, upgrade in progress \(node:1 0\.1\.0, node:2 0\.\d\.0, node:3 0\.\d\.0\)/);

    // Give it a shard back, with the old release's command through the old master.
    b = await bdbOf(n1, db.uid);
    const back = b.shards.find((x) => x.role === 'slave')!;
    const m = await oldCli(n1, ['migrate', 'db', String(db.uid), 'shard', String(back.uid), 'target_node', String(upUid)]);
    assert.equal(m.code, 0, `migration back to the upgraded node: ${m.stderr}\n${m.stdout}`);
    await waitDbStatus(n1, db.uid, 'active');
    b = await bdbOf(n1, db.uid);
    assert.ok(b.shards.some((x) => x.node_uid === upUid));
    await waitFor('more writes', () => writer.acked.length > 200, 30_000);
  } finally {
    await writer.stop();
  }
  // Every acknowledged write reads back, through the upgraded node's endpoint too.
  for (const via of nodes) {
    const c = new Redis({ host: via.addr, port: PORT, maxRetriesPerRequest: 0 });
    try {
      const missing: number[] = [];
      for (let lo = 0; lo < writer.acked.length; lo += 500) {
        const part = writer.acked.slice(lo, lo + 500);
        const vals = await c.mget(...part.map((i) => `w:${i}`));
        vals.forEach((v, j) => v !== `v${part[j]}` && missing.push(part[j]));
      }
      assert.deepEqual(missing, [], `acknowledged writes missing through ${via.addr}`);
    } finally {
      c.disconnect();
    }
  }
  await checkWrites(writer);
});

async function checkWrites(writer: ReturnType<typeof startWriter>, prefix = 'w'): Promise<void> {
  for (const via of nodes.filter((n) => n.running)) {
    const c = new Redis({ host: via.addr, port: PORT, maxRetriesPerRequest: 0 });
    try {
      const missing: number[] = [];
      for (let lo = 0; lo < writer.acked.length; lo += 500) {
        const part = writer.acked.slice(lo, lo + 500);
        const vals = await c.mget(...part.map((i) => `${prefix}:${i}`));
        vals.forEach((v, j) => v !== `v${part[j]}` && missing.push(part[j]));
      }
      assert.deepEqual(missing, [], `acknowledged writes missing through ${via.addr}`);
    } finally {
      c.disconnect();
    }
  }
  console.log(
    `writer: ${writer.acked.length} acknowledged, ${writer.errors.length} errors (${[...new Set(writer.errors)].slice(0, 3).join('; ')})`,
  );
}

/** Empty `n`, stop it, start `bin` on its data directory; commands go through `via`. */
async function restartAs(n: TestNode, bin: string, via: TestNode): Promise<TestNode> {
  const uid = n.uidFromDisk!;
  await empty(via, dbUid, uid, BIN);
  await n.kill('SIGTERM');
  const next = new TestNode(n.addr, n.dataDir, [], bin);
  nodes[nodes.indexOf(n)] = next;
  await next.start();
  await waitFor(
    `node ${uid} active again`,
    async () => {
      const ns = (await via.api<{ uid: number; status: string }[]>('GET', '/v1/nodes')).body;
      return ns.find((x) => x.uid === uid)?.status === 'active';
    },
    60_000,
  );
  // Active comes with its liveness lease; its record (with its version) is published a moment later.
  await waitFor(
    `node ${uid} shows the version it was started with`,
    async () => {
      const ns = (await via.api<{ uid: number; software_version: string }[]>('GET', '/v1/nodes')).body;
      const v = ns.find((x) => x.uid === uid)?.software_version;
      return v !== undefined && (bin === BIN ? v !== '0.1.0' : v === '0.1.0');
    },
    60_000,
  );
  return next;
}

test('every node upgraded: the master raises the cluster version to 0.2; status no longer says upgrade in progress', async () => {
  const upgraded = nodes.find((n) => n.bin === BIN)!;
  const rest = nodes.filter((n) => n.bin !== BIN);
  const writer = startWriter(upgraded);
  try {
    for (const n of rest) {
      await waitFor('writes acknowledged', () => writer.acked.length > 50, 30_000);
      await restartAs(n, BIN, upgraded);
    }
    for (const n of nodes)
      await waitFor(
        `${n.addr}: cluster version 0.2`,
        async () => (await n.api<{ cluster_version: string }>('GET', '/v1/cluster')).body.cluster_version === '0.2',
        30_000,
      );
    const st = await run(BIN, ['--node', upgraded.addr, 'status']);
    assert.match(st.stdout, /Cluster version: 0\.2 \(every node runs 0\.2\.0\)/);
    await waitDbStatus(upgraded, dbUid, 'active');
  } finally {
    await writer.stop();
  }
  await checkWrites(writer);
});

test('a 0.1.0 node restarted into a 0.2 cluster (it cannot refuse itself) is kept from the master role by the 0.2 members', async () => {
  const [a, b2] = nodes;
  const down = await restartAs(b2, oldBin, a);
  const downUid = down.uidFromDisk!;
  // What the 0.1.0 code does: it rejoins as it always did (active, its endpoint serving), shown with its version.
  await waitFor(
    'the 0.1.0 node active, shown with its version',
    async () => {
      const ns = (await a.api<{ uid: number; status: string; software_version: string }[]>('GET', '/v1/nodes')).body;
      const me = ns.find((n) => n.uid === downUid);
      return me?.status === 'active' && me.software_version === '0.1.0';
    },
    30_000,
  );
  const st = await run(BIN, ['--node', a.addr, 'status']);
  assert.match(
    st.stdout,
    new RegExp(
      `Cluster version: 0\\.2, upgrade in progress \\(.*\\); older than the cluster version: node:${downUid}, start them with 0\\.2 or later`,
    ),
  );
  await waitFor(
    'the 0.2 members report it',
    () => nodes.some((n) => /older than the cluster version 0\.2: it is kept from the master role/.test(n.logTail(200))),
    10_000,
  );

  // The operator cannot make it the master.
  const cm = await a.api<{ error_code: string; description: string }>('POST', '/v1/cluster/actions/change_master', {
    node_uid: String(downUid),
  });
  assert.equal(cm.status, 409, JSON.stringify(cm.body));
  assert.equal(cm.body.error_code, 'cluster_version_too_old');
  // Made master by an election (the key written as its claim would write it), it loses the role within seconds, and does not get it back.
  const store = etcdClient(a.addr, 3341, etcdPaths(a.dataDir));
  try {
    assert.equal(await storeOf(store).master.handTo({ uid: downUid, since: new Date().toISOString() }), 'done');
  } finally {
    store.close();
  }
  const masterNow = async () => (await a.api<{ master_node_uid: number }>('GET', '/v1/cluster')).body.master_node_uid;
  await waitFor('a 0.2 member takes the master role back', async () => (await masterNow()) !== downUid, 15_000);
  for (let i = 0; i < 6; i++) {
    assert.notEqual(await masterNow(), downUid);
    await new Promise((r) => setTimeout(r, 500));
  }
  await waitDbStatus(a, dbUid, 'active');
});
