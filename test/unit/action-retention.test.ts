// Finished actions do not pile up: the newest KEEP finished ones stay, older
// finished ones go, running ones are never touched; only the master removes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { ActionRetention, expiredActions } from '../../src/control/controllers/action-retention.js';
import { storeOf } from '../../src/coord/store.js';
import type { ActionRecord } from '../../src/coord/schema.js';
import { scratchEtcdForFile } from '../support/etcd.js';
import { waitFor, sleep } from '../support/wait.js';

const act = (uid: number, status: ActionRecord['status']): ActionRecord => ({
  action_uid: String(uid),
  name: 'update_bdb',
  object_name: 'bdb:1',
  progress: 0,
  status,
  creation_time: new Date().toISOString(),
});

test('expiredActions: finished actions beyond the newest `keep`, oldest first; running ones never', () => {
  const all = [act(1, 'completed'), act(2, 'active'), act(3, 'failed'), act(4, 'completed'), act(5, 'pending'), act(10, 'completed')];
  assert.deepEqual(
    expiredActions(all, 2).map((a) => a.action_uid),
    ['1', '3'],
  );
  assert.deepEqual(expiredActions(all, 10), []);
  assert.deepEqual(
    expiredActions(all, 0).map((a) => a.action_uid),
    ['1', '3', '4', '10'],
  );
});

const scratch = scratchEtcdForFile('127.0.28.1', 23820);

test('the master removes old finished actions from the store; a non-master removes nothing', async () => {
  const store = storeOf(scratch.client).actions;
  for (let i = 0; i < 8; i++) await store.create('update_bdb', `bdb:${i}`, { status: i === 0 ? 'active' : 'completed' });
  const host = { store: storeOf(scratch.client), master: false, isMaster: () => host.master, storeIsCurrent: () => true };
  const log = pino({ level: 'silent' });
  const r = new ActionRetention(host, log, 3, 100);
  r.start();
  try {
    await sleep(400);
    assert.equal((await store.list()).length, 8, 'not the master: nothing removed');
    host.master = true;
    const left = await waitFor(
      'old finished actions removed',
      async () => {
        const l = await store.list();
        return l.length === 4 ? l : undefined;
      },
      10_000,
      100,
    );
    // The running one (the oldest) and the 3 newest finished ones.
    assert.deepEqual(
      left.map((a) => a.action_uid).sort((a, b) => Number(a) - Number(b)),
      ['1', '6', '7', '8'],
    );
  } finally {
    await r.close();
  }
});
