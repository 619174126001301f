// control/services: what the REST handlers call, over a real etcd on
// 127.0.48.1 and real sockets. The database creation (placement, port choice
// through the ports query, the compare-and-swap that serializes concurrent
// creations, refusals that write nothing), the queueing of a node removal as
// a remove_node action, and the operator certificates' plan and the wait on
// the nodes' watched records.
import 'reflect-metadata';
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pino from 'pino';
import { storeOf, type ClusterStore } from '../../src/coord/store.js';
import type { CertMeta, NodeRecord } from '../../src/coord/schema.js';
import { type BdbCreateDeps, type BdbInput, createBdb } from '../../src/control/services/bdb-create.js';
import { queueNodeRemoval } from '../../src/control/services/node-removal.js';
import { type CertTarget, planCustomerCerts, waitApplied } from '../../src/control/services/customer-certs.js';
import { bindablePorts } from '../../src/control/reconcilers/ports.js';
import { DEFAULT_PORTS } from '../../src/control/membership/config.js';
import { OperatorError } from '../../src/util/errors.js';
import { nodeRecord } from '../support/api-host.js';
import { startScratchEtcd, type ScratchEtcd } from '../support/etcd.js';
import { keyPem, makeLeaf, makeRoot, rsaKeys } from '../support/pki-hierarchy.js';

const HOST = '127.0.48.1';
const MB = 1024 * 1024;
const log = pino({ level: 'silent' });

let etcd: ScratchEtcd;
let store: ClusterStore;
before(async () => {
  etcd = await startScratchEtcd(HOST, 23890);
  store = storeOf(etcd.client);
});
after(async () => {
  await etcd?.stop();
});

/** Refused with `code`, as an OperatorError. */
async function refused(p: Promise<unknown>, code: string, kind?: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof OperatorError, String(err));
    assert.equal(err.code, code, err.message);
    if (kind) assert.equal(err.kind, kind);
    return true;
  });
}

