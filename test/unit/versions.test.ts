// Versions: the feature gates and the cluster version's rules
// (control/model/version-gates.ts, pure), the cluster version record (never
// lowered), records a node cannot read kept aside by the watched cache, and
// the control RPC's wire: a version on every message and a typed
// `unknown_method` error, over the real internode channel.
//
// Addresses: etcd on 127.0.50.1 (client 23790, peer 23800); the internode
// server on 127.0.50.2:13343; a shard-link listener on 127.0.50.3.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startScratchEtcd, type ScratchEtcd } from '../support/etcd.js';
import { waitFor } from '../support/wait.js';
import { InternodeFixture, rpc } from '../support/internode-harness.js';
import { probe } from '../support/tls-tools.js';
import { storeOf } from '../../src/coord/store.js';
import { KEYS, BdbRecord } from '../../src/coord/schema.js';
import { PrefixCache } from '../../src/coord/watch.js';
import {
  FEATURES,
  admits,
  clusterAtLeast,
  compareMinor,
  featureRefusal,
  lowestMinor,
  nextClusterVersion,
  requireFeature,
} from '../../src/control/model/version-gates.js';
import { memberVersions } from '../../src/control/controllers/cluster-version.js';
import { OperatorError } from '../../src/util/errors.js';
import { RPC_VERSION, RpcClient, RpcError, unknownMethod } from '../../src/internode/rpc.js';
import { CertStore } from '../../src/pki/certstore.js';
import net from 'node:net';
import pino from 'pino';
import { LINK_MAGIC, LINK_REFUSED, Placement, serveShardLink } from '../../src/dataplane/shard-links.js';
import { SOFTWARE_VERSION } from '../../src/control/membership/config.js';
import fs from 'node:fs';
import { requireClusterFeature } from '../../src/api/version-gate.js';
import { nodeRecord } from '../support/api-host.js';
import { HTTP_STATUS } from '../../src/api/errors.js';
import { REPO } from '../support/cluster.js';
import path from 'node:path';

describe('version gates (pure)', () => {
  test("this build is 0.2.0, and that is package.json's version", () => {
    assert.equal(SOFTWARE_VERSION, '0.2.0');
    assert.equal(JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).version, SOFTWARE_VERSION);
  });

  test('versions compare by major.minor; the lowest member decides; unreadable counts as oldest', () => {
    assert.equal(compareMinor('0.2.0', '0.2'), 0);
    assert.ok(compareMinor('0.1.9', '0.2.0') < 0);
    assert.ok(compareMinor('1.0.0', '0.10.0') > 0);
    assert.equal(lowestMinor(['0.2.0', '0.1.0', '0.2.1']), '0.1');
    assert.equal(lowestMinor(['0.2.0', 'banana']), '0.0');
    assert.equal(lowestMinor([]), undefined);
  });

  test('the cluster version only goes up', () => {
    assert.equal(nextClusterVersion(undefined, ['0.1.0', '0.2.0']), '0.1');
    assert.equal(nextClusterVersion('0.1', ['0.1.0', '0.2.0']), undefined);
    assert.equal(nextClusterVersion('0.1', ['0.2.0', '0.2.3']), '0.2');
    // A member older than the stored version (it should have been refused) never lowers it.
    assert.equal(nextClusterVersion('0.2', ['0.1.0', '0.2.0']), undefined);
    assert.equal(nextClusterVersion('0.2', []), undefined);
  });

  test('a node older than the cluster version is not admitted; no stored version admits any', () => {
    assert.ok(admits(undefined, '0.1.0'));
    assert.ok(admits('0.1', '0.1.0'));
    assert.ok(admits('0.2', '0.2.0'));
    assert.ok(admits('0.2', '0.3.0'));
    assert.ok(!admits('0.2', '0.1.0'));
    assert.ok(!admits('0.2', 'garbage'));
  });

  test('clusterAtLeast: a cluster without a stored version is 0.1', () => {
    assert.equal(clusterAtLeast({ members: [] }, '0.1'), true);
    assert.equal(clusterAtLeast({ members: [] }, '0.2'), false);
    assert.equal(clusterAtLeast({ cluster_version: '0.2', members: [] }, '0.2'), true);
  });

  test('a gated feature is refused with 409 cluster_version_too_old naming the older members', () => {
    assert.ok(Object.values(FEATURES).every((v) => /^\d+\.\d+$/.test(v)));
    const mixed = {
      cluster_version: '0.1',
      members: [
        { uid: 3, software_version: '0.1.0' },
        { uid: 1, software_version: '0.2.0' },
        { uid: 2, software_version: '0.1.0' },
      ],
    };
    const r = featureRefusal(mixed, 'resharding');
    assert.ok(r instanceof OperatorError);
    assert.equal(r.kind, 'conflict');
    assert.equal(r.code, 'cluster_version_too_old');
    assert.equal(
      r.message,
      'resharding needs cluster version 0.2; the cluster version is 0.1; older members: node 2 (0.1.0), node 3 (0.1.0)',
    );
    assert.throws(() => requireFeature(mixed, 'maintenance_mode'), /cluster_version|older members: node 2/);
    // Every member upgraded, the master not yet caught up: still refused, and says why.
    const upgraded = { cluster_version: '0.1', members: [{ uid: 1, software_version: '0.2.0' }] };
    assert.match(featureRefusal(upgraded, 'ca_rollover')!.message, /every member is upgraded/);
    assert.equal(featureRefusal({ ...upgraded, cluster_version: '0.2' }, 'ca_rollover'), undefined);
    requireFeature({ ...upgraded, cluster_version: '0.2' }, 'resharding');
  });

  test("member versions: only published records count (the first node's stub has none)", () => {
    assert.deepEqual(memberVersions([{ uid: 1 }, { uid: 2, addr: '127.0.0.2', software_version: '0.1.0' }]), ['0.1.0']);
  });
});

