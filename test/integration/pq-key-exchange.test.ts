// Hybrid post-quantum key exchange on the internode channel, proven on the
// wire: a capture while a 3-node cluster forms, serves an encrypted database
// and rotates its certificates shows every TLS 1.3 ServerHello on 3342 choosing
// X25519MLKEM768 (0x11EC). A classical client still gets in under
// hybrid_preferred and is refused under hybrid_required; client-facing ports
// and TLS 1.2 clients are unaffected by the internode rule.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { TestCluster, type BdbJson, createDb, waitFor } from '../support/cluster.js';
import { Capture, stopAllCaptures } from '../support/capture.js';
import { probe, sClient } from '../support/tls-tools.js';
import { HYBRID_GROUP_CODEPOINT } from '../../src/tls/policy.js';

const NET = 8;
const cluster = new TestCluster(NET, 3);
const [n1, n2, n3] = cluster.nodes;
const capDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-pq-'));
let formation: Capture;
let db: BdbJson;

const certFile = (n: typeof n1, f: string) => fs.readFileSync(path.join(n.dataDir, 'certs', f), 'utf8');
/** A TLS client with node 1's real cp identity, so only the key exchange can be the reason for a refusal. */
const cpClient = (target: typeof n1, extra: Record<string, unknown>) => ({
  host: target.addr,
  port: 3342,
  servername: 'cp.tessera.internal',
  ALPNProtocols: ['tessera-cp/1'],
  cert: certFile(n1, 'cp.pem'),
  key: certFile(n1, 'cp.key'),
  ca: certFile(n1, 'ca.pem'),
  checkServerIdentity: () => undefined,
  watchMs: 800,
  ...extra,
});

before(async () => {
  formation = new Capture(path.join(capDir, 'formation.pcap'), `tcp and net 127.0.${NET}.0/24 and port 3342`);
  await formation.start();
  await cluster.startAll();
  await cluster.form('pq.test');
  db = await createDb(n1, {
    name: 'pq',
    memory_size: 100 << 20,
    shards_count: 2,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: 12800,
    data_internode_encryption: true,
  });
});
after(async () => {
  await stopAllCaptures();
  await cluster.stop();
  fs.rmSync(capDir, { recursive: true, force: true });
});

test('every TLS 1.3 ServerHello on 3342 while the cluster forms, serves an encrypted database and rotates carries key share 0x11EC', async () => {
  // Traffic through every endpoint reaches remote shards over dp links.
  for (const n of cluster.nodes) {
    const c = new Redis({ host: n.addr, port: db.port, maxRetriesPerRequest: 0 });
    try {
      for (let i = 0; i < 50; i++) await c.set(`pq:${n.addr}:${i}`, 'v');
    } finally {
      c.disconnect();
    }
  }
  const rot = await n2.cli(['cluster', 'certificate', 'rotate']);
  assert.equal(rot.code, 0, rot.stderr);
  // New links after rotation: a fresh client through node 3 opens its shard links anew.
  const c = new Redis({ host: n3.addr, port: db.port, maxRetriesPerRequest: 0 });
  try {
    for (let i = 0; i < 20; i++) assert.equal(await c.get(`pq:${n1.addr}:${i}`), 'v');
  } finally {
    c.disconnect();
  }
  await formation.stop();

  const hellos = await formation.serverHellos(3342);
  const tls13 = hellos.filter((h) => h.version === '0x0304');
  assert.ok(tls13.length >= 6, `only ${tls13.length} TLS 1.3 ServerHellos on 3342: ${JSON.stringify(hellos)}`);
  assert.deepEqual(
    hellos.filter((h) => h.version !== '0x0304'),
    [],
    'Tessera processes never fall back to TLS 1.2 between themselves',
  );
  const groups = new Set(tls13.map((h) => Number(h.group)));
  assert.deepEqual([...groups], [HYBRID_GROUP_CODEPOINT], `key-share groups seen: ${[...groups].join(', ')}`);
  // Every node served some of them: all three listeners are hybrid.
  assert.deepEqual(new Set(tls13.map((h) => h.src)), new Set(cluster.nodes.map((n) => n.addr)));
  // And the dialing side logs what it negotiated.
  const log = fs.readFileSync(n1.logFile, 'utf8');
  assert.match(log, /"group":"X25519MLKEM768".*"msg":"internode link established"/);
});