describe('bdb-create', () => {
  // Three nodes at one address (the ports query binds on it for real); node 3 is down (no liveness record).
  const nodes = [1, 2, 3].map((uid) => nodeRecord(uid, HOST));
  const live = new Map([1, 2].map((uid) => [String(uid), {}]));
  const asked: number[][] = [];
  const view = {
    uid: 1,
    nodes: { values: (): NodeRecord[] => nodes },
    live: { items: live },
    probes: new Map<number, { status?: { total_memory: number } }>(),
    silentMs: () => undefined,
    deadAfterMs: () => 5000,
    statusReply: () => ({ total_memory: 1024 * MB }),
  };
  const deps: BdbCreateDeps = {
    store: undefined as unknown as BdbCreateDeps['store'],
    view,
    ownPorts: Object.values(DEFAULT_PORTS).filter((p): p is number => p !== undefined),
    // The ports query of every node, answered by binding on the nodes' (shared) address.
    portsInUse: async (ports) => {
      asked.push(ports);
      const free = new Set(await bindablePorts(HOST, ports));
      return new Map(ports.filter((p) => !free.has(p)).map((p) => [p, 1]));
    },
    portsPerAsk: 256,
    log,
  };
  const input = (name: string, over: Partial<BdbInput> = {}): BdbInput => ({ name, memory_size: 10 * MB, ...over });
  let holder: net.Server;
  before(async () => {
    deps.store = store;
    // A foreign listener on 12000: the choice must skip it.
    holder = net.createServer();
    await new Promise<void>((r) => holder.listen({ host: HOST, port: 12000, exclusive: true }, r));
  });
  after(async () => {
    await new Promise<void>((r) => holder.close(() => r()));
  });

  test('a creation writes the record, its action and the uids it took; the port skips what is in use; shards only on up nodes', async () => {
    asked.length = 0;
    const b = await createBdb(deps, input('first', { shards_count: 2, sharding: true, replication: true }), false);
    assert.equal(b.port, 12001);
    assert.equal(asked.length, 1, 'one ports query for the whole choice');
    assert.equal(b.status, 'pending');
    assert.equal(b.shards.length, 4);
    assert.ok(
      b.shards.every((s) => s.node_uid === 1 || s.node_uid === 2),
      'no shard on the down node 3',
    );
    const stored = await store.bdbs.get(b.uid);
    assert.deepEqual(stored, b);
    const action = await store.actions.get(b.action_uid!);
    assert.equal(action?.name, 'create_bdb');
    assert.equal(action?.object_name, `bdb:${b.uid}`);
    const seqs = await store.seqs.read('bdb', 'shard', 'action');
    assert.equal(seqs.get('bdb'), b.uid);
    assert.equal(seqs.get('shard'), Math.max(...b.shards.map((s) => s.uid)));
  });

  test('a dry run answers the record it would write and writes nothing', async () => {
    const before = await store.seqs.read('bdb', 'shard', 'action');
    const count = (await store.bdbs.list()).length;
    const b = await createBdb(deps, input('dry'), true);
    assert.equal(b.name, 'dry');
    assert.equal(b.port, 12002);
    assert.deepEqual(await store.seqs.read('bdb', 'shard', 'action'), before);
    assert.equal((await store.bdbs.list()).length, count);
    assert.equal((await store.actions.list()).length, 1);
  });

  test('concurrent creations are serialized by compare-and-swap: distinct uids, ports and shard uids', async () => {
    const made = await Promise.all([0, 1, 2, 3, 4].map((i) => createBdb(deps, input(`conc-${i}`), false)));
    assert.equal(new Set(made.map((b) => b.uid)).size, 5);
    assert.equal(new Set(made.map((b) => b.port)).size, 5);
    assert.equal(new Set(made.flatMap((b) => b.shards.map((s) => s.uid))).size, 5);
    assert.equal(new Set(made.map((b) => b.action_uid)).size, 5);
    assert.ok(made.every((b) => b.port !== 12000));
  });

  test('refusals write nothing: name taken, port taken or held, too little memory or nodes, capability, uid taken', async () => {
    const seqs = await store.seqs.read('bdb', 'shard', 'action');
    const count = (await store.bdbs.list()).length;
    await refused(createBdb(deps, input('first'), false), 'db_name_exists', 'not_acceptable');
    await refused(createBdb(deps, input('p1', { port: 12001 }), false), 'port_unavailable');
    await refused(createBdb(deps, input('p2', { port: 12000 }), false), 'port_unavailable');
    await refused(createBdb(deps, input('p3', { port: DEFAULT_PORTS.rest }), false), 'port_unavailable');
    await refused(createBdb(deps, input('big', { memory_size: 4096 * MB }), false), 'insufficient_resources');
    await refused(createBdb(deps, input('uid', { uid: 1 }), false), 'uid_exists', 'conflict');
    live.delete('2');
    try {
      await refused(createBdb(deps, input('repl', { replication: true }), false), 'insufficient_resources');
    } finally {
      live.set('2', {});
    }
    nodes[2] = { ...nodes[2], capabilities: [] };
    try {
      await refused(createBdb(deps, input('enc', { data_internode_encryption: true }), false), 'capability_missing');
      // Taken from the cluster default rather than asked: created unencrypted.
      await store.cluster.updatePolicy({ data_internode_encryption: true });
      const b = await createBdb(deps, input('enc-default'), true);
      assert.equal(b.data_internode_encryption, false);
    } finally {
      nodes[2] = nodeRecord(3, HOST);
    }
    assert.deepEqual(await store.seqs.read('bdb', 'shard', 'action'), seqs);
    assert.equal((await store.bdbs.list()).length, count);
  });
});

describe('node-removal', () => {
  test('a node without shards is queued as a remove_node action with nothing to migrate; asked again, the same action', async () => {
    const a = await queueNodeRemoval(store, 7, log);
    assert.equal(a.name, 'remove_node');
    assert.equal(a.object_name, 'node:7');
    const ops = (await store.shardOps.list()).filter((o) => o.action_uid === a.action_uid);
    assert.equal(ops.length, 1);
    assert.equal(ops[0].kind, 'remove_node');
    assert.equal(ops[0].node_uid, 7);
    assert.deepEqual(ops[0].items, []);
    const again = await queueNodeRemoval(store, 7, log);
    assert.equal(again.action_uid, a.action_uid);
    // Once that action is finished, a new request queues a new one.
    await store.actions.finish(a.action_uid, 'failed', 'test');
    const next = await queueNodeRemoval(store, 7, log);
    assert.notEqual(next.action_uid, a.action_uid);
  });
});

