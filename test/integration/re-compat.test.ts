// What a Redis Enterprise operator types, on a real 2-node cluster (127.0.21.1-2;
// node 2 is built without data_internode_encryption): RE's own REST bodies and
// query strings (bdbs dry_run, uid, shard_key_regex, oss_cluster,
// authentication_redis_pass; policy defaults; cron_expression; alert
// thresholds as strings; the alert and action paths; certificate fields) and
// rladmin's status/info/certificate words. Each refusal is checked for its
// status, its {error_code, description}, and for leaving nothing behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { TestCluster, type BdbJson, createDb, waitDbStatus, waitFor, shardCli, sleep } from '../support/cluster.js';
import { keySlot } from '../../src/proxy/slots.js';
import { rsaKeys, keyPem, makeHierarchy, makeLeaf } from '../support/pki-hierarchy.js';

const cluster = new TestCluster(21, 2, (i) => (i === 1 ? ['--without-capability', 'data_internode_encryption'] : []));
const [n1, n2] = cluster.nodes;
type Err = { error_code: string; description: string };
const actionCount = async () => (await n1.api<{ actions: unknown[] }>('GET', '/v1/actions')).body.actions.length;
const bdbCount = async () => (await n1.api<unknown[]>('GET', '/v1/bdbs')).body.length;
const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;
let custom: BdbJson;
let plain: BdbJson;

before(async () => {
  await cluster.startAll();
  await cluster.form('re.test');
});
after(async () => {
  await cluster.stop();
});

function refused(r: { status: number; body: unknown }, status: number, code: string, what: string): void {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal((r.body as Err).error_code, code, what);
  assert.ok((r.body as Err).description.length > 10, what);
}

test('POST/PUT /v1/bdbs?dry_run validate only: no database, no uid, no action; unknown query parameters are refused by name', async () => {
  const actions = await actionCount();
  // RE's documentation example body.
  const dry = await n1.api<Record<string, unknown>>('POST', '/v1/bdbs?dry_run=true', {
    name: 'test-database',
    type: 'redis',
    memory_size: 1073741824,
  });
  assert.equal(dry.status, 200, JSON.stringify(dry.body));
  assert.equal(dry.body.dry_run, true);
  assert.equal(dry.body.name, 'test-database');
  assert.equal(dry.body.uid, undefined, 'no uid was used');
  assert.equal(dry.body.action_uid, undefined);
  assert.equal(typeof dry.body.port, 'number');
  assert.equal((await n1.api('POST', '/v1/bdbs?dry_run', { name: 'x', memory_size: 100 << 20 })).status, 200, 'a bare ?dry_run counts');
  // Invalid configuration: 406 as the reference, dry run or not.
  refused(
    await n1.api('POST', '/v1/bdbs?dry_run=true', { name: 'x', memory_size: 100 << 20, shards_count: 2, sharding: false }),
    406,
    'invalid_sharding',
    'dry run, bad sharding',
  );
  refused(
    await n1.api('POST', '/v1/bdbs?dryrun=true', { name: 'x', memory_size: 100 << 20 }),
    400,
    'invalid_schema',
    'misspelt query parameter',
  );
  assert.match((await n1.api<Err>('POST', '/v1/bdbs?dryrun=true', { name: 'x', memory_size: 100 << 20 })).body.description, /'dryrun'/);
  refused(await n1.api('POST', '/v1/bdbs?dry_run=maybe', { name: 'x', memory_size: 100 << 20 }), 400, 'invalid_schema', 'dry_run=maybe');
  refused(await n1.api('GET', '/v1/bdbs?extended=true'), 400, 'invalid_schema', 'unsupported GET parameter');
  refused(await n1.api('DELETE', '/v1/bdbs/1?force=1'), 400, 'invalid_schema', 'DELETE parameter');
  assert.equal(await bdbCount(), 0, 'nothing created');
  assert.equal(await actionCount(), actions, 'no action');

  // The first real database gets uid 1: dry runs used none.
  plain = await createDb(n1, { name: 'plain', memory_size: 100 << 20 });
  assert.equal(plain.uid, 1);
  const gen = await n1.api<Record<string, unknown>>('GET', '/v1/bdbs/1');
  const before = await actionCount();
  const dryPut = await n1.api<Record<string, unknown>>('PUT', '/v1/bdbs/1?dry_run=1', { memory_size: 200 << 20 });
  assert.equal(dryPut.status, 200, JSON.stringify(dryPut.body));
  assert.equal(dryPut.body.memory_size, 200 << 20);
  assert.equal(dryPut.body.dry_run, true);
  refused(
    await n1.api('PUT', '/v1/bdbs/1?dry_run=true', { port: 12999 }),
    406,
    'unsupported_change',
    'dry run of a change that cannot be made',
  );
  const after = await n1.api<Record<string, unknown>>('GET', '/v1/bdbs/1');
  assert.deepEqual(after.body, gen.body, 'the database is unchanged');
  assert.equal(await actionCount(), before, 'no action');
  // RE's `fields`.
  assert.deepEqual((await n1.api('GET', '/v1/bdbs?fields=uid,name')).body, [{ uid: 1, name: 'plain' }]);
});

