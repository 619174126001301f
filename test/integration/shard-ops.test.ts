// Operator shard operations (issue 8): a 3-node cluster runs a 2-shard
// replicated, encrypted database under steady write load through two
// endpoints. A planned failover (`tessera failover db 1 shard <master>`), a
// migration of a replica (`tessera migrate shard <r> target_node <n>`) and a
// migration of a master (REST, its action followed while it runs) leave the
// expected placement, every write that was acknowledged reads back, and no
// command fails (the failures of each operation are counted and printed). A
// non-replicated database's only shard migrates with its data. Errors: CLI
// exit code and message, REST status and error_code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { TestCluster, TestNode, type BdbJson, createDb, waitFor, shardCli, sleep, USER, PASSWORD } from '../support/cluster.js';
import { Load, readBack } from '../support/load.js';

const cluster = new TestCluster(16, 3);
const [n1, n2, n3] = cluster.nodes;
let db: BdbJson;
let solo: BdbJson;
/** Nodes started by a test besides the cluster's three. */
const extra: TestNode[] = [];

type Shard = BdbJson['shards'][number];
type ActionJson = {
  action_uid: string;
  name: string;
  status: string;
  progress: number;
  description?: string;
  steps?: string[];
  error?: string;
};
type ErrorJson = { error_code: string; description: string };

const nodeByUid = (uid: number) => [...cluster.nodes, ...extra].find((n) => n.uidFromDisk === uid)!;
const allNodeUids = () => cluster.nodes.map((n) => n.uidFromDisk!);
async function bdb(uid = db.uid): Promise<BdbJson> {
  return (await n1.api<BdbJson>('GET', `/v1/bdbs/${uid}`)).body;
}
/** The master of a shard's slots and its replicas. */
function familyOf(b: BdbJson, s: Shard): Shard[] {
  const m = s.role === 'master' ? s : b.shards.find((x) => x.uid === s.master_uid)!;
  return b.shards.filter((x) => x.uid === m.uid || x.master_uid === m.uid);
}
/** A node that holds no shard of this shard's slots. */
function freeNodeFor(b: BdbJson, s: Shard): number {
  const used = new Set(familyOf(b, s).map((x) => x.node_uid));
  const t = allNodeUids().find((u) => !used.has(u));
  assert.ok(t !== undefined, `no free node for shard ${s.uid}: ${JSON.stringify(b.shards)}`);
  return t;
}
async function role(s: Shard): Promise<string> {
  return /role:(\w+)/.exec(await shardCli(nodeByUid(s.node_uid), s.uid, ['INFO', 'replication']))?.[1] ?? '?';
}

