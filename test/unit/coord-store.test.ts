// The typed cluster store (coord/store.ts) against a real scratch etcd: each
// resource's methods write where the key layout says and read back checked
// records; creates that must not clobber refuse; read-modify-writes leave
// absent and finished records alone and never overwrite a malformed one.
//
// Address: etcd listens on 127.0.27.1 (client 23790, peer 23800).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startScratchEtcd, type ScratchEtcd } from '../support/etcd.js';
import { waitFor } from '../support/wait.js';
import { nodeRecord } from '../support/api-host.js';
import { type ClusterStore, storeOf } from '../../src/coord/store.js';
import { MalformedRecordError, MissingRecordError } from '../../src/coord/records.js';
import { KEYS, DEFAULT_POLICY, type ActionRecord, type BdbRecord, type UserRecord } from '../../src/coord/schema.js';
import { bdbRecord } from '../support/bdb-record.js';

const HOST = '127.0.27.1';
let etcd: ScratchEtcd;
let s: ClusterStore;

before(async () => {
  etcd = await startScratchEtcd(HOST);
  s = storeOf(etcd.client);
});

after(async () => {
  await etcd?.stop();
});

/** The stored text of a key, or null. */
const raw = (key: string) => etcd.client.get(key).string();

const bdb = (uid: number, over: Partial<BdbRecord> = {}): BdbRecord =>
  bdbRecord(uid, [{ uid: 1, role: 'master', node_uid: 1, slots: [0, 16383] }], {
    memory_size: 1 << 20,
    sharding: false,
    proxy_policy: 'single',
    internal_secret: 'x',
    status: 'pending',
    ...over,
  });

const action = (uid: number): ActionRecord => ({
  action_uid: String(uid),
  name: 'create_bdb',
  object_name: 'bdb:x',
  progress: 0,
  status: 'pending',
  creation_time: new Date().toISOString(),
});

test('one store per client', () => {
  assert.equal(storeOf(etcd.client), s);
});

describe('sequences', () => {
  test('next hands out consecutive uids, several at once from the first; read shows the last one', async () => {
    assert.equal(await s.seqs.next('shard'), 1);
    assert.equal(await s.seqs.next('shard', 3), 2);
    assert.equal(await s.seqs.next('shard'), 5);
    assert.equal(await raw(KEYS.shardSeq), '5');
    const seen = await s.seqs.read('shard', 'node');
    assert.deepEqual(
      [...seen],
      [
        ['shard', 5],
        ['node', 0],
      ],
    );
  });
});

