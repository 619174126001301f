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
import { TestCluster, TestNode, waitFor } from '../support/cluster.js';

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
