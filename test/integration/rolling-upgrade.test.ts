// The rolling upgrade (issue 20): three 0.1.0 nodes (the previous release,
// built from its commit) hold a replicated, sharded, encrypted database; they
// are upgraded one at a time to the working tree's build on the same data
// directories, the cluster master's node last. Each step: empty the node
// (`emptyNode`: failover and migrate, 0.1.0's own commands while no node runs
// 0.2.0), stop it with SIGTERM, start this build, wait for status OK. Writers
// write through the endpoints of the two nodes not being upgraded, and every
// error counts. Asserted, step by step: 0 failed commands, the cluster version
// 0.1 until the last node runs 0.2.0 and then 0.2, a gated change (maintenance
// mode) refused while any member is older (409 cluster_version_too_old naming
// them), `verify encryption` clean with the CLI of every release running; at
// the end 0 acknowledged keys lost, certificates, users, databases and cluster
// settings as they were, and maintenance mode let through and carried out.
// The figures (failed commands, seconds per node, keys lost) are printed.
// Then the reverse direction.
//
// Addresses: 127.0.52.11-13 (written here: run it under flock /tmp/tessera-integ.lock
// if another file might use them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
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
const NEW_VERSION = '0.2.0';
let oldBin: string;
let nodes: TestNode[] = [];
let dbUid: number;
/** Every writer of the run: their acknowledged keys are read back at the end. */
const writers: Writer[] = [];

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

/** The CLI of the release node `n` runs, against `n`. */
const cliOn = (n: TestNode, args: string[]) => run(n.bin, ['--node', n.addr, ...args]);
const release = (n: TestNode) => (n.bin === BIN ? NEW_VERSION : '0.1.0');

before(async () => {
  oldBin = await previousReleaseBin();
  nodes = [11, 12, 13].map((h, i) => new TestNode(`127.0.52.${h}`, path.join(root, `n${i + 1}`), [], oldBin));
  await Promise.all(nodes.map((n) => n.start()));
  const c = await cliOn(nodes[0], ['cluster', 'create', 'name', 'up.local', 'username', USER, 'password', PASSWORD]);
  assert.equal(c.code, 0, c.stderr);
  for (const n of nodes.slice(1)) {
    const j = await cliOn(n, ['cluster', 'join', 'nodes', nodes[0].addr, 'username', USER, 'password', PASSWORD]);
    assert.equal(j.code, 0, j.stderr);
  }
  const db = await createDb(nodes[0], {
    name: 'up',
    memory_size: 100 << 20,
    port: PORT,
    sharding: true,
    shards_count: 2,
    replication: true,
    data_internode_encryption: true,
    proxy_policy: 'all-nodes',
  });
  dbUid = db.uid;
});

after(async () => {
  await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
  if (!process.env.TESSERA_KEEP_TEST_DIRS) fs.rmSync(root, { recursive: true, force: true });
});

interface Writer {
  prefix: string;
  acked: number[];
  errors: string[];
  stop(): Promise<void>;
}

