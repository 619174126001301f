// The rotation of every node as an action (control/controllers/cert-rotation-action.ts),
// over a real scratch etcd: the request and the action are written together;
// the master's controller turns the nodes' reports into one step each and
// finishes the action; a master elected in the middle finishes it without
// repeating steps; a node that is down is reported at once and a live one
// that stays silent fails the action after the bound. The nodes' side
// (renewing and reporting) is cert-rotation.ts, exercised on real nodes by
// test/integration/cert-lifecycle.test.ts; here the reports are written as a
// node writes them.
//
// Address: etcd listens on 127.0.26.1 (client 23790, peer 23800).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { Etcd3 } from 'etcd3';
import { KEYS, ActionRecord, CertRotationRequest, type CertRotatedRecord, type LiveRecord } from '../../src/coord/schema.js';
import { readRecord } from '../../src/coord/records.js';
import { type ClusterStore, storeOf } from '../../src/coord/store.js';
import {
  CertRotationController,
  ROTATION_ACTION,
  requestRotation,
  waitRotation,
  type RotationHost,
} from '../../src/control/controllers/cert-rotation-action.js';
import { startScratchEtcd, type ScratchEtcd } from '../support/etcd.js';
import { waitFor } from '../support/wait.js';

const HOST = '127.0.26.1';
const log = pino({ level: 'silent' });
let etcd: ScratchEtcd;

before(async () => {
  etcd = await startScratchEtcd(HOST);
});
after(async () => {
  await etcd?.stop();
});

/** The membership as the controller sees it: whether this node is the master, who holds a liveness lease, and how long each has sent no heartbeat. */
class Host implements RotationHost {
  master = true;
  readonly live = { items: new Map<string, LiveRecord>() };
  readonly store: ClusterStore;
  constructor(
    client: Etcd3,
    liveNodes: number[],
    private readonly silence: Record<number, number> = {},
  ) {
    this.store = storeOf(client);
    for (const uid of liveNodes) this.live.items.set(String(uid), { uid, started_time: new Date().toISOString(), pid: process.pid });
  }
  silentMs(uid: number): number {
    return this.silence[uid] ?? 0;
  }
  deadAfterMs(): number {
    return 5000;
  }
  isMaster(): boolean {
    return this.master;
  }
  storeIsCurrent(): boolean {
    return true;
  }
}

/** What a node's certificate reconciler records once it renewed (or failed to). */
async function report(action: string, node: number, error?: string): Promise<void> {
  const rec: CertRotatedRecord = {
    node_uid: node,
    action_uid: action,
    renewed: error ? [] : [{ plane: 'cp', serial: `c0ffee${node}`, not_after: new Date().toISOString() }],
    ...(error ? { error } : {}),
    time: new Date().toISOString(),
  };
  await etcd.client.put(KEYS.certRotated(action, node)).value(JSON.stringify(rec));
}

const action = (uid: string) => readRecord(etcd.client, KEYS.action(Number(uid)), ActionRecord);

test('the request and the action are written together; a master elected mid-way finishes it, one step per node', async () => {
  const c = etcd.client;
  const a = await requestRotation(storeOf(c), ['cp'], [1, 2, 3]);
  assert.equal(a.name, ROTATION_ACTION);
  assert.equal(a.status, 'active');
  assert.deepEqual((await readRecord(c, KEYS.certRotation(a.action_uid), CertRotationRequest))?.nodes, [1, 2, 3]);

  const first = new Host(c, [1, 2, 3]);
  const ctlA = new CertRotationController(first, log);
  await ctlA.start();
  await report(a.action_uid, 1);
  await report(a.action_uid, 2);
  const mid = await waitFor(
    'two nodes in the action',
    async () => {
      const x = await action(a.action_uid);
      return x && (x.steps ?? []).length === 3 ? x : undefined;
    },
    10_000,
    50,
  );
  assert.equal(mid.status, 'active');
  assert.equal(mid.progress, 66);
  assert.match(mid.steps![2], /^66% node 2 renewed ccs_internode_encryption \(serial c0ffee2\)$/);

  // The master goes; another node's controller takes over from the store alone.
  first.master = false;
  await ctlA.close();
  const ctlB = new CertRotationController(new Host(c, [1, 2, 3]), log);
  await ctlB.start();
  try {
    await report(a.action_uid, 3);
    const out = await waitRotation(storeOf(c), a.action_uid, 10_000);
    assert.equal(out.action.status, 'completed', JSON.stringify(out.action));
    assert.equal(out.action.progress, 100);
    for (const n of [1, 2, 3])
      assert.equal(out.action.steps!.filter((s) => s.includes(`node ${n} renewed`)).length, 1, JSON.stringify(out.action.steps));
    assert.deepEqual([...out.reports.keys()].sort(), [1, 2, 3]);
    assert.deepEqual(out.request?.failed, []);
    assert.ok(out.request?.finished_time, 'nodes no longer act on a finished request');
  } finally {
    await ctlB.close();
  }
});

test('a node that is down (no lease, or no heartbeat for the failover timeout) is reported at once; a live one that does not report fails the action after the bound; an error is named', async () => {
  const c = etcd.client;
  // Node 5 still holds its lease but has sent no heartbeat for 6 s: down, as the failover decides.
  const ctl = new CertRotationController(new Host(c, [1, 2, 4, 5], { 5: 6000 }), log, 2000);
  await ctl.start();
  try {
    const a = await requestRotation(storeOf(c), ['cp', 'dp'], [1, 2, 3, 4, 5]);
    await report(a.action_uid, 1);
    await report(a.action_uid, 4, 'data_internode_encryption was not renewed: the CA cannot be read');
    // Before the bound, the down node and the error are steps already, and the action is still running.
    const early = await waitFor(
      'node 3 reported down',
      async () => {
        const x = await action(a.action_uid);
        return x && (x.steps ?? []).some((s) => s.includes('node 3 is down')) ? x : undefined;
      },
      10_000,
      50,
    );
    assert.equal(early.status, 'active');
    const out = await waitRotation(storeOf(c), a.action_uid, 15_000);
    assert.equal(out.action.status, 'failed', JSON.stringify(out.action));
    assert.match(out.action.error ?? '', /^certificates were not renewed on node\(s\) 2, 3, 4, 5;/);
    const failed = new Map((out.request?.failed ?? []).map((f) => [f.node_uid, f.error]));
    assert.deepEqual([...failed.keys()], [2, 3, 4, 5]);
    assert.match(failed.get(5)!, /node 5 is down/);
    assert.match(failed.get(2)!, /node 2 is up but did not report a renewal within 2 s/);
    assert.match(failed.get(3)!, /node 3 is down/);
    assert.match(failed.get(4)!, /node 4: data_internode_encryption was not renewed: the CA cannot be read/);
  } finally {
    await ctl.close();
  }
});