test("RE's create body (uid, type, shard_key_regex, oss_cluster, authentication_redis_pass) is accepted and honoured; 409 on a taken uid", async () => {
  const body = {
    uid: 7,
    name: 'custom',
    type: 'redis',
    memory_size: 100 << 20,
    sharding: true,
    shards_count: 2,
    proxy_policy: 'all-nodes',
    oss_cluster: false,
    authentication_redis_pass: 'db-secret-1',
    // A custom hashing policy: the part before the first ':' (no catch-all rule).
    shard_key_regex: [{ regex: '(?<tag>[^:]+):.*' }],
  };
  const r = await n1.api<BdbJson & { shard_key_regex: unknown; oss_cluster: boolean }>('POST', '/v1/bdbs', body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.uid, 7);
  const actions = await actionCount();
  refused(await n2.api('POST', '/v1/bdbs', { ...body, name: 'again', port: 13001 }), 409, 'uid_exists', 'taken uid');
  assert.equal(await actionCount(), actions, 'no action from the refusal');
  custom = await waitDbStatus(n1, 7, 'active');
  const got = (
    await n2.api<{ shard_key_regex: unknown; oss_cluster: boolean; authentication_redis_pass_set: boolean }>('GET', '/v1/bdbs/7')
  ).body;
  assert.deepEqual(got.shard_key_regex, body.shard_key_regex);
  assert.equal(got.oss_cluster, false);
  assert.equal(got.authentication_redis_pass_set, true);
  assert.deepEqual(
    (await n2.api<{ shard_key_regex: unknown }>('GET', '/v1/bdbs/1')).body.shard_key_regex,
    [{ regex: '.*\\{(?<tag>.*)\\}.*' }, { regex: '(?<tag>.*)' }],
    "a database without rules shows RE's default list",
  );

  refused(
    await n1.api('POST', '/v1/bdbs', { name: 'oss', memory_size: 100 << 20, oss_cluster: true }),
    406,
    'invalid_oss_cluster_configuration',
    'oss_cluster true',
  );
  refused(await n1.api('POST', '/v1/bdbs', { name: 'mc', memory_size: 100 << 20, type: 'memcached' }), 406, 'invalid_type', 'memcached');
  refused(
    await n1.api('POST', '/v1/bdbs', { name: 're', memory_size: 100 << 20, shard_key_regex: [{ regex: '(.*)' }] }),
    406,
    'invalid_shard_key_regex',
    'a rule without tag',
  );
  refused(
    await n1.api('POST', '/v1/bdbs', { name: 're', memory_size: 100 << 20, shard_key_regex: [{ regex: '(?<tag>.*' }] }),
    406,
    'invalid_shard_key_regex',
    'a broken regex',
  );
  refused(
    await n1.api('PUT', '/v1/bdbs/7', { shard_key_regex: [{ regex: '(?<tag>.*)' }] }),
    406,
    'unsupported_change',
    'changing the hashing policy',
  );
  assert.equal(await bdbCount(), 2, 'nothing half-created');
});

