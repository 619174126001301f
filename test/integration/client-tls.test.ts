// Client-facing TLS on a 2-node cluster (127.0.23.x): the services CA apart
// from the internode CA (REST, UI and metrics verify against it and not
// against the internode CA), renewal of the client-facing certificates by the
// rotation job without dropping open connections, and TLS on database
// endpoints (tls_mode, client certificates, refusals, what the wire shows).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { TestCluster, TestNode, USER, PASSWORD, waitFor } from '../support/cluster.js';
import { keyPem, makeLeaf, makeRoot, rsaKeys } from '../support/pki-hierarchy.js';

const NET = 23;
const cluster = new TestCluster(NET, 2);
const [n1, n2] = cluster.nodes;
const certFile = (n: TestNode, f: string) => path.join(n.dataDir, 'certs', f);
const read = (n: TestNode, f: string) => fs.readFileSync(certFile(n, f), 'utf8');
const PORTS = { api: 9443, cm: 8443, metrics_exporter: 8070 } as const;

/** Handshake with `ca` as the only trust: authorized or not, and the server's certificate. */
function handshake(host: string, port: number, ca: string): Promise<{ authorized: boolean; error?: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port, ca, rejectUnauthorized: false, checkServerIdentity: () => undefined }, () => {
      const r = { authorized: s.authorized, error: s.authorizationError?.toString(), serial: s.getPeerCertificate().serialNumber.toLowerCase() };
      s.end();
      resolve(r);
    });
    s.once('error', reject);
  });
}

before(async () => {
  await cluster.startAll();
  await cluster.form('client-tls.test');
});

after(async () => {
  await cluster.stop();
});

test('every node has one services CA apart from the internode CA; api, cm, proxy and metrics_exporter are signed by it alone', () => {
  const servicesCa = read(n1, 'services-ca.pem');
  const internodeCa = read(n1, 'ca.pem');
  assert.notEqual(new X509Certificate(servicesCa).fingerprint256, new X509Certificate(internodeCa).fingerprint256);
  assert.match(new X509Certificate(servicesCa).subject, /Tessera services CA/);
  for (const n of cluster.nodes) {
    assert.equal(read(n, 'services-ca.pem'), servicesCa, 'one services CA for the whole cluster');
    for (const name of ['api', 'cm', 'proxy', 'metrics_exporter']) {
      assert.equal(fs.statSync(certFile(n, `${name}.key`)).mode & 0o777, 0o600, `${name}.key is 0600`);
      // openssl, independently of our code: the chain ends at the services CA, and not at the internode CA.
      const ok = execFileSync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', certFile(n, 'services-ca.pem'), certFile(n, `${name}.pem`)]).toString();
      assert.match(ok, /: OK/);
      assert.throws(() => execFileSync('openssl', ['verify', '-CAfile', certFile(n, 'ca.pem'), certFile(n, `${name}.pem`)], { stdio: 'pipe' }), `${name} must not verify against the internode CA`);
      assert.ok(new X509Certificate(read(n, `${name}.pem`)).subjectAltName?.includes(`IP Address:${n.addr}`));
    }
    // And the other way round: the internode certificates are not the services CA's.
    for (const plane of ['cp', 'dp']) {
      assert.throws(() => execFileSync('openssl', ['verify', '-CAfile', certFile(n, 'services-ca.pem'), certFile(n, `${plane}.pem`)], { stdio: 'pipe' }));
    }
  }
});

test('REST (9443), UI (8443) and metrics (8070) verify against the services CA and not against the internode CA', async () => {
  for (const n of cluster.nodes) {
    for (const [name, port] of Object.entries(PORTS)) {
      const good = await handshake(n.addr, port, read(n, 'services-ca.pem'));
      assert.ok(good.authorized, `${n.addr}:${port} (${name}) with the services CA: ${good.error}`);
      assert.equal(good.serial, new X509Certificate(read(n, `${name}.pem`)).serialNumber.toLowerCase(), `${n.addr}:${port} presents ${name}.pem`);
      const bad = await handshake(n.addr, port, read(n, 'ca.pem'));
      assert.equal(bad.authorized, false, `${n.addr}:${port} (${name}) must not verify against the internode CA`);
    }
  }
  // The CLI, given the services CA, verifies REST.
  const r = await n1.cli(['--ca', certFile(n1, 'services-ca.pem'), 'info', 'cluster']);
  assert.equal(r.code, 0, r.stderr);
});

/** GET over a given keep-alive agent: the status, and whether the request went over an already open connection. */
function getOver(agent: https.Agent, n: TestNode, p: string): Promise<{ status: number; reused: boolean; serial: string; socket: object }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: n.addr, port: 9443, path: p, agent, auth: `${USER}:${PASSWORD}` },
      (res) => {
        const socket = res.socket as tls.TLSSocket;
        const serial = socket.getPeerCertificate().serialNumber.toLowerCase();
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, serial, socket }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const serialOnDisk = (n: TestNode, name: string) => new X509Certificate(read(n, `${name}.pem`)).serialNumber.toLowerCase();

