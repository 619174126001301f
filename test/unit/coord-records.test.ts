// Typed reads of the coordination store: a record is checked against its
// schema when it is read, so a malformed one fails there, naming its key and
// the first problem; records written by older code (without the optional
// fields added since) and records with fields this code does not know still read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MalformedRecordError,
  MissingRecordError,
  type RecordStore,
  readRecord,
  readRecords,
  requireRecord,
} from '../../src/coord/records.js';
import {
  KEYS,
  BdbRecord,
  DEFAULT_POLICY,
  StoredJobScheduler,
  StoredPolicy,
  jobSchedulerWithDefaults,
  policyWithDefaults,
} from '../../src/coord/schema.js';
import { CaRecord } from '../../src/coord/schema-ca.js';

/** A store over a map of key → stored text, with the part of the etcd3 client the reads use. */
function store(entries: Record<string, unknown>): RecordStore {
  const data = new Map(Object.entries(entries).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
  return {
    get: (key) => ({ string: async () => data.get(key) ?? null }),
    getAll: () => ({ prefix: (p) => ({ strings: async () => Object.fromEntries([...data].filter(([k]) => k.startsWith(p))) }) }),
  };
}

/** A database record as the first versions wrote it: none of the optional fields. */
const olderBdb = {
  uid: 1,
  name: 'db1',
  type: 'redis',
  port: 12000,
  memory_size: 104857600,
  shards_count: 2,
  sharding: true,
  replication: false,
  proxy_policy: 'all-master-shards',
  shards_placement: 'sparse',
  data_internode_encryption: false,
  data_persistence: 'disabled',
  eviction_policy: 'volatile-lru',
  internal_secret: 's3cret',
  shards: [
    { uid: 1, role: 'master', node_uid: 1, slots: [0, 8191] },
    { uid: 2, role: 'master', node_uid: 2, slots: [8192, 16383] },
  ],
  status: 'active',
  generation: 3,
  link_generation: 1,
  created_time: '2025-01-01T00:00:00.000Z',
  last_changed_time: '2025-01-01T00:00:00.000Z',
};

test('a valid older record, without the optional fields, reads as the typed record', async () => {
  const b = await readRecord(store({ [KEYS.bdb(1)]: olderBdb }), KEYS.bdb(1), BdbRecord);
  assert.ok(b);
  assert.deepEqual(b, olderBdb);
  assert.equal(b.action_uid, undefined);
  assert.equal(b.shards[0].master_uid, undefined);
});

test('fields the schema does not know (written by a newer node) do not make a record malformed', async () => {
  const newer = { ...olderBdb, action_uid: '7', some_future_field: { x: 1 } };
  const b = await readRecord(store({ [KEYS.bdb(1)]: newer }), KEYS.bdb(1), BdbRecord);
  assert.equal(b?.action_uid, '7');
});

test('a malformed record gives a clear error: its key, and the path and message of the first problem', async () => {
  const bad = { ...olderBdb, shards: [{ ...olderBdb.shards[0], node_uid: 'one' }] };
  await assert.rejects(readRecord(store({ [KEYS.bdb(1)]: bad }), KEYS.bdb(1), BdbRecord), (err: Error) => {
    assert.ok(err instanceof MalformedRecordError);
    assert.equal(err.key, '/tessera/bdbs/1');
    assert.match(err.message, /^stored record at \/tessera\/bdbs\/1 is malformed: \/shards\/0\/node_uid: Expected integer$/);
    return true;
  });

  const { status: _s, ...noStatus } = olderBdb;
  await assert.rejects(
    readRecord(store({ [KEYS.bdb(1)]: noStatus }), KEYS.bdb(1), BdbRecord),
    /^MalformedRecordError: stored record at \/tessera\/bdbs\/1 is malformed: \/status: /,
  );
  await assert.rejects(
    readRecord(store({ [KEYS.bdb(1)]: { ...olderBdb, status: 'exploded' } }), KEYS.bdb(1), BdbRecord),
    /stored record at \/tessera\/bdbs\/1 is malformed: \/status: /,
  );
  await assert.rejects(
    readRecord(store({ [KEYS.ca]: '{"cert": "x", ' }), KEYS.ca, CaRecord),
    /^MalformedRecordError: stored record at \/tessera\/ca is malformed: not JSON/,
  );
  await assert.rejects(
    readRecord(store({ [KEYS.ca]: [1, 2] }), KEYS.ca, CaRecord),
    /stored record at \/tessera\/ca is malformed: \/: Expected object/,
  );
});

test('an absent record is null; one that must exist is an error naming its key', async () => {
  assert.equal(await readRecord(store({}), KEYS.bdb(9), BdbRecord), null);
  await assert.rejects(
    requireRecord(store({}), KEYS.ca, CaRecord),
    (err: Error) => err instanceof MissingRecordError && err.message === 'stored record at /tessera/ca is missing',
  );
  assert.deepEqual(await requireRecord(store({ [KEYS.ca]: { cert: 'c', key: 'k' } }), KEYS.ca, CaRecord), { cert: 'c', key: 'k' });
});

test('a prefix read gives every record by key; one it cannot read is left out and listed, naming it, and never fails the read', async () => {
  const two = { ...olderBdb, uid: 2, name: 'db2' };
  const all = await readRecords(
    store({ [KEYS.bdb(1)]: olderBdb, [KEYS.bdb(2)]: two, [KEYS.ca]: { cert: 'c', key: 'k' } }),
    KEYS.bdbsPrefix,
    BdbRecord,
  );
  assert.deepEqual([...all.keys()].sort(), ['/tessera/bdbs/1', '/tessera/bdbs/2']);
  assert.equal(all.get(KEYS.bdb(2))?.name, 'db2');
  const mixed = await readRecords(
    store({ [KEYS.bdb(1)]: olderBdb, [KEYS.bdb(2)]: { ...two, port: '12001' }, [KEYS.bdb(3)]: { ...two, uid: 3, status: 'resharding' } }),
    KEYS.bdbsPrefix,
    BdbRecord,
  );
  assert.deepEqual([...mixed.keys()], ['/tessera/bdbs/1']);
  assert.deepEqual([...mixed.notUnderstood.keys()].sort(), ['/tessera/bdbs/2', '/tessera/bdbs/3']);
  assert.match(
    String(mixed.notUnderstood.get(KEYS.bdb(2))),
    /^MalformedRecordError: stored record at \/tessera\/bdbs\/2 is malformed: \/port: Expected integer$/,
  );
  assert.match(mixed.notUnderstood.get(KEYS.bdb(3))!.problem, /^\/status: /);
  assert.equal((await readRecords(store({}), KEYS.bdbsPrefix, BdbRecord)).size, 0);
});

test('a policy written before some of its fields existed reads with the defaults for them; a wrong type is malformed', async () => {
  const older = await readRecord(store({ [KEYS.policy]: { data_internode_encryption: true } }), KEYS.policy, StoredPolicy);
  assert.deepEqual(policyWithDefaults(older), { ...DEFAULT_POLICY, data_internode_encryption: true });
  assert.deepEqual(policyWithDefaults(null), DEFAULT_POLICY);
  assert.deepEqual(policyWithDefaults(older, { failover_timeout: 9 }), {
    ...DEFAULT_POLICY,
    data_internode_encryption: true,
    failover_timeout: 9,
  });
  await assert.rejects(
    readRecord(store({ [KEYS.policy]: { internode_key_exchange: 'classic_only' } }), KEYS.policy, StoredPolicy),
    /stored record at \/tessera\/policy is malformed: \/internode_key_exchange: /,
  );
});

test('settings merge one level deep over their defaults, each layer in turn', async () => {
  const stored = await readRecord(
    store({ [KEYS.jobScheduler]: { cert_rotation_job_settings: { validity_days: 30 } } }),
    KEYS.jobScheduler,
    StoredJobScheduler,
  );
  assert.deepEqual(jobSchedulerWithDefaults(stored), {
    cert_rotation_job_settings: { enabled: true, validity_days: 30, expiry_days_before_rotation: 60 },
  });
  assert.deepEqual(jobSchedulerWithDefaults(stored, { cert_rotation_job_settings: { expiry_days_before_rotation: 10 } }), {
    cert_rotation_job_settings: { enabled: true, validity_days: 30, expiry_days_before_rotation: 10 },
  });
  assert.deepEqual(jobSchedulerWithDefaults(undefined).cert_rotation_job_settings.validity_days, 90);
});
