// The CA routes in-process (the real Fastify app over a scratch etcd):
// GET /v1/cluster/certificates lists both CA lists with their states, the
// `cluster_ca_expiring` alert follows `ca_expiry_alert_days`, and bad input
// is refused with {error_code, description} and an unchanged store.
//
// Addresses: 127.0.74.10 (this helper's unit net).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { KEYS } from '../../src/coord/schema.js';
import { createCa, sha256Fingerprint, type Issued } from '../../src/pki/pki.js';
import { splitPems } from '../../src/pki/ca-list.js';
import { startApiHarness, type ApiHarness } from '../support/api-host.js';

const HOST = '127.0.74.10';
let h: ApiHarness;
let ca: Issued;
let next: Issued;
let services: Issued;

before(async () => {
  [ca, next, services] = await Promise.all([
    createCa('ca-api', 'c-api-test'),
    createCa('ca-api', 'c-api-test'),
    createCa('ca-api', 'c-api-test', 'services'),
  ]);
  h = await startApiHarness(HOST, ca);
  const c = h.etcd.client;
  await c.put(KEYS.ca).value(JSON.stringify({ cert: ca.certPem, key: ca.keyPem }));
  await c.put(KEYS.servicesCa).value(JSON.stringify({ cert: services.certPem, key: services.keyPem }));
});

after(async () => {
  await h?.close();
});

const call = (method: 'GET' | 'PUT' | 'POST', url: string, payload?: unknown) =>
  h.app.inject({ method, url, headers: { authorization: h.auth }, ...(payload !== undefined ? { payload: payload as object } : {}) });

test('GET /v1/cluster/certificates: a 0.1.0 record is one active CA each; a list shows every CA with its state, no keys', async () => {
  let r = await call('GET', '/v1/cluster/certificates');
  assert.equal(r.statusCode, 200, r.body);
  let body = r.json();
  assert.deepEqual(
    body.cas.map((c: { name: string; state: string; fingerprint: string }) => [c.name, c.state, c.fingerprint]),
    [
      ['internode', 'active', sha256Fingerprint(ca.certPem)],
      ['services', 'active', sha256Fingerprint(services.certPem)],
    ],
  );
  for (const c of body.cas) {
    assert.ok(Date.parse(c.not_before) < Date.parse(c.not_after));
    assert.ok(c.expires_in_seconds > 3600 * 86_400 && c.expires_in_seconds <= 3650 * 86_400, String(c.expires_in_seconds));
  }
  assert.equal(splitPems(body.services_ca.bundle).length, 1);

  // A rollover's list: the next CA beside the active one; the services bundle carries both.
  await h.etcd.client.put(KEYS.ca).value(
    JSON.stringify({
      cert: ca.certPem,
      key: ca.keyPem,
      cas: [
        { cert: ca.certPem, key: ca.keyPem, state: 'active' },
        { cert: next.certPem, key: next.keyPem, state: 'next' },
      ],
    }),
  );
  await h.etcd.client
    .put(KEYS.servicesCa)
    .value(
      JSON.stringify({ cert: services.certPem, key: services.keyPem, cas: [{ cert: next.certPem, key: next.keyPem, state: 'next' }] }),
    );
  r = await call('GET', '/v1/cluster/certificates');
  body = r.json();
  assert.deepEqual(
    body.cas.map((c: { name: string; state: string }) => `${c.name}:${c.state}`),
    ['internode:active', 'internode:next', 'services:active', 'services:next'],
  );
  assert.deepEqual(splitPems(body.services_ca.bundle).map(sha256Fingerprint), [services.certPem, next.certPem].map(sha256Fingerprint));
  assert.ok(!r.body.includes('PRIVATE KEY'), 'no key leaves the store');
});