test('hybrid_preferred: a client offering only X25519 connects; a TLS 1.2 client with ECDHE-RSA-AES128-GCM-SHA256 too', async () => {
  const pol = await n1.api<{ internode_key_exchange: string }>('GET', '/v1/cluster/policy');
  assert.equal(pol.body.internode_key_exchange, 'hybrid_preferred');
  const view = await n3.api<{ key_exchange: { internode_key_exchange: string; groups: string[] } }>('GET', '/v1/cluster/certificates');
  assert.deepEqual(view.body.key_exchange, { internode_key_exchange: 'hybrid_preferred', groups: ['X25519MLKEM768', 'X25519', 'P-256'] });
  const classical = await probe(cpClient(n2, { ecdhCurve: 'X25519', minVersion: 'TLSv1.3' }));
  assert.ok(classical.secureConnected, classical.error?.message);
  assert.equal(classical.protocol, 'TLSv1.3');
  assert.equal(classical.group, 'X25519');
  assert.equal(classical.closed, false, 'an authenticated member stays connected');

  const hybrid = await probe(cpClient(n2, {}));
  assert.equal(hybrid.group, 'X25519MLKEM768');

  const tls12 = await probe(cpClient(n2, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }));
  assert.ok(tls12.secureConnected, tls12.error?.message);
  assert.equal(tls12.protocol, 'TLSv1.2');
  assert.equal(tls12.cipher, 'ECDHE-RSA-AES128-GCM-SHA256');
  // The REST API too, from Debian's OpenSSL 3.0 s_client (no ML-KEM at all).
  const r = await sClient(['-connect', `${n1.addr}:9443`, '-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'], { holdMs: 300 });
  assert.match(r.stdout, /Cipher is ECDHE-RSA-AES128-GCM-SHA256/, r.stdout + r.stderr);
});

test('hybrid_required: the internode channel refuses X25519-only and TLS 1.2 handshakes; the cluster keeps working; client-facing ports are unaffected', async () => {
  const bad = await n1.cli(['tune', 'cluster', 'internode_key_exchange', 'quantum_please']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /internode_key_exchange must be one of: hybrid_preferred, hybrid_required/);
  const badRest = await n1.api('PUT', '/v1/cluster/policy', { internode_key_exchange: 'none' });
  assert.equal(badRest.status, 400);

  const t = await n1.cli(['tune', 'cluster', 'internode_key_exchange', 'hybrid_required']);
  assert.equal(t.code, 0, t.stderr);
  try {
    // Applied on every node's listener without a restart.
    for (const n of cluster.nodes) {
      await waitFor(
        `${n.addr} requires the hybrid group`,
        async () => !(await probe(cpClient(n, { ecdhCurve: 'X25519', minVersion: 'TLSv1.3' }))).secureConnected,
        10_000,
        100,
      );
      const classical = await probe(cpClient(n, { ecdhCurve: 'X25519', minVersion: 'TLSv1.3' }));
      assert.equal(classical.error?.code, 'ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE', classical.error?.message);
      const tls12 = await probe(cpClient(n, { maxVersion: 'TLSv1.2' }));
      assert.equal(tls12.secureConnected, false);
      assert.match(tls12.error?.code ?? '', /ALERT_PROTOCOL_VERSION/, tls12.error?.message);
      const hybrid = await probe(cpClient(n, {}));
      assert.ok(hybrid.secureConnected, hybrid.error?.message);
      assert.equal(hybrid.group, 'X25519MLKEM768');
    }
    const view = await n2.api<{ key_exchange: { groups: string[] } }>('GET', '/v1/cluster/certificates');
    assert.deepEqual(view.body.key_exchange.groups, ['X25519MLKEM768']);
    // Client-facing: REST still takes a classical TLS 1.2 client.
    const rest = await probe({
      host: n2.addr,
      port: 9443,
      rejectUnauthorized: false,
      ecdhCurve: 'X25519',
      maxVersion: 'TLSv1.2',
      watchMs: 300,
    });
    assert.ok(rest.secureConnected, rest.error?.message);
    // The cluster still talks to itself: control RPC between nodes (status probes) and new dp links.
    await waitFor(
      'every node sees the others up',
      async () => {
        const s = await n3.cli(['status']);
        return s.code === 0 && !/\bdown\b/i.test(s.stdout);
      },
      20_000,
    );
    const c = new Redis({ host: n2.addr, port: db.port, maxRetriesPerRequest: 0 });
    try {
      for (let i = 0; i < 50; i++) await c.set(`req:${i}`, String(i));
      for (let i = 0; i < 50; i++) assert.equal(await c.get(`req:${i}`), String(i));
    } finally {
      c.disconnect();
    }
  } finally {
    const back = await n1.cli(['tune', 'cluster', 'internode_key_exchange', 'hybrid_preferred']);
    assert.equal(back.code, 0, back.stderr);
  }
  await waitFor(
    'classical clients accepted again',
    async () => (await probe(cpClient(n3, { ecdhCurve: 'X25519', minVersion: 'TLSv1.3' }))).secureConnected,
    10_000,
    100,
  );
});