let loads: Load[] = [];
const snap = () => loads.map((l) => l.snapshot());
function report(what: string, before: ReturnType<typeof snap>, ms: number): void {
  const parts = loads.map((l, i) => {
    const b = before[i];
    const errs = [...l.errors].map(([k, v]) => [k, v - (b.errors.get(k) ?? 0)] as const).filter(([, v]) => v > 0);
    return `${l.name}: ${l.ok - b.ok} ok, ${l.failed - b.failed} failed${errs.length ? ` (${errs.map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`;
  });
  console.log(`# ${what} took ${ms} ms; load meanwhile: ${parts.join('; ')}`);
}

async function waitSynced(s: Shard): Promise<void> {
  await waitFor(
    `shard ${s.uid} in sync`,
    async () => /master_link_status:up/.test(await shardCli(nodeByUid(s.node_uid), s.uid, ['INFO', 'replication']).catch(() => '')),
    30_000,
    200,
  );
}

before(async () => {
  await cluster.startAll();
  await cluster.form('shardops.test');
  db = await createDb(n1, {
    name: 'ops',
    memory_size: 200 << 20,
    shards_count: 2,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: 12960,
    data_internode_encryption: true,
  });
  solo = await createDb(n1, {
    name: 'solo',
    memory_size: 50 << 20,
    shards_count: 1,
    proxy_policy: 'all-nodes',
    port: 12961,
    data_internode_encryption: true,
  });
  for (const s of db.shards.filter((x) => x.role === 'slave')) await waitSynced(s);
  loads = [new Load('via-n1', n1, db.port, 3), new Load('via-n3', n3, db.port, 3)];
  await sleep(1000);
});
after(async () => {
  await Promise.all(loads.map((l) => l.stop()));
  await Promise.all(extra.map((n) => n.kill('SIGKILL')));
  await cluster.stop();
});

test('tessera failover db 1 shard <master>: its replica takes the slots under load, the old master becomes its replica', async () => {
  const b0 = await bdb();
  const m = b0.shards.find((s) => s.role === 'master')!;
  const r = b0.shards.find((s) => s.master_uid === m.uid)!;
  const before = snap();
  const t0 = Date.now();
  const res = await n2.cli(['failover', 'db', String(db.uid), 'shard', String(m.uid)]);
  const ms = Date.now() - t0;
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  assert.match(res.stdout, /writes paused at offset \d+/);
  assert.match(res.stdout, /Finished successfully\s*$/);
  await sleep(500);
  report('planned failover (CLI)', before, ms);

  const b1 = await bdb();
  const nr = b1.shards.find((s) => s.uid === r.uid)!;
  const nm = b1.shards.find((s) => s.uid === m.uid)!;
  assert.equal(nr.role, 'master');
  assert.equal(nr.assigned_slots, m.assigned_slots);
  assert.equal(nr.node_uid, r.node_uid);
  assert.equal(nm.role, 'slave');
  assert.equal(nm.master_uid, r.uid);
  assert.equal(b1.status, 'active');
  assert.equal(await role(nr), 'master');
  assert.equal(await role(nm), 'slave');
  await waitSynced(nm);
  // The write fence was lifted: should the old master be promoted again, it takes writes.
  assert.equal(await shardCli(nodeByUid(nm.node_uid), nm.uid, ['CONFIG', 'GET', 'min-replicas-to-write']), 'min-replicas-to-write\n0');
});

test('tessera migrate shard <replica> target_node <n>: a new replica syncs there, the old one is removed with its files', async () => {
  const b0 = await bdb();
  const x = b0.shards.find((s) => s.role === 'slave')!;
  const target = freeNodeFor(b0, x);
  const before = snap();
  const t0 = Date.now();
  const res = await n1.cli(['migrate', 'shard', String(x.uid), 'target_node', String(target)]);
  const ms = Date.now() - t0;
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  assert.match(res.stdout, /in sync with shard/);
  assert.match(res.stdout, /Done\s*$/);
  report('replica migration (CLI)', before, ms);

  const b1 = await bdb();
  assert.equal(b1.shards.length, 4);
  assert.ok(!b1.shards.some((s) => s.uid === x.uid), 'the old replica is gone');
  const moved = b1.shards.find((s) => s.node_uid === target && s.master_uid === x.master_uid)!;
  assert.ok(moved, JSON.stringify(b1.shards));
  assert.equal(moved.role, 'slave');
  assert.equal(moved.assigned_slots, x.assigned_slots);
  await waitSynced(moved);
  await waitFor(
    "the old replica's files are removed",
    async () => !fs.existsSync(path.join(nodeByUid(x.node_uid).dataDir, 'shards', String(x.uid))),
    20_000,
  );
  const shards = (await n1.api<{ uid: string; node_uid: string; role: string }[]>('GET', '/v1/shards')).body;
  assert.ok(
    shards.some((s) => s.uid === String(moved.uid) && s.node_uid === String(target) && s.role === 'slave'),
    '/v1/shards shows the new replica',
  );
});

test('POST /v1/shards/{master}/actions/migrate: followed through GET /v1/actions while it runs; the new shard on the target is the master', async () => {
  const b0 = await bdb();
  const m = b0.shards.find((s) => s.role === 'master')!;
  const other = b0.shards.find((s) => s.role === 'master' && s.uid !== m.uid)!;
  const replica = b0.shards.find((s) => s.master_uid === m.uid)!;
  const target = freeNodeFor(b0, m);
  const before = snap();
  const t0 = Date.now();
  const r = await n3.api<{ action_uid: string; description: string }>('POST', `/v1/shards/${m.uid}/actions/migrate`, {
    target_node_uid: target,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.description, 'Migrate was triggered');
  // One operation per database at a time.
  const busy = await n1.api<ErrorJson>('POST', `/v1/shards/${other.uid}/actions/failover`, {});
  assert.equal(busy.status, 409, JSON.stringify(busy.body));
  assert.equal(busy.body.error_code, 'db_busy');

  const seen: ActionJson[] = [];
  const done = await waitFor(
    'the migration action finishes',
    async () => {
      const a = (await n2.api<ActionJson>('GET', `/v1/actions/${r.body.action_uid}`)).body;
      if (seen.at(-1)?.description !== a.description || seen.at(-1)?.status !== a.status) seen.push(a);
      return a.status === 'completed' || a.status === 'failed' ? a : undefined;
    },
    90_000,
    50,
  );
  const ms = Date.now() - t0;
  report('master migration (REST)', before, ms);
  assert.equal(done.status, 'completed', JSON.stringify(done));
  assert.equal(done.progress, 100);
  assert.equal(done.name, 'shard_migrate');
  const running = seen.filter((a) => a.status === 'active' && a.progress > 0 && a.progress < 100);
  assert.ok(
    running.length >= 1,
    `progress readable while it runs: ${JSON.stringify(seen.map((a) => [a.status, a.progress, a.description]))}`,
  );
  const steps = done.steps ?? [];
  for (const re of [
    /adding shard \d+ on node/,
    /is in sync with shard/,
    /writes paused at offset \d+; waiting for shard/,
    /switching roles/,
    /is a replica of shard \d+; writes resumed/,
    /removing shard/,
  ]) {
    assert.ok(
      steps.some((x) => re.test(x)),
      `step ${re} reported: ${JSON.stringify(steps)}`,
    );
  }

  const b1 = await bdb();
  assert.ok(!b1.shards.some((s) => s.uid === m.uid), 'the old master is gone');
  const nm = b1.shards.find((s) => s.node_uid === target && s.assigned_slots === m.assigned_slots)!;
  assert.equal(nm.role, 'master', JSON.stringify(b1.shards));
  assert.equal(b1.shards.find((s) => s.uid === replica.uid)?.master_uid, nm.uid, 'the other replica follows the new master');
  assert.equal(b1.shards.filter((s) => s.role === 'master').length, 2);
  for (const s of b1.shards) {
    const fam = familyOf(b1, s);
    assert.equal(new Set(fam.map((x) => x.node_uid)).size, fam.length, 'never a master and its replica on one node');
  }
  assert.equal(await role(nm), 'master');
  await waitSynced(b1.shards.find((s) => s.uid === replica.uid)!);
});

test('tessera node 4 remove: a fourth node holding a master and a replica is emptied under load (its shards migrate), then removed', async () => {
  // A node joins, takes a master and a replica by migration, and is removed
  // again: the remaining three nodes keep the later tests' layout.
  const n4 = new TestNode('127.0.16.4', path.join(cluster.root, 'n4'));
  extra.push(n4);
  await n4.start();
  const j = await n4.cli(['cluster', 'join', 'nodes', n1.addr, 'username', USER, 'password', PASSWORD]);
  assert.equal(j.code, 0, `${j.stdout}\n${j.stderr}`);
  const uid4 = n4.uidFromDisk!;
  await waitFor(
    'node 4 is active',
    async () => (await n1.api<{ status: string }>('GET', `/v1/nodes/${uid4}`)).body.status === 'active',
    30_000,
  );
  let b0 = await bdb();
  const [ma, mb] = b0.shards.filter((s) => s.role === 'master');
  const rb = b0.shards.find((s) => s.master_uid === mb.uid)!;
  for (const s of [ma, rb]) {
    const res = await n1.cli(['migrate', 'shard', String(s.uid), 'target_node', String(uid4)]);
    assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  }
  b0 = await bdb();
  const on4 = b0.shards.filter((s) => s.node_uid === uid4);
  assert.deepEqual(on4.map((s) => s.role).sort(), ['master', 'slave'], JSON.stringify(b0.shards));
  for (const s of b0.shards.filter((x) => x.role === 'slave')) await waitSynced(s);
  // Node 4 is also made the cluster master (rladmin's `cluster master set`):
  // the node being removed runs the removal, then hands the role over.
  const set = await n1.cli(['cluster', 'master', 'set', String(uid4)]);
  assert.equal(set.code, 0, set.stderr);
  assert.equal(set.stdout, `Node ${uid4} set to be the cluster master node\n`);
  await waitFor(
    'node 4 is the master everywhere',
    async () => {
      for (const n of [n1, n2, n3])
        if ((await n.cli(['cluster', 'master'])).stdout !== `Node ${uid4} is the cluster master node\n`) return false;
      return true;
    },
    10_000,
    200,
  );
  const badSet = await n1.api<ErrorJson>('POST', '/v1/cluster/actions/change_master', { node_uid: '77' });
  assert.deepEqual([badSet.status, badSet.body.error_code], [404, 'node_not_found']);

  const before = snap();
  const t0 = Date.now();
  const res = await n2.cli(['node', String(uid4), 'remove']);
  report('removal of a node holding a master and a replica (CLI)', before, Date.now() - t0);
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  assert.match(res.stdout, new RegExp(`^Removing node ${uid4}: migrating its shards to the other nodes \\(action \\d+\\)`));
  assert.match(res.stdout, /is in sync with shard/);
  assert.match(res.stdout, /it is the cluster master, so it hands the role over and the next master removes it/);
  assert.match(res.stdout, /denying its certificates and removing it from the cluster/);
  assert.match(res.stdout, new RegExp(`Node ${uid4} removed\\n$`));

  const nodes = (await n1.api<{ uid: number }[]>('GET', '/v1/nodes')).body.map((n) => n.uid);
  assert.ok(!nodes.includes(uid4), `node ${uid4} is gone: ${nodes}`);
  assert.match((await n1.cli(['cluster', 'master'])).stdout, /^Node [123] is the cluster master node\n$/);
  const b1 = await bdb();
  assert.ok(!b1.shards.some((s) => s.node_uid === uid4), JSON.stringify(b1.shards));
  assert.equal(b1.shards.length, 4);
  assert.equal(b1.shards.filter((s) => s.role === 'master').length, 2);
  for (const s of b1.shards) {
    const fam = familyOf(b1, s);
    assert.equal(new Set(fam.map((x) => x.node_uid)).size, fam.length, 'never a master and its replica on one node');
  }
  for (const s of b1.shards.filter((x) => x.role === 'slave')) await waitSynced(s);
  await n4.kill('SIGTERM');
});

test('no acknowledged write was lost through the operations', async () => {
  await Promise.all(loads.map((l) => l.stop()));
  const all = new Map<string, string>();
  for (const l of loads) for (const [k, v] of l.acked) all.set(k, v);
  const wrong = await readBack(n2, db.port, all);
  const failed = loads.reduce((a, l) => a + l.failed, 0);
  const ok = loads.reduce((a, l) => a + l.ok, 0);
  const kinds = new Map<string, number>();
  for (const l of loads) for (const [k, v] of l.errors) kinds.set(k, (kinds.get(k) ?? 0) + v);
  console.log(
    `# load total: ${ok} writes acknowledged, ${failed} failed (${[...kinds].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}); ${all.size} acknowledged keys read back, ${wrong.length} missing or wrong`,
  );
  assert.ok(all.size > 1000, `enough load: ${all.size}`);
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} acknowledged writes lost`);
  // Planned operations hold the commands that meet the switch and re-send
  // the ones a demoted master refused (-READONLY): no client sees an error.
  assert.equal(failed, 0, `commands failed during planned operations: ${[...kinds].map(([k, v]) => `${k} ${v}`).join(', ')}`);
});

test("a non-replicated database's only shard migrates with its data; it cannot be failed over", async () => {
  const c = new Redis({ host: n1.addr, port: solo.port, maxRetriesPerRequest: 0 });
  try {
    for (let i = 0; i < 500; i++) await c.set(`solo:${i}`, `v${i}`);
  } finally {
    c.disconnect();
  }
  const s = solo.shards[0];
  const target = allNodeUids().find((u) => u !== s.node_uid)!;
  const noReplica = await n1.cli(['failover', 'db', 'solo', 'shard', String(s.uid)]);
  assert.notEqual(noReplica.code, 0);
  assert.match(noReplica.stderr, /^error: shard \d+ has no replica to fail over to .*\(shard_has_no_replica\)\n$/);
  const t0 = Date.now();
  const res = await n2.cli(['migrate', 'db', 'solo', 'shard', String(s.uid), 'target_node', String(target)]);
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  console.log(`# non-replicated master migration took ${Date.now() - t0} ms`);
  const b = await bdb(solo.uid);
  assert.equal(b.shards.length, 1);
  assert.equal(b.shards[0].node_uid, target);
  assert.equal(b.shards[0].role, 'master');
  assert.notEqual(b.shards[0].uid, s.uid);
  const expect = new Map(Array.from({ length: 500 }, (_, i) => [`solo:${i}`, `v${i}`] as const));
  assert.deepEqual(await readBack(n3, solo.port, expect), []);
});

test('immediate: the switch does not wait for the replica', async () => {
  const b0 = await bdb();
  const m = b0.shards.find((s) => s.role === 'master')!;
  const r = b0.shards.find((s) => s.master_uid === m.uid)!;
  const res = await n1.cli(['failover', 'shard', `redis:${m.uid}`, 'immediate']);
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  assert.match(res.stdout, /switching at once \(immediate\)/);
  const b1 = await bdb();
  assert.equal(b1.shards.find((s) => s.uid === r.uid)?.role, 'master');
  assert.equal(b1.shards.find((s) => s.uid === m.uid)?.master_uid, r.uid);
});

test('errors: CLI one line and a non-zero exit; REST status and error_code', async () => {
  const b = await bdb();
  const m = b.shards.find((s) => s.role === 'master')!;
  const r = b.shards.find((s) => s.master_uid === m.uid)!;
  const soloShard = (await bdb(solo.uid)).shards[0];

  const cliCases: [string[], RegExp][] = [
    [
      ['failover', 'db', String(db.uid), 'shard', String(r.uid)],
      /shard \d+ is a replica; fail over its master, shard \d+ \(shard_is_slave\)/,
    ],
    [['failover', 'shard', '9999'], /shard 9999 does not exist \(shard_not_exist\)/],
    [
      ['failover', 'db', String(db.uid), 'shard', String(soloShard.uid)],
      new RegExp(`shard ${soloShard.uid} is not a shard of db:${db.uid}`),
    ],
    [['failover', 'db', String(db.uid)], /'shard <uid>' is required/],
    [['migrate', 'shard', String(r.uid), 'target_node', String(r.node_uid)], /is already on node \d+ \(shard_already_on_node\)/],
    [
      ['migrate', 'shard', String(r.uid), 'target_node', String(m.node_uid)],
      /already holds shard \d+, the master of slots .* never on one node \(target_holds_same_slots\)/,
    ],
    [['migrate', 'shard', String(r.uid), 'target_node', '99'], /node 99 does not exist \(node_not_found\)/],
    [['migrate', 'shard', String(r.uid)], /'target_node <uid>' is required/],
  ];
  for (const [args, re] of cliCases) {
    const res = await n1.cli(args);
    assert.notEqual(res.code, 0, args.join(' '));
    assert.match(res.stderr, re, args.join(' '));
    assert.equal(res.stderr.trim().split('\n').length, 1, `one line: ${res.stderr}`);
  }

  const restCases: [string, unknown, number, string][] = [
    [`/v1/shards/${r.uid}/actions/failover`, {}, 400, 'shard_is_slave'],
    [`/v1/shards/${r.uid}/actions/failover`, undefined, 400, 'shard_is_slave'],
    ['/v1/shards/actions/migrate', undefined, 404, 'shard_uids_required'],
    ['/v1/shards/99999/actions/failover', {}, 404, 'shard_not_exist'],
    ['/v1/shards/actions/failover', { shard_uids: [] }, 404, 'shard_uids_required'],
    ['/v1/shards/actions/failover', { shard_uids: [String(m.uid), String(soloShard.uid)] }, 400, 'failover_shards_different_bdb'],
    [`/v1/shards/${soloShard.uid}/actions/failover`, {}, 400, 'shard_has_no_replica'],
    [`/v1/shards/${m.uid}/actions/failover`, { force: true }, 400, 'invalid_schema'],
    [`/v1/shards/${r.uid}/actions/migrate`, {}, 404, 'target_node_uid_required'],
    [`/v1/shards/${r.uid}/actions/migrate`, { target_node_uid: 42 }, 404, 'node_not_found'],
    [`/v1/shards/${r.uid}/actions/migrate`, { target_node_uid: r.node_uid }, 400, 'shard_already_on_node'],
    [`/v1/shards/${r.uid}/actions/migrate`, { target_node_uid: String(m.node_uid) }, 400, 'target_holds_same_slots'],
    ['/v1/shards/actions/migrate', { shard_uids: ['99999'], target_node_uid: 1 }, 404, 'shard_not_exist'],
  ];
  for (const [p, body, status, code] of restCases) {
    const res = await n2.api<ErrorJson>('POST', p, body);
    assert.equal(res.status, status, `${p} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error_code, code, `${p}: ${JSON.stringify(res.body)}`);
  }

  // A node that is down: never a target, and a replica there cannot take over.
  assert.equal((await n1.api('PUT', '/v1/cluster/policy', { failover_timeout: 120 })).status, 200);
  const victimUid = r.node_uid;
  assert.notEqual(victimUid, n1.uidFromDisk);
  const victim = nodeByUid(victimUid);
  await victim.kill('SIGKILL');
  const asker = cluster.nodes.find((n) => n !== victim)!;
  const down = await waitFor(
    'the killed node is seen down',
    async () => {
      const res = await asker.api<ErrorJson>('POST', `/v1/shards/${m.uid}/actions/failover`, {});
      return res.status === 409 && res.body.error_code === 'replica_not_available' ? res : undefined;
    },
    30_000,
    250,
  );
  assert.match(down.body.description, new RegExp(`is on node ${victimUid}, which is down`));
  const toDown = await asker.api<ErrorJson>('POST', `/v1/shards/${m.uid}/actions/migrate`, { target_node_uid: victimUid });
  assert.equal(toDown.status, 409, JSON.stringify(toDown.body));
  assert.equal(toDown.body.error_code, 'node_down');
  const cliDown = await asker.cli(['failover', 'shard', String(m.uid)]);
  assert.notEqual(cliDown.code, 0);
  assert.match(cliDown.stderr, /which is down \(replica_not_available\)/);
});
