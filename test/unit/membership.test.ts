// The membership parts as units, against a real etcd (127.0.46.1), with their
// real dependencies and no member object: the write fence of Liveness (a node
// whose heartbeats stop landing loses its writes after its fence and gets
// them back only after resync), the Election (claim, a second candidate
// waits, take-over of a silent holder by compare-and-swap, resign), and the
// Peers' registry (an unknown method is a typed refusal).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { StoreLease } from '../../src/coord/store.js';
import { storeOf } from '../../src/coord/store.js';
import { ClusterView } from '../../src/control/membership/cluster-view.js';
import { type FenceHooks, Liveness } from '../../src/control/membership/liveness.js';
import { Election } from '../../src/control/membership/election.js';
import { Peers } from '../../src/control/membership/peers.js';
import { RpcError } from '../../src/internode/rpc.js';
import type { CertStore } from '../../src/pki/certstore.js';
import { startScratchEtcd, type ScratchEtcd } from '../support/etcd.js';
import { sleep, waitFor } from '../support/wait.js';

const log = pino({ level: 'silent' });
/** etcd's shortest lease; the fence lasts 80% of it (1.6 s). */
const TTL = 2;

let etcd: ScratchEtcd;
before(async () => {
  etcd = await startScratchEtcd('127.0.46.1', 24600);
  // Dead after 2 s of silence (failover_timeout, at least the TTL), so the take-over test is short.
  await storeOf(etcd.client).cluster.updatePolicy({ failover_timeout: TTL });
});
after(async () => {
  await etcd?.stop();
});

/** One node's parts: its view, its liveness (heartbeats that a test can stop landing), its election. */
function node(uid: number, fence: FenceHooks = { renewContact: () => undefined, resync: async () => undefined }) {
  const store = storeOf(etcd.client);
  const view = new ClusterView(store, uid, { clusterId: 'test', liveTtlSeconds: TTL }, log);
  const cut = { off: false };
  // Real beats through etcd; while `cut.off`, they fail as they do for a node cut off from the store.
  const beats = {
    beat: (lease: StoreLease, ms: number) => (cut.off ? Promise.reject(new Error('cut off')) : view.beats.beat(lease, ms)),
  };
  const liveness = new Liveness({ store, beats, uid, liveTtlSeconds: TTL, fence, log });
  const election = new Election({ store, master: view.master, uid, liveness, view, log, checkMs: 100 });
  return {
    view,
    liveness,
    election,
    cut,
    async start() {
      await view.start();
      await liveness.start();
      await election.start();
    },
    async stop() {
      election.stop();
      await liveness.stop();
      await view.stop();
    },
  };
}

test('the write fence: heartbeats that stop landing fence writes after the base fence (no election seen); they resume only after resync', async () => {
  const renewals: { at: number; ms: number; lifted: boolean }[] = [];
  let resyncs = 0;
  let finishResync!: () => void;
  const fence = {
    renewContact: (ms: number, lifted: boolean) => void renewals.push({ at: Date.now(), ms, lifted }),
    resync: () => {
      resyncs++;
      return new Promise<void>((r) => (finishResync = r));
    },
  };
  const n = node(11, fence);
  await n.view.start();
  await n.liveness.start();
  try {
    await waitFor('the first heartbeat lands', () => n.liveness.storeIsCurrent(), 5000);
    assert.equal(n.liveness.fenceAfterMs(), TTL * 800, 'the safe bound');
    // No quorum senses wired: the fence never reaches past its base (control/membership/fence-rule.ts).
    const fenceMs = n.liveness.baseFenceMs();
    assert.equal(fenceMs, Math.min(2000, TTL * 800));
    await sleep(1200);
    assert.ok(renewals.length >= 2, `a landed heartbeat renews the fence (${renewals.length} renewals)`);
    assert.ok(
      renewals.every((r) => !r.lifted && r.ms <= fenceMs),
      'each renewal allows writes for at most the base fence, counted from when the beat was sent',
    );

    // Cut off: no heartbeat lands. The fence is no longer renewed and the view stops being current after the fence.
    n.cut.off = true;
    const cutAt = Date.now();
    await sleep(600);
    const last = renewals.at(-1)!;
    await waitFor('the view is no longer current', () => !n.liveness.storeIsCurrent(), 5000);
    const fencedAfter = Date.now() - cutAt;
    assert.ok(fencedAfter <= fenceMs + 700, `fenced ${fencedAfter} ms after the cut`);
    assert.ok(last.at + last.ms <= cutAt + fenceMs, 'the last renewal ran out within the fence of the cut');
    await sleep(fenceMs + 300 - (Date.now() - cutAt));
    assert.equal(renewals.at(-1), last, 'no renewal while cut off');

    // Back: the first heartbeat that lands after the silence starts a resync; writes stay fenced meanwhile.
    n.cut.off = false;
    await waitFor('a resync is asked for', () => resyncs === 1, 5000);
    await sleep(800);
    assert.equal(renewals.at(-1), last, 'no renewal while the resync runs');
    assert.equal(n.liveness.storeIsCurrent(), false, 'the view is not current while the resync runs');
    assert.equal(resyncs, 1, 'one resync at a time');
    finishResync();
    // Renewals go on after it (twice a second): look for the one that lifted the fence.
    const lifted = await waitFor('the fence lifts', () => renewals.find((r) => r.lifted), 5000);
    // Counted from when the proof of contact was sent (the resync's start, or a heartbeat since), not from the lift.
    assert.ok(lifted.ms > 0 && lifted.ms <= fenceMs, `lifted for ${lifted.ms} ms`);
    assert.ok(n.liveness.storeIsCurrent(), 'current again after the resync');
  } finally {
    await n.liveness.stop();
    await n.view.stop();
  }
});

