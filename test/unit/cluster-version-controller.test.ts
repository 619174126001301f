// The cluster master's cluster-version loop (control/controllers/cluster-version.ts)
// over a real scratch etcd, with a plain host around a real watched cache of
// the node records: the stored version is the lowest major.minor among the
// members that published their record, it only goes up, a node that is not
// the master (or whose view is not current) stores nothing, and a member
// record it cannot read holds every raise. The rules alone (pure) are in
// versions.test.ts.
//
// Address: etcd listens on 127.0.54.1 (client 25420, peer 25430).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { KEYS, type NodeRecord, type NodeStubRecord } from '../../src/coord/schema.js';
import type { PrefixCache } from '../../src/coord/watch.js';
import { type ClusterStore, storeOf } from '../../src/coord/store.js';
import { ClusterVersionController, type ClusterVersionHost } from '../../src/control/controllers/cluster-version.js';
import { startScratchEtcd, type ScratchEtcd } from '../support/etcd.js';
import { sleep, waitFor } from '../support/wait.js';
import { nodeRecord } from '../support/api-host.js';

const HOST = '127.0.54.1';
const EVERY_MS = 100;
/** Several ticks of the loop, for "nothing happens". */
const A_FEW_TICKS_MS = 500;
const log = pino({ level: 'silent' });
let etcd: ScratchEtcd;

before(async () => {
  etcd = await startScratchEtcd(HOST, 25420, 25430);
});
after(async () => {
  await etcd?.stop();
});

class Host implements ClusterVersionHost {
  master = true;
  current = true;
  readonly store: ClusterStore;
  readonly nodes: PrefixCache<NodeRecord>;
  constructor() {
    this.store = storeOf(etcd.client);
    this.nodes = this.store.nodes.cache();
  }
  isMaster(): boolean {
    return this.master;
  }
  storeIsCurrent(): boolean {
    return this.current;
  }
}

/** A fresh store with the given members' versions, and a started controller over it. */
async function world(versions: Record<number, string>): Promise<{ host: Host; ctl: ClusterVersionController; done: () => Promise<void> }> {
  await etcd.client.delete().prefix('/tessera/');
  const store = storeOf(etcd.client);
  for (const [uid, v] of Object.entries(versions)) await member(store, Number(uid), v);
  const host = new Host();
  await host.nodes.start();
  const ctl = new ClusterVersionController(host, log, EVERY_MS);
  return {
    host,
    ctl,
    done: async () => {
      await ctl.close();
      await host.nodes.stop();
    },
  };
}

const member = (store: ClusterStore, uid: number, v: string) =>
  store.nodes.put(nodeRecord(uid, `127.0.54.${20 + uid}`, { software_version: v }));

/** The stored version and how many times it was written (etcd's per-key version); undefined before any. */
async function stored(): Promise<{ version: string; writes: number } | undefined> {
  const kv = (await etcd.client.get(KEYS.clusterVersion).exec()).kvs[0];
  return kv && { version: (JSON.parse(kv.value.toString()) as { version: string }).version, writes: Number(kv.version) };
}

const until = (version: string) =>
  waitFor(
    `cluster version ${version}`,
    async () => {
      const s = await stored();
      return s?.version === version ? s : undefined;
    },
    5000,
    50,
  );

test('the lowest member decides: 0.1.0 and 0.2.0 give 0.1, all 0.2.0 gives 0.2, and a 0.1.0 member later never lowers it', async () => {
  const { host, ctl, done } = await world({ 1: '0.1.0', 2: '0.2.0' });
  // The first node's stub, before that node publishes its record: it has no version and does not count.
  const stub: NodeStubRecord = { uid: 4, etcd_member_id: 'abc', joined_time: new Date().toISOString() };
  await etcd.client.put(KEYS.node(4)).value(JSON.stringify(stub));
  ctl.start();
  try {
    const first = await until('0.1');
    assert.equal(first.writes, 1);
    // Node 1 upgraded.
    await member(host.store, 1, '0.2.0');
    const raised = await until('0.2');
    assert.equal(raised.writes, 2);
    // A 0.1.0 member (one restarted with old software, which the join and start checks refuse) does not lower it.
    await member(host.store, 3, '0.1.0');
    await sleep(A_FEW_TICKS_MS);
    assert.deepEqual(await stored(), { version: '0.2', writes: 2 });
  } finally {
    await done();
  }
});

test('a node that is not the master, or whose view is not current, stores nothing', async () => {
  const { host, ctl, done } = await world({ 1: '0.2.0', 2: '0.2.0' });
  host.master = false;
  ctl.start();
  try {
    await sleep(A_FEW_TICKS_MS);
    assert.equal(await stored(), undefined, 'not the master');
    host.master = true;
    host.current = false;
    await sleep(A_FEW_TICKS_MS);
    assert.equal(await stored(), undefined, 'the view is not current');
    host.current = true;
    assert.equal((await until('0.2')).writes, 1);
  } finally {
    await done();
  }
});

test('a member record the node cannot read holds the raise until it is readable or gone', async () => {
  const { host, ctl, done } = await world({ 1: '0.1.0', 2: '0.2.0' });
  ctl.start();
  try {
    await until('0.1');
    // Node 3's record is one this build cannot read (a later release's, say): its version is unknown.
    await etcd.client.put(KEYS.node(3)).value(JSON.stringify({ uid: 'three', software_version: '0.2.0' }));
    await waitFor('node 3 not understood', () => host.nodes.notUnderstood.size === 1, 5000, 20);
    await member(host.store, 1, '0.2.0');
    await sleep(A_FEW_TICKS_MS);
    assert.deepEqual(await stored(), { version: '0.1', writes: 1 });
    await etcd.client.delete().key(KEYS.node(3));
    assert.equal((await until('0.2')).writes, 2);
  } finally {
    await done();
  }
});