describe('customer-certs', () => {
  let cert: string;
  let key: string;
  before(async () => {
    const K = await rsaKeys(2);
    const root = await makeRoot('services-test-root', K[0]);
    const leaf = await makeLeaf(root, 'services-test-node', K[1]);
    cert = leaf.pem + root.pem;
    key = await keyPem(K[1]);
  });

  test('plan: one certificate for every node gives a record per node and one shared identity; refusals name the problem', () => {
    const plan = planCustomerCerts([{ name: 'ccs_internode_encryption', certificate: cert, key }], [1, 2, 3], []);
    assert.deepEqual(
      plan.records.customer.map((c) => [c.uid, c.plane]),
      [
        [1, 'cp'],
        [2, 'cp'],
        [3, 'cp'],
      ],
    );
    assert.equal(plan.records.identities.length, 1);
    assert.equal(plan.records.identities[0].uid, 0, 'shared by every node');
    assert.equal(plan.records.anchors.length, 1, 'the root becomes a trust anchor');
    const again = planCustomerCerts([{ name: 'ccs_internode_encryption', certificate: cert, key }], [1, 2, 3], plan.records.anchors);
    assert.equal(again.records.anchors.length, 1, 'an anchor is not added twice');
    const svc = planCustomerCerts([{ name: 'api', certificate: cert, key, node_uid: 2 }], [1, 2, 3], []);
    assert.deepEqual(
      svc.records.service.map((s) => [s.uid, s.name]),
      [[2, 'api']],
    );
    assert.deepEqual(svc.records.anchors, [], 'client-facing certificates add no internode trust');
    const throws = (fn: () => unknown, code: string) =>
      assert.throws(fn, (e: unknown) => e instanceof OperatorError && e.code === code && e.kind === 'invalid');
    throws(() => planCustomerCerts([{ name: 'api', certificate: cert, key, node_uid: 9 }], [1, 2], []), 'node_not_found');
    throws(
      () =>
        planCustomerCerts(
          [
            { name: 'data_internode_encryption', certificate: cert, key },
            { name: 'data_internode_encryption', certificate: cert, key, node_uid: 1 },
          ],
          [1, 2],
          [],
        ),
      'duplicate_certificate',
    );
    throws(() => planCustomerCerts([{ name: 'api', certificate: cert, key: 'x'.repeat(80) }], [1], []), 'invalid_certificate');
  });

  test('the wait ends on the watch event that shows the last node applied; what is still pending when time runs out', async () => {
    const nodes = store.nodes.cache();
    await nodes.start();
    try {
      const plan = planCustomerCerts([{ name: 'ccs_internode_encryption', certificate: cert, key }], [11, 12], []);
      const serial = plan.targets[0].v.serial;
      const v = plan.targets[0].v;
      const meta: CertMeta = {
        name: 'cp',
        serial,
        subject: v.subject,
        issuer: v.issuer,
        not_before: new Date().toISOString(),
        not_after: v.not_after,
      };
      for (const uid of [11, 12]) await store.nodes.put(nodeRecord(uid, HOST));
      // Nobody applies: both pending after the timeout.
      const t0 = Date.now();
      const pending = await waitApplied(nodes, plan.targets, 300);
      assert.ok(Date.now() - t0 >= 290);
      assert.deepEqual(
        pending.map((t: CertTarget) => t.uid),
        [11, 12],
      );
      // Both apply, one after the other: the wait ends at once, well before its 20 s.
      const waiting = waitApplied(nodes, plan.targets, 20_000);
      const t1 = Date.now();
      await store.nodes.update(11, (n) => ({ ...n, certificates: { ...n.certificates, cp: meta } }));
      await store.nodes.update(12, (n) => ({ ...n, certificates: { ...n.certificates, cp: meta } }));
      assert.deepEqual(await waiting, []);
      assert.ok(Date.now() - t1 < 2000, `ended ${Date.now() - t1} ms after the writes`);
    } finally {
      await nodes.stop();
    }
  });
});
