// Joins as actions (control/controllers/join-controller.ts, control/bootstrap/admission.ts)
// over a real scratch etcd, with real etcd learners: a join whose node never
// comes up is undone at its deadline (learner removed, record gone, action
// failed with the reason) by whichever node is the master, a new one
// included; a join whose store member is promoted and whose node holds its
// liveness lease is completed; the 409 `busy` lasts as long as a join is in
// progress and ends with its action; the joining node's abort undoes it at
// once; a 0.1.0 join record (no action) is left to its admitting member's
// watchdog; admission writes the record and its action together, or, while
// the master is a 0.1.0 node, the record alone with its own watchdog. Real nodes joining, and the admitting member dying, are
// test/integration/join-resume.test.ts.
//
// Addresses: the scratch etcd on 127.0.42.1 (client 23790, peer 23800); a
// second real etcd that joins as a learner on 127.0.42.2 (client 23791, peer
// 23801); learners that never start on 127.0.42.3-9.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pathJoin } from 'node:path';
import pino from 'pino';
import type { Etcd3 } from 'etcd3';
import type { ActionRecord, JoinRecord } from '../../src/coord/schema.js';
import { type ClusterStore, storeOf } from '../../src/coord/store.js';
import {
  JOIN_ACTION,
  JoinController,
  decideJoin,
  retryWhileUnhealthy,
  type JoinHost,
} from '../../src/control/controllers/join-controller.js';
import { Admission } from '../../src/control/bootstrap/admission.js';
import { OperatorError } from '../../src/util/errors.js';
import { DEFAULT_POLICY } from '../../src/coord/schema.js';
import { createCa, createCsr, generateKeyPair } from '../../src/pki/pki.js';
import { startScratchEtcd, type ScratchEtcd } from '../support/etcd.js';
import { reap } from '../support/reaper.js';
import { sleep, waitFor } from '../support/wait.js';

const HOST = '127.0.42.1';
const log = pino({ level: 'silent' });
let etcd: ScratchEtcd;
const controllers: JoinController[] = [];

before(async () => {
  etcd = await startScratchEtcd(HOST);
});
after(async () => {
  for (const c of controllers) await c.close();
  await etcd?.stop();
});

/** What the controller sees of its membership: whether it is the master, and who holds a liveness lease. */
class Host implements JoinHost {
  master = true;
  readonly live = { items: new Map<string, unknown>() };
  readonly store: ClusterStore;
  constructor(client: Etcd3) {
    this.store = storeOf(client);
  }
  isMaster(): boolean {
    return this.master;
  }
  storeIsCurrent(): boolean {
    return true;
  }
}

async function controller(h: Host): Promise<JoinController> {
  const c = new JoinController(h, log, 100);
  await c.start();
  controllers.push(c);
  return c;
}

let nextUid = 10;

/** A join as admission writes it: a learner at `peer` (nothing runs there unless the test starts it), its record and action. */
async function admit(peer: string, timeoutMs: number): Promise<{ join: JoinRecord; action: ActionRecord }> {
  const store = storeOf(etcd.client);
  // Right after the previous test's member left, etcd refuses membership changes for a few seconds (as admission, retried).
  const added = await retryWhileUnhealthy(() => store.members.addLearner(peer));
  const uid = nextUid++;
  const now = Date.now();
  const actionUid = String(await store.seqs.next('action'));
  const join: JoinRecord = {
    uid,
    addr: new URL(peer).hostname,
    etcd_member_id: String(added.member.ID),
    started_time: new Date(now).toISOString(),
    action_uid: actionUid,
    deadline: new Date(now + timeoutMs).toISOString(),
  };
  const action: ActionRecord = {
    action_uid: actionUid,
    name: JOIN_ACTION,
    object_name: `node:${uid}`,
    progress: 0,
    status: 'active',
    creation_time: join.started_time,
    steps: ['0% admitted'],
  };
  assert.equal(await storeOf(etcd.client).joins.createWithAction(join, action), true);
  return { join, action };
}

