// The election and maintenance mode, against a real etcd (127.0.91.1): a node
// in maintenance mode stands back while a live node that is not can take the
// master role, campaigns at once when no such node is live, and campaigns
// anyway once the role has stayed free as long as a dead node's silence (the
// other live node does not campaign here).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { storeOf } from '../../src/coord/store.js';
import { ClusterView } from '../../src/control/membership/cluster-view.js';
import { Liveness } from '../../src/control/membership/liveness.js';
import { Election } from '../../src/control/membership/election.js';
import { startScratchEtcd, type ScratchEtcd } from '../support/etcd.js';
import { sleep, waitFor } from '../support/wait.js';

const log = pino({ level: 'silent' });
/** etcd's shortest lease; dead after 2 s of silence (failover_timeout), which is also how long a node stands back. */
const TTL = 2;

let etcd: ScratchEtcd;
before(async () => {
  etcd = await startScratchEtcd('127.0.91.1', 29110);
  await storeOf(etcd.client).cluster.updatePolicy({ failover_timeout: TTL });
});
after(async () => {
  await etcd?.stop();
});

/** One node's view, liveness and election; `campaign` false leaves its election unstarted (live, but never a candidate). */
function node(uid: number) {
  const store = storeOf(etcd.client);
  const view = new ClusterView(store, uid, { clusterId: 'test', liveTtlSeconds: TTL }, log);
  const liveness = new Liveness({
    store,
    beats: view.beats,
    uid,
    liveTtlSeconds: TTL,
    fence: { renewContact: () => undefined, resync: async () => undefined },
    log,
  });
  const election = new Election({ store, master: view.master, uid, liveness, view, log, checkMs: 100 });
  let campaigning = false;
  return {
    view,
    election,
    async start(campaign: boolean) {
      await view.start();
      await liveness.start();
      await waitFor(`node ${uid} live`, () => liveness.storeIsCurrent(), 5000);
      if (campaign) await this.campaign();
    },
    async campaign() {
      campaigning = true;
      await election.start();
    },
    async stop() {
      if (campaigning) election.stop();
      await liveness.stop();
      await view.stop();
    },
  };
}

async function putMaintenance(uid: number): Promise<void> {
  const now = new Date().toISOString();
  await storeOf(etcd.client).maintenanceMode.put({
    node_uid: uid,
    state: 'on',
    action_uid: '1',
    snapshot_name: `maintenance_mode_node${uid}_test`,
    snapshot_time: now,
    shards: [],
    updated_time: now,
  });
}

test('a node in maintenance mode is not elected while another live node can be; it is when none can', async () => {
  await putMaintenance(1);
  const a = node(1);
  const b = node(2);
  try {
    await b.start(false);
    await a.start(true);
    // Node 2 is live: node 1 stands back, though the key is free and node 2 does not campaign yet.
    await sleep(800);
    assert.equal(a.election.masterUid, undefined, 'node 1, in maintenance mode, did not claim the free key');
    await b.campaign();
    await waitFor('node 2 elected', () => b.election.isMaster(), 5000);
    await waitFor('node 1 sees it', () => a.election.masterUid === 2, 5000);
    assert.equal(a.election.isMaster(), false);

    // Node 2 goes (its lease revoked, the key with it): no other node can lead, so node 1 claims at once.
    const t0 = Date.now();
    await b.stop();
    await waitFor('node 1 elected, the only live node', () => a.election.isMaster(), 5000);
    assert.ok(Date.now() - t0 < 1500, `node 1 claimed without standing back (${Date.now() - t0} ms)`);
  } finally {
    await a.stop();
    await b.stop().catch(() => undefined); // stopped above unless an assertion failed first
    await storeOf(etcd.client).maintenanceMode.delete(1);
  }
});

test('a node in maintenance mode campaigns once the role has stayed free for the failover timeout; a node leaving it campaigns at once', async () => {
  await putMaintenance(3);
  const a = node(3);
  const b = node(4); // live, never a candidate: its store might be behind, say
  try {
    await b.start(false);
    const t0 = Date.now();
    await a.start(true);
    await waitFor('node 3 elected after standing back', () => a.election.isMaster(), 10_000);
    const waited = Date.now() - t0;
    assert.ok(waited >= TTL * 1000 - 200, `node 3 stood back for the failover timeout first (${waited} ms)`);
  } finally {
    await a.stop();
    await b.stop();
  }
  // Out of maintenance mode, the same node claims the free key at once.
  await storeOf(etcd.client).maintenanceMode.delete(3);
  await waitFor('the master key gone with node 3', async () => (await storeOf(etcd.client).master.get()) === null, 10_000);
  const c = node(3);
  const d = node(4);
  try {
    await d.start(false);
    const t0 = Date.now();
    await c.start(true);
    await waitFor('node 3 elected', () => c.election.isMaster(), 5000);
    assert.ok(Date.now() - t0 < 1500, `no standing back outside maintenance mode (${Date.now() - t0} ms)`);
  } finally {
    await c.stop();
    await d.stop();
  }
});