/** Writes `<prefix>:<i>` through `n`'s endpoint until stopped; every acknowledged key and every failed command is kept. */
async function startWriter(n: TestNode, prefix: string): Promise<Writer> {
  const c = new Redis({ host: n.addr, port: PORT, maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
  c.on('error', () => undefined); // counted per command below
  await c.connect(); // a command sent before the connection is up is not a failed command of the cluster
  const w: Writer = { prefix, acked: [], errors: [], stop: async () => undefined };
  let stop = false;
  const done = (async () => {
    for (let i = 0; !stop; i++) {
      try {
        if ((await c.set(`${prefix}:${i}`, `v${i}`)) === 'OK') w.acked.push(i);
        else w.errors.push(`SET ${prefix}:${i} not OK`);
      } catch (e) {
        w.errors.push(`${new Date().toISOString()} ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  })();
  w.stop = async () => {
    stop = true;
    await done;
    c.disconnect();
  };
  writers.push(w);
  await waitFor(`writes acknowledged through ${n.addr}`, () => w.acked.length > 20, 30_000);
  return w;
}

/** The acknowledged keys of `ws` that do not read back through `via`'s endpoint. */
async function lostThrough(via: TestNode, ws: Writer[]): Promise<string[]> {
  const c = new Redis({ host: via.addr, port: PORT, maxRetriesPerRequest: 0 });
  try {
    const missing: string[] = [];
    for (const w of ws) {
      for (let lo = 0; lo < w.acked.length; lo += 500) {
        const part = w.acked.slice(lo, lo + 500);
        const vals = await c.mget(...part.map((i) => `${w.prefix}:${i}`));
        vals.forEach((v, j) => v !== `v${part[j]}` && missing.push(`${w.prefix}:${part[j]}`));
      }
    }
    return missing;
  } finally {
    c.disconnect();
  }
}

const bdbOf = async (via: TestNode, uid: number) => (await via.api<BdbJson>('GET', `/v1/bdbs/${uid}`)).body;
const clusterOf = async (via: TestNode) =>
  (await via.api<{ master_node_uid: number; cluster_version?: string }>('GET', '/v1/cluster')).body;
type NodeJson = { uid: number; status: string; software_version: string };
const nodesOf = async (via: TestNode) => (await via.api<NodeJson[]>('GET', '/v1/nodes')).body;

/**
 * Empty node `uid` before its software is replaced, with the CLI that `via`
 * runs. Once every member runs 0.2 (cluster version 0.2): maintenance mode,
 * which moves every shard off and keeps new ones away. Before (maintenance
 * mode is gated on 0.2, which a cluster upgraded from 0.1 reaches only when
 * its last node runs 0.2), 0.1.0's own commands: its masters fail over, then
 * every shard left migrates to the node that holds neither it nor its peer;
 * the first node is emptied through a 0.1.0 node with 0.1.0's CLI.
 */
async function emptyNode(uid: number, via: TestNode): Promise<'maintenance mode' | 'failover/migrate'> {
  if (via.bin === BIN && (await clusterOf(via)).cluster_version === '0.2') {
    const r = await cliOn(via, ['node', String(uid), 'maintenance_mode', 'on']);
    assert.equal(r.code, 0, `maintenance_mode on for node ${uid}: ${r.stdout}\n${r.stderr}`);
    assert.deepEqual(
      (await bdbOf(via, dbUid)).shards.filter((x) => x.node_uid === uid),
      [],
    );
    return 'maintenance mode';
  }
  const cmd = (args: string[]) => cliOn(via, args);
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
  return 'failover/migrate';
}

/**
 * Status OK after node `uid` started with `version`: every node active, the
 * node's record showing its version, the database active with every shard OK
 * (replicas in sync), and the node's endpoint answering; asked of `api`.
 */
async function waitOk(n: TestNode, uid: number, version: string, api = n): Promise<void> {
  await waitFor(
    `node ${uid} active, shown with ${version}, and every node active`,
    async () => {
      const ns = await nodesOf(api);
      return ns.every((x) => x.status === 'active') && ns.find((x) => x.uid === uid)?.software_version === version;
    },
    60_000,
  );
  await waitFor(
    'the database active, every shard OK',
    async () => {
      const b = await bdbOf(api, dbUid);
      type Synced = { sync?: { status: string } };
      return b.status === 'active' && b.shards.every((s) => s.status === 'active' && (s as Synced).sync?.status !== 'in_progress');
    },
    60_000,
  );
  const c = new Redis({ host: n.addr, port: PORT, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 200 });
  c.on('error', () => undefined); // refused until the endpoint listens
  try {
    await waitFor(`${n.addr}:${PORT} serves`, async () => (await c.set(`probe:${uid}`, '1').catch(() => undefined)) === 'OK', 30_000);
  } finally {
    c.disconnect();
  }
}

/** Stop `n` with SIGTERM and start `bin` on its data directory (`whileDown` runs between); the seconds each took. */
async function replaceBinary(
  n: TestNode,
  bin: string,
  whileDown?: () => Promise<void>,
): Promise<{ next: TestNode; stop: number; start: number }> {
  let t = Date.now();
  await n.kill('SIGTERM');
  const stop = (Date.now() - t) / 1000;
  await whileDown?.();
  const next = new TestNode(n.addr, n.dataDir, [], bin);
  nodes[nodes.indexOf(n)] = next;
  t = Date.now();
  await next.start();
  return { next, stop, start: (Date.now() - t) / 1000 };
}

/** `verify encryption` with the CLI of every release the cluster runs now, each through a node of that release: clean. */
async function verifyEncryption(when: string): Promise<void> {
  for (const bin of new Set(nodes.map((n) => n.bin))) {
    const via = nodes.find((n) => n.bin === bin)!;
    const v = await cliOn(via, ['verify', 'encryption']);
    assert.equal(v.code, 0, `verify encryption (${release(via)} CLI) ${when}: ${v.stdout}\n${v.stderr}`);
  }
}

type Answer = { error_code?: string; description?: string; action_uid?: string };

/** The gated change: maintenance mode for node `uid` (needs cluster version 0.2: 0.1.0 nodes cannot follow it). */
const gatedChange = (via: TestNode, uid: number) => via.api<Answer>('POST', `/v1/nodes/${uid}/actions/maintenance_on`, {});

/**
 * Refused while `older` run 0.1.0: 409 cluster_version_too_old naming each of them, and nothing changed.
 * `via` names the members by its watched node records: a restarted node's new record reaches it a moment later.
 */
async function assertGateRefuses(via: TestNode, older: number[], when: string): Promise<void> {
  const named = (d: string) => [...d.matchAll(/node (\d+) \(0\.1\.0\)/g)].map((x) => Number(x[1])).sort((a, b) => a - b);
  const want = [...older].sort((a, b) => a - b);
  const target = via.uidFromDisk!;
  const shardsBefore = (await bdbOf(via, dbUid)).shards;
  let last: Awaited<ReturnType<typeof gatedChange>> | undefined;
  await waitFor(
    `${when}: the gate naming nodes ${want.join(', ')}`,
    async () => {
      last = await gatedChange(via, target);
      return last.status !== 409 || JSON.stringify(named(last.body.description ?? '')) === JSON.stringify(want);
    },
    10_000,
  ).catch(() => undefined); // the assertions below say what was answered
  const r = last!;
  assert.equal(r.status, 409, `${when}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.error_code, 'cluster_version_too_old');
  assert.match(r.body.description!, /^maintenance_mode needs cluster version 0\.2; the cluster version is 0\.1; older members: /);
  assert.deepEqual(named(r.body.description!), want, `${when}: ${r.body.description}`);
  assert.equal((r.body.description!.match(/node \d+ \(/g) ?? []).length, older.length, r.body.description);
  const node = (await nodesOf(via)).find((n) => n.uid === target) as NodeJson & { maintenance_mode?: boolean };
  assert.notEqual(node.maintenance_mode, true, `${when}: node ${target} put in maintenance mode`);
  assert.deepEqual((await bdbOf(via, dbUid)).shards, shardsBefore, `${when}: shards moved`);
}

/** Follow action `uid` through `via` until it finishes; it must complete. */
async function actionCompletes(via: TestNode, uid: string, what: string): Promise<void> {
  const a = await waitFor(
    `${what} finished`,
    async () => {
      const r = await via.api<{ status: string; error?: string }>('GET', `/v1/actions/${uid}`);
      return r.status === 200 && (r.body.status === 'completed' || r.body.status === 'failed') ? r.body : undefined;
    },
    120_000,
    500,
  );
  assert.equal(a.status, 'completed', `${what}: ${JSON.stringify(a)}`);
}

// --- what must not change: certificates, users, databases, cluster settings ---

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface Snapshot {
  api: Record<string, Json>;
  /** SHA-256 of each node's certificate files, by node uid: the CAs and its cp/dp certificates. */
  files: Record<number, Record<string, string>>;
}

const CERT_FILES = ['ca.pem', 'services-ca.pem', 'cp.pem', 'dp.pem'];

async function snapshot(via: TestNode): Promise<Snapshot> {
  const api: Record<string, Json> = {};
  for (const p of ['/v1/cluster', '/v1/cluster/policy', '/v1/cluster/alert_settings', '/v1/job_scheduler', '/v1/users', '/v1/bdbs']) {
    const r = await via.api<Json>('GET', p);
    assert.equal(r.status, 200, `${p}: ${JSON.stringify(r.body)}`);
    api[p] = r.body;
  }
  const certs = await via.api<Json>('GET', '/v1/cluster/certificates');
  assert.equal(certs.status, 200);
  api['/v1/cluster/certificates'] = certs.body;
  const files: Snapshot['files'] = {};
  for (const n of nodes) {
    files[n.uidFromDisk!] = Object.fromEntries(
      CERT_FILES.map((f) => [
        f,
        crypto
          .createHash('sha256')
          .update(fs.readFileSync(path.join(n.dataDir, 'certs', f)))
          .digest('hex'),
      ]),
    );
  }
  return { api, files };
}

/**
 * What may differ: the answering build's version and the master (the master's
 * node is restarted), a database's status, where its shards are and their
 * uids (a migration makes a new shard: compared below as slot ranges and
 * roles) and when its shard list last changed, and the seconds a certificate
 * has left.
 */
const NOISE: Record<string, Set<string>> = {
  '/v1/cluster': new Set(['software_version', 'master_node_uid']),
  '/v1/bdbs': new Set(['status', 'shards', 'shard_list', 'last_changed_time']),
  '/v1/cluster/certificates': new Set(['expires_in_seconds']),
};

/** The paths of `before` whose values differ in `after`; fields `before` lacks (added by a newer release) are not compared. */
function changed(before: Json, after: Json | undefined, noise: Set<string>, at: string): string[] {
  const differs = [`${at || '.'}: ${JSON.stringify(before)} → ${JSON.stringify(after)}`];
  if (Array.isArray(before)) {
    if (!Array.isArray(after) || after.length !== before.length) return differs;
    return before.flatMap((b, i) => changed(b, after[i], noise, `${at}[${i}]`));
  }
  if (before !== null && typeof before === 'object') {
    if (after === null || typeof after !== 'object' || Array.isArray(after)) return differs;
    return Object.keys(before)
      .filter((k) => !noise.has(k))
      .flatMap((k) => changed(before[k], after[k], noise, `${at}.${k}`));
  }
  return before === after ? [] : differs;
}

/** A database's shards as slot ranges and roles, wherever they are. */
const layout = (bdbs: Json) =>
  (bdbs as unknown as BdbJson[]).map((b) => ({ uid: b.uid, shards: b.shards.map((s) => `${s.assigned_slots} ${s.role}`).sort() }));

function assertUnchanged(before: Snapshot, after: Snapshot, when: string): void {
  const diffs = Object.keys(before.api).flatMap((p) => changed(before.api[p], after.api[p], NOISE[p] ?? new Set(), p));
  assert.deepEqual(diffs, [], `changed ${when}`);
  assert.deepEqual(layout(after.api['/v1/bdbs']), layout(before.api['/v1/bdbs']), `shard layout ${when}`);
  assert.deepEqual(after.files, before.files, `certificate files ${when}`);
}

// --- the upgrade ---

interface Step {
  node: number;
  wasMaster: boolean;
  emptiedWith: string;
  writersVia: number[];
  failed: number;
  acked: number;
  seconds: { empty: number; stop: number; start: number; ok: number };
  errors: string[];
}
const steps: Step[] = [];
let before0: Snapshot;

test('rolling upgrade 0.1.0 → 0.2.0, one node at a time, the master last: 0 failed commands through the other nodes, the cluster version 0.1 until the last node, a gated change refused until then, verify encryption clean at every step', async () => {
  before0 = await snapshot(nodes[0]);
  await verifyEncryption('before the upgrade');
  const upgraded = new Set<number>();
  for (let step = 1; step <= nodes.length; step++) {
    // The next node: one that is not the cluster master while another is left.
    const masterUid = (await clusterOf(nodes.find((n) => n.bin === BIN) ?? nodes[0])).master_node_uid;
    const left = nodes.filter((n) => !upgraded.has(n.uidFromDisk!));
    const node = left.find((n) => n.uidFromDisk !== masterUid) ?? left[0];
    const uid = node.uidFromDisk!;
    const last = left.length === 1;
    if (last) assert.equal(uid, masterUid, 'the cluster master is upgraded last');
    const others = nodes.filter((n) => n !== node);
    // Commands go through a node that runs this build once one does: 0.1.0's CLI and REST while none does.
    const via = others.find((n) => n.bin === BIN) ?? others[0];
    const ws = await Promise.all(others.map((n) => startWriter(n, `s${step}n${n.uidFromDisk}`)));
    let t = Date.now();
    const seconds = { empty: 0, stop: 0, start: 0, ok: 0 };
    let how = '';
    try {
      how = await emptyNode(uid, via);
      seconds.empty = (Date.now() - t) / 1000;
      // The last 0.1.0 node stopped: its record still says 0.1.0, so the cluster stays at 0.1 and the gate names it.
      const r = await replaceBinary(node, BIN, async () => {
        if (!last) return;
        const newer = others.find((n) => n.bin === BIN)!;
        assert.equal((await clusterOf(newer)).cluster_version, '0.1', 'cluster version while the last node is down');
        await assertGateRefuses(newer, [uid], 'while the last 0.1.0 node is down');
      });
      Object.assign(seconds, { stop: r.stop, start: r.start });
      t = Date.now();
      await waitOk(r.next, uid, NEW_VERSION);
      seconds.ok = (Date.now() - t) / 1000;
    } finally {
      await Promise.all(ws.map((w) => w.stop()));
    }
    upgraded.add(uid);
    const errors = ws.flatMap((w) => w.errors);
    steps.push({
      node: uid,
      wasMaster: uid === masterUid,
      emptiedWith: `${how}, ${release(via)} CLI via node ${via.uidFromDisk}`,
      writersVia: others.map((n) => n.uidFromDisk!),
      failed: errors.length,
      acked: ws.reduce((k, w) => k + w.acked.length, 0),
      seconds,
      errors: [...new Set(errors)].slice(0, 5),
    });
    assert.deepEqual(
      errors,
      [],
      `failed commands through nodes ${others.map((n) => n.uidFromDisk).join(', ')} while node ${uid} was upgraded`,
    );

    const newer = nodes.filter((n) => n.bin === BIN);
    const older = nodes.filter((n) => n.bin !== BIN).map((n) => n.uidFromDisk!);
    if (!last) {
      // A 0.1.0 member left: the cluster stays at 0.1 (on every node that shows it), the gate refuses, status says so.
      for (const n of newer) assert.equal((await clusterOf(n)).cluster_version, '0.1', `cluster version after step ${step}`);
      for (const n of newer) await assertGateRefuses(n, older, `after step ${step}`);
      const st = await cliOn(newer[0], ['status']);
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout, /Cluster version: 0\.1, upgrade in progress \(node:1 0\.\d\.0, node:2 0\.\d\.0, node:3 0\.\d\.0\)/);
    } else {
      for (const n of nodes)
        await waitFor(`${n.addr}: cluster version 0.2`, async () => (await clusterOf(n)).cluster_version === '0.2', 30_000);
      const st = await cliOn(nodes[0], ['status']);
      assert.match(st.stdout, /Cluster version: 0\.2 \(every node runs 0\.2\.0\)/);
    }
    await verifyEncryption(`after step ${step}`);
  }
});

test('after the upgrade: 0 acknowledged keys lost; certificates, users, databases and cluster settings unchanged; maintenance mode is let through and carried out', async () => {
  const lost = new Set<string>();
  for (const via of nodes) for (const k of await lostThrough(via, writers)) lost.add(k);
  const total = writers.reduce((k, w) => k + w.acked.length, 0);
  console.log(
    'step | node | cluster master | emptied with | writers via | failed commands | acked | empty s | stop s | start s | OK s | total s',
  );
  for (const [i, s] of steps.entries()) {
    const { empty, stop, start, ok } = s.seconds;
    console.log(
      [
        i + 1,
        s.node,
        s.wasMaster ? 'yes' : 'no',
        s.emptiedWith,
        s.writersVia.join('+'),
        s.failed,
        s.acked,
        ...[empty, stop, start, ok, empty + stop + start + ok].map((x) => x.toFixed(1)),
      ].join(' | ') + (s.errors.length ? ` (${s.errors.join('; ')})` : ''),
    );
  }
  console.log(`acknowledged keys lost at the end: ${lost.size} of ${total}`);
  assert.equal(steps.length, 3);
  assert.deepEqual([...lost].slice(0, 20), [], `${lost.size} acknowledged keys lost`);

  assertUnchanged(before0, await snapshot(nodes[0]), 'by the upgrade');

  // The gate lets the change through now, and it is carried out: a node in maintenance mode holds no shard; off brings them back.
  // A node that holds shards and is not the cluster master (the master's node, upgraded last, was emptied).
  const masterUid = (await clusterOf(nodes[0])).master_node_uid;
  const b = await bdbOf(nodes[0], dbUid);
  const target = nodes.find((n) => n.uidFromDisk !== masterUid && b.shards.some((s) => s.node_uid === n.uidFromDisk))!;
  const tUid = target.uidFromDisk!;
  const via = nodes.find((n) => n !== target)!;
  const held = async () =>
    (await bdbOf(via, dbUid)).shards
      .filter((s) => s.node_uid === tUid)
      .map((s) => `${s.assigned_slots} ${s.role}`)
      .sort();
  const heldBefore = await held();
  assert.ok(heldBefore.length > 0, `node ${tUid} holds shards`);
  const on = await gatedChange(via, tUid);
  assert.equal(on.status, 200, JSON.stringify(on.body));
  await actionCompletes(via, on.body.action_uid!, `maintenance_on of node ${tUid}`);
  const inMaint = (await nodesOf(via)).find((n) => n.uid === tUid) as NodeJson & { maintenance_mode?: boolean };
  assert.equal(inMaint.maintenance_mode, true);
  assert.deepEqual(await held(), [], `node ${tUid} in maintenance mode holds no shard`);

  const off = await via.api<Answer>('POST', `/v1/nodes/${tUid}/actions/maintenance_off`, {});
  assert.equal(off.status, 200, JSON.stringify(off.body));
  await actionCompletes(via, off.body.action_uid!, `maintenance_off of node ${tUid}`);
  await waitOk(target, tUid, NEW_VERSION, via);
  assert.deepEqual(await held(), heldBefore, `node ${tUid} has its shards and roles back`);
});

test('a 0.1.0 node restarted into a 0.2 cluster (it cannot refuse itself) is kept from the master role by the 0.2 members, and nothing else changes', async () => {
  const [a, b2] = nodes;
  const downUid = b2.uidFromDisk!;
  const beforeDown = await snapshot(a);
  // Every member runs 0.2: the node is emptied with maintenance mode, which keeps shards off it after its restart too.
  assert.equal(await emptyNode(downUid, a), 'maintenance mode');
  const { next: down } = await replaceBinary(b2, oldBin);
  // What the 0.1.0 code does: it rejoins as it always did (active, its endpoint serving), shown with its version.
  await waitOk(down, downUid, '0.1.0', a);
  const st = await cliOn(a, ['status']);
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
  const masterNow = async () => (await clusterOf(a)).master_node_uid;
  await waitFor('a 0.2 member takes the master role back', async () => (await masterNow()) !== downUid, 15_000);
  for (let i = 0; i < 6; i++) {
    assert.notEqual(await masterNow(), downUid);
    await new Promise((r) => setTimeout(r, 500));
  }
  await waitDbStatus(a, dbUid, 'active');
  assert.deepEqual(
    (await bdbOf(a, dbUid)).shards.filter((s) => s.node_uid === downUid),
    [],
    'the 0.1.0 node, in maintenance mode, is given no shard',
  );
  // The cluster version is never lowered, and certificates, users, databases and settings are as they were.
  assert.equal((await clusterOf(a)).cluster_version, '0.2');
  assertUnchanged(beforeDown, await snapshot(a), 'by the 0.1.0 node');
});