async function learners(): Promise<string[]> {
  const list = await storeOf(etcd.client).members.list();
  return list.members.filter((m) => m.isLearner).map((m) => String(m.ID));
}

async function memberIds(): Promise<string[]> {
  return (await storeOf(etcd.client).members.list()).members.map((m) => String(m.ID));
}

test('a join whose node never comes up is undone at its deadline, by a master elected after admission', async () => {
  const store = storeOf(etcd.client);
  const { join } = await admit('http://127.0.42.3:23802', 1000);
  assert.deepEqual(await learners(), [join.etcd_member_id]);

  // The node that was master when the join was admitted is gone; this one is not master yet.
  const h = new Host(etcd.client);
  h.master = false;
  await controller(h);
  // Past the deadline by a few of the controller's ticks (100 ms).
  await sleep(Date.parse(join.deadline!) - Date.now() + 300);
  assert.ok(await store.joins.get(join.uid), 'a non-master undoes nothing');
  assert.deepEqual(await learners(), [join.etcd_member_id]);

  h.master = true; // elected: it has only the store to go on
  const action = await waitFor(
    'the join action failed',
    async () => {
      const a = await store.actions.get(join.action_uid!);
      return a?.status === 'failed' ? a : undefined;
    },
    10_000,
    100,
  );
  assert.match(action.error ?? '', new RegExp(`node ${join.uid} .*did not come up within 1 s: its store member never caught up`));
  assert.ok(action.steps?.at(-1)?.includes('the learner was removed'), `the reason is a step: ${action.steps}`);
  await waitFor('the join record gone', async () => (await store.joins.get(join.uid)) === null, 5000, 100);
  assert.deepEqual(await learners(), [], 'no learner left');
  assert.equal(await store.nodes.getStub(join.uid), null);
});