describe('stored records', () => {
  let etcd: ScratchEtcd;
  before(async () => {
    etcd = await startScratchEtcd('127.0.50.1');
  });
  after(async () => {
    await etcd?.stop();
  });

  test('the cluster version is stored by compare-and-swap and never lowered', async () => {
    const c = storeOf(etcd.client).clusterVersion;
    const higher = (a: string, b: string) => compareMinor(a, b) > 0;
    assert.equal(await c.get(), null);
    assert.equal((await c.raise('0.1', higher))?.version, '0.1');
    assert.equal((await c.raise('0.2', higher))?.version, '0.2');
    assert.equal((await c.raise('0.1', higher))?.version, '0.2');
    assert.equal((await c.get())?.version, '0.2');
    await etcd.client.delete().key(KEYS.clusterVersion);
  });

  test('the REST gate reads the stored version and the members: 409 cluster_version_too_old naming the older ones', async () => {
    const s = storeOf(etcd.client);
    await etcd.client.put(KEYS.node(1)).value(JSON.stringify(nodeRecord(1, '127.0.50.11', { software_version: '0.2.0' })));
    await etcd.client.put(KEYS.node(2)).value(JSON.stringify(nodeRecord(2, '127.0.50.12', { software_version: '0.1.0' })));
    const nodes = s.nodes.cache();
    await nodes.start();
    try {
      const m = { store: s, nodes };
      await assert.rejects(requireClusterFeature(m, 'resharding'), (e: unknown) => {
        assert.ok(e instanceof OperatorError);
        assert.equal(HTTP_STATUS[e.kind], 409);
        assert.equal(e.code, 'cluster_version_too_old');
        assert.match(e.message, /the cluster version is 0\.1; older members: node 2 \(0\.1\.0\)$/);
        return true;
      });
      await s.clusterVersion.raise('0.2', (a, b) => compareMinor(a, b) > 0);
      await requireClusterFeature(m, 'resharding');
    } finally {
      await nodes.stop();
      await etcd.client.delete().prefix(KEYS.nodesPrefix);
      await etcd.client.delete().key(KEYS.clusterVersion);
    }
  });

  test('a record the cache cannot read is kept aside, once, with its last readable value; a list read leaves it out', async () => {
    const now = new Date().toISOString();
    const good = {
      uid: 7,
      name: 'db7',
      type: 'redis',
      port: 12007,
      memory_size: 1 << 20,
      shards_count: 1,
      sharding: false,
      replication: false,
      proxy_policy: 'single',
      shards_placement: 'sparse',
      data_internode_encryption: false,
      data_persistence: 'disabled',
      eviction_policy: 'volatile-lru',
      internal_secret: 'x',
      shards: [{ uid: 70, role: 'master', node_uid: 1, slots: [0, 16383] }],
      status: 'active',
      generation: 1,
      link_generation: 1,
      created_time: now,
      last_changed_time: now,
      future_field: { kept: true },
    };
    await etcd.client.put(KEYS.bdb(7)).value(JSON.stringify(good));
    const cache = new PrefixCache(etcd.client, KEYS.bdbsPrefix, BdbRecord);
    const malformed: string[] = [];
    cache.on('malformed', (e: Error) => malformed.push(e.message));
    await cache.start();
    try {
      // An unknown field is kept as it is.
      assert.deepEqual((cache.items.get('7') as unknown as typeof good).future_field, { kept: true });
      // A future status: the record is not understood; the last value read stays; reported once.
      const future = { ...good, status: 'resharding', generation: 2 };
      await etcd.client.put(KEYS.bdb(7)).value(JSON.stringify(future));
      await waitFor('not understood', () => cache.notUnderstood.has('7'), 5000, 20);
      await etcd.client.put(KEYS.bdb(7)).value(JSON.stringify({ ...future, generation: 3 }));
      await etcd.client.put(KEYS.bdb(8)).value('{"uid": 8, "status": "resharding"}');
      await waitFor('the second one', () => cache.notUnderstood.has('8'), 5000, 20);
      assert.equal(malformed.length, 2, malformed.join('\n'));
      assert.match(cache.notUnderstood.get('7')!.problem, /\/status/);
      assert.equal((cache.notUnderstood.get('7')!.value as { generation: number }).generation, 3);
      assert.equal(cache.items.get('7')?.generation, 1);
      assert.equal(cache.items.has('8'), false);
      // A list read: the readable ones, never a failure.
      const list = await storeOf(etcd.client).bdbs.list();
      assert.deepEqual(
        list.map((b) => b.uid),
        [],
      );
      // Rewritten readably: understood again. Deleted: forgotten.
      await etcd.client.put(KEYS.bdb(7)).value(JSON.stringify({ ...good, generation: 4 }));
      await etcd.client.delete().key(KEYS.bdb(8));
      await waitFor('understood again', () => !cache.notUnderstood.has('7') && !cache.notUnderstood.has('8'), 5000, 20);
      assert.equal(cache.items.get('7')?.generation, 4);
      assert.deepEqual(
        (await storeOf(etcd.client).bdbs.list()).map((b) => b.uid),
        [7],
      );
    } finally {
      await cache.stop();
      await etcd.client.delete().prefix(KEYS.bdbsPrefix);
    }
  });
});