test('the election: one claims, a second waits, a silent holder is taken over by compare-and-swap, a resigned node never campaigns', async () => {
  const a = node(1);
  const b = node(2);
  try {
    await a.start();
    await waitFor('node 1 claims the free key', () => a.election.isMaster(), 5000);
    const changes: (number | undefined)[] = [];
    b.election.on('change', (uid: number | undefined) => changes.push(uid));
    await b.start();
    await waitFor('node 2 sees node 1 as master', () => b.election.masterUid === 1, 5000);
    await sleep(600);
    assert.equal(b.election.isMaster(), false, 'the key is held: node 2 waits');
    assert.equal(a.election.isMaster(), true);

    // Node 1's heartbeats stop landing (its lease lives on, as an etcd leader change can make it): after deadAfterMs, node 2 takes over.
    a.cut.off = true;
    const silentFrom = Date.now();
    await waitFor('node 2 takes the master role over', () => b.election.isMaster(), 10_000);
    const took = Date.now() - silentFrom;
    assert.ok(took >= b.view.deadAfterMs() - 600, `taken over after ${took} ms, not before the holder was dead`);
    await waitFor('node 1 learns it from the key', () => a.election.masterUid === 2, 5000);
    assert.equal(a.election.isMaster(), false);
    assert.equal(a.view.masterRecord()?.uid, 2, 'the stored key names node 2');
    assert.deepEqual(changes.slice(-1), [2], "node 2's change events end with itself");

    // Node 1 is back; node 2 resigns (being removed): node 1 is elected at once, node 2 never claims again.
    a.cut.off = false;
    await waitFor('node 1 is current again', () => a.liveness.storeIsCurrent(), 5000);
    await b.election.resign('test');
    await waitFor('node 1 claims the freed key', () => a.election.isMaster(), 5000);
    await sleep(500);
    assert.equal(b.election.masterUid, 1);
    assert.equal(b.election.isMaster(), false, 'a resigned node does not campaign');

    // RE's change_master: only a live node can be handed the key.
    await assert.rejects(a.election.handTo(9), (e: Error & { code?: string }) => e.code === 'node_down');
  } finally {
    await b.stop();
    await a.stop();
  }
});

test('peers: a registered method answers in-process; an unknown one is a typed refusal', async () => {
  const store = storeOf(etcd.client);
  const view = new ClusterView(store, 5, { clusterId: 'test', liveTtlSeconds: TTL }, log);
  // No certificates are needed: nothing here dials a peer.
  const peers = new Peers({ uid: 5, certs: {} as CertStore, policy: view, nodes: view.nodes, probeIntervalMs: 1000, log });
  peers.register('echo', async (params) => params);
  assert.deepEqual(await peers.call(5, 'echo', { x: 1 }), { x: 1 });
  await assert.rejects(peers.handle('no_such_method', {}), (e: unknown) => e instanceof RpcError && e.code === 'unknown_method');
  await assert.rejects(peers.call(7, 'echo', {}), /node 7 is unknown/);
  assert.throws(() => peers.register('echo', async () => undefined), /registered twice/);
  peers.stop();
});
