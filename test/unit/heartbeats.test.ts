// Heartbeats against a real etcd: a node that keeps beating stays silent for
// well under a second as the others see it; one that stops is seen silent for
// as long as it has stopped; a node whose own beats stop coming back judges no
// one; a beat goes with the lease it is bound to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Heartbeats } from '../../src/coord/heartbeats.js';
import { storeOf, type StoreLease } from '../../src/coord/store.js';
import { KEYS } from '../../src/coord/schema.js';
import { scratchEtcdForFile } from '../support/etcd.js';
import { sleep, waitFor } from '../support/wait.js';

const scratch = scratchEtcdForFile('127.0.28.1', 23800);

test('a beating node is seen fresh, a stopped one silent for as long as it stopped, and a node whose own beats stop judges no one', async () => {
  const store = storeOf(scratch.client);
  const one = store.heartbeats(1);
  const two = store.heartbeats(2);
  await Promise.all([one.start(), two.start()]);
  const leases: StoreLease[] = [store.leases.create(10), store.leases.create(10)];
  try {
    assert.equal(one.current(), false, 'no own beat seen yet: not current');
    const beat = (h: Heartbeats, l: StoreLease) => setInterval(() => void h.beat(l, 1000).catch(() => undefined), 200);
    const beatOne = beat(one, leases[0]);
    const beatTwo = beat(two, leases[1]);
    try {
      await waitFor('node 1 sees its own beats', () => one.current(), 5000);
      await sleep(400);
      assert.ok(one.silentMs(2) < 600, `a beating node is silent for ${one.silentMs(2)} ms`);
      clearInterval(beatTwo);
      const stoppedAt = Date.now();
      await sleep(900);
      assert.ok(one.current(), 'node 1 still sees its own beats');
      const silent = one.silentMs(2);
      assert.ok(
        silent >= 500 && silent <= Date.now() - stoppedAt + 600,
        `silent for ${silent} ms after stopping ${Date.now() - stoppedAt} ms ago`,
      );
    } finally {
      clearInterval(beatOne);
      clearInterval(beatTwo);
    }
    // Its own beats stopped (the interval is cleared): 1.7 s later its view is not current.
    assert.equal(one.current(Date.now() + 1700), false, 'its own beats stopped for 1.7 s: its view is not current');
    // A beat is bound to its lease: revoking the lease removes it.
    await leases[1].revoke();
    assert.equal(await scratch.client.get(KEYS.beat(2)).string(), null);
    // A node never seen counts from the first time it is asked about.
    assert.equal(one.silentMs(9), 0);
  } finally {
    await Promise.all(leases.map((l) => l.revoke().catch(() => undefined)));
    await Promise.all([one.stop(), two.stop()]);
  }
});