test('a change or a delete while another change is in progress is 409 db_busy, and leaves no action', async () => {
  // Deterministically in progress: the new endpoint's port is taken on the node that gains it, so the change waits (retrying each second).
  const other = cluster.nodes.find((n) => !plain.endpoints[0].addr.includes(n.addr))!;
  const squatter = net.createServer();
  await new Promise<void>((ok) => squatter.listen(plain.port, other.addr, () => ok()));
  try {
    const change = await n1.api<BdbJson>('PUT', `/v1/bdbs/${plain.uid}`, { proxy_policy: 'all-nodes' });
    assert.equal(change.status, 200, JSON.stringify(change.body));
    assert.equal(change.body.status, 'active-change-pending');
    await sleep(1500);
    assert.equal((await n2.api<BdbJson>('GET', `/v1/bdbs/${plain.uid}`)).body.status, 'active-change-pending');
    const actions = await actionCount();
    refused(await n2.api('PUT', `/v1/bdbs/${plain.uid}`, { memory_size: 200 << 20 }), 409, 'db_busy', 'change while a change is pending');
    refused(
      await n2.api('PUT', `/v1/bdbs/${plain.uid}?dry_run=true`, { memory_size: 200 << 20 }),
      409,
      'db_busy',
      'dry run while a change is pending',
    );
    refused(await n2.api('DELETE', `/v1/bdbs/${plain.uid}`), 409, 'db_busy', 'delete while a change is pending');
    assert.equal(await actionCount(), actions, 'no action from the refusals');
  } finally {
    squatter.close();
  }
  plain = await waitDbStatus(n1, plain.uid, 'active', 30_000);
  assert.deepEqual(plain.endpoints[0].addr.length, 2);
});

