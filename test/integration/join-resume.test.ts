// A join survives the death of the member that admitted it (issue 19): on a
// real 3-node cluster, a fourth node is admitted through the cluster master,
// which is SIGKILLed right after admission; the joining node never comes up
// (its store member is a stand-in that never answers, so its learner can
// never catch up: deterministic, whatever the timing of the kill). The new
// master undoes the join at its deadline (--join-timeout 20 here): the
// learner is removed and the `join_node` action fails with the reason, so a
// fresh node then joins through a surviving member within 90 s, and etcd
// lists no learner. The killed member is restarted once another node is
// master (it remembers nothing of the join): etcd refuses any membership
// change while a voting member is unreachable, so it must be back for the
// fresh node's learner to be added at all.
//
// Addresses: 127.0.42.1-3 (the cluster), .4 (the node that never comes up),
// .5 (the fresh node); TESSERA_TEST_NET moves them all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster, USER, PASSWORD, waitFor, sleep } from '../support/cluster.js';
import { etcdClient, etcdPaths } from '../../src/coord/etcd.js';
import { storeOf } from '../../src/coord/store.js';

interface ActionJson {
  action_uid: string;
  name: string;
  object_name: string;
  status: string;
  progress: number;
  error?: string;
  steps?: string[];
}
interface NodeJson {
  uid: number;
  addr: string;
  is_master: boolean;
}

const JOIN_TIMEOUT_S = 20;
const cluster = new TestCluster(42, 5, () => ['--join-timeout', String(JOIN_TIMEOUT_S)]);
const [n1, n2, n3, stuck, fresh] = cluster.nodes;

before(async () => {
  await Promise.all([n1, n2, n3].map((n) => n.start()));
  const c = await n1.cli(['cluster', 'create', 'name', 'join.test', 'username', USER, 'password', PASSWORD]);
  assert.equal(c.code, 0, c.stderr);
  for (const n of [n2, n3]) {
    const j = await n.cli(['cluster', 'join', 'nodes', n1.addr, 'username', USER, 'password', PASSWORD]);
    assert.equal(j.code, 0, `${j.stderr}\n${n.logTail()}`);
  }
});
after(async () => {
  await cluster.stop();
});

test('a join whose admitting master dies is undone by the next master; a fresh node then joins and no learner is left', async () => {
  const nodes = (await n1.api<NodeJson[]>('GET', '/v1/nodes')).body;
  assert.equal(nodes.find((n) => n.is_master)?.addr, n1.addr, 'the admitting member is the master');

  // The node that never comes up: its store member is a process that never answers (the node runs it
  // under --pdeathsig, so it goes with the node). The variable is read by the node's CLI when it starts.
  const fakeEtcd = path.join(cluster.root, 'etcd-that-never-answers.sh');
  fs.writeFileSync(fakeEtcd, '#!/bin/sh\nexec sleep 600\n', { mode: 0o755 });
  const saved = process.env.TESSERA_ETCD;
  process.env.TESSERA_ETCD = fakeEtcd;
  try {
    await stuck.start();
  } finally {
    if (saved === undefined) delete process.env.TESSERA_ETCD;
    else process.env.TESSERA_ETCD = saved;
  }
  const stuckJoin = stuck.cli(['cluster', 'join', 'nodes', n1.addr, 'username', USER, 'password', PASSWORD]);
  const admitted = await waitFor(
    'the join admitted (a join_node action on the master)',
    async () => {
      const r = await n1.api<{ actions: ActionJson[] }>('GET', '/v1/actions');
      return r.body.actions.find((a) => a.name === 'join_node' && a.status === 'active');
    },
    30_000,
    100,
  );
  await n1.kill('SIGKILL');
  const killedAt = Date.now();
  const res = await stuckJoin;
  assert.notEqual(res.code, 0, 'the join of the node that never comes up fails');
  await stuck.kill('SIGKILL');

  // Another node takes the master role over (from the store alone: the dead one's watchdog, if it had one, is gone).
  await waitFor(
    'a new master',
    async () => {
      const r = await n2.api<NodeJson[]>('GET', '/v1/nodes');
      const m = r.body.find((n) => n.is_master);
      return m && m.addr !== n1.addr;
    },
    30_000,
  );
  // The dead member comes back (empty-handed: it kept nothing of the join): etcd refuses every membership
  // change, learners included, while a voting member is unreachable (strict reconfig check), so no node
  // could join before it returns or is removed, with or without this fix.
  await n1.start();

  // A fresh node joins through a survivor: refused (busy) while the join is in progress, admitted once it is undone.
  await fresh.start();
  let refusals = 0;
  for (;;) {
    const j = await fresh.cli(['cluster', 'join', 'nodes', n2.addr, 'username', USER, 'password', PASSWORD]);
    if (j.code === 0) break;
    assert.match(j.stderr, /another node is joining/, `only the join in progress refuses it: ${j.stderr}\n${fresh.logTail()}`);
    assert.ok(Date.now() - killedAt < 90_000, `still refused 90 s after the admitting member died: ${j.stderr}`);
    refusals++;
    await sleep(1000);
  }
  assert.ok(refusals > 0, 'refused (busy) while the join was in progress');
  const took = (Date.now() - killedAt) / 1000;
  assert.ok(took < 90, `joined ${took} s after the admitting member died (after ${refusals} refusals)`);

  // The undone join: the action failed with the reason, its steps readable on a survivor.
  const a = (await n2.api<ActionJson>('GET', `/v1/actions/${admitted.action_uid}`)).body;
  assert.equal(a.status, 'failed', JSON.stringify(a));
  assert.match(a.error ?? '', /did not come up within 20 s: its store member never caught up/);
  assert.ok((a.steps ?? []).length >= 2, `the steps show admission and the undoing: ${JSON.stringify(a.steps)}`);
  assert.match(a.steps![0], /admitted node \d+ \(127\.0\.\d+\.\d+\)/);

  // etcd: no learner; the members are the three first nodes and the fresh one.
  const client = etcdClient(n2.addr, 3341, etcdPaths(n2.dataDir));
  try {
    const { members } = await storeOf(client).members.list();
    assert.deepEqual(
      members.filter((m) => m.isLearner),
      [],
      'no learner left',
    );
    assert.equal(members.length, 4, JSON.stringify(members.map((m) => m.peerURLs)));

    assert.ok(!members.some((m) => m.peerURLs.some((u) => u.includes(`//${stuck.addr}:`))), 'the stuck node is not a member');
    assert.ok(
      members.some((m) => m.peerURLs.some((u) => u.includes(`//${fresh.addr}:`))),
      'the fresh node is a member',
    );
  } finally {
    client.close();
  }
});
