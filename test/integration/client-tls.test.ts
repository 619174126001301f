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
import net from 'node:net';
import { Redis } from 'ioredis';
import { TestCluster, type TestNode, USER, PASSWORD, type BdbJson, createDb, redisCli, waitDbStatus, waitFor } from '../support/cluster.js';
import { Capture, stopAllCaptures } from '../support/capture.js';
import { sClient } from '../support/tls-tools.js';
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
      const r = {
        authorized: s.authorized,
        error: s.authorizationError?.toString(),
        serial: s.getPeerCertificate().serialNumber.toLowerCase(),
      };
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
  await stopAllCaptures();
  await cluster.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
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
      const ok = execFileSync('openssl', [
        'verify',
        '-purpose',
        'sslserver',
        '-CAfile',
        certFile(n, 'services-ca.pem'),
        certFile(n, `${name}.pem`),
      ]).toString();
      assert.match(ok, /: OK/);
      assert.throws(
        () => execFileSync('openssl', ['verify', '-CAfile', certFile(n, 'ca.pem'), certFile(n, `${name}.pem`)], { stdio: 'pipe' }),
        `${name} must not verify against the internode CA`,
      );
      assert.ok(new X509Certificate(read(n, `${name}.pem`)).subjectAltName?.includes(`IP Address:${n.addr}`));
    }
    // And the other way round: the internode certificates are not the services CA's.
    for (const plane of ['cp', 'dp']) {
      assert.throws(() =>
        execFileSync('openssl', ['verify', '-CAfile', certFile(n, 'services-ca.pem'), certFile(n, `${plane}.pem`)], { stdio: 'pipe' }),
      );
    }
  }
});