test('the endpoint applies shard_key_regex and the database password', async () => {
  const noAuth = new Redis({ host: n2.addr, port: custom.port, lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false });
  const c = new Redis({ host: n2.addr, port: custom.port, password: 'db-secret-1', lazyConnect: true, maxRetriesPerRequest: 0 });
  const std = new Redis({ host: n1.addr, port: plain.port, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await noAuth.connect();
    await assert.rejects(noAuth.set('user:1', 'x'), /NOAUTH/);
    await c.connect();
    await std.connect();
    assert.notEqual(keySlot('user:1'), keySlot('user:2'), 'two slots under the standard hashing');
    // One transaction over both keys: one slot under the custom rule, CROSSSLOT under the standard one.
    assert.deepEqual(await c.multi().set('user:1', 'a').set('user:2', 'b').exec(), [
      [null, 'OK'],
      [null, 'OK'],
    ]);
    await assert.rejects(
      std.multi().set('user:1', 'a').set('user:2', 'b').exec(),
      (e: Error & { previousErrors?: Error[] }) =>
        /EXECABORT/.test(e.message) && !!e.previousErrors?.some((x) => /CROSSSLOT/.test(x.message)),
    );
    // The keys are on the shard that owns the slot of their tag 'user'.
    const slot = keySlot('user');
    const owner = custom.shards.find((s) => {
      const [a, b] = s.assigned_slots.split('-').map(Number);
      return s.role === 'master' && slot >= a && slot <= b;
    })!;
    assert.equal(await shardCli(nodeByUid(owner.node_uid), owner.uid, ['EXISTS', 'user:1', 'user:2']), '2');
    assert.equal(await c.get('user:2'), 'b');
    // A key no rule matches is refused, as the reference does.
    await assert.rejects(c.set('plainkey', 'v'), /shard_key_regex/);
    assert.equal(await c.set('a:b', 'v'), 'OK');
  } finally {
    for (const x of [noAuth, c, std]) x.disconnect();
  }
});

test('cluster policy database defaults are used for new databases; encryption by default is skipped when a node lacks it (explicit: 406)', async () => {
  const p = await n1.api<Record<string, unknown>>('PUT', '/v1/cluster/policy', {
    data_internode_encryption: true,
    default_sharded_proxy_policy: 'all-nodes',
    default_non_sharded_proxy_policy: 'all-master-shards',
    default_shards_placement: 'dense',
  });
  assert.equal(p.status, 200, JSON.stringify(p.body));
  assert.equal(p.body.default_shards_placement, 'dense');
  refused(await n1.api('PUT', '/v1/cluster/policy', { default_sharded_proxy_policy: 'everywhere' }), 400, 'invalid_schema', 'bad default');
  refused(
    await n1.api('PUT', '/v1/cluster/policy', { default_oss_cluster: true }),
    400,
    'invalid_oss_cluster_configuration',
    'default_oss_cluster',
  );
  refused(
    await n1.api('POST', '/v1/bdbs', { name: 'enc', memory_size: 100 << 20, data_internode_encryption: true }),
    406,
    'capability_missing',
    'explicit encryption',
  );
  const d = await createDb(n2, { name: 'defaults', memory_size: 100 << 20, shards_count: 2, sharding: true });
  const view = (await n2.api<Record<string, unknown>>('GET', `/v1/bdbs/${d.uid}`)).body;
  assert.equal(view.data_internode_encryption, false, 'created without encryption: node 2 lacks the capability');
  assert.equal(view.proxy_policy, 'all-nodes');
  assert.equal(view.shards_placement, 'dense');
  assert.equal(new Set(d.shards.map((s) => s.node_uid)).size, 1, 'dense: both shards on one node');
  const single = await n1.api<Record<string, unknown>>('POST', '/v1/bdbs?dry_run=true', { name: 'one', memory_size: 100 << 20 });
  assert.equal(single.body.proxy_policy, 'all-master-shards', 'the non-sharded default');
  await n1.api('PUT', '/v1/cluster/policy', {
    data_internode_encryption: false,
    default_sharded_proxy_policy: 'all-master-shards',
    default_non_sharded_proxy_policy: 'single',
  });
  // rladmin's `tune cluster` sets them too.
  const tune = await n2.cli(['tune', 'cluster', 'default_shards_placement', 'sparse']);
  assert.equal(tune.code, 0, tune.stderr);
  assert.equal((await n1.api<Record<string, unknown>>('GET', '/v1/cluster/policy')).body.default_shards_placement, 'sparse');
  const badTune = await n2.cli(['tune', 'cluster', 'default_shards_placement', 'scattered']);
  assert.notEqual(badTune.code, 0);
  assert.match(badTune.stderr, /default_shards_placement/);
  assert.equal((await n1.api('DELETE', `/v1/bdbs/${d.uid}`)).status, 200);
});

test('GET /v1/actions is {"actions": [...]}; /v1/actions/bdb/{uid} lists a database\'s actions', async () => {
  const all = await n1.api<{ actions: { action_uid: string; object_name: string; name: string }[] }>('GET', '/v1/actions');
  assert.equal(all.status, 200);
  assert.ok(Array.isArray(all.body.actions) && all.body.actions.length >= 3);
  const mine = await n2.api<{ object_name: string; name: string; status: string }[]>('GET', '/v1/actions/bdb/7');
  assert.equal(mine.status, 200);
  assert.deepEqual(
    mine.body.map((a) => [a.object_name, a.name, a.status]),
    [['bdb:7', 'create_bdb', 'completed']],
  );
  refused(await n1.api('GET', '/v1/actions/bdb/999'), 404, 'db_not_exist', 'actions of an unknown database');
});

test('job_scheduler takes cron_expression: validated, and the rotation job starts only in a matching minute', async () => {
  type Certs = { certificates: { node_uid: number; plane: string; serial: string }[] } & Record<string, unknown>;
  const serials = async () =>
    (await n1.api<Certs>('GET', '/v1/cluster/certificates')).body.certificates.map((c) => `${c.node_uid}/${c.plane}/${c.serial}`).sort();
  // RE's documented field, with a value RE's docs use.
  const ok = await n1.api<{ cert_rotation_job_settings: Record<string, unknown> }>('PUT', '/v1/job_scheduler', {
    cert_rotation_job_settings: { cron_expression: '*/5 * * * *', expiry_days_before_rotation: 60 },
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.cert_rotation_job_settings.cron_expression, '*/5 * * * *');
  for (const bad of ['61 * * * *', '* * * *', 'every day'])
    refused(
      await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { cron_expression: bad } }),
      400,
      'invalid_cron_expression',
      bad,
    );
  // Every certificate becomes due (90 days left < 100), but the cron names a minute half an hour away: nothing renews.
  const start = await serials();
  const away = `${(new Date().getMinutes() + 30) % 60} * * * *`;
  assert.equal(
    (
      await n1.api('PUT', '/v1/job_scheduler', {
        cert_rotation_job_settings: { cron_expression: away, validity_days: 200, expiry_days_before_rotation: 100 },
      })
    ).status,
    200,
  );
  await sleep(4000);
  assert.deepEqual(await serials(), start, 'no renewal outside the cron minute');
  // Without a cron expression the job checks continuously: every certificate renews.
  assert.equal((await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { cron_expression: '' } })).status, 200);
  await waitFor(
    'every certificate renewed',
    async () => {
      const now = await serials();
      return now.length === start.length && now.every((s) => !start.includes(s));
    },
    60_000,
    500,
  );
  await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { validity_days: 90, expiry_days_before_rotation: 60 } });
});

