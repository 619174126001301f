// A graceful stop (issue 23): SIGTERM hands every master on the node over,
// as the planned failover does, before its shards stop, and the node exits
// within the stop timeout. A 3-node cluster runs a 4-shard replicated
// database with data_internode_encryption on. A ROLLING RESTART BY SIGTERM
// ALONE: for each node in turn (the cluster master's node too), its masters
// are gathered on it first (planned failovers of the masters whose replica it
// holds), steady writers run through the endpoints of the two other nodes,
// the node gets SIGTERM, exits, is started again on its data dir and waited
// for (status OK, replicas in sync). No command fails, no acknowledged key is
// lost, the node's log says every master it held was handed over before it
// stopped, and the database record shows them on other nodes at its exit.
// Then the cases with nothing to hand to: SIGTERM of the node that holds the
// only shard of a database without replication stops within the bound too; a
// second SIGTERM cuts the handover short; every node SIGTERMed at once (each
// marks itself stopping) hands nothing to another and none waits out its
// deadline.
//
// Addresses: 127.0.82.x (TestCluster net 82; TESSERA_TEST_NET moves it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster, type TestNode, type BdbJson, REPO, cli, createDb, waitFor, shardCli, sleep } from '../support/cluster.js';
import { Load, readBack } from '../support/load.js';

const cluster = new TestCluster(82, 3);
const nodes = cluster.nodes;
const [n1] = nodes;
const PORT = 12820;
/** `--stop-timeout`'s default: the whole graceful stop fits in it. */
const STOP_TIMEOUT_MS = 20_000;
let db: BdbJson;

type Shard = BdbJson['shards'][number];
type ActionJson = { status: string; error?: string };

const nodeByUid = (uid: number) => nodes.find((n) => n.uidFromDisk === uid)!;
const bdb = async (via: TestNode, uid = db.uid) => (await via.api<BdbJson>('GET', `/v1/bdbs/${uid}`)).body;
const mastersOn = (b: BdbJson, uid: number) =>
  b.shards
    .filter((s) => s.node_uid === uid && s.role === 'master')
    .map((s) => s.uid)
    .sort((x, y) => x - y);

async function waitSynced(via: TestNode, uid = db.uid): Promise<void> {
  await waitFor(
    'every replica in sync',
    async () => {
      const b = await bdb(via, uid);
      if (b.status !== 'active') return false;
      for (const s of b.shards.filter((x: Shard) => x.role === 'slave')) {
        const info = await shardCli(nodeByUid(s.node_uid), s.uid, ['INFO', 'replication']).catch(() => '');
        if (!/master_link_status:up/.test(info)) return false;
      }
      return true;
    },
    60_000,
    250,
  );
}

async function waitAction(via: TestNode, uid: string): Promise<ActionJson> {
  let last: ActionJson | undefined;
  await waitFor(
    `action ${uid} finished`,
    async () => {
      const r = await via.api<ActionJson>('GET', `/v1/actions/${uid}`);
      last = r.body;
      return r.status === 200 && (r.body.status === 'completed' || r.body.status === 'failed');
    },
    60_000,
    200,
  );
  return last!;
}

