// The store's liveness leases and its compare-and-swap updates against a real
// etcd: a kept-alive lease outlives its TTL and holds what is bound to it; a
// revoked one takes it along; one that etcd drops is reported lost; one not
// kept alive lapses. Finishing an action while updates race it loses no
// update and never brings the action back.
//
// Address: etcd on 127.0.41.1 (client 24110, peer 24120).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KEYS, type ActionRecord, isFinished } from '../../src/coord/schema.js';
import { scratchEtcdForFile } from '../support/etcd.js';
import { sleep, waitFor } from '../support/wait.js';

const scratch = scratchEtcdForFile('127.0.41.1', 24110, 24120);

const live = (uid: number) => ({ uid, started_time: new Date().toISOString(), pid: process.pid });
const liveKey = (uid: number) => scratch.client.get(KEYS.live(uid)).string();

test('a kept-alive lease outlives its TTL and holds its keys; revoking it takes them along', async () => {
  const lease = scratch.store.leases.create(1);
  let renewals = 0;
  lease.on('renewed', () => renewals++);
  try {
    const id = await lease.grant();
    assert.match(id, /^\d+$/);
    await scratch.store.nodes.putLive(lease, live(1));
    await sleep(2500);
    assert.ok(renewals >= 2, `renewed ${renewals} times`);
    assert.notEqual(await liveKey(1), null, 'still held after 2.5 TTLs');
    await lease.revoke();
    assert.equal(await liveKey(1), null, 'gone with the lease');
  } finally {
    await lease.revoke().catch(() => undefined); // revoked already when the test got that far
  }
});

test('a lease that etcd drops is reported lost', async () => {
  const lease = scratch.store.leases.create(2);
  const lost = new Promise<Error>((r) => lease.on('lost', r));
  const id = await lease.grant();
  await scratch.store.nodes.putLive(lease, live(2));
  // Revoked behind its holder's back (as when etcd expired it while the holder was cut off).
  await scratch.client.leaseClient.leaseRevoke({ ID: id });
  const err = await Promise.race([lost, sleep(5000).then(() => undefined)]);
  assert.ok(err instanceof Error, 'lost reported within 5 s');
  assert.equal(lease.revoked(), true);
  assert.equal(await liveKey(2), null);
});

test('a lease not kept alive lapses after its TTL; keepaliveOnce renews it by hand', async () => {
  const lease = scratch.store.leases.create(1, { autoKeepAlive: false });
  await lease.grant();
  await scratch.store.nodes.putLive(lease, live(3));
  await sleep(600);
  await lease.keepaliveOnce();
  await sleep(600);
  assert.notEqual(await liveKey(3), null, 'renewed by hand: held past its first TTL');
  await waitFor('the unrenewed lease lapses', async () => (await liveKey(3)) === null, 5000, 100);
});

test('finish racing updates: no update is lost and a finished action stays finished', async () => {
  for (let round = 0; round < 15; round++) {
    const a = await scratch.store.actions.create('race', `round:${round}`);
    const key = KEYS.action(Number(a.action_uid));
    // Every stored version of the action, in order.
    const versions: ActionRecord[] = [];
    const w = await scratch.client.watch().key(key).create();
    w.on('put', (kv) => versions.push(JSON.parse(kv.value.toString()) as ActionRecord));
    try {
      await Promise.all([
        ...[1, 2, 3, 4].map((i) => scratch.store.actions.update(a.action_uid, { progress: i * 10, description: `step ${i}` })),
        scratch.store.actions.finish(a.action_uid, 'completed'),
        ...[5, 6].map((i) => scratch.store.actions.update(a.action_uid, { progress: i * 10, description: `step ${i}` })),
      ]);
      const final = (await scratch.store.actions.get(a.action_uid))!;
      await waitFor('every version seen', () => JSON.stringify(versions.at(-1)) === JSON.stringify(final), 5000, 10);
      assert.equal(final.status, 'completed');
      assert.equal(final.progress, 100);
      for (let i = 1; i < versions.length; i++) {
        const before = versions[i - 1].steps ?? [];
        const after = versions[i].steps ?? [];
        assert.ok(
          before.every((s) => after.includes(s)),
          `round ${round}: version ${i} dropped a step (${JSON.stringify(before)} → ${JSON.stringify(after)})`,
        );
        assert.ok(!isFinished(versions[i - 1]) || isFinished(versions[i]), `round ${round}: a finished action ran again`);
      }
      assert.equal(versions.filter(isFinished).length, 1, 'finished once');
    } finally {
      await w.cancel();
    }
  }
});