test('the rotation job renews the client-facing certificates; a held-open HTTPS keep-alive connection stays up', async () => {
  // Trust in the agent, not per request: Node's agent does not keep a socket whose request carried its own `ca`.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: read(n1, 'services-ca.pem'), checkServerIdentity: () => undefined });
  try {
    const first = await getOver(agent, n1, '/v1/cluster');
    assert.equal(first.status, 200);
    const before = { api: serialOnDisk(n1, 'api'), cm: serialOnDisk(n1, 'cm'), metrics_exporter: serialOnDisk(n1, 'metrics_exporter'), proxy: serialOnDisk(n1, 'proxy') };
    assert.equal(first.serial, before.api);
    // Due when fewer than 89.9999 of 90 days remain: each certificate is renewed about a minute after it was issued.
    const s = await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { validity_days: 90, expiry_days_before_rotation: 89.9999 } });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    try {
      for (const [name, port] of Object.entries(PORTS)) {
        await waitFor(`${name} renewed and presented on ${port}`, async () => {
          if (serialOnDisk(n1, name) === before[name as keyof typeof before]) return false;
          const h = await handshake(n1.addr, port, read(n1, 'services-ca.pem'));
          return h.authorized && h.serial === serialOnDisk(n1, name);
        }, 150_000, 1000);
      }
      await waitFor('proxy renewed', async () => serialOnDisk(n1, 'proxy') !== before.proxy, 60_000, 1000);
      // The connection opened before the renewal still carries requests, with the certificate it was opened with.
      const again = await getOver(agent, n1, '/v1/cluster');
      assert.equal(again.status, 200);
      assert.equal(again.reused, true, 'the keep-alive connection was not dropped');
      assert.equal(again.socket, first.socket);
      assert.equal(again.serial, before.api);
    } finally {
      const r = await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { validity_days: 90, expiry_days_before_rotation: 60 } });
      assert.equal(r.status, 200);
    }
    // GET /v1/cluster/certificates shows what the node presents (once the last renewal under the short schedule is recorded).
    await waitFor('api certificate recorded', async () => {
      const certs = await n1.api<{ service_certificates: { node_uid: number; name: string; serial: string; issuer: string }[] }>('GET', '/v1/cluster/certificates');
      const api1 = certs.body.service_certificates.find((c) => c.node_uid === 1 && c.name === 'api');
      return api1?.serial.replace(/^0+/, '') === serialOnDisk(n1, 'api').replace(/^0+/, '') && /Tessera services CA/.test(api1.issuer);
    }, 20_000);
  } finally {
    agent.destroy();
  }
});

test('PUT /v1/cluster/certificates replaces a client-facing certificate by its RE name, with the operator-certificate checks', async () => {
  const [rootKeys, leafKeys, badKeys] = await rsaKeys(3);
  const root = await makeRoot('Operator Services Root', rootKeys);
  // A client-facing certificate needs serverAuth; without it: 400 naming the check.
  const noServerAuth = await makeLeaf(root, 'ui-bad', badKeys, { eku: [x509.ExtendedKeyUsage.clientAuth] });
  const bad = await n1.api<{ error_code: string; description: string }>('PUT', '/v1/cluster/certificates', {
    certificates: [{ name: 'cm', certificate: noServerAuth.pem + root.pem, key: await keyPem(badKeys), node_uid: 2 }],
  });
  assert.equal(bad.status, 400, JSON.stringify(bad.body));
  assert.match(bad.body.description, /^cm: .*serverAuth.*\[check: eku_server_auth\]/);
  const unknown = await n1.api('PUT', '/v1/cluster/certificates', { certificates: [{ name: 'syncer_x', certificate: noServerAuth.pem, key: await keyPem(badKeys) }] });
  assert.equal(unknown.status, 400);

  const leaf = await makeLeaf(root, 'ui', leafKeys, { eku: [x509.ExtendedKeyUsage.serverAuth] });
  const ok = await n1.api<{ certificates: { node_uid: number; name: string; serial: string }[] }>('PUT', '/v1/cluster/certificates', {
    certificates: [{ name: 'cm', certificate: leaf.pem + root.pem, key: await keyPem(leafKeys), node_uid: 2 }],
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual(ok.body.certificates.map((c) => [c.node_uid, c.name]), [[2, 'cm']]);
  // Node 2's UI now presents it (no restart): it verifies against the operator's root, and no longer against the services CA.
  const h = await handshake(n2.addr, PORTS.cm, root.pem);
  assert.ok(h.authorized, h.error);
  assert.equal(h.serial, leaf.cert.serialNumber.toLowerCase());
  assert.equal((await handshake(n2.addr, PORTS.cm, read(n2, 'services-ca.pem'))).authorized, false);
  // Node 1 and node 2's REST are untouched.
  assert.ok((await handshake(n1.addr, PORTS.cm, read(n1, 'services-ca.pem'))).authorized);
  assert.ok((await handshake(n2.addr, PORTS.api, read(n2, 'services-ca.pem'))).authorized);
});