describe('control RPC wire', () => {
  let fx: InternodeFixture;
  before(async () => {
    fx = await InternodeFixture.create();
  });
  after(() => fx?.cleanup());

  test('requests and replies carry the RPC version; an unknown method gets a typed error, a throwing handler an error reply', async () => {
    const h = await fx.startServer(1, {
      host: '127.0.50.2',
      rpc: async (method) => {
        if (method === 'ping') return { pong: true };
        if (method === 'fail') throw new Error('it failed');
        throw unknownMethod(method);
      },
    });
    const members = new Set([1, 2, 3]);
    const client = new RpcClient({ uid: 1, host: h.host, port: h.port }, new CertStore({ cp: fx.cc.nodes[1].cp, dp: fx.cc.nodes[1].dp }), {
      clusterId: () => fx.cc.clusterId,
      isMember: (u) => members.has(u),
      isDenied: () => false,
    });
    try {
      assert.deepEqual(await client.call('ping'), { pong: true });
      assert.equal(client.peerVersion, RPC_VERSION);
      await assert.rejects(
        client.call('reshard_v9'),
        (e: unknown) => e instanceof RpcError && e.code === 'unknown_method' && e.message === 'unknown method reshard_v9',
      );
      await assert.rejects(client.call('fail'), (e: unknown) => !(e instanceof RpcError) && (e as Error).message === 'it failed');
      // The connection survived both errors.
      assert.ok(client.connected);
      assert.deepEqual(await client.call('ping'), { pong: true });

      // A 0.1.0 request (no version) is served; the reply carries the version, which a 0.1.0 client ignores.
      const raw = await probe(fx.client(h, fx.cc.nodes[1].cp, 'cp', { send: rpc(5, 'ping'), untilReply: true, watchMs: 3000 }));
      assert.deepEqual(JSON.parse(raw.replies[0]), { id: 5, v: RPC_VERSION, result: { pong: true } });
      const unknown = await probe(fx.client(h, fx.cc.nodes[1].cp, 'cp', { send: rpc(6, 'nope'), untilReply: true, watchMs: 3000 }));
      assert.deepEqual(JSON.parse(unknown.replies[0]), { id: 6, v: RPC_VERSION, error: 'unknown method nope', code: 'unknown_method' });
      const noMethod = await probe(
        fx.client(h, fx.cc.nodes[1].cp, 'cp', { send: '{"id":7,"notify":"x"}\n', untilReply: true, watchMs: 3000 }),
      );
      assert.deepEqual(JSON.parse(noMethod.replies[0]), {
        id: 7,
        v: RPC_VERSION,
        error: 'request without a method',
        code: 'invalid_request',
      });
    } finally {
      client.close();
      await h.srv.close();
    }
  });
});

describe('data-plane link header', () => {
  test('another version of the header is told unsupported_link_version; an unknown shard still hears only the refusal', async () => {
    const srv = net.createServer((sock) => serveShardLink(sock, false, new Placement(), pino({ level: 'silent' }), () => undefined));
    await new Promise<void>((r) => srv.listen(0, '127.0.50.3', () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    const answer = (header: string) =>
      new Promise<string>((resolve) => {
        let got = '';
        const c = net.connect(port, '127.0.50.3', () => c.write(header));
        c.on('data', (d) => (got += d.toString()));
        c.on('close', () => resolve(got));
        c.on('error', () => undefined); // the server closes after its answer
      });
    try {
      assert.equal(await answer('TDP2 1 1 secret proxy\n'), `-ERR unsupported_link_version: TDP2 (this node speaks ${LINK_MAGIC})\r\n`);
      assert.equal(await answer(`${LINK_MAGIC} 1 1 secret proxy\n`), `-ERR ${LINK_REFUSED}\r\n`);
      assert.equal(await answer('HELLO 1 1 secret\n'), `-ERR ${LINK_REFUSED}\r\n`);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
