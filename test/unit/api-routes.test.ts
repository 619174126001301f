// The REST routes' validation and error paths, in-process: the real Fastify
// app, its schemas, error handler and basic auth, driven with `inject` over a
// real scratch etcd (test/support/api-host.ts). Every refusal must be the
// right HTTP status with `{error_code, description}`, and must leave the
// store as it was; each group also has a control that succeeds, so that a
// refusal cannot come from a broken harness.
//
// Address: etcd listens on 127.0.25.1 (client 23790, peer 23800).
import net from 'node:net';
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createCa, type Issued } from '../../src/pki/pki.js';
import { KEYS, ActionRecord, BdbRecord, MaintenanceRecord, type ObservedRecord, type ShardPlacement } from '../../src/coord/schema.js';
import { readRecord, readRecords } from '../../src/coord/records.js';
import { startApiHarness, nodeRecord, basic, API_USER, type ApiHarness } from '../support/api-host.js';
import type { Api } from '../../src/api/server.js';
import { bdbRecord } from '../support/bdb-record.js';

type InjectResponse = Awaited<ReturnType<Api['inject']>>;

const HOST = '127.0.25.1';
let h: ApiHarness;
let ca: Issued;

before(async () => {
  ca = await createCa('api-test', 'c-api-test');
  h = await startApiHarness(HOST, ca);
  const c = h.etcd.client;
  await c.put(KEYS.ca).value(JSON.stringify({ cert: ca.certPem, key: ca.keyPem }));
  // Node 2: a member that is down (no liveness record), without data-plane encryption support.
  await c.put(KEYS.node(2)).value(JSON.stringify(nodeRecord(2, '127.0.25.2', { capabilities: [] })));
  await h.settle('node 2 in the cache', () => h.member.nodes.items.has('2'));
});

after(async () => {
  await h?.close();
});

type Method = 'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH';