/** Gather masters on node `n`: a planned failover of every master whose replica it holds. */
async function gatherMasters(n: TestNode): Promise<void> {
  const uid = n.uidFromDisk!;
  const b = await bdb(n);
  const toMove = b.shards.filter((s) => s.role === 'master' && b.shards.some((r) => r.master_uid === s.uid && r.node_uid === uid));
  if (!toMove.length) return;
  const r = await n.api<{ action_uid: string }>('POST', '/v1/shards/actions/failover', { shard_uids: toMove.map((s) => s.uid) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const a = await waitAction(n, r.body.action_uid);
  assert.equal(a.status, 'completed', JSON.stringify(a));
  await waitSynced(n);
}

/** The node's log lines (pino JSON) after byte `from`. */
function logLines(n: TestNode, from: number): Record<string, unknown>[] {
  return fs
    .readFileSync(n.logFile, 'utf8')
    .slice(from)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
}

/** SIGTERM a node and wait for it to exit; its exit time and how it exited. */
async function sigterm(n: TestNode): Promise<{ ms: number; code: number | null; signal: string | null }> {
  const p = n.proc!;
  const t0 = Date.now();
  // SIGKILL only far past the bound: the assertion below is what fails a slow stop.
  await n.kill('SIGTERM', STOP_TIMEOUT_MS + 15_000);
  return { ms: Date.now() - t0, code: p.exitCode, signal: p.signalCode };
}

async function waitStatusOk(n: TestNode): Promise<void> {
  await waitFor(
    `status OK on ${n.addr}`,
    async () => {
      const st = await n.cli(['status']);
      return st.code === 0 && /^OK\. Cluster master/m.test(st.stdout);
    },
    90_000,
    500,
  );
}

const allAcked = new Map<string, string>();
const figures: string[] = [];

before(async () => {
  await cluster.startAll();
  await cluster.form('sigterm.test');
  db = await createDb(n1, {
    name: 'handover',
    memory_size: 200 << 20,
    shards_count: 4,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: PORT,
    data_internode_encryption: true,
  });
  await waitSynced(n1);
});

after(async () => {
  if (figures.length) console.log(`# per step:\n${figures.map((f) => `#   ${f}`).join('\n')}`);
  await cluster.stop();
});

test('a rolling restart by SIGTERM alone: each node hands its masters over before it stops; no command fails, no acked key is lost', async () => {
  let sawClusterMaster = false;
  for (const n of nodes) {
    const uid = n.uidFromDisk!;
    const others = nodes.filter((x) => x !== n);
    await gatherMasters(n);
    const b0 = await bdb(others[0]);
    const held = mastersOn(b0, uid);
    assert.ok(held.length >= 2, `node ${uid} holds several masters before its stop: ${JSON.stringify(b0.shards)}`);
    const isClusterMaster = (await others[0].api<{ master_node_uid: number | null }>('GET', '/v1/cluster')).body.master_node_uid === uid;
    sawClusterMaster ||= isClusterMaster;

    // Writers through the two nodes that stay up.
    const loads = others.map((x, i) => new Load(`via-n${nodes.indexOf(x) + 1}`, x, PORT, 2 + i));
    await sleep(1000);
    const logFrom = fs.statSync(n.logFile).size;
    const stop = await sigterm(n);
    // The record at its exit: every master it held is served elsewhere.
    const atExit = await bdb(others[0]);
    await sleep(1000); // writes go on without it
    const t1 = Date.now();
    await n.start();
    await waitStatusOk(n);
    await waitSynced(n);
    const restartMs = Date.now() - t1;
    await sleep(500);
    await Promise.all(loads.map((l) => l.stop()));

    const lines = logLines(n, logFrom);
    const done = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('graceful stop:') && 'handed_over' in l);
    assert.ok(done, `node ${uid} logged its handover: ${n.logTail(20)}`);
    const handed = (done.handed_over as number[]).slice().sort((x, y) => x - y);
    const ok = loads.reduce((s, l) => s + l.ok, 0);
    const failed = loads.reduce((s, l) => s + l.failed, 0);
    const errors = loads.flatMap((l) => [...l.errors].map(([k, v]) => `${l.name} ${k} ${v}`));
    figures.push(
      `node ${uid}${isClusterMaster ? ' (cluster master)' : ''}: ${held.length} masters [${held.join(', ')}]; handover ${done.ms} ms; ` +
        `SIGTERM to exit ${stop.ms} ms; restart to status OK and in sync ${restartMs} ms; load ${ok} ok, ${failed} failed${errors.length ? ` (${errors.join(', ')})` : ''}`,
    );
    console.log(`# ${figures.at(-1)}`);
    for (const l of loads) for (const [k, v] of l.acked) allAcked.set(k, v);

    assert.equal(stop.signal, null, `node ${uid} exited by itself, not killed`);
    assert.equal(stop.code, 0, `node ${uid} exit code`);
    assert.ok(stop.ms < STOP_TIMEOUT_MS, `node ${uid} stopped within ${STOP_TIMEOUT_MS} ms (took ${stop.ms} ms)`);
    assert.deepEqual(handed, held, `node ${uid} handed over every master it held: ${JSON.stringify(done)}`);
    assert.deepEqual(done.left, [], `node ${uid} left no master behind`);
    if (isClusterMaster)
      assert.ok(typeof done.master_role_to === 'number', `the cluster master's node handed the role over: ${JSON.stringify(done)}`);
    // The shards stopped only after the handover: the log says so in order, and the record at exit agrees.
    const doneAt = lines.indexOf(done);
    const stoppedAt = lines.findIndex((l) => l.msg === 'stopped');
    assert.ok(stoppedAt > doneAt, 'the handover finished before the node stopped');
    assert.deepEqual(mastersOn(atExit, uid), [], `no master left on node ${uid} when it exited: ${JSON.stringify(atExit.shards)}`);
    for (const s of held) {
      const now = atExit.shards.find((x) => x.uid === s);
      assert.equal(now?.role, 'slave', `shard ${s} is a replica of a master on another node at node ${uid}'s exit`);
    }
    assert.equal(failed, 0, `no command failed through the other nodes' endpoints: ${errors.join(', ')}`);
    assert.ok(ok > 100, `the writers made progress (${ok} acknowledged)`);
  }
  assert.ok(sawClusterMaster, "the cluster master's node was among those restarted");

  const wrong = await readBack(nodes[1], PORT, allAcked);
  assert.equal(wrong.length, 0, `${wrong.length} of ${allAcked.size} acknowledged keys lost or changed: ${wrong.slice(0, 5).join(' ')}`);
  console.log(`# ${allAcked.size} acknowledged keys read back, none lost`);
});

test('SIGTERM of the node holding the only shard of a database without replication: nothing to hand over, it stops within the bound', async () => {
  const solo = await createDb(n1, {
    name: 'solo',
    memory_size: 50 << 20,
    shards_count: 1,
    proxy_policy: 'all-nodes',
    port: PORT + 1,
    data_internode_encryption: true,
  });
  const s = solo.shards[0];
  const n = nodeByUid(s.node_uid);
  const logFrom = fs.statSync(n.logFile).size;
  const stop = await sigterm(n);
  const lines = logLines(n, logFrom);
  const skipped = lines.find((l) => l.msg === 'graceful stop: not waiting for this master' && l.shard === s.uid);
  const done = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('graceful stop:') && 'handed_over' in l);
  figures.push(`solo: node ${s.node_uid} (only shard ${s.uid}, not replicated): SIGTERM to exit ${stop.ms} ms; handover ${done?.ms} ms`);
  console.log(`# ${figures.at(-1)}`);
  assert.ok(skipped, `the node logged that it does not wait for shard ${s.uid}: ${n.logTail(20)}`);
  assert.match(String(skipped.why), /not replicated/);
  assert.deepEqual(done?.left, [{ shard: s.uid, bdb: solo.uid, why: skipped.why }]);
  assert.equal(stop.signal, null);
  assert.equal(stop.code, 0);
  assert.ok(stop.ms < STOP_TIMEOUT_MS, `stopped within ${STOP_TIMEOUT_MS} ms (took ${stop.ms} ms)`);
  // It did not wait for a handover that cannot happen: well under the deadline.
  assert.ok((done?.ms as number) < 5000, `the handover gave up at once (${done?.ms} ms)`);
  await n.start();
  await waitStatusOk(n);
});

test('a second SIGTERM stops at once: the handover is cut short, the masters stay for the node failover', async () => {
  const n = nodes[1];
  const uid = n.uidFromDisk!;
  await gatherMasters(n);
  const held = mastersOn(await bdb(n1), uid);
  assert.ok(held.length > 0, `node ${uid} holds masters`);
  const logFrom = fs.statSync(n.logFile).size;
  const p = n.proc!;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  const t0 = Date.now();
  p.kill('SIGTERM');
  await sleep(100);
  p.kill('SIGTERM');
  await exited;
  const ms = Date.now() - t0;
  const lines = logLines(n, logFrom);
  figures.push(`second SIGTERM: node ${uid} with masters [${held.join(', ')}]: SIGTERM to exit ${ms} ms`);
  console.log(`# ${figures.at(-1)}`);
  assert.ok(
    lines.some((l) => String(l.msg).startsWith('second signal: stopping at once')),
    n.logTail(20),
  );
  assert.ok(
    lines.some((l) => String(l.msg).startsWith('graceful stop: the handover was cut short')),
    n.logTail(20),
  );
  assert.equal(p.signalCode, null);
  assert.equal(p.exitCode, 0);
  // The plain stop only: well under the handover's time.
  assert.ok(ms < 10_000, `stopped at once (took ${ms} ms)`);
  // Nothing was handed over: the node failover promotes the replicas, and the node comes back as their replica.
  await waitFor(
    'the node failover promoted the replicas',
    async () => mastersOn(await bdb(n1), uid).length === 0 && (await bdb(n1)).status === 'active',
    60_000,
    250,
  );
  await n.start();
  await waitStatusOk(n);
  await waitSynced(n1);
});

test("the default stop timeout is 20 s, and the service unit's TimeoutStopSec is above it", async () => {
  const help = await cli(['node', 'start', '--help']);
  assert.match(help.stdout, /--stop-timeout <seconds>[\s\S]*?\(default: 20\)/);
  const unit = fs.readFileSync(path.join(REPO, 'packaging/tessera.service'), 'utf8');
  const sec = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1]);
  assert.ok(sec * 1000 > STOP_TIMEOUT_MS, `TimeoutStopSec=${sec} must exceed the ${STOP_TIMEOUT_MS / 1000} s stop timeout`);
});

