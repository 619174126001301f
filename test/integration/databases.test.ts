// Databases on a real 3-node cluster (127.0.4.1-3): REST validation, a
// sharded replicated database served through every endpoint by redis-cli,
// ioredis and redis-benchmark, the CLI's database commands, shard restarts,
// malformed input, deletion, and the capability gate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { Redis } from 'ioredis';
import { TestCluster, type BdbJson, createDb, waitDbStatus, waitFor, shardCli, redisCli, sleep } from '../support/cluster.js';

const cluster = new TestCluster(4, 3);
const [n1, n2, n3] = cluster.nodes;
let db: BdbJson;

before(async () => {
  await cluster.startAll();
  await cluster.form('db.test');
});
after(async () => {
  await cluster.stop();
});

const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;

test('invalid database fields are refused with the reference error codes (406 invalid configuration, 400 malformed), and nothing is created', async () => {
  const cases: [Record<string, unknown>, number, string][] = [
    [{ memory_size: 100 << 20 }, 406, 'missing_db_name'],
    [{ name: 'a' }, 406, 'missing_memory_size'],
    [{ name: 'a', memory_size: 100 << 20, shards_count: 2, sharding: false }, 406, 'invalid_sharding'],
    [{ name: 'a', memory_size: 100 << 20, shards_count: 0, sharding: true }, 406, 'invalid_sharding'],
    [{ name: 'a', memory_size: 100 << 20, proxy_policy: 'everywhere' }, 406, 'invalid_proxy_policy'],
    [{ name: 'a', memory_size: 100 << 20, port: 80 }, 406, 'invalid_port'],
    [{ name: 'a', memory_size: 100 << 20, data_persistence: 'sometimes' }, 406, 'invalid_data_persistence'],
    [{ name: 'a', memory_size: '100' }, 400, 'invalid_schema'],
    [{ name: 'a', memory_size: 100 << 20, replication: 'yes' }, 400, 'invalid_schema'],
    [{ name: 'a', memory_size: 100 << 20, colour: 'blue' }, 400, 'invalid_schema'],
    [{ name: 'a', memory_size: 1000 }, 406, 'invalid_memory_size'],
  ];
  for (const [body, status, code] of cases) {
    const r = await n1.api<{ error_code: string; description: string }>('POST', '/v1/bdbs', body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.equal(r.body.error_code, code, JSON.stringify(body));
    assert.ok(r.body.description.length > 5);
  }
  // A port taken by something else on one of the nodes.
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(15999, n3.addr, () => r()));
  try {
    const r = await n1.api<{ error_code: string; description: string }>('POST', '/v1/bdbs', {
      name: 'a',
      memory_size: 100 << 20,
      port: 15999,
    });
    assert.equal(r.status, 406);
    assert.equal(r.body.error_code, 'port_unavailable');
    assert.match(r.body.description, /node 3/);
  } finally {
    squatter.close();
  }
  const list = await n2.api<unknown[]>('GET', '/v1/bdbs');
  assert.deepEqual(list.body, []);
  const missing = await n2.api<{ error_code: string }>('GET', '/v1/bdbs/42');
  assert.equal(missing.status, 404);
});