test('alerts: threshold as RE sends it ("45"), /v1/nodes/alerts/{uid}[/{alert}], /v1/cluster/alerts keyed by alert name', async () => {
  const put = await n1.api<{ alert_settings: { node_internal_certs_about_to_expire: { threshold: number } } }>('PUT', '/v1/cluster', {
    alert_settings: { node_internal_certs_about_to_expire: { enabled: true, threshold: '45' } },
  });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  assert.equal(put.body.alert_settings.node_internal_certs_about_to_expire.threshold, 45);
  assert.equal(
    (await n1.api('PUT', '/v1/cluster', { alert_settings: { node_internal_certs_about_to_expire: { threshold: 30 } } })).status,
    200,
  );
  for (const bad of ['abc', '-1', '', 0])
    refused(
      await n1.api('PUT', '/v1/cluster', { alert_settings: { node_internal_certs_about_to_expire: { threshold: bad } } }),
      400,
      'invalid_threshold',
      `threshold ${JSON.stringify(bad)}`,
    );
  assert.equal(
    (await n2.api<{ alert_settings: { node_internal_certs_about_to_expire: { threshold: number } } }>('GET', '/v1/cluster')).body
      .alert_settings.node_internal_certs_about_to_expire.threshold,
    30,
  );

  const one = await waitFor('node 2 alert evaluated', async () => {
    const r = await n1.api<Record<string, { state: boolean; threshold: number }>>('GET', '/v1/nodes/alerts/2');
    return r.status === 200 && r.body.node_internal_certs_about_to_expire?.threshold === 30 ? r.body : undefined;
  });
  assert.equal(one.node_internal_certs_about_to_expire.state, false);
  const alert = await n1.api<{ enabled: boolean; state: boolean; severity: string; change_time: string }>(
    'GET',
    '/v1/nodes/alerts/2/node_internal_certs_about_to_expire',
  );
  assert.equal(alert.status, 200);
  assert.deepEqual([alert.body.enabled, alert.body.state, typeof alert.body.change_time], [true, false, 'string']);
  refused(await n1.api('GET', '/v1/nodes/alerts/2/no_such_alert'), 404, 'alert_not_found', 'unknown alert');
  refused(await n1.api('GET', '/v1/nodes/alerts/9'), 404, 'node_not_found', 'unknown node');
  const cl = await n2.api<Record<string, { enabled: boolean; state: boolean; threshold: string; change_value: { state: boolean } }>>(
    'GET',
    '/v1/cluster/alerts',
  );
  // The node-certificate alert, and (0.2) the CAs' own expiry alert, not raised for a new cluster's 10-year CAs.
  assert.deepEqual(Object.keys(cl.body).sort(), [
    'cluster_ca_expiring',
    'node_insufficient_disk_aofrw',
    'node_internal_certs_about_to_expire',
    'node_persistent_storage',
  ]);
  // The disk alerts (0.2): no shard refuses writes here (how full the machine's disk is, is not this test's).
  assert.equal(cl.body.node_insufficient_disk_aofrw.state, false);
  assert.deepEqual(
    [cl.body.node_internal_certs_about_to_expire.state, cl.body.node_internal_certs_about_to_expire.threshold],
    [false, '30'],
  );
  assert.deepEqual([cl.body.cluster_ca_expiring.state, cl.body.cluster_ca_expiring.threshold], [false, '365']);
  assert.equal((await n2.api('GET', '/v1/cluster/alerts/node_internal_certs_about_to_expire')).status, 200);
  refused(await n2.api('GET', '/v1/cluster/alerts/nope'), 404, 'alert_not_found', 'unknown cluster alert');
});