test('REST (9443), UI (8443) and metrics (8070) verify against the services CA and not against the internode CA', async () => {
  for (const n of cluster.nodes) {
    for (const [name, port] of Object.entries(PORTS)) {
      const good = await handshake(n.addr, port, read(n, 'services-ca.pem'));
      assert.ok(good.authorized, `${n.addr}:${port} (${name}) with the services CA: ${good.error}`);
      assert.equal(
        good.serial,
        new X509Certificate(read(n, `${name}.pem`)).serialNumber.toLowerCase(),
        `${n.addr}:${port} presents ${name}.pem`,
      );
      const bad = await handshake(n.addr, port, read(n, 'ca.pem'));
      assert.equal(bad.authorized, false, `${n.addr}:${port} (${name}) must not verify against the internode CA`);
    }
  }
  // The CLI, given the services CA, verifies REST.
  const r = await n1.cli(['--ca', certFile(n1, 'services-ca.pem'), 'info', 'cluster']);
  assert.equal(r.code, 0, r.stderr);
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-client-tls-'));
const tmpFile = (name: string, text: string) => {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text, { mode: 0o600 });
  return f;
};
/** Client identities: one issued by a listed CA, one listed itself (self-signed), one nobody listed. */
interface ClientId {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}
const clients: Record<'byCa' | 'listed' | 'stranger', ClientId> = {} as never;
let clientCa: { pem: string };
let tlsDb: BdbJson;

async function makeClients(): Promise<void> {
  const [caKeys, k1, k2, k3, k4] = await rsaKeys(5);
  const ca = await makeRoot('Client CA', caKeys);
  clientCa = ca;
  const strangerCa = await makeRoot('Stranger CA', k4);
  const mk = async (name: keyof typeof clients, cert: { pem: string }, keys: CryptoKeyPair) => {
    const key = await keyPem(keys);
    clients[name] = { cert: cert.pem, key, certFile: tmpFile(`${name}.pem`, cert.pem), keyFile: tmpFile(`${name}.key`, key) };
  };
  await mk('byCa', await makeLeaf(ca, 'app-1', k1, { eku: [x509.ExtendedKeyUsage.clientAuth] }), k1);
  await mk('listed', await makeRoot('app-2-self-signed', k2), k2);
  await mk('stranger', await makeLeaf(strangerCa, 'intruder', k3, { eku: [x509.ExtendedKeyUsage.clientAuth] }), k3);
}

/** redis-cli over TLS, trusting only the services CA. */
function tlsCli(n: TestNode, port: number, who: ClientId | undefined, args: string[]) {
  const id = who ? ['--cert', who.certFile, '--key', who.keyFile] : [];
  return redisCli(n.addr, port, ['--tls', '--cacert', certFile(n, 'services-ca.pem'), ...id, ...args]);
}

function tlsClient(n: TestNode, port: number, who: ClientId): Redis {
  return new Redis({
    host: n.addr,
    port,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    tls: { ca: read(n, 'services-ca.pem'), cert: who.cert, key: who.key, checkServerIdentity: () => undefined },
  });
}

const refusalLogLines = (n: TestNode, bdb: number) =>
  fs
    .readFileSync(n.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('client connection refused') && l.includes(`"bdb":${bdb}`)).length;

async function refusedMetric(n: TestNode, bdb: number, reason: string): Promise<number> {
  const text = await new Promise<string>((resolve, reject) =>
    https
      .get({ host: n.addr, port: 8070, path: '/metrics', ca: read(n, 'services-ca.pem'), checkServerIdentity: () => undefined }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject),
  );
  const m = new RegExp(`^tessera_endpoint_refused_connections_total\\{bdb="${bdb}",reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

test('a tls_mode enabled database: every endpoint answers PONG over TLS to a listed client; others are refused and it keeps serving', async () => {
  await makeClients();
  // A malformed entry: 400 naming it; nothing created.
  const bad = await n1.api<{ error_code: string; description: string }>('POST', '/v1/bdbs', {
    name: 'bad-tls',
    memory_size: 104857600,
    tls_mode: 'enabled',
    authentication_ssl_client_certs: [{ client_cert: clientCa.pem }, { client_cert: 'not a certificate' }],
  });
  assert.equal(bad.status, 400, JSON.stringify(bad.body));
  assert.equal(bad.body.error_code, 'invalid_client_cert');
  assert.match(bad.body.description, /authentication_ssl_client_certs\[1\]/);
  const wrongShape = await n1.api<{ description: string }>('POST', '/v1/bdbs', {
    name: 'bad-tls',
    memory_size: 104857600,
    authentication_ssl_client_certs: [{ cert: clientCa.pem }],
  });
  assert.equal(wrongShape.status, 400);
  assert.match(wrongShape.body.description, /authentication_ssl_client_certs\/0/);
  assert.equal((await n1.api('POST', '/v1/bdbs', { name: 'bad-tls', memory_size: 104857600, tls_mode: 'replica_ssl' })).status, 400);
  assert.equal((await n1.api<unknown[]>('GET', '/v1/bdbs')).body.length, 0);

  tlsDb = await createDb(n1, {
    name: 'secure',
    memory_size: 104857600,
    shards_count: 2,
    sharding: true,
    proxy_policy: 'all-nodes',
    tls_mode: 'enabled',
    enforce_client_authentication: 'enabled',
    authentication_ssl_client_certs: [{ client_cert: clientCa.pem }, { client_cert: clients.listed.cert }],
  });
  assert.equal(tlsDb.endpoints[0].addr.length, 2, 'an endpoint on every node');
  for (const n of cluster.nodes) {
    for (const who of [clients.byCa, clients.listed]) {
      const r = await tlsCli(n, tlsDb.port, who, ['PING']);
      assert.equal(r.stdout.trim(), 'PONG', `${n.addr}: ${r.stdout} ${r.stderr}`);
    }
  }
  const before = await refusedMetric(n1, tlsDb.uid, 'plaintext_on_tls');
  for (let i = 0; i < 3; i++) {
    const none = await tlsCli(n1, tlsDb.port, undefined, ['PING']);
    assert.notEqual(none.stdout.trim(), 'PONG', 'no client certificate: refused');
    const stranger = await tlsCli(n1, tlsDb.port, clients.stranger, ['PING']);
    assert.notEqual(stranger.stdout.trim(), 'PONG', 'an unlisted client certificate: refused');
    const plain = await redisCli(n1.addr, tlsDb.port, ['PING']);
    assert.notEqual(plain.stdout.trim(), 'PONG', 'plaintext on a TLS endpoint: refused');
  }
  // The TLS policy holds here too: TLS 1.1 gets protocol_version, no ServerHello.
  const old = await sClient(['-connect', `${n1.addr}:${tlsDb.port}`, '-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0', '-msg'], {
    holdMs: 1500,
  });
  assert.match(old.stdout, /Alert \[length 0002\], fatal protocol_version/, old.stdout);
  assert.doesNotMatch(old.stdout, /<<< .*ServerHello/);
  // It keeps serving the listed clients.
  assert.equal((await tlsCli(n1, tlsDb.port, clients.byCa, ['PING'])).stdout.trim(), 'PONG');
  // Counted every time, logged once per client address.
  await waitFor('refusals counted', async () => (await refusedMetric(n1, tlsDb.uid, 'plaintext_on_tls')) >= before + 3, 10_000);
  assert.ok((await refusedMetric(n1, tlsDb.uid, 'client_cert')) >= 6, 'each refused client certificate counted');
  assert.equal(refusalLogLines(n1, tlsDb.uid), 1, 'only the first refusal from an address is logged');

  // status shows SSL on the endpoints, info db shows tls_mode.
  const st = await n1.cli(['status']);
  const rows = st.stdout.split('\n').filter((l) => l.startsWith(`db:${tlsDb.uid} `) && l.includes('endpoint:'));
  assert.equal(rows.length, 2, st.stdout);
  for (const r of rows) assert.match(r, /\sYes\s*$/);
  const info = await n1.cli(['info', 'db', String(tlsDb.uid)]);
  assert.match(info.stdout, /^tls_mode: enabled$/m);
  assert.match(info.stdout, /^enforce_client_authentication: enabled$/m);
});

test('a capture of the TLS endpoint never shows a value written with a marker; a plaintext endpoint would', async () => {
  const plainDb = await createDb(n1, { name: 'plain', memory_size: 104857600, proxy_policy: 'all-nodes' });
  const marker = `MARKER-${Date.now()}`;
  const cap = new Capture(path.join(tmp, 'client.pcap'), `tcp and (port ${tlsDb.port} or port ${plainDb.port}) and net 127.0.${NET}.0/24`);
  await cap.start();
  try {
    for (const n of cluster.nodes) {
      const c = tlsClient(n, tlsDb.port, clients.byCa);
      try {
        for (let i = 0; i < 20; i++) {
          await c.set(`k:${n.addr}:${i}`, `${marker}-${i}`);
          assert.equal(await c.get(`k:${n.addr}:${i}`), `${marker}-${i}`);
        }
      } finally {
        c.disconnect();
      }
    }
    // The same through the plaintext database: proves the capture sees client traffic.
    assert.equal((await redisCli(n1.addr, plainDb.port, ['SET', 'p', `${marker}-plain`])).stdout.trim(), 'OK');
  } finally {
    await cap.stop();
  }
  const all = await cap.tshark(['-Y', 'tcp.len > 0', '-T', 'fields', '-e', 'tcp.srcport', '-e', 'tcp.dstport', '-e', 'tcp.payload']);
  const segments = all
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'))
    .map(([sp, dp, hex]) => ({
      port: Number(sp) === tlsDb.port || Number(dp) === tlsDb.port ? tlsDb.port : plainDb.port,
      data: Buffer.from((hex ?? '').replace(/:/g, ''), 'hex'),
    }));
  const tlsBytes = segments.filter((s) => s.port === tlsDb.port);
  assert.ok(tlsBytes.length > 40, `the capture saw the TLS client traffic (${tlsBytes.length} segments)`);
  assert.ok(!tlsBytes.some((s) => s.data.includes(marker)), 'no marker in the TLS endpoint traffic');
  assert.ok(
    segments.some((s) => s.port === plainDb.port && s.data.includes(`${marker}-plain`)),
    'the plaintext endpoint shows its value: the capture can see markers',
  );
  // Every server flight on the TLS port is TLS 1.3 or 1.2 with a policy suite.
  const hellos = await cap.serverHellos(tlsDb.port);
  assert.ok(hellos.length >= 2, 'a ServerHello per TLS connection');
  for (const h of hellos) {
    assert.equal(h.version, '0x0304', `TLS 1.3 with ioredis: ${JSON.stringify(h)}`);
    assert.ok(['0xc030', '0xc02f', '0x1301', '0x1302'].includes(h.suite), `a policy suite: ${JSON.stringify(h)}`);
  }
  await n1.api('DELETE', `/v1/bdbs/${plainDb.uid}`);
});

test('switching tls_mode on an existing database is an action; TLS then plaintext are refused on the wrong mode', async () => {
  const db = await createDb(n1, { name: 'switch', memory_size: 104857600, proxy_policy: 'all-nodes' });
  assert.equal((await redisCli(n2.addr, db.port, ['PING'])).stdout.trim(), 'PONG');
  // A TLS client on a plaintext endpoint: refused cleanly, and it keeps serving.
  const early = await tlsCli(n2, db.port, clients.byCa, ['PING']);
  assert.notEqual(early.stdout.trim(), 'PONG');
  assert.equal((await redisCli(n2.addr, db.port, ['PING'])).stdout.trim(), 'PONG');
  await waitFor('tls_on_plaintext counted', async () => (await refusedMetric(n2, db.uid, 'tls_on_plaintext')) >= 1, 10_000);

  const held = await new Promise<import('node:net').Socket>((resolve, reject) => {
    const s = net.connect({ host: n1.addr, port: db.port }, () => resolve(s));
    s.once('error', reject);
  });
  const put = await n1.api<{ action_uid: string }>('PUT', `/v1/bdbs/${db.uid}`, { tls_mode: 'enabled' });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const action = await waitFor(
    'tls_mode switch action completed',
    async () => {
      const a = await n1.api<{ status: string; progress: number; name: string }>('GET', `/v1/actions/${put.body.action_uid}`);
      return a.body.status === 'completed' ? a.body : undefined;
    },
    60_000,
  );
  assert.equal(action.progress, 100);
  await waitDbStatus(n1, db.uid, 'active');
  // No client certificates listed: TLS with the services CA is enough; plaintext is refused, and an open plaintext connection was closed.
  for (const n of cluster.nodes) {
    await waitFor(`${n.addr} speaks TLS`, async () => (await tlsCli(n, db.port, undefined, ['PING'])).stdout.trim() === 'PONG', 20_000);
    assert.notEqual((await redisCli(n.addr, db.port, ['PING'])).stdout.trim(), 'PONG');
  }
  await waitFor('the open plaintext connection was closed', async () => held.destroyed || held.readableEnded, 10_000);
  held.destroy();
  const back = await n1.cli(['tune', 'db', String(db.uid), 'tls_mode', 'disabled']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal((await redisCli(n1.addr, db.port, ['PING'])).stdout.trim(), 'PONG');
  await n1.api('DELETE', `/v1/bdbs/${db.uid}`);
});

/** GET over a given keep-alive agent: the status, and whether the request went over an already open connection. */
function getOver(agent: https.Agent, n: TestNode, p: string): Promise<{ status: number; reused: boolean; serial: string; socket: object }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: n.addr, port: 9443, path: p, agent, auth: `${USER}:${PASSWORD}` }, (res) => {
      const socket = res.socket as tls.TLSSocket;
      const serial = socket.getPeerCertificate().serialNumber.toLowerCase();
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, serial, socket }));
    });
    req.on('error', reject);
    req.end();
  });
}

const serialOnDisk = (n: TestNode, name: string) => new X509Certificate(read(n, `${name}.pem`)).serialNumber.toLowerCase();

test('the rotation job renews the client-facing certificates; a held-open HTTPS keep-alive and a client TLS connection stay up', async () => {
  // Trust in the agent, not per request: Node's agent does not keep a socket whose request carried its own `ca`.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: read(n1, 'services-ca.pem'), checkServerIdentity: () => undefined });
  try {
    const first = await getOver(agent, n1, '/v1/cluster');
    assert.equal(first.status, 200);
    const redis = tlsClient(n1, tlsDb.port, clients.byCa);
    assert.equal(await redis.ping(), 'PONG');
    const redisSocket = redis.stream as tls.TLSSocket;
    const redisSerial = redisSocket.getPeerCertificate().serialNumber.toLowerCase();
    const before = {
      api: serialOnDisk(n1, 'api'),
      cm: serialOnDisk(n1, 'cm'),
      metrics_exporter: serialOnDisk(n1, 'metrics_exporter'),
      proxy: serialOnDisk(n1, 'proxy'),
    };
    assert.equal(first.serial, before.api);
    // Due when fewer than 89.9999 of 90 days remain: each certificate is renewed about a minute after it was issued.
    const s = await n1.api('PUT', '/v1/job_scheduler', {
      cert_rotation_job_settings: { validity_days: 90, expiry_days_before_rotation: 89.9999 },
    });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    try {
      for (const [name, port] of Object.entries(PORTS)) {
        await waitFor(
          `${name} renewed and presented on ${port}`,
          async () => {
            if (serialOnDisk(n1, name) === before[name as keyof typeof before]) return false;
            const h = await handshake(n1.addr, port, read(n1, 'services-ca.pem'));
            return h.authorized && h.serial === serialOnDisk(n1, name);
          },
          150_000,
          1000,
        );
      }
      await waitFor(
        'proxy renewed and presented by the TLS endpoint',
        async () => {
          if (serialOnDisk(n1, 'proxy') === before.proxy) return false;
          const h = await handshake(n1.addr, tlsDb.port, read(n1, 'services-ca.pem'));
          return h.authorized && h.serial === serialOnDisk(n1, 'proxy');
        },
        150_000,
        1000,
      );
      assert.equal(redisSerial, before.proxy);
      // The client TLS connection opened before the renewal is the same one, and still served.
      assert.equal(await redis.set('after-rotation', 'yes'), 'OK');
      assert.equal(await redis.get('after-rotation'), 'yes');
      assert.equal(redis.stream, redisSocket);
      redis.disconnect();
      // The connection opened before the renewal still carries requests, with the certificate it was opened with.
      const again = await getOver(agent, n1, '/v1/cluster');
      assert.equal(again.status, 200);
      assert.equal(again.reused, true, 'the keep-alive connection was not dropped');
      assert.equal(again.socket, first.socket);
      assert.equal(again.serial, before.api);
    } finally {
      const r = await n1.api('PUT', '/v1/job_scheduler', {
        cert_rotation_job_settings: { validity_days: 90, expiry_days_before_rotation: 60 },
      });
      assert.equal(r.status, 200);
    }
    // GET /v1/cluster/certificates shows what the node presents (once the last renewal under the short schedule is recorded).
    await waitFor(
      'api certificate recorded',
      async () => {
        const certs = await n1.api<{ service_certificates: { node_uid: number; name: string; serial: string; issuer: string }[] }>(
          'GET',
          '/v1/cluster/certificates',
        );
        const api1 = certs.body.service_certificates.find((c) => c.node_uid === 1 && c.name === 'api');
        return api1?.serial.replace(/^0+/, '') === serialOnDisk(n1, 'api').replace(/^0+/, '') && /Tessera services CA/.test(api1.issuer);
      },
      20_000,
    );
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
  const unknown = await n1.api('PUT', '/v1/cluster/certificates', {
    certificates: [{ name: 'syncer_x', certificate: noServerAuth.pem, key: await keyPem(badKeys) }],
  });
  assert.equal(unknown.status, 400);

  const leaf = await makeLeaf(root, 'ui', leafKeys, { eku: [x509.ExtendedKeyUsage.serverAuth] });
  const ok = await n1.api<{ certificates: { node_uid: number; name: string; serial: string }[] }>('PUT', '/v1/cluster/certificates', {
    certificates: [{ name: 'cm', certificate: leaf.pem + root.pem, key: await keyPem(leafKeys), node_uid: 2 }],
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual(
    ok.body.certificates.map((c) => [c.node_uid, c.name]),
    [[2, 'cm']],
  );
  // Node 2's UI now presents it (no restart): it verifies against the operator's root, and no longer against the services CA.
  const h = await handshake(n2.addr, PORTS.cm, root.pem);
  assert.ok(h.authorized, h.error);
  assert.equal(h.serial, leaf.cert.serialNumber.toLowerCase());
  assert.equal((await handshake(n2.addr, PORTS.cm, read(n2, 'services-ca.pem'))).authorized, false);
  // Node 1 and node 2's REST are untouched.
  assert.ok((await handshake(n1.addr, PORTS.cm, read(n1, 'services-ca.pem'))).authorized);
  assert.ok((await handshake(n2.addr, PORTS.api, read(n2, 'services-ca.pem'))).authorized);
});

test('taking a client certificate off the list disconnects its open connection; other clients stay connected', async () => {
  const dropped = tlsClient(n1, tlsDb.port, clients.listed);
  const kept = tlsClient(n1, tlsDb.port, clients.byCa);
  try {
    assert.equal(await dropped.ping(), 'PONG');
    assert.equal(await kept.ping(), 'PONG');
    const keptSocket = kept.stream;
    const put = await n1.api('PUT', `/v1/bdbs/${tlsDb.uid}`, { authentication_ssl_client_certs: [{ client_cert: clientCa.pem }] });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await waitDbStatus(n1, tlsDb.uid, 'active');
    await waitFor('the unlisted client was disconnected', async () => dropped.status === 'end', 20_000);
    assert.equal(await kept.ping(), 'PONG');
    assert.equal(kept.stream, keptSocket, 'the listed client kept its connection');
    assert.notEqual((await tlsCli(n1, tlsDb.port, clients.listed, ['PING'])).stdout.trim(), 'PONG');
  } finally {
    dropped.disconnect();
    kept.disconnect();
  }
});