test('a 3-shard replicated database: placement, memory limit, actions, and a port that is taken', async () => {
  const r = await n1.api<BdbJson>('POST', '/v1/bdbs', {
    name: 'main',
    memory_size: 300 << 20,
    shards_count: 3,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: 12001,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.status, 'pending');
  db = await waitDbStatus(n2, r.body.uid, 'active');
  const masters = db.shards.filter((s) => s.role === 'master');
  const replicas = db.shards.filter((s) => s.role === 'slave');
  assert.equal(masters.length, 3);
  assert.equal(replicas.length, 3);
  assert.equal(new Set(masters.map((s) => s.node_uid)).size, 3, 'masters spread over the nodes');
  for (const rep of replicas) {
    const master = masters.find((m) => m.uid === rep.master_uid)!;
    assert.notEqual(rep.node_uid, master.node_uid, "a replica is never on its master's node");
  }
  assert.deepEqual(db.endpoints[0].addr, [n1.addr, n2.addr, n3.addr]);
  const action = await n3.api<{ status: string; progress: number }>('GET', `/v1/actions/${db.action_uid}`);
  assert.equal(action.body.status, 'completed');

  // memory_size is enforced on the shards: maxmemory = memory_size / shards_count.
  const s = masters[0];
  assert.equal(await shardCli(nodeByUid(s.node_uid), s.uid, ['CONFIG', 'GET', 'maxmemory']), `maxmemory\n${100 << 20}`);
  // Shards listen on a unix socket only.
  assert.equal(await shardCli(nodeByUid(s.node_uid), s.uid, ['CONFIG', 'GET', 'port']), 'port\n0');

  const dup = await n1.api<{ error_code: string }>('POST', '/v1/bdbs', { name: 'other', memory_size: 100 << 20, port: 12001 });
  assert.equal(dup.status, 406);
  assert.equal(dup.body.error_code, 'port_unavailable');
});

test('every endpoint serves redis-cli and ioredis; keys written on one node are read on another', async () => {
  for (const [i, n] of cluster.nodes.entries()) {
    const set = await redisCli(n.addr, db.port, ['SET', `k:${i}`, `v${i}`]);
    assert.equal(set.stdout.trim(), 'OK', set.stderr);
  }
  for (const n of cluster.nodes) {
    for (let i = 0; i < 3; i++) assert.equal((await redisCli(n.addr, db.port, ['GET', `k:${i}`])).stdout.trim(), `v${i}`);
  }
  const clients = cluster.nodes.map((n) => new Redis({ host: n.addr, port: db.port, maxRetriesPerRequest: 0, lazyConnect: true }));
  try {
    await Promise.all(clients.map((c) => c.connect()));
    const keys = Array.from({ length: 300 }, (_, i) => `user:${i}`);
    await clients[0].mset(Object.fromEntries(keys.map((k) => [k, k.toUpperCase()])));
    assert.deepEqual(
      await clients[2].mget(...keys),
      keys.map((k) => k.toUpperCase()),
    );
    assert.equal(await clients[1].dbsize(), 303);
    await clients[1].hset('h', 'a', '1', 'b', '2');
    assert.deepEqual(await clients[2].hgetall('h'), { a: '1', b: '2' });
    await clients[2].rpush('list', 'x', 'y');
    assert.deepEqual(await clients[0].lrange('list', 0, -1), ['x', 'y']);
    // Every shard holds some of the keys, and its replica has the same ones.
    const counts: number[] = [];
    for (const m of db.shards.filter((s) => s.role === 'master')) {
      const node = nodeByUid(m.node_uid);
      const c = Number(await shardCli(node, m.uid, ['DBSIZE']));
      counts.push(c);
      const rep = db.shards.find((s) => s.master_uid === m.uid)!;
      await waitFor(
        `replica ${rep.uid} in sync`,
        async () => Number(await shardCli(nodeByUid(rep.node_uid), rep.uid, ['DBSIZE'])) === c,
        10_000,
      );
    }
    assert.ok(
      counts.every((c) => c > 50),
      `keys spread over shards: ${counts}`,
    );
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      305,
    );
  } finally {
    clients.forEach((c) => c.disconnect());
  }
});

test('redis-benchmark runs through every endpoint with no errors', async () => {
  for (const n of cluster.nodes) {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        'redis-benchmark',
        ['-h', n.addr, '-p', String(db.port), '-t', 'set,get,incr,lpush,rpush,lpop,sadd,hset,mset', '-n', '20000', '-c', '20', '-q'],
        { timeout: 180_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout + stderr)),
      ),
    );
    for (const t of ['SET', 'GET', 'INCR', 'LPUSH', 'RPUSH', 'LPOP', 'SADD', 'HSET', 'MSET'])
      assert.match(out, new RegExp(`^${t}[^:]*: [\\d.]+ requests per second`, 'm'), out);
    assert.doesNotMatch(out, /error|ERR/i, out);
  }
});

test('CLI: status sections, info db, tune db', async () => {
  const s = await n1.cli(['status']);
  assert.equal(s.code, 0, s.stderr);
  for (const section of ['CLUSTER:', 'CLUSTER NODES:', 'DATABASES:', 'ENDPOINTS:', 'SHARDS:'])
    assert.match(s.stdout, new RegExp(`^${section}$`, 'm'));
  assert.match(s.stdout, new RegExp(`^db:${db.uid} +main +redis +active +3 `, 'm'));
  assert.equal((s.stdout.match(new RegExp(`^db:${db.uid} +main +redis:\\d+ +node:\\d +(master|slave)`, 'gm')) ?? []).length, 6);

  const i = await n2.cli(['info', 'db', String(db.uid)]);
  assert.match(i.stdout, /^data_internode_encryption: disabled$/m);
  assert.match(i.stdout, /^name: main$/m);
  const byName = await n2.cli(['info', 'db', 'main']);
  assert.equal(byName.stdout, i.stdout);

  const bad = await n2.cli(['tune', 'db', String(db.uid), 'data_internode_encryption', 'on']);
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  const none = await n2.cli(['info', 'db', '99']);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /^error: database 99 does not exist/);
});