test("GET /v1/cluster/certificates carries RE's <name>_cert fields and never a key", async () => {
  const r = await n2.api<Record<string, unknown>>('GET', '/v1/cluster/certificates');
  for (const f of ['api_cert', 'ccs_internode_encryption_cert', 'data_internode_encryption_cert'])
    assert.match(String(r.body[f]), /^-----BEGIN CERTIFICATE-----/, f);
  assert.deepEqual(
    Object.keys(r.body).filter((k) => k.endsWith('_key')),
    [],
  );
});

test('rladmin words: status extra all / issues_only / databases / shards, info db (all), info node <uid>', async () => {
  const all = await n1.cli(['status', 'extra', 'all']);
  assert.equal(all.code, 0, all.stderr);
  assert.match(all.stdout, /CLUSTER NODES:\nNODE:ID\s+ROLE\s+ADDRESS\s+MASTERS\s+SLAVES/);
  assert.match(all.stdout, /EXEC_STATE\s+EXEC_STATE_MACHINE/);
  assert.match(all.stdout, /db:7\s+custom .*COMPLETED 100%\s+create_bdb/);
  const issues = await n1.cli(['status', 'issues_only']);
  assert.equal(issues.code, 0, issues.stderr);
  assert.match(issues.stdout, /^CLUSTER:\nOK\. Cluster master/);
  assert.doesNotMatch(issues.stdout, /node:1 |db:7 |redis:\d/, 'every node, database and shard is OK');
  const dbs = await n2.cli(['status', 'databases']);
  assert.equal(dbs.code, 0, dbs.stderr);
  assert.match(dbs.stdout, /^DATABASES:\nDB:ID/);
  assert.match(dbs.stdout, /db:1\s+plain/);
  assert.doesNotMatch(dbs.stdout, /CLUSTER NODES|SHARDS:/);
  const shards = await n2.cli(['status', 'shards']);
  assert.match(shards.stdout, /^SHARDS:\nDB:ID\s+NAME\s+ID\s+NODE\s+ROLE\s+SLOTS\s+STATUS/);
  assert.equal(shards.stdout.match(/^db:7\s+custom\s+redis:\d+/gm)?.length, 2);
  const bad = await n2.cli(['status', 'extra', 'watchdog']);
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stderr.trim().split('\n').length, 1);

  const info = await n1.cli(['info', 'db']);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /^db: db:1\nuid: 1\nname: plain/m);
  assert.match(info.stdout, /^db: db:7\nuid: 7\nname: custom/m);
  const node = await n1.cli(['info', 'node', '2']);
  assert.equal(node.code, 0, node.stderr);
  assert.match(node.stdout, new RegExp(`^node: node:2\naddr: ${n2.addr.replaceAll('.', '\\.')}\nstatus: active`));
  assert.doesNotMatch(node.stdout, /node: node:1/);
  const missing = await n1.cli(['info', 'node', '9']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /node_not_found/);
});