// Failed logins are limited per source address: each request without the admin's
// credentials comes from an address of its own, so no case is refused for an earlier one.
let sources = 0;
function call(
  method: Method,
  url: string,
  body?: unknown,
  headers: Record<string, string> = { authorization: h.auth },
): Promise<InjectResponse> {
  const n = ++sources;
  const remoteAddress = headers.authorization === h.auth ? '127.0.0.1' : `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  return h.app.inject({
    method,
    url,
    headers,
    remoteAddress,
    ...(body === undefined ? {} : typeof body === 'string' ? { payload: body } : { payload: body as object }),
  });
}

/** The status, and exactly `{error_code, description}` (plus `extra` keys where a route adds detail). */
function assertError(r: InjectResponse, status: number, code: string, description?: RegExp, extra: string[] = []): void {
  assert.equal(r.statusCode, status, `${r.statusCode} ${r.body}`);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const j = r.json() as Record<string, unknown>;
  assert.deepEqual(Object.keys(j).sort(), ['description', 'error_code', ...extra].sort(), r.body);
  assert.equal(j.error_code, code, r.body);
  assert.equal(typeof j.description, 'string');
  assert.ok((j.description as string).length > 0);
  if (description) assert.match(j.description as string, description);
}

/** Every key under the store's prefix, with its value: a refusal must not change it. */
async function storeSnapshot(): Promise<Record<string, string>> {
  return h.etcd.client.getAll().prefix('/tessera/').strings();
}

async function assertRefusedUnchanged(r: Promise<InjectResponse>, status: number, code: string, description?: RegExp): Promise<void> {
  const before = await storeSnapshot();
  assertError(await r, status, code, description);
  assert.deepEqual(await storeSnapshot(), before, `${code}: a refused request changed the store`);
}

// ------------------------------------------------------------------ auth

describe('authentication', () => {
  const refusals: Array<[string, Record<string, string>]> = [
    ['no credentials', {}],
    ['a wrong password', { authorization: basic(API_USER, 'wrong') }],
    ['an unknown user', { authorization: basic('nobody@test.local', 'api-test-password') }],
    ['an empty password', { authorization: basic(API_USER, '') }],
    ['not base64 user:password', { authorization: 'Basic !!!not-base64' }],
    ['another scheme', { authorization: 'Bearer abc' }],
  ];
  for (const [what, headers] of refusals) {
    test(`${what}: 401 unauthorized with a Basic challenge`, async () => {
      for (const [method, url] of [
        ['GET', '/v1/cluster'],
        ['GET', '/v1/bdbs'],
        ['PUT', '/v1/cluster/policy'],
        ['DELETE', '/v1/bdbs/1'],
      ] as const) {
        const r = await call(method, url, method === 'PUT' ? { data_internode_encryption: true } : undefined, headers);
        assertError(r, 401, 'unauthorized');
        assert.equal(r.headers['www-authenticate'], 'Basic realm="tessera"', `${method} ${url}`);
      }
    });
  }

  test('a refused write does not reach the store; the same write with credentials does', async () => {
    await assertRefusedUnchanged(call('PUT', '/v1/cluster/policy', { failover_timeout: 42 }, {}), 401, 'unauthorized');
    const ok = await call('PUT', '/v1/cluster/policy', { failover_timeout: 42 });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(JSON.parse((await h.etcd.client.get(KEYS.policy).string())!).failover_timeout, 42);
  });

  test('an unknown path is 404 not_found, with or without credentials; the right credentials get 200', async () => {
    assertError(await call('GET', '/v1/no_such_thing', undefined, {}), 404, 'not_found', /GET \/v1\/no_such_thing/);
    assertError(await call('GET', '/v1/no_such_thing'), 404, 'not_found');
    assertError(await call('PATCH', '/v1/bdbs/1', { name: 'x' }), 404, 'not_found', /PATCH/);
    const r = await call('GET', '/v1/cluster');
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().name, 'api-test.local');
  });
});

// ----------------------------------------------------------- request bodies

describe('request bodies that are not JSON objects', () => {
  test('malformed JSON, an empty JSON body, a non-JSON content type, an array', async () => {
    const raw = (payload: string, type = 'application/json') =>
      h.app.inject({ method: 'PUT', url: '/v1/cluster/policy', headers: { authorization: h.auth, 'content-type': type }, payload });
    const before = await storeSnapshot();
    const cases = [
      ['malformed JSON', await raw('{"data_internode_encryption": tru'), 400, 'ctp_invalid_json_body'],
      ['an empty JSON body', await raw(''), 400, 'ctp_empty_json_body'],
      ['text/plain (read as a string)', await raw('data_internode_encryption=true', 'text/plain'), 400, 'invalid_schema'],
      [
        'an unknown content type',
        await raw('data_internode_encryption=true', 'application/x-www-form-urlencoded'),
        415,
        'ctp_invalid_media_type',
      ],
      ['an array', await raw('[{"data_internode_encryption": true}]'), 400, 'invalid_schema'],
      ['a string', await raw('"true"'), 400, 'invalid_schema'],
    ] as const;
    for (const [what, r, status, code] of cases) {
      assert.equal(r.statusCode, status, `${what}: ${r.body}`);
      assertError(r, status, code);
    }
    assert.deepEqual(await storeSnapshot(), before);
  });
});

// ------------------------------------------------------------------ cluster

describe('cluster and policy', () => {
  test('PUT /v1/cluster/policy: empty, unknown fields, wrong types, out of range', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{}, /must NOT have fewer than 1 properties/],
      [{ data_internode_encryption: true, encryption: true }, /unknown field 'encryption'/],
      [{ data_internode_encryption: 'true' }, /data_internode_encryption must be boolean/],
      [{ data_internode_encryption: 1 }, /must be boolean/],
      [{ internode_key_exchange: 'rsa' }, /internode_key_exchange must be equal to one of the allowed values/],
      [{ failover_timeout: '5' }, /failover_timeout must be integer/],
      [{ failover_timeout: 1.5 }, /must be integer/],
      [{ failover_timeout: 0 }, /must be >= 1/],
      [{ failover_timeout: 3601 }, /must be <= 3600/],
      [{ failover_timeout: null }, /must be integer/],
    ];
    for (const [body, why] of cases) await assertRefusedUnchanged(call('PUT', '/v1/cluster/policy', body), 400, 'invalid_schema', why);
  });

  test('PUT /v1/cluster/policy: a valid change is stored and read back', async () => {
    const r = await call('PUT', '/v1/cluster/policy', { data_internode_encryption: true, failover_timeout: 7 });
    assert.equal(r.statusCode, 200, r.body);
    const stored = JSON.parse((await h.etcd.client.get(KEYS.policy).string())!);
    assert.equal(stored.data_internode_encryption, true);
    assert.equal(stored.failover_timeout, 7);
    const g = await call('GET', '/v1/cluster/policy');
    assert.equal(g.json().failover_timeout, 7);
    await call('PUT', '/v1/cluster/policy', { data_internode_encryption: false });
  });

  test('PUT /v1/cluster (alert settings): empty, unknown alert, unknown field, wrong type', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{}, /fewer than 1 properties/],
      [{ name: 'renamed' }, /unknown field 'name'/],
      [{ alert_settings: {} }, /fewer than 1 properties/],
      [{ alert_settings: { no_such_alert: { enabled: true } } }, /unknown field 'no_such_alert'/],
      [{ alert_settings: { node_internal_certs_about_to_expire: { enabled: 'yes' } } }, /enabled must be boolean/],
      [{ alert_settings: { node_internal_certs_about_to_expire: { enabled: true, color: 'red' } } }, /unknown field 'color'/],
      [{ alert_settings: 'on' }, /alert_settings must be object/],
    ];
    for (const [body, why] of cases) await assertRefusedUnchanged(call('PUT', '/v1/cluster', body), 400, 'invalid_schema', why);
    const ok = await call('PUT', '/v1/cluster', { alert_settings: { node_internal_certs_about_to_expire: { enabled: false } } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().alert_settings.node_internal_certs_about_to_expire.enabled, false);
  });

  test('PUT /v1/cluster (disk alert settings): a percent threshold in (0, 100], no threshold for node_insufficient_disk_aofrw', async () => {
    for (const threshold of [0, 101, '150', 'full'])
      await assertRefusedUnchanged(
        call('PUT', '/v1/cluster', { alert_settings: { node_persistent_storage: { threshold } } }),
        400,
        'invalid_threshold',
        /node_persistent_storage\.threshold must be a number of percent above 0 and at most 100/,
      );
    await assertRefusedUnchanged(
      call('PUT', '/v1/cluster', { alert_settings: { node_insufficient_disk_aofrw: { threshold: 5 } } }),
      400,
      'invalid_schema',
      /unknown field 'threshold'/,
    );
    const ok = await call('PUT', '/v1/cluster', {
      alert_settings: { node_persistent_storage: { threshold: '80' }, node_insufficient_disk_aofrw: { enabled: false } },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(ok.json().alert_settings.node_persistent_storage, { enabled: true, threshold: 80 });
    assert.deepEqual(ok.json().alert_settings.node_insufficient_disk_aofrw, { enabled: false, threshold: 0 });
    await call('PUT', '/v1/cluster', {
      alert_settings: { node_persistent_storage: { threshold: 90 }, node_insufficient_disk_aofrw: { enabled: true } },
    });
  });

  test('GET /v1/cluster/certificates answers from the stored CA', async () => {
    const r = await call('GET', '/v1/cluster/certificates');
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().ca.certificate, ca.certPem);
  });
});

// -------------------------------------------------------------------- nodes

describe('nodes', () => {
  test('a uid that is not a number is 400; a node that does not exist is 404', async () => {
    for (const url of [
      '/v1/nodes/abc',
      '/v1/nodes/-1',
      '/v1/nodes/1.5',
      '/v1/nodes/1234567890',
      '/v1/nodes/x/alerts',
      '/v1/nodes/x/internode_links',
    ]) {
      assertError(await call('GET', url), 400, 'invalid_schema', /params\/uid must match pattern/);
    }
    for (const url of ['/v1/nodes/99', '/v1/nodes/99/alerts', '/v1/nodes/99/internode_links']) {
      assertError(await call('GET', url), 404, 'node_not_found', /node 99 does not exist/);
    }
    const r = await call('GET', '/v1/nodes/2');
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().status, 'down');
  });

  test('remove: no such node, itself, a down node whose shards cannot be moved; refused without changing the store', async () => {
    await assertRefusedUnchanged(call('POST', '/v1/nodes/abc/actions/remove'), 400, 'invalid_schema');
    await assertRefusedUnchanged(call('POST', '/v1/nodes/99/actions/remove'), 404, 'node_not_found');
    await assertRefusedUnchanged(call('POST', '/v1/nodes/1/actions/remove'), 400, 'cannot_remove_self', /ask another node/);
    await putBdb(bdb(90, 'hosted-on-2', [shard(901, 'master', 2, [0, 16383])]));
    // Removal moves a node's shards away first; a master on a down node has nothing to copy from.
    await assertRefusedUnchanged(call('POST', '/v1/nodes/2/actions/remove'), 409, 'node_down', /shard 901/);
    await dropBdb(90);
  });
});

// -------------------------------------------------------------- databases

const SECRET = 'x'.repeat(32);
function shard(uid: number, role: 'master' | 'slave', node: number, slots: [number, number], master?: number): ShardPlacement {
  return { uid, role, node_uid: node, slots, ...(master !== undefined ? { master_uid: master } : {}) };
}
function bdb(uid: number, name: string, shards: ShardPlacement[], over: Partial<BdbRecord> = {}): BdbRecord {
  return bdbRecord(uid, shards, { name, sharding: false, proxy_policy: 'single', internal_secret: SECRET, ...over });
}
async function putBdb(b: BdbRecord): Promise<void> {
  await h.etcd.client.put(KEYS.bdb(b.uid)).value(JSON.stringify(b));
  await h.settle(`bdb ${b.uid} in the cache`, () => {
    const cached = h.member.databases().find((x) => x.uid === b.uid);
    return cached?.generation === b.generation && cached?.status === b.status;
  });
}
async function dropBdb(uid: number): Promise<void> {
  await h.etcd.client.delete().key(KEYS.bdb(uid));
  await h.settle(`bdb ${uid} out of the cache`, () => !h.member.databases().some((x) => x.uid === uid));
}

describe('databases', () => {
  before(async () => {
    await putBdb(bdb(1, 'existing', [shard(1, 'master', 1, [0, 16383])]));
    await putBdb(bdb(2, 'going', [shard(2, 'master', 1, [0, 16383])], { status: 'delete-pending' }));
  });
  after(async () => {
    await dropBdb(1);
    await dropBdb(2);
  });

  const MB = 1024 * 1024;
  test('POST /v1/bdbs: unknown fields and wrong types are 400 invalid_schema', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ name: 'a', memory_size: MB, colour: 'blue' }, /unknown field 'colour'/],
      [{ name: 'a', memory_size: MB, shard_list: [1] }, /unknown field 'shard_list'/],
      [{ name: 'a', memory_size: MB, status: 'active' }, /unknown field 'status'/],
      [{ name: 'a', memory_size: MB, internal_secret: 's' }, /unknown field 'internal_secret'/],
      [{ name: 5, memory_size: MB }, /name must be string/],
      [{ name: 'a', memory_size: '1048576' }, /memory_size must be integer/],
      [{ name: 'a', memory_size: 1.5 * MB + 0.5 }, /memory_size must be integer/],
      [{ name: 'a', memory_size: MB, replication: 'true' }, /replication must be boolean/],
      [{ name: 'a', memory_size: MB, shards_count: '2' }, /shards_count must be integer/],
      [{ name: 'a', memory_size: MB, data_internode_encryption: 'enabled' }, /must be boolean/],
      [{ name: 'a', memory_size: MB, authentication_redis_pass: 'p'.repeat(513) }, /must NOT have more than 512 characters/],
      [{ name: 'a', memory_size: MB, port: null }, /port must be integer/],
    ];
    for (const [body, why] of cases) await assertRefusedUnchanged(call('POST', '/v1/bdbs', body), 400, 'invalid_schema', why);
  });

  test('POST /v1/bdbs: missing and invalid values are 406, with the reference error codes', async () => {
    const cases: Array<[unknown, string]> = [
      [{}, 'missing_db_name'],
      [{ memory_size: MB }, 'missing_db_name'],
      [{ name: 'a' }, 'missing_memory_size'],
      [{ name: 'bad name', memory_size: MB }, 'invalid_name'],
      [{ name: '-dash-first', memory_size: MB }, 'invalid_name'],
      [{ name: 'n'.repeat(64), memory_size: MB }, 'invalid_name'],
      [{ name: 'a', memory_size: MB, type: 'memcached' }, 'invalid_type'],
      [{ name: 'a', memory_size: MB - 1 }, 'invalid_memory_size'],
      [{ name: 'a', memory_size: 2 * MB, shards_count: 3 }, 'invalid_memory_size'],
      [{ name: 'a', memory_size: MB, port: 9999 }, 'invalid_port'],
      [{ name: 'a', memory_size: MB, port: 20000 }, 'invalid_port'],
      [{ name: 'a', memory_size: MB, shards_count: 0 }, 'invalid_sharding'],
      [{ name: 'a', memory_size: 600 * MB, shards_count: 513 }, 'invalid_sharding'],
      [{ name: 'a', memory_size: 2 * MB, shards_count: 2, sharding: false }, 'invalid_sharding'],
      [{ name: 'a', memory_size: MB, proxy_policy: 'everywhere' }, 'invalid_proxy_policy'],
      [{ name: 'a', memory_size: MB, shards_placement: 'random' }, 'invalid_shards_placement'],
      [{ name: 'a', memory_size: MB, data_persistence: 'rdb' }, 'invalid_data_persistence'],
      [{ name: 'a', memory_size: MB, eviction_policy: 'lru' }, 'invalid_eviction_policy'],
      [{ name: 'a', memory_size: MB, min_replicas_to_write: 2 }, 'invalid_min_replicas_to_write'],
      [{ name: 'a', memory_size: MB, min_replicas_max_lag: 0 }, 'invalid_min_replicas_max_lag'],
      // Store-backed checks: a name in use, a port in use, a node that cannot encrypt, too few live nodes.
      [{ name: 'existing', memory_size: MB }, 'db_name_exists'],
      [{ name: 'a', memory_size: MB, port: 12001 }, 'port_unavailable'],
      [{ name: 'a', memory_size: MB, data_internode_encryption: true }, 'capability_missing'],
      [{ name: 'a', memory_size: MB, replication: true }, 'insufficient_resources'],
    ];
    for (const [body, code] of cases) await assertRefusedUnchanged(call('POST', '/v1/bdbs', body), 406, code);
  });

  test('POST /v1/bdbs: a port a foreign listener holds on a live node is skipped when choosing, refused when asked for', async () => {
    // Databases 1 and 2 have 12001 and 12002; something else listens on 12000 and 12003 of node 1.
    const held = await Promise.all(
      [12000, 12003].map(
        (port) =>
          new Promise<net.Server>((resolve, reject) => {
            const s = net.createServer();
            s.once('error', reject);
            s.listen({ host: HOST, port, exclusive: true }, () => resolve(s));
          }),
      ),
    );
    try {
      const chosen = await call('POST', '/v1/bdbs?dry_run=1', { name: 'auto-port', memory_size: MB });
      assert.equal(chosen.statusCode, 200, chosen.body);
      assert.equal(chosen.json().port, 12004);
      await assertRefusedUnchanged(
        call('POST', '/v1/bdbs', { name: 'a', memory_size: MB, port: 12000 }),
        406,
        'port_unavailable',
        /^port 12000 is in use on node 1$/,
      );
    } finally {
      await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    }
    // Once the listener is gone, the lowest free port is chosen again.
    const again = await call('POST', '/v1/bdbs?dry_run=1', { name: 'auto-port', memory_size: MB });
    assert.equal(again.statusCode, 200, again.body);
    assert.equal(again.json().port, 12000);
  });

  test('POST /v1/bdbs: encryption by the cluster default yields to a node without it (the database is created unencrypted)', async () => {
    await call('PUT', '/v1/cluster/policy', { data_internode_encryption: true });
    try {
      const r = await call('POST', '/v1/bdbs', { name: 'by-default', memory_size: MB });
      assert.equal(r.statusCode, 200, r.body);
      const stored = await readRecord(h.etcd.client, KEYS.bdb(r.json().uid), BdbRecord);
      assert.equal(stored?.data_internode_encryption, false);
      await dropBdb(r.json().uid);
    } finally {
      await call('PUT', '/v1/cluster/policy', { data_internode_encryption: false });
    }
  });

  test('GET, PUT, DELETE of a database that does not exist: 404 db_not_exist; a uid that is not a number: 400', async () => {
    for (const m of ['GET', 'DELETE'] as const) {
      await assertRefusedUnchanged(call(m, '/v1/bdbs/999'), 404, 'db_not_exist', /database 999 does not exist/);
      await assertRefusedUnchanged(call(m, '/v1/bdbs/one'), 400, 'invalid_schema', /params\/uid/);
    }
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/999', { memory_size: 2 * MB }), 404, 'db_not_exist');
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/one', { memory_size: 2 * MB }), 400, 'invalid_schema');
  });

  test('PUT /v1/bdbs/{uid}: empty, unknown fields, wrong types, fixed fields; no action is left behind', async () => {
    const schema: Array<[unknown, RegExp]> = [
      [{}, /fewer than 1 properties/],
      [{ colour: 'blue' }, /unknown field 'colour'/],
      [{ uid: 5 }, /unknown field 'uid'/],
      [{ memory_size: 'big' }, /memory_size must be integer/],
      [{ data_internode_encryption: 'yes' }, /must be boolean/],
    ];
    for (const [body, why] of schema) await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', body), 400, 'invalid_schema', why);
    for (const body of [{ port: 12050 }, { sharding: true }, { type: 'redis' }, { shards_placement: 'dense' }]) {
      await assertRefusedUnchanged(
        call('PUT', '/v1/bdbs/1', body),
        406,
        'unsupported_change',
        new RegExp(`${Object.keys(body)[0]} cannot be changed`),
      );
    }
    // Replication is changed online (bdb-shape.ts), from cluster version 0.2: this store has none, so 0.1.
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { replication: true }), 409, 'cluster_version_too_old', /replication_change/);
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { memory_size: MB - 1 }), 406, 'invalid_memory_size');
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { eviction_policy: 'lru' }), 406, 'invalid_eviction_policy');
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { min_replicas_to_write: -1 }), 406, 'invalid_min_replicas_to_write');
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { min_replicas_max_lag: 'ten' }), 400, 'invalid_schema');
    // A 0.1.0 node would run its shards without the guard: refused until every node is 0.2.
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { min_replicas_to_write: 1 }), 409, 'cluster_version_too_old', /min_replicas/);
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { data_internode_encryption: true }), 406, 'capability_missing');
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/2', { memory_size: 2 * MB }), 409, 'db_busy', /being deleted/);
  });

  test('PUT /v1/bdbs/{uid}: a valid change is written as desired state with an action', async () => {
    const r = await call('PUT', '/v1/bdbs/1', { memory_size: 200 * MB, min_replicas_max_lag: 2 });
    assert.equal(r.statusCode, 200, r.body);
    const stored = await readRecord(h.etcd.client, KEYS.bdb(1), BdbRecord);
    assert.equal(stored?.memory_size, 200 * MB);
    assert.equal(stored?.min_replicas_max_lag, 2);
    assert.equal(stored?.generation, 2);
    assert.equal(stored?.status, 'active-change-pending');
    const action = await readRecord(h.etcd.client, KEYS.action(Number(stored!.action_uid)), ActionRecord);
    assert.equal(action?.object_name, 'bdb:1');
    await putBdb({ ...stored!, status: 'active' });
  });

  test('PUT /v1/bdbs/{uid} shards_count: out of 1..512, not an integer, with other fields: 400; on a 0.1 cluster: 409; nothing written', async () => {
    for (const n of [0, 513, -1])
      await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { shards_count: n }), 400, 'invalid_shards_count', /from 1 to 512/);
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { shards_count: 2.5 }), 400, 'invalid_schema', /shards_count must be integer/);
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { shards_count: '2' }), 400, 'invalid_schema', /shards_count must be integer/);
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { shards_count: 2, sharding: false }), 400, 'invalid_sharding');
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { shards_count: 2, memory_size: 2 * MB }), 400, 'unsupported_change');
    // No cluster version stored: the cluster is 0.1, which cannot reshard.
    await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { shards_count: 2 }), 409, 'cluster_version_too_old', /resharding/);
  });

  test('PUT /v1/bdbs/{uid} shards_count on a 0.2 cluster: busy 409, no change 400, unplaceable 409; a valid one answers with its action', async () => {
    const c = h.etcd.client;
    await c.put(KEYS.clusterVersion).value(JSON.stringify({ version: '0.2', updated_time: new Date().toISOString() }));
    try {
      await assertRefusedUnchanged(call('PUT', '/v1/bdbs/2', { shards_count: 2 }), 409, 'db_busy');
      await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { shards_count: 1 }), 400, 'no_change');
      // Node 2 is down: a replicated database has one eligible node for its new shards.
      await putBdb(bdb(3, 'replicated', [shard(3, 'master', 1, [0, 16383])], { replication: true }));
      await assertRefusedUnchanged(call('PUT', '/v1/bdbs/3', { shards_count: 2 }), 409, 'no_placement', /two eligible nodes/);
      await dropBdb(3);
      const r = await call('PUT', '/v1/bdbs/1', { shards_count: 2, sharding: true });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().status, 'active-change-pending');
      const stored = await readRecord(c, KEYS.bdb(1), BdbRecord);
      assert.equal(stored?.reshard?.shards_count, 2);
      assert.deepEqual(
        stored?.reshard?.moves.map((m) => m.slots),
        [[8192, 16383]],
      );
      assert.equal(stored?.shards.length, 2, 'the new master is written, serving no slot yet');
      const action = await readRecord(c, KEYS.action(Number(r.json().action_uid)), ActionRecord);
      assert.equal(action?.name, 'reshard');
      await assertRefusedUnchanged(call('PUT', '/v1/bdbs/1', { shards_count: 3 }), 409, 'db_busy');
      const { reshard: _r, ...rest } = stored!;
      await putBdb({ ...rest, shards: stored!.shards.slice(0, 1), status: 'active' });
    } finally {
      await c.delete().key(KEYS.clusterVersion);
    }
  });

  test('DELETE /v1/bdbs/{uid} of a database being deleted: 409 db_delete_pending', async () => {
    await assertRefusedUnchanged(call('DELETE', '/v1/bdbs/2'), 409, 'db_delete_pending');
  });
});

// -------------------------------------------------------------- actions

describe('actions', () => {
  test('an action that does not exist is 404 action_not_exist; a uid that is not a number is 400', async () => {
    assertError(await call('GET', '/v1/actions/999999'), 404, 'action_not_exist');
    assertError(await call('GET', '/v1/actions/abc'), 400, 'invalid_schema', /params\/uid/);
    const all = await readRecords(h.etcd.client, KEYS.actionsPrefix, ActionRecord);
    for (const a of all.values()) {
      const r = await call('GET', `/v1/actions/${a.action_uid}`);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().action_uid, a.action_uid);
    }
  });
});

// -------------------------------------------------------------- shards

describe('shards', () => {
  // Database 10: shard 11 master on node 1 with replica 12 on node 2 (down); shard 13 master on node 1, no replica.
  // Database 20: shard 21, a master on node 2 (down).
  before(async () => {
    await putBdb(
      bdb(10, 'sharded', [shard(11, 'master', 1, [0, 8191]), shard(12, 'slave', 2, [0, 8191], 11), shard(13, 'master', 1, [8192, 16383])], {
        sharding: true,
      }),
    );
    await putBdb(bdb(20, 'other', [shard(21, 'master', 2, [0, 16383])]));
    const seen: ObservedRecord = {
      node_uid: 1,
      generation: 1,
      converged: true,
      shards: [{ uid: 11, role: 'master', status: 'active' }],
      time: new Date().toISOString(),
    };
    await h.etcd.client.put(KEYS.observed(10, 1)).value(JSON.stringify(seen));
  });
  after(async () => {
    await dropBdb(10);
    await dropBdb(20);
    await h.etcd.client.delete().key(KEYS.observed(10, 1));
  });

  test('GET /v1/shards/{uid}: 400 for a uid that is not a number, 404 for one that does not exist', async () => {
    assertError(await call('GET', '/v1/shards/x'), 400, 'invalid_schema');
    assertError(await call('GET', '/v1/shards/999'), 404, 'shard_not_found');
    const r = await call('GET', '/v1/shards/12');
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().detailed_status, 'down');
  });

  test('failover: bad bodies are 400 invalid_schema', async () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['/v1/shards/actions/failover', { shard_uids: [11], force: true }, /unknown field 'force'/],
      ['/v1/shards/actions/failover', { shard_uids: '11' }, /shard_uids must be array/],
      ['/v1/shards/actions/failover', { shard_uids: ['eleven'] }, /shard_uids\/0/],
      ['/v1/shards/actions/failover', { shard_uids: [-1] }, /shard_uids\/0/],
      ['/v1/shards/actions/failover', { shard_uids: [11], immediate: 'yes' }, /immediate must be boolean/],
      ['/v1/shards/11/actions/failover', { shard_uids: [11] }, /unknown field 'shard_uids'/],
      ['/v1/shards/11/actions/failover', { immediate: 1 }, /must be boolean/],
      ['/v1/shards/abc/actions/failover', {}, /params\/uid/],
    ];
    for (const [url, body, why] of cases) await assertRefusedUnchanged(call('POST', url, body), 400, 'invalid_schema', why);
  });

  test('failover: what cannot be failed over, with the reference codes', async () => {
    await assertRefusedUnchanged(call('POST', '/v1/shards/actions/failover', {}), 404, 'shard_uids_required');
    await assertRefusedUnchanged(call('POST', '/v1/shards/actions/failover'), 404, 'shard_uids_required');
    await assertRefusedUnchanged(call('POST', '/v1/shards/999/actions/failover'), 404, 'shard_not_exist');
    await assertRefusedUnchanged(
      call('POST', '/v1/shards/actions/failover', { shard_uids: [11, 21] }),
      400,
      'failover_shards_different_bdb',
    );
    await assertRefusedUnchanged(call('POST', '/v1/shards/12/actions/failover'), 400, 'shard_is_slave', /fail over its master, shard 11/);
    await assertRefusedUnchanged(call('POST', '/v1/shards/13/actions/failover'), 400, 'shard_has_no_replica');
    await assertRefusedUnchanged(call('POST', '/v1/shards/21/actions/failover'), 400, 'shard_has_no_replica');
    await assertRefusedUnchanged(
      call('POST', '/v1/shards/11/actions/failover', { immediate: true }),
      409,
      'replica_not_available',
      /node 2, which is down/,
    );
  });

  test('migrate: bad bodies are 400; a missing or absent target 404; a down target 409', async () => {
    for (const [url, body, why] of [
      ['/v1/shards/actions/migrate', { shard_uids: [11], target_node_uid: 'two' }, /target_node_uid/],
      ['/v1/shards/actions/migrate', { shard_uids: [11], target_node_uid: 2, now: true }, /unknown field 'now'/],
      ['/v1/shards/11/actions/migrate', { target_node_uid: -2 }, /target_node_uid/],
      ['/v1/shards/11/actions/migrate', { target_node_uid: 2, shard_uids: [11] }, /unknown field 'shard_uids'/],
    ] as const) {
      await assertRefusedUnchanged(call('POST', url, body), 400, 'invalid_schema', why);
    }
    await assertRefusedUnchanged(call('POST', '/v1/shards/actions/migrate', { target_node_uid: 2 }), 404, 'shard_uids_required');
    await assertRefusedUnchanged(call('POST', '/v1/shards/11/actions/migrate'), 404, 'target_node_uid_required');
    await assertRefusedUnchanged(call('POST', '/v1/shards/11/actions/migrate', { target_node_uid: 99 }), 404, 'node_not_found');
    await assertRefusedUnchanged(call('POST', '/v1/shards/999/actions/migrate', { target_node_uid: 2 }), 404, 'shard_not_exist');
    await assertRefusedUnchanged(call('POST', '/v1/shards/13/actions/migrate', { target_node_uid: '2' }), 409, 'node_down');
  });
});

// ------------------------------------------------------ maintenance mode

describe('maintenance mode', () => {
  const c = () => h.etcd.client;
  const live = (uid: number) => JSON.stringify({ uid, started_time: new Date().toISOString(), pid: process.pid });
  const on = (uid: number | string, body?: unknown) => call('POST', `/v1/nodes/${uid}/actions/maintenance_on`, body);
  const off = (uid: number | string, body?: unknown) => call('POST', `/v1/nodes/${uid}/actions/maintenance_off`, body);
  after(async () => {
    for (const uid of [3, 4, 5]) {
      await c().delete().key(KEYS.node(uid));
      await c().delete().key(KEYS.live(uid));
    }
    await c().delete().prefix(KEYS.maintenancePrefix);
    await c().delete().key(KEYS.clusterVersion);
    await dropBdb(30);
    await h.settle('nodes 3-5 gone', () => ![3, 4, 5].some((u) => h.member.nodes.items.has(String(u))));
  });

  test('bad bodies and uids are 400 invalid_schema; an unknown node is 404 node_not_found', async () => {
    for (const [url, body, why] of [
      ['/v1/nodes/abc/actions/maintenance_on', {}, /params\/uid/],
      ['/v1/nodes/1/actions/maintenance_on', { force: true }, /unknown field 'force'/],
      ['/v1/nodes/1/actions/maintenance_on', { demote_node: 'yes' }, /demote_node must be boolean/],
      ['/v1/nodes/1/actions/maintenance_on', { evict_dbs: 'db:1' }, /evict_dbs must be array/],
      ['/v1/nodes/1/actions/maintenance_off', { snapshot_name: 7 }, /snapshot_name must be string/],
      ['/v1/nodes/1/actions/maintenance_off', { overwrite_snapshot: true }, /unknown field 'overwrite_snapshot'/],
    ] as const) {
      await assertRefusedUnchanged(call('POST', url, body), 400, 'invalid_schema', why);
    }
    await assertRefusedUnchanged(on(99), 404, 'node_not_found', /node 99 does not exist/);
    await assertRefusedUnchanged(off(99), 404, 'node_not_found', /node 99 does not exist/);
    // The master role is always handed over (RE's demote_node): asking to keep it is refused, not ignored.
    await assertRefusedUnchanged(on(1, { demote_node: false }), 400, 'unsupported_option', /demote_node false is not supported/);
  });

  test('refused with 409 cluster_version_too_old while the cluster version is 0.1', async () => {
    await assertRefusedUnchanged(
      on(1),
      409,
      'cluster_version_too_old',
      /maintenance_mode needs cluster version 0\.2; the cluster version is 0\.1/,
    );
    await assertRefusedUnchanged(off(1), 409, 'cluster_version_too_old');
  });

  test('refusals at 0.2: quorum, a down node, the only node that could hold a shard, already on, off when not on', async () => {
    await c()
      .put(KEYS.clusterVersion)
      .value(JSON.stringify({ version: '0.2', updated_time: new Date().toISOString() }));
    // Two members, one down: taking node 1 down too leaves no quorum.
    await assertRefusedUnchanged(on(1), 409, 'quorum_loss', /needs 2 of its 2 members, and 0 would be left \(besides it, node 2 is down\)/);
    // Nodes 3, 4 and 5 join (live): 5 members, one down.
    for (const uid of [3, 4, 5]) {
      await c()
        .put(KEYS.node(uid))
        .value(JSON.stringify(nodeRecord(uid, `127.0.25.${uid}`)));
      await c().put(KEYS.live(uid)).value(live(uid));
    }
    await h.settle('nodes 3-5 live', () =>
      [3, 4, 5].every((u) => h.member.live.items.has(String(u)) && h.member.nodes.items.has(String(u))),
    );
    await assertRefusedUnchanged(on(2), 409, 'node_down', /node 2 is down/);
    // Database 30: master 31 on node 1, replicas on nodes 3, 4 and 5: once its master is switched over,
    // shard 31 has nowhere to go (every other live node holds a shard of its slots).
    await putBdb(
      bdb(30, 'everywhere', [
        shard(31, 'master', 1, [0, 16383]),
        shard(32, 'slave', 3, [0, 16383], 31),
        shard(33, 'slave', 4, [0, 16383], 31),
        shard(34, 'slave', 5, [0, 16383], 31),
      ]),
    );
    await assertRefusedUnchanged(on(1), 409, 'no_placement', /node 1 cannot enter maintenance mode: shard 31 of database 30/);
    await assertRefusedUnchanged(on(1, { evict_dbs: ['nosuchdb'] }), 404, 'db_not_exist', /evict_dbs: database nosuchdb does not exist/);
    // Node 3 is in maintenance mode already (its record, as the controller leaves it once on).
    await c()
      .put(KEYS.maintenance(3))
      .value(
        JSON.stringify({
          node_uid: 3,
          state: 'on',
          action_uid: '9999',
          snapshot_name: 'maintenance_mode_node3_x',
          snapshot_time: new Date().toISOString(),
          shards: [],
          updated_time: new Date().toISOString(),
        }),
      );
    await assertRefusedUnchanged(on(3), 409, 'already_in_maintenance', /use overwrite_snapshot/);
    await assertRefusedUnchanged(off(4), 409, 'not_in_maintenance', /node 4 is not in maintenance mode/);
    await assertRefusedUnchanged(off(3, { snapshot_name: 'other' }), 404, 'snapshot_not_found', /its snapshot is maintenance_mode_node3_x/);
    // Nothing is placed on a node in maintenance mode: a migration there is refused.
    await assertRefusedUnchanged(
      call('POST', '/v1/shards/32/actions/migrate', { target_node_uid: 3 }),
      409,
      'node_in_maintenance',
      /node 3 is in maintenance mode/,
    );
    // With node 2 down and node 3 in maintenance, node 4 may not go too (2 of 5 would be left).
    await dropBdb(30);
    await assertRefusedUnchanged(on(4), 409, 'quorum_loss', /node 2 is down, node 3 is in maintenance mode/);
  });

  test('accepted: an action at once, the record written, GET /v1/nodes shows it', async () => {
    const r = await off(3, { skip_shards_restore: true });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().status, 'ok');
    const rec = await readRecord(h.etcd.client, KEYS.maintenance(3), MaintenanceRecord);
    assert.equal(rec?.state, 'leaving');
    assert.equal(rec?.skip_shards_restore, true);
    assert.equal(rec?.action_uid, r.json().action_uid);
    const a = await readRecord(h.etcd.client, KEYS.action(Number(r.json().action_uid)), ActionRecord);
    assert.deepEqual([a?.name, a?.status, a?.object_name], ['maintenance_off', 'pending', 'node:3']);
    const busy = await off(3);
    assertError(busy, 409, 'maintenance_busy', /maintenance_off is under way/);
    const shown = (await call('GET', '/v1/nodes/3')).json();
    assert.deepEqual([shown.maintenance_mode, shown.maintenance_state, shown.accept_servers], [true, 'leaving', false]);
    const plain = (await call('GET', '/v1/nodes')).json().find((n: { uid: number }) => n.uid === 5);
    assert.deepEqual([plain.maintenance_mode, plain.accept_servers], [false, true]);
  });
});

// ------------------------------------------------ certificates and alerts

describe('certificate lifecycle', () => {
  test('PUT /v1/job_scheduler: empty, unknown fields, wrong types, out of range', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{}, /fewer than 1 properties/],
      [{ backup_job_settings: { enabled: true } }, /unknown field 'backup_job_settings'/],
      [{ cert_rotation_job_settings: {} }, /fewer than 1 properties/],
      [{ cert_rotation_job_settings: { enabled: 'true' } }, /enabled must be boolean/],
      [{ cert_rotation_job_settings: { cron_expression: '* * * * *', nope: 1 } }, /unknown field/],
      [{ cert_rotation_job_settings: { validity_days: 0 } }, /validity_days must be > 0/],
      [{ cert_rotation_job_settings: { validity_days: 3651 } }, /validity_days must be <= 3650/],
      [{ cert_rotation_job_settings: { expiry_days_before_rotation: '60' } }, /must be number/],
    ];
    for (const [body, why] of cases) await assertRefusedUnchanged(call('PUT', '/v1/job_scheduler', body), 400, 'invalid_schema', why);
    // Consistent values only: rotation must start before the certificate expires.
    await assertRefusedUnchanged(
      call('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { expiry_days_before_rotation: 90 } }),
      400,
      'invalid_schedule',
    );
    await assertRefusedUnchanged(
      call('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { validity_days: 30 } }),
      400,
      'invalid_schedule',
    );
    const ok = await call('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { validity_days: 120 } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((await call('GET', '/v1/job_scheduler')).json().cert_rotation_job_settings.validity_days, 120);
  });

  test('POST /v1/cluster/certificates/rotate: an unknown name is 403; bad bodies are 400', async () => {
    await assertRefusedUnchanged(
      call('POST', '/v1/cluster/certificates/rotate', { name: 'proxy_cert' }),
      403,
      'unknown_certificate',
      /proxy_cert/,
    );
    await assertRefusedUnchanged(
      call('POST', '/v1/cluster/certificates/rotate', { name: 5 }),
      400,
      'invalid_schema',
      /name must be string/,
    );
    await assertRefusedUnchanged(
      call('POST', '/v1/cluster/certificates/rotate', { name: 'ccs_internode_encryption', now: true }),
      400,
      'invalid_schema',
      /unknown field 'now'/,
    );
  });

  test('PUT /v1/cluster/certificates: bad bodies are 400 invalid_schema; a bad certificate 400 invalid_certificate', async () => {
    const pem = (s: string) => `-----BEGIN CERTIFICATE-----\n${s.repeat(40)}\n-----END CERTIFICATE-----\n`;
    const one = { name: 'ccs_internode_encryption', certificate: pem('QUJD'), key: pem('REVG').replace(/CERTIFICATE/g, 'PRIVATE KEY') };
    const cases: Array<[unknown, RegExp]> = [
      [{}, /must have required property 'certificates'/],
      [{ certificates: [] }, /must NOT have fewer than 1 items/],
      [{ certificates: one }, /certificates must be array/],
      [{ certificates: [{ ...one, name: 'no_such_certificate' }] }, /name must be equal to one of the allowed values/],
      [{ certificates: [{ ...one, certificate: 'short' }] }, /certificate must NOT have fewer than 64 characters/],
      [{ certificates: [{ name: one.name, certificate: one.certificate }] }, /must have required property 'key'/],
      [{ certificates: [{ ...one, node_uid: 0 }] }, /node_uid must be >= 1/],
      [{ certificates: [{ ...one, node_uid: '1' }] }, /node_uid must be integer/],
      [{ certificates: [{ ...one, expires: 'never' }] }, /unknown field 'expires'/],
      [{ certificates: [one], force: true }, /unknown field 'force'/],
    ];
    for (const [body, why] of cases)
      await assertRefusedUnchanged(call('PUT', '/v1/cluster/certificates', body), 400, 'invalid_schema', why);
    await assertRefusedUnchanged(call('PUT', '/v1/cluster/certificates', { certificates: [one] }), 400, 'invalid_certificate');
    // The cluster's own CA as a leaf: real PEM, refused by the certificate checks, not the schema.
    await assertRefusedUnchanged(
      call('PUT', '/v1/cluster/certificates', { certificates: [{ ...one, certificate: ca.certPem, key: ca.keyPem }] }),
      400,
      'invalid_certificate',
    );
  });
});

// ------------------------------------------------------ bootstrap and joins

describe('bootstrap and join admission', () => {
  const creds = { username: 'admin@test.local', password: 'pw-123456' };
  /** Refused with 400 invalid_schema, and the daemon never saw it. */
  async function refused(method: Method, url: string, body: unknown, why: RegExp, headers?: Record<string, string>): Promise<void> {
    const n = h.bootstrap.calls.length;
    assertError(await call(method, url, body, headers), 400, 'invalid_schema', why);
    assert.equal(h.bootstrap.calls.length, n, `${url}: a refused body reached the daemon`);
  }

  test('bootstrap needs no credentials; the operator routes and join admission do', async () => {
    const r = await call('GET', '/v1/bootstrap', undefined, {});
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().bootstrap_status.state, 'completed');
    assertError(await call('POST', '/v1/cluster/join_node', {}, {}), 401, 'unauthorized');
    assertError(await call('POST', '/v1/cluster/join_node/2/promote', undefined, {}), 401, 'unauthorized');
    assert.deepEqual(h.bootstrap.calls, []);
  });

  test('POST /v1/bootstrap/create_cluster: bad bodies never reach the daemon; a wrong address is 400', async () => {
    const url = '/v1/bootstrap/create_cluster';
    const cases: Array<[unknown, RegExp]> = [
      [{}, /required property 'cluster'/],
      [{ cluster: { name: 'c.local' } }, /required property 'credentials'/],
      [{ action: 'join_cluster', cluster: { name: 'c.local' }, credentials: creds }, /action must be equal to constant/],
      [{ cluster: { name: '-bad-' }, credentials: creds }, /cluster\/name must match pattern/],
      [{ cluster: { name: 'c.local', nodes: ['x'] }, credentials: creds }, /unknown field 'nodes'/],
      [{ cluster: { name: 'c.local' }, credentials: { ...creds, role: 'admin' } }, /unknown field 'role'/],
      [{ cluster: { name: 'c.local' }, credentials: { ...creds, password: '' } }, /password must NOT have fewer than 1 characters/],
      [{ cluster: { name: 'c.local' }, credentials: { username: 'a' } }, /required property 'password'/],
      [{ cluster: { name: 'c.local' }, credentials: creds, node: { identity: { addr: 5 } } }, /addr must be string/],
      [{ cluster: { name: 'c.local' }, credentials: creds, node: { paths: {} } }, /unknown field 'paths'/],
    ];
    for (const [body, why] of cases) await refused('POST', url, body, why, {});
    const n = h.bootstrap.calls.length;
    const wrong = await call(
      'POST',
      url,
      { cluster: { name: 'c.local' }, credentials: creds, node: { identity: { addr: '10.9.9.9' } } },
      {},
    );
    assertError(wrong, 400, 'invalid_address', /127\.0\.25\.1, not 10\.9\.9\.9/);
    assert.equal(h.bootstrap.calls.length, n);
    // Control: a valid body reaches the daemon, as given.
    const ok = await call(
      'POST',
      url,
      { action: 'create_cluster', cluster: { name: 'c.local' }, credentials: creds, node: { identity: { addr: HOST } } },
      {},
    );
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(h.bootstrap.calls.at(-1), { method: 'createCluster', arg: { name: 'c.local', ...creds } });
  });

  test('POST /v1/bootstrap/join_cluster: bad bodies never reach the daemon', async () => {
    const url = '/v1/bootstrap/join_cluster';
    const cases: Array<[unknown, RegExp]> = [
      [{ cluster: {}, credentials: creds }, /required property 'nodes'/],
      [{ cluster: { nodes: [] }, credentials: creds }, /nodes must NOT have fewer than 1 items/],
      [{ cluster: { nodes: '127.0.0.1' }, credentials: creds }, /nodes must be array/],
      [{ cluster: { nodes: ['127.0.0.1:99999x'] }, credentials: creds }, /nodes\/0 must match pattern/],
      [{ cluster: { nodes: ['http://127.0.0.1'] }, credentials: creds }, /nodes\/0 must match pattern/],
      [{ cluster: { nodes: ['127.0.0.1'] }, credentials: creds, force: true }, /unknown field 'force'/],
    ];
    for (const [body, why] of cases) await refused('POST', url, body, why, {});
    const ok = await call('POST', url, { cluster: { nodes: ['127.0.0.1:9443'] }, credentials: creds }, {});
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(h.bootstrap.calls.at(-1), {
      method: 'joinCluster',
      arg: { nodes: ['127.0.0.1:9443'], caFingerprint: undefined, ...creds },
    });
  });

  test('POST /v1/cluster/join_node and promote/abort: bad bodies and uids never reach the daemon', async () => {
    const pem = 'x'.repeat(64);
    const ports = { rest: 9443, internode: 3342, dp_plain: 3343, etcd_peer: 3340, etcd_client: 3341, metrics: 8070 };
    const good = { addr: '127.0.25.9', ports, csrs: { cp: pem, dp: pem, api: pem } };
    const cases: Array<[unknown, RegExp]> = [
      [{ ...good, addr: 'node-9.local' }, /addr must match format "ipv4"/],
      [{ ...good, addr: '127.0.25.256' }, /addr must match format "ipv4"/],
      [{ ...good, ports: { ...ports, rest: 0 } }, /rest must be >= 1/],
      [{ ...good, ports: { ...ports, rest: 65536 } }, /rest must be <= 65535/],
      [{ ...good, ports: { ...ports, rest: '9443' } }, /rest must be integer/],
      [{ ...good, ports: { ...ports, ssh: 22 } }, /unknown field 'ssh'/],
      [{ ...good, ports: { rest: 9443 } }, /must have required property/],
      [{ ...good, csrs: { cp: pem, dp: pem } }, /required property 'api'/],
      [{ ...good, csrs: { cp: 'short', dp: pem, api: pem } }, /cp must NOT have fewer than 64 characters/],
      [{ ...good, uid: 3 }, /unknown field 'uid'/],
    ];
    for (const [body, why] of cases) await refused('POST', '/v1/cluster/join_node', body, why);
    await refused('POST', '/v1/cluster/join_node/x/promote', undefined, /params\/uid/);
    await refused('POST', '/v1/cluster/join_node/-1/abort', undefined, /params\/uid/);
    const ok = await call('POST', '/v1/cluster/join_node', good);
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(h.bootstrap.calls.at(-1), { method: 'admitNode', arg: good });
    assert.equal((await call('POST', '/v1/cluster/join_node/9/promote')).statusCode, 200);
    assert.deepEqual(h.bootstrap.calls.at(-1), { method: 'promoteJoin', arg: 9 });
  });
});

// ---------------------------------------------------------- the store is gone

describe('when the store is unreachable (last: it kills etcd)', () => {
  // Basic auth reads the user from the store first, so this is the answer of every authenticated route.
  test('requests answer 503 store_unavailable with retry-after, whatever the credentials', async () => {
    h.etcd.proc.kill('SIGKILL');
    await new Promise((r) =>
      h.etcd.proc.exitCode === null && h.etcd.proc.signalCode === null ? h.etcd.proc.once('exit', r) : r(undefined),
    );
    for (const [method, url, body] of [
      ['GET', '/v1/bdbs/1', undefined],
      ['PUT', '/v1/cluster/policy', { failover_timeout: 9 }],
    ] as const) {
      const r = await call(method, url, body);
      assertError(r, 503, 'store_unavailable', /coordination store/);
      assert.equal(r.headers['retry-after'], '2');
    }
    // A wrong password cannot be told from a right one without the store: 503, not 401. Open routes still answer.
    assertError(await call('GET', '/v1/cluster', undefined, { authorization: basic(API_USER, 'wrong') }), 503, 'store_unavailable');
    assert.equal((await call('GET', '/v1/bootstrap', undefined, {})).statusCode, 200);
  });
});
