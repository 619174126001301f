// Services CA rollover on a real 2-node cluster (net 65, or TESSERA_TEST_NET),
// with a short overlap (services_ca_overlap_seconds): the CLI trusting the
// cluster only through its saved CA works before, during and after, and saves
// the bundle it is offered; `curl --cacert <old CA>` works until the
// activation, `curl --cacert <bundle>` throughout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { TestCluster, type TestNode, cli, waitFor, USER, PASSWORD } from '../support/cluster.js';
import type { ActionRecord } from '../../src/coord/schema.js';

const cluster = new TestCluster(65, 2);
const [n1, n2] = cluster.nodes;

before(async () => {
  await cluster.startAll();
  await cluster.form('svc.test');
});
after(async () => {
  await cluster.stop();
});

const pems = (text: string) =>
  (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
const fp = (c: X509Certificate) => c.fingerprint256;

function curl(n: TestNode, caFile: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--cacert',
        caFile,
        '-u',
        `${USER}:${PASSWORD}`,
        `https://${n.addr}:9443/v1/cluster`,
      ],
      { timeout: 15_000 },
      (err, stdout) => resolve(!err && stdout.trim() === '200'),
    );
  });
}

test('services CA rollover with a short overlap: saved-trust CLI throughout, the old CA until activation, the bundle throughout', async () => {
  const tmp = fs.mkdtempSync(path.join(cluster.root, 'svc-'));
  // The CLI as on an operator's machine: no node runs here (an empty run registry), the CA saved by create/join.
  const env = {
    TESSERA_RUN_DIR: path.join(tmp, 'run'),
    XDG_CONFIG_HOME: path.join(tmp, 'config'),
    TESSERA_USERNAME: USER,
    TESSERA_PASSWORD: PASSWORD,
  };
  fs.mkdirSync(env.TESSERA_RUN_DIR);
  const oldCaPem = fs.readFileSync(path.join(n1.dataDir, 'certs', 'services-ca.pem'), 'utf8');
  const oldCa = pems(oldCaPem);
  assert.equal(oldCa.length, 1);
  const savedFile = path.join(env.XDG_CONFIG_HOME, 'tessera', 'trust', `${n1.addr}_9443.pem`);
  fs.mkdirSync(path.dirname(savedFile), { recursive: true });
  fs.writeFileSync(savedFile, oldCaPem);
  const oldFile = path.join(tmp, 'old-ca.pem');
  fs.writeFileSync(oldFile, oldCaPem);
  const status = async (what: string) => {
    const r = await cli(['--node', n1.addr, 'status'], env);
    assert.equal(r.code, 0, `${what}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /insecure/);
  };
  await status('before');
  assert.equal(await curl(n1, oldFile), true);

  const p = await n1.api('PUT', '/v1/cluster/policy', { services_ca_overlap_seconds: 30 });
  assert.equal(p.status, 200);
  const r = await n1.api<{ action_uid: string }>('POST', '/v1/cluster/certificates/ca/rotate', { ca: 'services' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const uid = r.body.action_uid;

  // Published: both in GET /v1/bootstrap and /v1/cluster/certificates; the servers still on the old CA.
  await waitFor(
    'both CAs published by every node',
    async () => {
      for (const n of cluster.nodes) {
        const b = await n.api<{ rest_ca_cert?: string }>('GET', '/v1/bootstrap', undefined, null);
        if (pems(b.body.rest_ca_cert ?? '').length !== 2) return false;
      }
      return true;
    },
    60_000,
    500,
  );
  const certs = (
    await n1.api<{ services_ca: { bundle: string }; cas: { name: string; state: string }[] }>('GET', '/v1/cluster/certificates')
  ).body;
  assert.equal(pems(certs.services_ca.bundle).length, 2);
  assert.deepEqual(
    certs.cas.filter((c) => c.name === 'services').map((c) => c.state),
    ['active', 'next'],
  );
  const bundleFile = path.join(tmp, 'bundle.pem');
  fs.writeFileSync(bundleFile, certs.services_ca.bundle);
  const next = pems(certs.services_ca.bundle).find((c) => fp(c) !== fp(oldCa[0]))!;
  // The CLI, through its saved CA, learns the bundle.
  await status('published');
  assert.equal(pems(fs.readFileSync(savedFile, 'utf8')).length, 2, 'the CLI saved the bundle');
  assert.equal(await curl(n1, oldFile), true, 'the old CA works until activation');
  assert.equal(await curl(n1, bundleFile), true);

  // Activation: the servers move to the next CA.
  const a = await n1.api('POST', '/v1/cluster/certificates/ca/activate', { ca: 'services' });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  await waitFor(
    'every node presents a REST certificate from the next CA',
    () =>
      cluster.nodes.every((n) => {
        const leaf = new X509Certificate(fs.readFileSync(path.join(n.dataDir, 'certs', 'api.pem')));
        return leaf.checkIssued(next) && leaf.verify(next.publicKey);
      }),
    60_000,
    500,
  );
  await waitFor('the old CA no longer verifies the REST certificate', async () => !(await curl(n1, oldFile)), 30_000, 500);
  assert.equal(await curl(n1, bundleFile), true, 'the bundle works after activation');
  assert.equal(await curl(n2, bundleFile), true);
  await status('activated');
  const again = await n1.api<{ error_code: string }>('POST', '/v1/cluster/certificates/ca/activate', { ca: 'services' });
  assert.equal(again.status, 409);

  // 30 s after the activation the old CA leaves the bundle, and the action completes.
  const t0 = Date.now();
  await waitFor(
    'the rollover action completes',
    async () => {
      const x = (await n1.api<ActionRecord>('GET', `/v1/actions/${uid}`)).body;
      assert.notEqual(x.status, 'failed', x.error);
      return x.status === 'completed';
    },
    120_000,
    1000,
  );
  console.log(`# old services CA left the bundle ${((Date.now() - t0) / 1000).toFixed(1)} s after the activation`);
  const steps = (await n1.api<ActionRecord>('GET', `/v1/actions/${uid}`)).body.steps ?? [];
  console.log(steps.map((x) => `#   ${x}`).join('\n'));
  for (const n of cluster.nodes) {
    const b = await n.api<{ rest_ca_cert?: string }>('GET', '/v1/bootstrap', undefined, null);
    assert.deepEqual(pems(b.body.rest_ca_cert ?? '').map(fp), [fp(next)], `${n.addr} publishes the next CA alone`);
  }
  await status('after');
  assert.equal(await curl(n1, bundleFile), true, 'the bundle works throughout');
  assert.equal(await curl(n1, oldFile), false);
});