test('cluster certificate set internal dpine_certificate_file … cpine_key_file … uploads operator certificates (PUT /v1/cluster/certificates)', async () => {
  const keys = await rsaKeys(4);
  const { root, cas } = await makeHierarchy('Ops', 1, keys);
  const pem = (e: { pem: string }) => e.pem.trim() + '\n';
  const dir = fs.mkdtempSync(path.join(cluster.root, 'ine-'));
  const write = async (name: string, leaf: Awaited<ReturnType<typeof makeLeaf>>, k: CryptoKeyPair) => {
    fs.writeFileSync(path.join(dir, `${name}.pem`), [leaf, cas[0], root].map(pem).join(''));
    fs.writeFileSync(path.join(dir, `${name}.key`), await keyPem(k), { mode: 0o600 });
  };
  await write('dp', await makeLeaf(cas[0], 'dpine', keys[2]), keys[2]);
  await write('serveronly', await makeLeaf(cas[0], 'serveronly', keys[3], { eku: ['1.3.6.1.5.5.7.3.1'] }), keys[3]);
  const serials = async () =>
    (await n1.api<{ certificates: { plane: string; serial: string }[] }>('GET', '/v1/cluster/certificates')).body.certificates.map(
      (c) => `${c.plane}/${c.serial}`,
    );
  const before = await serials();

  // Refusals: one line, non-zero, nothing applied.
  for (const [words, re] of [
    [
      ['dpine_certificate_file', `${dir}/serveronly.pem`, 'dpine_key_file', `${dir}/serveronly.key`],
      /eku_client_auth.*invalid_certificate/,
    ],
    [['dpine_certificate_file', `${dir}/dp.pem`], /dpine_certificate_file and dpine_key_file go together/],
    [['dpine_certificate_file', `${dir}/nope.pem`, 'dpine_key_file', `${dir}/dp.key`], /cannot read .*nope\.pem: ENOENT/],
    [['cpine_cert', `${dir}/dp.pem`], /unexpected word 'cpine_cert'/],
  ] as const) {
    const r = await n1.cli(['cluster', 'certificate', 'set', 'internal', ...words]);
    assert.notEqual(r.code, 0, words.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, re);
  }
  assert.deepEqual(await serials(), before, 'nothing applied');

  const ok = await n1.cli([
    'cluster',
    'certificate',
    'set',
    'internal',
    'dpine_certificate_file',
    `${dir}/dp.pem`,
    'dpine_key_file',
    `${dir}/dp.key`,
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /Set internal certificates \(data_internode_encryption\)/);
  const after = (await n1.api<{ certificates: { plane: string; serial: string; issuer: string }[] }>('GET', '/v1/cluster/certificates'))
    .body.certificates;
  assert.deepEqual(
    after.filter((c) => c.plane === 'dp').map((c) => c.issuer.includes('Ops Intermediate CA 1')),
    [true, true],
    'both nodes present the operator dp certificate',
  );
  assert.deepEqual(
    after.filter((c) => c.plane === 'cp').map((c) => `cp/${c.serial}`),
    before.filter((c) => c.startsWith('cp/')),
    'cp untouched',
  );
});