test('cluster_ca_expiring follows ca_expiry_alert_days; a bad value is refused and the policy kept', async () => {
  let r = await call('GET', '/v1/cluster/alerts/cluster_ca_expiring');
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(r.json().state, false);
  assert.equal(r.json().threshold, '365');
  assert.equal(r.json().change_time, null);

  r = await call('PUT', '/v1/cluster/policy', { ca_expiry_alert_days: 3650 });
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(r.json().ca_expiry_alert_days, 3650);
  await h.settle('the policy in the cache', () => h.member.policy().ca_expiry_alert_days === 3650);
  r = await call('GET', '/v1/cluster/alerts');
  const a = r.json().cluster_ca_expiring;
  assert.equal(a.state, true, r.body);
  assert.equal(a.severity, 'WARNING');
  assert.equal(a.threshold, '3650');
  assert.ok(a.change_time && Date.parse(a.change_time) <= Date.now());
  assert.deepEqual(
    a.change_value.cas.map((c: { name: string }) => c.name),
    ['internode', 'internode', 'services', 'services'],
  );
  assert.ok(a.change_value.cas.every((c: { days_left: number }) => c.days_left > 3600 && c.days_left < 3650));

  for (const bad of [0, -1, 3651, 'many', 1.5]) {
    r = await call('PUT', '/v1/cluster/policy', { ca_expiry_alert_days: bad });
    assert.equal(r.statusCode, 400, `${bad}: ${r.body}`);
    assert.ok(r.json().error_code && r.json().description, r.body);
  }
  r = await call('PUT', '/v1/cluster/policy', { services_ca_overlap_seconds: -5 });
  assert.equal(r.statusCode, 400, r.body);
  assert.equal((await h.member.store.cluster.policy()).ca_expiry_alert_days, 3650, 'unchanged');
  assert.equal((await h.member.store.cluster.policy()).services_ca_overlap_seconds, 7 * 86_400, 'the default');
});

test('POST /v1/cluster/certificates/ca/rotate and /activate: bad input, the version gate, one rollover at a time', async () => {
  const before = await h.etcd.client.get(KEYS.ca).string();
  for (const [body, code] of [
    [{ ca: 'bogus' }, 'invalid_ca'],
    [{}, undefined],
    [{ ca: 'internode', extra: 1 }, undefined],
  ] as const) {
    const r = await call('POST', '/v1/cluster/certificates/ca/rotate', body);
    assert.equal(r.statusCode, 400, r.body);
    assert.ok(r.json().error_code && r.json().description, r.body);
    if (code) assert.equal(r.json().error_code, code);
  }
  // No stored cluster version: the cluster is 0.1, whose nodes follow no CA list.
  let r = await call('POST', '/v1/cluster/certificates/ca/rotate', { ca: 'internode' });
  assert.equal(r.statusCode, 409, r.body);
  assert.equal(r.json().error_code, 'cluster_version_too_old');
  assert.equal(await h.etcd.client.get(KEYS.ca).string(), before, 'nothing changed');
  assert.deepEqual(await h.member.store.caRollovers.list(), []);

  await h.member.store.clusterVersion.raise('0.2', (a, b) => a > b);
  r = await call('POST', '/v1/cluster/certificates/ca/activate', { ca: 'services' });
  assert.equal(r.statusCode, 409, r.body);
  assert.equal(r.json().error_code, 'no_ca_rollover');
  r = await call('POST', '/v1/cluster/certificates/ca/activate', { ca: 'internode' });
  assert.equal(r.statusCode, 400, r.body);

  r = await call('POST', '/v1/cluster/certificates/ca/rotate', { ca: 'internode' });
  assert.equal(r.statusCode, 200, r.body);
  const uid = r.json().action_uid;
  const a = await call('GET', `/v1/actions/${uid}`);
  assert.equal(a.json().name, 'rotate_ca');
  assert.equal(a.json().status, 'active');
  r = await call('POST', '/v1/cluster/certificates/ca/rotate', { ca: 'services' });
  assert.equal(r.statusCode, 409, r.body);
  assert.equal(r.json().error_code, 'ca_rollover_in_progress');
  const recs = await h.member.store.caRollovers.list();
  assert.deepEqual(
    recs.map((x) => [x.action_uid, x.ca, x.phase]),
    [[uid, 'internode', 'make_next']],
  );
});