test('a killed master shard fails over to its replica with no data lost, and comes back as the replica; malformed RESP never takes the proxy down', async () => {
  const m = db.shards.find((s) => s.role === 'master' && s.node_uid === n2.uidFromDisk)!;
  const r = db.shards.find((s) => s.master_uid === m.uid)!;
  const c = new Redis({ host: n1.addr, port: db.port, maxRetriesPerRequest: 1 });
  try {
    const keys = Array.from({ length: 300 }, (_, i) => `survivor:${i}`);
    await c.mset(Object.fromEntries(keys.map((k) => [k, k])));
    await waitFor('replica caught up', async () =>
      /master_link_status:up/.test(await shardCli(nodeByUid(r.node_uid), r.uid, ['INFO', 'replication'])),
    );
    await sleep(500);
    const pid = Number((await shardCli(n2, m.uid, ['INFO', 'server'])).match(/process_id:(\d+)/)![1]);
    process.kill(pid, 'SIGKILL');
    const after = await waitFor(
      'roles swapped and active',
      async () => {
        const b = (await n3.api<BdbJson>('GET', `/v1/bdbs/${db.uid}`)).body;
        const nm = b.shards.find((s) => s.uid === r.uid);
        const no = b.shards.find((s) => s.uid === m.uid);
        return b.status === 'active' && nm?.role === 'master' && no?.role === 'slave' && no.master_uid === r.uid ? b : undefined;
      },
      30_000,
    );
    db = after;
    // The old master is back, as a replica of the new one, holding the data again.
    await waitFor(
      'old master replicates from the new one',
      async () => /role:slave[\s\S]*master_link_status:up/.test(await shardCli(n2, m.uid, ['INFO', 'replication'])),
      20_000,
    );
    await waitFor(
      'every key readable through the endpoint',
      async () => {
        const got = await c.mget(...keys);
        return got.every((v, i) => v === keys[i]);
      },
      20_000,
    );
    for (let i = 0; i < 30; i++) await c.set(`after-failover:${i}`, 'ok');
    assert.equal(await c.get('after-failover:29'), 'ok');
  } finally {
    c.disconnect();
  }

  for (const garbage of ['*2\r\n$3\r\nGET\r\n$-5\r\n', '*abc\r\n', '*1\r\n$999999999999\r\n', '*3\r\nxx\r\n']) {
    const reply = await new Promise<string>((resolve) => {
      const s = net.connect(db.port, n3.addr, () => s.write(garbage));
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
      setTimeout(() => s.destroy(), 2000);
    });
    assert.match(reply, /^-ERR Protocol error/, JSON.stringify(garbage));
  }
  assert.equal((await redisCli(n3.addr, db.port, ['PING'])).stdout.trim(), 'PONG');
});

test('deleting a database stops its shards and endpoints and frees its port', async () => {
  const small = await createDb(n1, { name: 'tmp', memory_size: 50 << 20, port: 12050 });
  assert.equal((await redisCli(n1.addr, 12050, ['SET', 'a', 'b'])).stdout.trim(), 'OK');
  const shard = small.shards[0];
  const node = nodeByUid(shard.node_uid);
  const d = await n2.api<{ status: string }>('DELETE', `/v1/bdbs/${small.uid}`);
  assert.equal(d.status, 200);
  assert.equal(d.body.status, 'delete-pending');
  await waitFor('database gone', async () => (await n3.api('GET', `/v1/bdbs/${small.uid}`)).status === 404, 30_000);
  assert.equal(fs.existsSync(path.join(node.dataDir, 'shards', String(shard.uid))), false, 'shard directory removed');
  await waitFor('port closed', async () => !(await canConnect(n1.addr, 12050)));
  const again = await createDb(n2, { name: 'tmp2', memory_size: 50 << 20, port: 12050 });
  assert.equal(again.port, 12050, 'port reusable');
  await n2.api('DELETE', `/v1/bdbs/${again.uid}`);
  // Deleting what does not exist (or twice) is refused before any action is made.
  const actionsBefore = (await n1.api<{ actions: unknown[] }>('GET', '/v1/actions')).body.actions.length;
  const missing = await n1.api<{ error_code: string }>('DELETE', '/v1/bdbs/4242');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error_code, 'db_not_exist');
  const twice = await n1.api<{ error_code: string }>('DELETE', `/v1/bdbs/${again.uid}`);
  assert.ok(twice.status === 409 || twice.status === 404, `second delete: ${twice.status}`);
  assert.equal((await n1.api<{ actions: unknown[] }>('GET', '/v1/actions')).body.actions.length, actionsBefore, 'no orphan action');
});

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

test('enabling encryption is refused while a node lacks the capability', async () => {
  const mixed = new TestCluster(5, 2, (i) => (i === 1 ? ['--without-capability', 'data_internode_encryption'] : []));
  try {
    await mixed.startAll();
    await mixed.form('mixed.test');
    const [a] = mixed.nodes;
    const create = await a.api<{ error_code: string; description: string }>('POST', '/v1/bdbs', {
      name: 'enc',
      memory_size: 50 << 20,
      data_internode_encryption: true,
    });
    assert.equal(create.status, 406);
    assert.equal(create.body.error_code, 'capability_missing');
    assert.match(create.body.description, /node\(s\) 2/);
    const plain = await createDb(a, { name: 'plain', memory_size: 50 << 20 });
    const tune = await a.cli(['tune', 'db', String(plain.uid), 'data_internode_encryption', 'enabled']);
    assert.notEqual(tune.code, 0);
    assert.match(tune.stderr, /needs every node to support it/);
    const after = await a.api<BdbJson>('GET', `/v1/bdbs/${plain.uid}`);
    assert.equal(after.body.data_internode_encryption, false);
  } finally {
    await mixed.stop();
  }
  await sleep(0);
});