test('every node SIGTERMed at once (a whole cluster shut down): none waits to hand masters to another stopping node', async () => {
  const froms = nodes.map((n) => fs.statSync(n.logFile).size);
  const stops = await Promise.all(nodes.map((n) => sigterm(n)));
  nodes.forEach((n, i) => {
    const done = logLines(n, froms[i]).find((l) => typeof l.msg === 'string' && l.msg.startsWith('graceful stop:') && 'handed_over' in l);
    figures.push(
      `all at once: node ${n.uidFromDisk}: handover ${done?.ms} ms (${(done?.handed_over as number[] | undefined)?.length} handed over, ${(done?.left as unknown[] | undefined)?.length} left); SIGTERM to exit ${stops[i].ms} ms`,
    );
    console.log(`# ${figures.at(-1)}`);
    assert.ok(done, `node ${n.addr} logged its handover: ${n.logTail(20)}`);
    assert.equal(stops[i].code, 0);
    assert.ok(stops[i].ms < STOP_TIMEOUT_MS, `node ${n.addr} stopped within ${STOP_TIMEOUT_MS} ms (took ${stops[i].ms} ms)`);
    // The others are stopping too: nothing to wait for (a failover asked before their marks arrived takes a second or two, not the deadline).
    assert.ok((done.ms as number) < 5000, `node ${n.addr} did not wait out its deadline (${done.ms} ms)`);
  });
});