test('a join is completed once its store member is promoted and the node holds its liveness lease', async () => {
  const store = storeOf(etcd.client);
  const h = new Host(etcd.client);
  await controller(h);
  const peer = 'http://127.0.42.2:23801';
  const { join } = await admit(peer, 60_000);

  // The joining node's store member: a real etcd started as the learner admission added.
  const dir = mkdtempSync(pathJoin(tmpdir(), 'tessera-join-learner-'));
  const initial = (await store.members.list()).members
    .map((m) => `${String(m.ID) === join.etcd_member_id ? 'joiner' : m.name}=${m.peerURLs[0]}`)
    .join(',');
  const proc = reap(
    spawn(
      'etcd',
      [
        ...['--name', 'joiner', '--data-dir', pathJoin(dir, 'data')],
        ...['--listen-client-urls', 'http://127.0.42.2:23791', '--advertise-client-urls', 'http://127.0.42.2:23791'],
        ...['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer],
        ...['--initial-cluster', initial, '--initial-cluster-state', 'existing', '--log-level', 'warn'],
      ],
      { stdio: 'ignore' },
    ),
  );
  try {
    // What the joining node asks its admitting member for (promote route), that member's side.
    const admission = new Admission(
      () => ({ store: storeOf(etcd.client), cluster: CLUSTER, nodes: { values: () => [] }, certs: CERTS }),
      log,
    );
    await admission.promoteJoin(join.uid);
    let a = await store.actions.get(join.action_uid!);
    assert.equal(a?.status, 'active', 'promoted, but the node is not up yet');
    assert.ok(a?.steps?.some((s) => s.includes(`store member of node ${join.uid} promoted`)));
    assert.ok(await store.joins.get(join.uid), 'the join is still in progress');

    h.live.items.set(String(join.uid), {}); // the node runs: its liveness lease
    a = await waitFor(
      'the join action completed',
      async () => {
        const x = await store.actions.get(join.action_uid!);
        return x?.status === 'completed' ? x : undefined;
      },
      10_000,
      100,
    );
    assert.equal(a.progress, 100);
    assert.ok(a.steps?.at(-1)?.includes(`node ${join.uid} (127.0.42.2) joined the cluster`));
    await waitFor('the join record gone', async () => (await store.joins.get(join.uid)) === null, 5000, 100);
    assert.ok((await memberIds()).includes(join.etcd_member_id), 'the joined member stays');
    assert.deepEqual(await learners(), []);
  } finally {
    // Take the second member out again so that the scratch store keeps its quorum of one.
    await retryWhileUnhealthy(() => store.members.remove(join.etcd_member_id));
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await gone;
    rmSync(dir, { recursive: true, force: true });
  }
});

const CLUSTER = { name: 'join.test', cluster_id: '00000000-0000-4000-8000-000000000042', created_time: new Date().toISOString() };
const CERTS = { caPem: () => '' };

test('busy while a join is in progress; its failed action frees admission; the joining node abort undoes it at once', async () => {
  const store = storeOf(etcd.client);
  for (const c of controllers) await c.close(); // no master: only admission and the abort act here
  controllers.length = 0;
  const admission = new Admission(
    () => ({ store: storeOf(etcd.client), cluster: CLUSTER, nodes: { values: () => [] }, certs: CERTS }),
    log,
  );
  const req = {
    addr: '127.0.42.5',
    ports: { rest: 1, internode: 2, dp_plain: 3, etcd_peer: 23805, etcd_client: 5, metrics: 6 },
    csrs: { cp: '', dp: '', api: '' },
  };
  const { join } = await admit('http://127.0.42.4:23804', 60_000);
  await assert.rejects(admission.admitNode(req), (e: OperatorError) => e.code === 'busy');

  // The joining node gave up: it asks its admitting member to abort.
  await admission.abortJoin(join.uid);
  const a = await store.actions.get(join.action_uid!);
  assert.equal(a?.status, 'failed');
  assert.match(a?.error ?? '', /gave up joining/);
  assert.equal(await store.joins.get(join.uid), null);
  assert.deepEqual(await learners(), []);

  // A record whose action already failed (the master had not dropped it yet) does not block the next join.
  const second = await admit('http://127.0.42.6:23806', 60_000);
  await store.actions.update(second.action.action_uid, { status: 'failed', error: 'x' });
  await retryWhileUnhealthy(() => store.members.remove(second.join.etcd_member_id));
  // Past the busy check, this admission fails on the missing cluster CA (none in this scratch store), and removes its learner.
  await assert.rejects(admission.admitNode(req), (e: Error) => !(e instanceof OperatorError && e.code === 'busy'));
  assert.deepEqual(await learners(), [], 'the refused admission took its learner out');
  await store.joins.delete(second.join.uid);
});

test('decisions: 0.1.0 join records are left to their watchdog; finished actions only drop the record', () => {
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  const legacy: JoinRecord = { uid: 4, addr: '127.0.42.7', etcd_member_id: '7', started_time: new Date(t0).toISOString() };
  const learner = { isLearner: true };
  assert.deepEqual(decideJoin(legacy, 'none', learner, false, t0 + 61_000), { kind: 'wait' }, 'the 0.1.0 watchdog acts at 60 s');
  assert.deepEqual(decideJoin(legacy, 'none', undefined, false, t0 + 1000), { kind: 'wait' }, 'a 0.1.0 admission may still be adding it');
  assert.equal(decideJoin(legacy, 'none', learner, false, t0 + 121_000).kind, 'undo', 'its admitting member is gone');
  assert.equal(decideJoin(legacy, 'none', { isLearner: false }, true, t0 + 1000).kind, 'complete');

  const withAction: JoinRecord = { ...legacy, action_uid: '3', deadline: new Date(t0 + 10_000).toISOString() };
  assert.deepEqual(decideJoin(withAction, 'finished', undefined, false, t0), { kind: 'forget' });
  assert.deepEqual(decideJoin(withAction, 'active', undefined, false, t0 + 1000), { kind: 'wait' }, 'the member list may lag');
  assert.equal(decideJoin(withAction, 'active', undefined, false, t0 + 6000).kind, 'undo', 'its store member was removed');
  assert.deepEqual(decideJoin(withAction, 'active', learner, false, t0 + 9000), { kind: 'wait' });
  assert.equal(decideJoin(withAction, 'active', { isLearner: false }, false, t0 + 9000).kind, 'wait');
  const late = decideJoin(withAction, 'active', { isLearner: false }, false, t0 + 10_000);
  assert.equal(late.kind, 'undo');
  assert.match((late as { reason: string }).reason, /after its store member was promoted/);
});

test('admission writes the join record and its join_node action together; with a 0.1.0 master, the record alone and its own watchdog', async () => {
  const store = storeOf(etcd.client);
  // A cluster's records, as creation writes them: admission signs the joining node's certificates with its CAs.
  const [ca, servicesCa] = [await createCa('join.test', CLUSTER.cluster_id), await createCa('join.test', CLUSTER.cluster_id, 'services')];
  const admin = {
    uid: 1,
    username: 'a@join.test',
    password_hash: 'x',
    role: 'admin' as const,
    password_issue_date: new Date().toISOString(),
  };
  const node = { uid: 1, etcd_member_id: '1', joined_time: new Date().toISOString() };
  const created = await store.cluster.create({
    cluster: CLUSTER,
    ca: { cert: ca.certPem, key: ca.keyPem },
    servicesCa: { cert: servicesCa.certPem, key: servicesCa.keyPem },
    admin,
    policy: DEFAULT_POLICY,
    node,
  });
  assert.equal(created, true);
  const kp = await generateKeyPair();
  const csr = await createCsr(kp, 'join-test');
  const req = (i: number) => ({
    addr: `127.0.42.${i}`,
    ports: { rest: 1, internode: 2, dp_plain: 3, etcd_peer: 23800 + i, etcd_client: 5, metrics: 6 },
    csrs: { cp: csr, dp: csr, api: csr },
  });
  const member = () => ({ store: storeOf(etcd.client), cluster: CLUSTER, nodes: { values: () => [] }, certs: { caPem: () => ca.certPem } });

  const admission = new Admission(member, log, { joinTimeoutMs: 30_000 });
  const grant = await admission.admitNode(req(7));
  assert.ok(grant.certificates.cp && grant.certificates.dp && grant.certificates.api);
  const join = await store.joins.get(grant.uid);
  assert.ok(join?.action_uid, 'the join names its action');
  assert.equal(Date.parse(join.deadline!) - Date.parse(join.started_time), 30_000);
  const action = await store.actions.get(join.action_uid);
  assert.equal(action?.name, JOIN_ACTION);
  assert.equal(action?.object_name, `node:${grant.uid}`);
  assert.equal(action?.status, 'active');
  assert.match(action?.steps?.[0] ?? '', new RegExp(`^0% admitted node ${grant.uid} \\(127\\.0\\.42\\.7\\)`));
  assert.deepEqual(await learners(), [join.etcd_member_id]);
  await admission.abortJoin(grant.uid);
  assert.deepEqual(await learners(), []);

  // The master is a 0.1.0 node (no join controller): no action, this member's watchdog undoes the join.
  let calls = 0;
  const masterRunsJoinActions = () => {
    calls++;
    return false;
  };
  const legacy = new Admission(member, log, { joinTimeoutMs: 1500, masterRunsJoinActions });
  const g2 = await retryWhileUnhealthy(() => legacy.admitNode(req(8)));
  assert.ok(calls > 0, 'the predicate was asked');
  const j2 = await store.joins.get(g2.uid);
  assert.ok(j2 && !j2.action_uid && !j2.deadline, 'a 0.1.0 join record');
  assert.equal((await store.actions.list()).filter((a) => a.object_name === `node:${g2.uid}`).length, 0);
  await waitFor('the watchdog undid the join', async () => (await store.joins.get(g2.uid)) === null, 10_000, 100);
  assert.deepEqual(await learners(), []);
  legacy.stop();
});