describe('databases', () => {
  test('createWithAction creates both and takes the uids, only while the sequences stand still and the records are absent', async () => {
    const seen = await s.seqs.read('bdb', 'action');
    const bump = new Map([
      ['bdb', 1],
      ['action', 1],
    ] as const);
    const b = bdb(seen.get('bdb')! + 1);
    const a = action(seen.get('action')! + 1);
    assert.equal(await s.bdbs.createWithAction(seen, bump, b, a), true);
    assert.deepEqual(await s.bdbs.get(b.uid), b);
    assert.deepEqual(await s.actions.get(a.action_uid), a);
    assert.deepEqual(
      [...(await s.seqs.read('bdb', 'action'))],
      [
        ['bdb', b.uid],
        ['action', Number(a.action_uid)],
      ],
    );
    // The same snapshot again: the sequences moved, nothing is written.
    assert.equal(await s.bdbs.createWithAction(seen, bump, bdb(b.uid + 1), action(Number(a.action_uid) + 1)), false);
    assert.equal(await s.bdbs.get(b.uid + 1), null);
    assert.equal((await s.bdbs.get(b.uid))?.name, b.name);
    // A fresh snapshot but a record that exists (its uid was chosen by hand): refused too.
    const now = await s.seqs.read('bdb', 'action');
    assert.equal(await s.bdbs.createWithAction(now, bump, bdb(b.uid, { name: 'other' }), action(now.get('action')! + 1)), false);
    assert.deepEqual([...(await s.seqs.read('bdb', 'action'))], [...now]);
  });

  test('update changes a record by a function of it; an absent one stays absent, and undefined leaves it', async () => {
    await etcd.client.put(KEYS.bdb(20)).value(JSON.stringify(bdb(20)));
    const next = await s.bdbs.update(20, (cur) => ({ ...cur, generation: cur.generation + 1 }));
    assert.equal(next?.generation, 2);
    assert.equal((await s.bdbs.get(20))?.generation, 2);
    assert.equal(await s.bdbs.update(21, (cur) => cur), undefined);
    assert.equal(await raw(KEYS.bdb(21)), null);
    const before = await raw(KEYS.bdb(20));
    assert.equal((await s.bdbs.update(20, () => undefined))?.generation, 2);
    assert.equal(await raw(KEYS.bdb(20)), before);
    assert.ok((await s.bdbs.list()).some((x) => x.uid === 20));
  });

  test('a malformed record fails the read that finds it (a list leaves it out), and is never overwritten', async () => {
    await etcd.client.put(KEYS.bdb(30)).value(JSON.stringify({ ...bdb(30), shards: 'none' }));
    await assert.rejects(
      s.bdbs.get(30),
      (e: unknown) => e instanceof MalformedRecordError && e.key === KEYS.bdb(30) && /shards/.test(e.problem),
    );
    assert.ok(!(await s.bdbs.list()).some((x) => x.uid === 30));
    await assert.rejects(
      s.bdbs.update(30, (cur) => cur),
      MalformedRecordError,
    );
    assert.match((await raw(KEYS.bdb(30)))!, /"shards":"none"/);
    await s.bdbs.delete(30);
    assert.equal(await raw(KEYS.bdb(30)), null);
  });

  test('observed reports: put per node, deleted per database; the cache follows bdbs', async () => {
    const cache = s.bdbs.cache();
    await cache.start();
    try {
      const obs = { node_uid: 1, generation: 1, converged: true, shards: [], time: 'now' };
      await s.observed.put(40, 1, obs);
      await s.observed.put(40, 2, { ...obs, node_uid: 2 });
      await s.observed.put(41, 1, obs);
      const observed = s.observed.cache();
      await observed.start();
      assert.deepEqual([...observed.items.keys()].sort(), ['40/1', '40/2', '41/1']);
      await observed.stop();
      await s.observed.deleteOf(40);
      assert.equal(await raw(KEYS.observed(40, 1)), null);
      assert.equal(await raw(KEYS.observed(40, 2)), null);
      assert.notEqual(await raw(KEYS.observed(41, 1)), null);
      await etcd.client.put(KEYS.bdb(42)).value(JSON.stringify(bdb(42)));
      for (let i = 0; i < 100 && !cache.items.has('42'); i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(cache.items.get('42')?.name, 'db42');
    } finally {
      await cache.stop();
    }
  });
});

describe('actions and shard operations', () => {
  test('create, update with steps, finish; a finished action is left as it is', async () => {
    const a = await s.actions.create('shard_migrate', 'bdb:1');
    assert.equal(a.status, 'pending');
    await s.actions.update(a.action_uid, { status: 'active', progress: 40, description: 'copying' });
    await s.actions.update(a.action_uid, { progress: 10, description: 'still copying' });
    let cur = await s.actions.get(a.action_uid);
    assert.equal(cur?.progress, 40, 'progress never goes back');
    assert.deepEqual(cur?.steps, ['40% copying', '40% still copying']);
    await s.actions.finish(a.action_uid, 'completed');
    cur = await s.actions.get(a.action_uid);
    assert.equal(cur?.status, 'completed');
    assert.equal(cur?.progress, 100);
    await s.actions.update(a.action_uid, { status: 'failed', description: 'late' });
    await s.actions.finish(a.action_uid, 'failed', 'late');
    assert.deepEqual(await s.actions.get(a.action_uid), cur);
    await s.actions.finish(undefined, 'failed');
    assert.ok((await s.actions.list()).some((x) => x.action_uid === a.action_uid));
    await s.actions.delete(a.action_uid);
    assert.equal(await s.actions.get(a.action_uid), null);
  });

  test('shard operations: put, list, delete', async () => {
    const op = { action_uid: '900', kind: 'failover' as const, items: [{ bdb_uid: 1, shard_uid: 1 }], created_time: 'now' };
    await s.shardOps.put(op);
    assert.deepEqual(await s.shardOps.list(), [op]);
    await s.shardOps.delete('900');
    assert.deepEqual(await s.shardOps.list(), []);
  });
});

describe('users and UI sessions', () => {
  const user: UserRecord = { uid: 2, username: 'a@b.c', password_hash: 'h', role: 'db_viewer' };

  test('create refuses an existing name; update and delete by name', async () => {
    assert.equal(await s.users.create(user), true);
    assert.equal(await s.users.create({ ...user, uid: 3, role: 'admin' }), false);
    assert.deepEqual(await s.users.get(user.username), user);
    const next = await s.users.update(user.username, (u) => (u ? { ...u, role: 'admin' } : undefined));
    assert.equal(next?.role, 'admin');
    assert.equal(await s.users.update('nobody@b.c', (u) => u), undefined);
    assert.equal(await raw(KEYS.user('nobody@b.c')), null);
    assert.deepEqual(
      (await s.users.list()).map((u) => u.username),
      [user.username],
    );
    await s.users.delete(user.username);
    assert.equal(await s.users.get(user.username), null);
  });

  test('sessions by id', async () => {
    const rec = { username: 'a@b.c', csrf_token: 't', created: 1, last_active: 2 };
    await s.uiSessions.put('abc', rec);
    assert.deepEqual(await s.uiSessions.get('abc'), rec);
    assert.deepEqual([...(await s.uiSessions.list())], [['abc', rec]]);
    await s.uiSessions.delete('abc');
    assert.equal(await s.uiSessions.get('abc'), null);
  });
});

describe('nodes, joins, master', () => {
  test('removeAndDeny denies the certificates and drops the node, its liveness and alerts, in one go; false for an absent node', async () => {
    const n = nodeRecord(5, '127.0.27.5');
    await etcd.client.put(KEYS.node(5)).value(JSON.stringify(n));
    await etcd.client.put(KEYS.live(5)).value(JSON.stringify({ uid: 5, started_time: 'now', pid: 1 }));
    await etcd.client.put(KEYS.alerts(5)).value('{}');
    assert.deepEqual(await s.nodes.get(5), n);
    assert.deepEqual(await s.nodes.alerts(), new Map([[5, {}]]));
    const deny = { serial: 'AB', node_uid: 5, plane: 'cp', time: 'now' };
    assert.equal(await s.nodes.removeAndDeny(5, [deny]), true);
    assert.equal(await raw(KEYS.node(5)), null);
    assert.equal(await raw(KEYS.live(5)), null);
    assert.equal(await raw(KEYS.alerts(5)), null);
    assert.deepEqual(JSON.parse((await raw(KEYS.deny('AB')))!), deny);
    assert.equal(await s.nodes.removeAndDeny(5, [{ ...deny, serial: 'CD' }]), false);
    assert.equal(await raw(KEYS.deny('CD')), null);
  });

  test('a node stub reads before the full record exists; delete', async () => {
    await etcd.client.put(KEYS.node(6)).value(JSON.stringify({ uid: 6, etcd_member_id: '7', joined_time: 'now' }));
    assert.equal((await s.nodes.getStub(6))?.etcd_member_id, '7');
    await assert.rejects(s.nodes.get(6), MalformedRecordError);
    await s.nodes.delete(6);
    assert.equal(await s.nodes.getStub(6), null);
  });

  test('joins and the master key', async () => {
    const j = { uid: 7, addr: '127.0.27.7', etcd_member_id: '9', started_time: 'now' };
    await s.joins.put(j);
    assert.deepEqual(await s.joins.get(7), j);
    assert.deepEqual(await s.joins.list(), [j]);
    await s.joins.delete(7);
    assert.deepEqual(await s.joins.list(), []);
    await etcd.client.put(KEYS.master).value(JSON.stringify({ uid: 3, since: 'now' }));
    assert.equal((await s.master.get())?.uid, 3);
    await s.master.delete();
    assert.equal(await s.master.get(), null);
  });

  test('election: one claim wins, the key goes with its lease; handTo rebinds it to a live node; resign only by the holder', async () => {
    const l1 = etcd.client.lease(30, { autoKeepAlive: false });
    const l2 = etcd.client.lease(30, { autoKeepAlive: false });
    try {
      assert.equal(await s.master.claim({ uid: 1, since: 'now' }, await l1.grant()), true);
      assert.equal(await s.master.claim({ uid: 2, since: 'now' }, await l2.grant()), false);
      assert.equal((await s.master.get())?.uid, 1);
      // Node 3 has no liveness: it cannot be made the master.
      assert.equal(await s.master.handTo({ uid: 3, since: 'now' }), 'down');
      await s.nodes.putLive(l2, { uid: 2, started_time: 'now', pid: 2 });
      assert.equal(await s.master.handTo({ uid: 2, since: 'now' }), 'done');
      assert.equal((await s.master.get())?.uid, 2);
      const kv = (await etcd.client.get(KEYS.master).exec()).kvs[0];
      assert.equal(kv.lease, await l2.grant(), "the key is bound to the new master's lease");
      assert.equal(await s.master.resign(1), false, 'not the holder');
      assert.equal((await s.master.get())?.uid, 2);
      const master = s.master.cache();
      await master.start();
      assert.equal(master.items.get('')?.uid, 2);
      await master.stop();
      // The holder's lease lapses: its liveness and the master key go with it.
      await l2.revoke();
      assert.equal(await s.master.get(), null);
      assert.equal(await raw(KEYS.live(2)), null);
      assert.equal(await s.master.claim({ uid: 1, since: 'now' }, await l1.grant()), true);
      // Taking over from a silent holder: only from the node that holds it, and only while the key exists.
      assert.equal(await s.master.takeOver(2, { uid: 3, since: 'now' }, await l1.grant()), false);
      assert.equal((await s.master.get())?.uid, 1);
      assert.equal(await s.master.takeOver(1, { uid: 3, since: 'now' }, await l1.grant()), true);
      assert.equal((await s.master.get())?.uid, 3);
      assert.equal(await s.master.resign(1), false, 'not the holder any more');
      assert.equal(await s.master.takeOver(3, { uid: 1, since: 'now' }, await l1.grant()), true);
      assert.equal(await s.master.resign(1), true);
      assert.equal(await s.master.takeOver(1, { uid: 3, since: 'now' }, await l1.grant()), false, 'no key: nothing to take over');
      assert.equal(await s.master.claim({ uid: 1, since: 'now' }, await l1.grant()), true);
      assert.equal(await s.master.resign(1), true);
      assert.equal(await s.master.get(), null);
      assert.equal(await s.master.resign(1), false, 'nothing to give up');
    } finally {
      await l1.revoke().catch(() => undefined); // revoked already or never granted: nothing held
      await l2.revoke().catch(() => undefined);
    }
  });

  test('a node publishes its full record; live and deny caches', async () => {
    const n = nodeRecord(10, '127.0.27.10');
    await s.nodes.put(n);
    assert.deepEqual(await s.nodes.get(10), n);
    const [live, deny] = [s.nodes.liveCache(), s.nodes.denyCache()];
    await Promise.all([live.start(), deny.start()]);
    assert.ok(deny.items.has('AB'), 'the serial denied above');
    assert.equal(live.items.size, 0);
    await Promise.all([live.stop(), deny.stop()]);
    await s.nodes.delete(10);
  });

  test("the node cache holds the first node's stub and then its full record", async () => {
    const nodes = s.nodes.cache();
    await nodes.start();
    try {
      await etcd.client.put(KEYS.node(11)).value(JSON.stringify({ uid: 11, etcd_member_id: '12', joined_time: 'now' }));
      await waitFor('the stub in the cache', () => nodes.items.get('11')?.etcd_member_id === '12', 5000, 50);
      assert.equal(nodes.items.get('11')?.addr, undefined, 'a stub: no address yet');
      assert.equal(
        nodes
          .values()
          .filter((n) => n.addr)
          .some((n) => n.uid === 11),
        false,
      );
      const n = nodeRecord(11, '127.0.27.11');
      await s.nodes.put(n);
      await waitFor('the full record in the cache', () => nodes.items.get('11')?.addr === n.addr, 5000, 50);
      assert.deepEqual(nodes.items.get('11'), n);
    } finally {
      await nodes.stop();
      await s.nodes.delete(11);
    }
  });

  test("takeOver binds the key to the new holder's lease: it goes when that lease does", async () => {
    const l1 = etcd.client.lease(30, { autoKeepAlive: false });
    const l2 = etcd.client.lease(30, { autoKeepAlive: false });
    try {
      assert.equal(await s.master.claim({ uid: 1, since: 'now' }, await l1.grant()), true);
      assert.equal(await s.master.takeOver(1, { uid: 2, since: 'now' }, await l2.grant()), true);
      const kv = (await etcd.client.get(KEYS.master).exec()).kvs[0];
      assert.equal(kv.lease, await l2.grant());
      await l1.revoke();
      assert.equal((await s.master.get())?.uid, 2, "the old holder's lease no longer holds the key");
      await l2.revoke();
      assert.equal(await s.master.get(), null);
    } finally {
      await l1.revoke().catch(() => undefined); // revoked already: nothing held
      await l2.revoke().catch(() => undefined);
    }
  });

  test('the store members: the scratch etcd is one', async () => {
    assert.equal((await s.members.list()).members.length, 1);
  });
});

describe('cluster records', () => {
  test('create writes the cluster once; CAs, policy with defaults and its update, alert settings', async () => {
    await assert.rejects(s.cluster.get(), MissingRecordError);
    assert.equal(await s.cluster.servicesCa(), null);
    // Operator certificates need a cluster: nothing is written without one.
    assert.equal(await s.operatorCerts.apply({ anchors: ['A'], customer: [], identities: [], service: [] }), false);
    assert.equal(await s.operatorCerts.trust(), null);
    const admin: UserRecord = { uid: 1, username: 'admin@b.c', password_hash: 'h', role: 'admin' };
    const rec = {
      cluster: { name: 'c', cluster_id: 'id', created_time: 'now' },
      ca: { cert: 'C', key: 'K' },
      servicesCa: { cert: 'SC', key: 'SK' },
      admin,
      policy: DEFAULT_POLICY,
      node: { uid: 1, etcd_member_id: '1', joined_time: 'now' },
    };
    assert.equal(await s.cluster.create(rec), true);
    assert.equal(await s.cluster.create({ ...rec, cluster: { ...rec.cluster, name: 'other' } }), false);
    assert.equal((await s.cluster.get()).name, 'c');
    assert.deepEqual(await s.cluster.ca(), rec.ca);
    assert.deepEqual(await s.cluster.requireServicesCa(), rec.servicesCa);
    assert.deepEqual(await s.users.get(admin.username), admin);
    assert.equal(await raw(KEYS.userSeq), '1');
    assert.equal(await raw(KEYS.nodeSeq), '1');
    assert.equal((await s.nodes.getStub(1))?.etcd_member_id, '1');
    assert.deepEqual(await s.cluster.policy(), DEFAULT_POLICY);
    // A policy written before a field existed reads with its default.
    await etcd.client.put(KEYS.policy).value(JSON.stringify({ data_internode_encryption: true }));
    assert.deepEqual(await s.cluster.policy(), { ...DEFAULT_POLICY, data_internode_encryption: true });
    assert.deepEqual(await s.cluster.updatePolicy({ failover_timeout: 9 }), {
      ...DEFAULT_POLICY,
      data_internode_encryption: true,
      failover_timeout: 9,
    });
    assert.equal((await s.cluster.policy()).failover_timeout, 9);
    assert.equal((await s.settings.alertSettings()).node_internal_certs_about_to_expire.threshold, 45);
    // A second services CA is refused: the first one stays.
    assert.equal(await s.cluster.createServicesCa({ cert: 'X', key: 'Y' }), false);
    assert.deepEqual(await s.cluster.servicesCa(), rec.servicesCa);
    const policy = s.cluster.policyCache();
    await policy.start();
    assert.equal(policy.items.get('')?.failover_timeout, 9);
    await policy.stop();
  });

  test('a services CA is created once on a cluster that has none', async () => {
    await etcd.client.delete().key(KEYS.servicesCa);
    assert.equal(await s.cluster.createServicesCa({ cert: 'X', key: 'Y' }), true);
    assert.deepEqual(await s.cluster.requireServicesCa(), { cert: 'X', key: 'Y' });
  });
});

describe('settings, operator certificates, node records', () => {
  test('job scheduler and alert settings: defaults, partial updates, a refused update writes nothing', async () => {
    assert.equal((await s.settings.jobScheduler()).cert_rotation_job_settings.validity_days, 90);
    const next = await s.settings.updateJobScheduler((cur) => ({
      cert_rotation_job_settings: { ...cur?.cert_rotation_job_settings, validity_days: 30 },
    }));
    assert.equal(next.cert_rotation_job_settings.validity_days, 30);
    assert.equal(next.cert_rotation_job_settings.expiry_days_before_rotation, 60);
    const before = await raw(KEYS.jobScheduler);
    await assert.rejects(
      s.settings.updateJobScheduler(() => {
        throw new Error('refused');
      }),
      /refused/,
    );
    assert.equal(await raw(KEYS.jobScheduler), before);
    const alerts = await s.settings.updateAlertSettings({ node_internal_certs_about_to_expire: { threshold: 10 } });
    assert.deepEqual(alerts.node_internal_certs_about_to_expire, { enabled: true, threshold: 10 });
    assert.equal((await s.settings.alertSettings()).node_internal_certs_about_to_expire.threshold, 10);
    const cache = s.settings.jobSchedulerCache();
    await cache.start();
    assert.equal(cache.items.get('')?.cert_rotation_job_settings?.validity_days, 30);
    await cache.stop();
  });

  test('operator certificates land with their trust and identities; each can be given up', async () => {
    const cert = { uid: 2, chain: 'C', key: 'K', serial: 'S1', not_after: 'later', chain_not_after: 'later', applied_time: 'now' };
    const customer = { ...cert, plane: 'cp' as const };
    const service = { ...cert, serial: 'S2', name: 'api' as const };
    const identity = { serial: 'S1', uid: 2, plane: 'cp' as const };
    assert.equal(
      await s.operatorCerts.apply({ anchors: ['A1', 'A2'], customer: [customer], identities: [identity], service: [service] }),
      true,
    );
    assert.deepEqual(await s.operatorCerts.trust(), { anchors: ['A1', 'A2'] });
    const [mine, svc, ids] = [
      s.operatorCerts.customerCertsCache(2),
      s.operatorCerts.serviceCertsCache(2),
      s.operatorCerts.identitiesCache(),
    ];
    await Promise.all([mine.start(), svc.start(), ids.start()]);
    assert.deepEqual(mine.items.get('cp'), customer);
    assert.deepEqual(svc.items.get('api'), service);
    assert.deepEqual(ids.items.get('S1'), identity);
    await Promise.all([mine.stop(), svc.stop(), ids.stop()]);
    await s.operatorCerts.deleteCustomerCert(2, 'cp');
    await s.operatorCerts.deleteServiceCert(2, 'api');
    assert.equal(await raw(KEYS.customerCert(2, 'cp')), null);
    assert.equal(await raw(KEYS.serviceCert(2, 'api')), null);
  });

  test('a node record is updated in place; alerts per node', async () => {
    await etcd.client.put(KEYS.node(8)).value(JSON.stringify(nodeRecord(8, '127.0.27.8')));
    const next = await s.nodes.update(8, (n) => ({ ...n, software_version: '9.9' }));
    assert.equal(next?.software_version, '9.9');
    assert.equal((await s.nodes.get(8))?.software_version, '9.9');
    assert.equal(await s.nodes.update(9, (n) => n), undefined);
    assert.equal(await raw(KEYS.node(9)), null);
    await s.nodes.putAlerts(8, {});
    assert.deepEqual((await s.nodes.alerts()).get(8), {});
  });
});
