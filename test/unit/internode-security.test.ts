// The internode channel, tested from the outside: a real InternodeServer on a
// loopback address, real sockets, and external clients (openssl s_client,
// sslscan, Node's TLS client). Each case asserts on the evidence on the wire:
// what the server presented, what was negotiated, which alert it sent, whether
// any application data went through, and whether the connection stayed open.
//
// Addresses: test n listens on 127.0.10.n:(13342+n).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type tls from 'node:tls';
import type { Bundle } from '../../src/tls/policy.js';
import { ALPN, SERVERNAME } from '../../src/tls/contexts.js';
import { certInfo, issueLocally, type Plane } from '../../src/pki/pki.js';
import type { ClusterCerts } from '../support/certs.js';
import { sClient, run, runEnv, probe, buildAlpnShim, type ProbeResult, type TlsTempDir } from '../support/tls-tools.js';
import { waitFor } from '../support/wait.js';
import {
  CLUSTER,
  TLS12_ALLOWED,
  TLS13_ALLOWED,
  InternodeFixture,
  type Files,
  type Harness,
  rpc,
  reply,
  fp,
  serialOf,
  assertAccepted,
  assertRefused,
  assertSClientRefused,
  servedCert,
  offeredSuites,
} from '../support/internode-harness.js';

// The harness (servers, clients, assertions) is test/support/internode-harness.ts,
// shared with test/integration/internode-idle.test.ts (the 31-second idle case).
let fx: InternodeFixture;
let cc: ClusterCerts; // node 1 is the server; nodes 2 and 3 are the clients
let foreign: ClusterCerts; // same cluster id and uids, but another CA
let tmp: TlsTempDir;
let f: InternodeFixture['f'];

before(async () => {
  fx = await InternodeFixture.create();
  ({ cc, foreign, tmp, f } = fx);
});

after(() => fx?.cleanup());

const startServer = (n: number): Promise<Harness> => fx.startServer(n);
const client = (...a: Parameters<InternodeFixture['client']>) => fx.client(...a);
const sArgs = (h: Harness, files: Files | undefined, ...extra: string[]) => fx.sArgs(h, files, ...extra);

// ------------------------------------------------------------------ tests

test('1a. a member with the cp certificate is accepted on cp; the server presents its cp certificate', async () => {
  const h = await startServer(1);
  try {
    // openssl, TLS 1.2: cp cert, ALPN tessera-cp/1, SNI cp.tessera.internal.
    const pending = sClient(sArgs(h, f.m2cp, '-tls1_2', '-alpn', ALPN.cp, '-servername', SERVERNAME.cp), { send: rpc(1), holdMs: 1500 });
    // While s_client holds the connection, the server counts it as a live cp peer.
    await waitFor('the connection on the server', () => h.srv.connections().length === 1, 1200, 20);
    assert.deepEqual(h.srv.connections(), [{ uid: 2, plane: 'cp', serial: serialOf(cc.nodes[1].cp) }]);
    const r = await pending;
    assert.match(r.stdout, /ALPN protocol: tessera-cp\/1/);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    const cipher = /New, (TLSv1\.2), Cipher is (\S+)/.exec(r.stdout);
    assert.ok(cipher, r.stdout);
    assert.ok(TLS12_ALLOWED.includes(cipher[2]), `negotiated ${cipher[2]}`);
    const served = servedCert(r.stdout);
    assert.equal(served.fingerprint256, fp(cc.nodes[0].cp), 'server did not present its cp certificate');
    assert.notEqual(served.fingerprint256, fp(cc.nodes[0].dp));
    assert.match(r.stdout, /\{"id":1,"result":\{"method":"ping","plane":"cp","from":2\},"v":2\}/, 'no RPC reply through s_client');
    assert.equal(r.aliveAfterHold, true, `the server closed the accepted connection:\n${r.stderr}`);

    // Node, TLS 1.3.
    const n = await probe(client(h, cc.nodes[1].cp, 'cp'));
    assertAccepted(n, 'cp', 2, 'node cp');
    assert.equal(n.protocol, 'TLSv1.3');
    assert.equal(n.peerSerial, serialOf(cc.nodes[0].cp));
    assert.equal(n.peerFingerprint256, fp(cc.nodes[0].cp));
    assert.deepEqual(h.calls, [
      { method: 'ping', plane: 'cp', from: 2 },
      { method: 'ping', plane: 'cp', from: 2 },
    ]);
    assert.deepEqual(h.refusals(), []);
  } finally {
    await h.srv.close();
  }
});

test('1b. a member with the dp certificate is accepted on dp; the server presents its dp certificate', async () => {
  const h = await startServer(2);
  try {
    const pending = sClient(sArgs(h, f.m2dp, '-alpn', ALPN.dp, '-servername', SERVERNAME.dp), { send: rpc(1), holdMs: 1500 });
    await waitFor('the connection on the server', () => h.srv.connections().length === 1, 1200, 20);
    assert.deepEqual(h.srv.connections(), [{ uid: 2, plane: 'dp', serial: serialOf(cc.nodes[1].dp) }]);
    const r = await pending;
    assert.match(r.stdout, /ALPN protocol: tessera-dp\/1/);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    const cipher = /New, (TLSv1\.3), Cipher is (\S+)/.exec(r.stdout);
    assert.ok(cipher, r.stdout);
    assert.ok(TLS13_ALLOWED.includes(cipher[2]), `negotiated ${cipher[2]}`);
    const served = servedCert(r.stdout);
    assert.equal(served.fingerprint256, fp(cc.nodes[0].dp), 'server did not present its dp certificate');
    assert.equal(served.serialNumber.toLowerCase().replace(/^0+/, ''), serialOf(cc.nodes[0].dp));
    assert.match(r.stdout, /\{"id":1,"result":\{"method":"ping","plane":"dp","from":2\},"v":2\}/, 'no RPC reply through s_client');
    assert.equal(r.aliveAfterHold, true, `the server closed the accepted connection:\n${r.stderr}`);

    const n = await probe(client(h, cc.nodes[1].dp, 'dp', { maxVersion: 'TLSv1.2' }));
    assertAccepted(n, 'dp', 2, 'node dp over TLS 1.2');
    assert.equal(n.protocol, 'TLSv1.2');
    assert.equal(n.peerSerial, serialOf(cc.nodes[0].dp));
    assert.equal(n.peerFingerprint256, fp(cc.nodes[0].dp));
    assert.deepEqual(h.refusals(), []);
  } finally {
    await h.srv.close();
  }
});

test('2. no client certificate: refused', async () => {
  const h = await startServer(3);
  try {
    // TLS 1.3: the client finishes first, then the server sends certificate_required.
    const r13 = await sClient(sArgs(h, undefined, '-alpn', ALPN.cp, '-servername', SERVERNAME.cp), { send: rpc(1), holdMs: 1500 });
    assertSClientRefused(r13, 's_client TLS 1.3 without cert');
    assert.match(r13.stderr, /alert certificate required.*SSL alert number 116/);
    // TLS 1.2: handshake_failure before the handshake ends.
    const r12 = await sClient(sArgs(h, undefined, '-tls1_2', '-alpn', ALPN.cp, '-servername', SERVERNAME.cp), { holdMs: 1500 });
    assertSClientRefused(r12, 's_client TLS 1.2 without cert');
    assert.match(r12.stderr, /alert handshake failure.*SSL alert number 40/);

    const n = await probe(client(h, undefined, 'cp'));
    assertRefused(n, 'node without cert');
    assert.equal(n.error?.code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    assert.deepEqual(h.accepted, []);
    assert.ok(
      h.handshakeErrors().length >= 3 && h.handshakeErrors().every((e) => /peer did not return a certificate/.test(e)),
      h.handshakeErrors().join('\n'),
    );

    // Control: the same client with its certificate gets through.
    assertAccepted(await probe(client(h, cc.nodes[1].cp, 'cp')), 'cp', 2, 'control with cert');
  } finally {
    await h.srv.close();
  }
});

test('3. a certificate from another cluster CA (same cluster id, same uid): refused', async () => {
  const h = await startServer(4);
  try {
    // The foreign certificate carries a valid-looking identity (tessera://c1/node/2/cp):
    // only the chain can refuse it.
    assert.equal(certInfo(foreign.nodes[1].cp.certPem).uri, certInfo(cc.nodes[1].cp.certPem).uri);
    const r = await sClient(sArgs(h, f.f2cp, '-alpn', ALPN.cp, '-servername', SERVERNAME.cp), { send: rpc(1), holdMs: 1500 });
    assertSClientRefused(r, 's_client foreign cp');
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/, 'the client side did not trust the server: the test would prove nothing');
    assert.match(r.stderr, /unexpected eof|alert/);

    for (const [plane, b] of [
      ['cp', foreign.nodes[1].cp],
      ['dp', foreign.nodes[1].dp],
    ] as const) {
      const n13 = await probe(client(h, b, plane));
      assertRefused(n13, `node foreign ${plane} TLS 1.3`);
      const n12 = await probe(client(h, b, plane, { maxVersion: 'TLSv1.2' }));
      assertRefused(n12, `node foreign ${plane} TLS 1.2`);
      assert.equal(n12.secureConnected, false, 'TLS 1.2 handshake completed with a foreign certificate');
    }
    assert.deepEqual(h.accepted, []);
    assert.deepEqual(h.calls, []);
    assert.deepEqual(h.srv.connections(), []);

    assertAccepted(await probe(client(h, cc.nodes[1].cp, 'cp')), 'cp', 2, 'control with our cluster cert');
  } finally {
    await h.srv.close();
  }
});

test('4. wrong plane: dp certificate asking for cp, and the reverse, are closed at once', async () => {
  const h = await startServer(5);
  try {
    const cases: Array<[string, Bundle, Plane, Plane, string]> = [
      // [what, client cert, SNI plane, ALPN plane, expected server reason]
      ['dp cert on cp', cc.nodes[1].dp, 'cp', 'cp', 'certificate is for plane dp, connection is cp'],
      ['cp cert on dp', cc.nodes[1].cp, 'dp', 'dp', 'certificate is for plane cp, connection is dp'],
      ['dp cert, SNI dp, ALPN cp', cc.nodes[1].dp, 'dp', 'cp', 'SNI and ALPN name different planes'],
      ['cp cert, SNI cp, ALPN dp', cc.nodes[1].cp, 'cp', 'dp', 'SNI and ALPN name different planes'],
    ];
    for (const [what, b, sni, alpn, reason] of cases) {
      const before = h.refusals().length;
      const n = await probe(client(h, b, undefined, { servername: SERVERNAME[sni], ALPNProtocols: [ALPN[alpn]] }));
      // The TLS layer accepted (TLS 1.3: the client finishes first) and named the plane...
      assert.equal(n.secureConnected, true, `${what}: ${n.error?.message}`);
      assert.equal(n.alpn, ALPN[alpn], what);
      // ...then the server closed it without reading anything.
      assertRefused(n, what);
      assert.deepEqual(h.refusals().slice(before), [reason], what);
    }
    const r = await sClient(sArgs(h, f.m2dp, '-alpn', ALPN.cp, '-servername', SERVERNAME.cp), { send: rpc(1), holdMs: 1500 });
    assertSClientRefused(r, 's_client dp cert on cp');
    assert.match(r.stdout, /ALPN protocol: tessera-cp\/1/);
    assert.match(r.stderr, /unexpected eof/);
    const r2 = await sClient(sArgs(h, f.m2cp, '-alpn', ALPN.dp, '-servername', SERVERNAME.dp), { send: rpc(1), holdMs: 1500 });
    assertSClientRefused(r2, 's_client cp cert on dp');
    assert.match(r2.stdout, /ALPN protocol: tessera-dp\/1/);
    assert.deepEqual(h.accepted, []);
    assert.deepEqual(h.calls, []);
  } finally {
    await h.srv.close();
  }
});

test('5. a client naming no plane (no ALPN, or an unknown one) is closed at once', async () => {
  const h = await startServer(6);
  try {
    const n = await probe(client(h, cc.nodes[1].cp, undefined, { servername: SERVERNAME.cp }));
    assert.equal(n.secureConnected, true, n.error?.message);
    assert.equal(n.alpn, false);
    assertRefused(n, 'no ALPN');
    assert.deepEqual(h.refusals(), ['no plane named by ALPN']);

    const r = await sClient(sArgs(h, f.m2cp, '-servername', SERVERNAME.cp), { send: rpc(1), holdMs: 1500 });
    assertSClientRefused(r, 's_client without ALPN');
    assert.match(r.stdout, /No ALPN negotiated/);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);

    // Only a protocol the server does not speak: the handshake itself fails.
    const u = await probe(client(h, cc.nodes[1].cp, undefined, { servername: SERVERNAME.cp, ALPNProtocols: ['http/1.1'] }));
    assertRefused(u, 'unknown ALPN');
    assert.equal(u.secureConnected, false);
    assert.deepEqual(h.accepted, []);
    assert.deepEqual(h.calls, []);
  } finally {
    await h.srv.close();
  }
});

test('6. a client offering only TLS 1.1 (or 1.0) is refused by the server with protocol_version', async () => {
  const h = await startServer(7);
  try {
    for (const v of ['-tls1_1', '-tls1']) {
      const r = await sClient(sArgs(h, f.m2cp, v, '-cipher', 'DEFAULT:@SECLEVEL=0', '-alpn', ALPN.cp, '-msg'), { holdMs: 1500 });
      // The client did send its ClientHello...
      assert.match(
        r.stdout,
        />>> TLS 1\.[01], Handshake \[length [0-9a-f]+\], ClientHello/,
        `${v}: no ClientHello sent\n${r.stdout}\n${r.stderr}`,
      );
      // ...and what came back is the server's fatal protocol_version alert, and nothing else.
      assert.match(r.stdout, /<<< TLS 1\.\d, Alert \[length 0002\], fatal protocol_version/, `${v}:\n${r.stdout}`);
      assert.match(r.stderr, /SSL alert number 70/);
      assert.match(r.stdout, /SSL handshake has read 7 bytes/);
      assert.doesNotMatch(r.stdout, /<<< .*ServerHello/);
      assert.equal(r.aliveAfterHold, false);
    }
    const n = await probe(
      client(h, cc.nodes[1].cp, 'cp', { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }),
    );
    assert.equal(n.secureConnected, false);
    assert.equal(n.error?.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', n.error?.message);
    assertRefused(n, 'node TLS 1.1');
    assert.ok(
      h.handshakeErrors().length === 3 && h.handshakeErrors().every((e) => /unsupported protocol/.test(e)),
      h.handshakeErrors().join('\n'),
    );
    assert.deepEqual(h.accepted, []);
  } finally {
    await h.srv.close();
  }
});

test('7. a client offering only forbidden suites (ChaCha20, CBC, RSA key exchange) is refused with handshake_failure', async () => {
  const h = await startServer(8);
  try {
    const forbidden: Array<{ what: string; args: string[]; iana: string; node: tls.ConnectionOptions }> = [
      {
        what: 'TLS 1.2 ChaCha20',
        args: ['-tls1_2', '-cipher', 'ECDHE-RSA-CHACHA20-POLY1305'],
        iana: 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
        node: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-CHACHA20-POLY1305' },
      },
      {
        what: 'TLS 1.3 ChaCha20',
        args: ['-tls1_3', '-ciphersuites', 'TLS_CHACHA20_POLY1305_SHA256'],
        iana: 'TLS_CHACHA20_POLY1305_SHA256',
        node: { minVersion: 'TLSv1.3', ciphers: 'TLS_CHACHA20_POLY1305_SHA256' },
      },
      {
        what: 'CBC SHA1',
        args: ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA'],
        iana: 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA',
        node: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA' },
      },
      {
        what: 'CBC SHA384',
        args: ['-tls1_2', '-cipher', 'ECDHE-RSA-AES256-SHA384'],
        iana: 'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384',
        node: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-SHA384' },
      },
      {
        what: 'RSA key exchange',
        args: ['-tls1_2', '-cipher', 'AES256-GCM-SHA384'],
        iana: 'TLS_RSA_WITH_AES_256_GCM_SHA384',
        node: { maxVersion: 'TLSv1.2', ciphers: 'AES256-GCM-SHA384' },
      },
    ];
    for (const c of forbidden) {
      const r = await sClient(sArgs(h, f.m2cp, ...c.args, '-alpn', ALPN.cp, '-servername', SERVERNAME.cp, '-trace'), { holdMs: 1500 });
      // The ClientHello offered exactly this suite...
      assert.deepEqual(offeredSuites(r.stdout), [c.iana], `${c.what}: offered`);
      // ...and the server answered with a fatal handshake_failure alert, no ServerHello.
      const received = r.stdout.slice(r.stdout.indexOf('Received Record'));
      assert.match(received, /Level=fatal\(2\), description=handshake failure\(40\)/, `${c.what}:\n${r.stdout.slice(-3000)}`);
      assert.doesNotMatch(received, /ServerHello/, `${c.what}: the server chose a suite`);
      assert.match(r.stderr, /SSL alert number 40/);
      assert.equal(r.aliveAfterHold, false);

      const n = await probe(client(h, cc.nodes[1].cp, 'cp', c.node));
      assert.equal(n.secureConnected, false, `${c.what}: node negotiated ${n.cipher}`);
      // OpenSSL 3.5's name for alert 40 (3.0 called it SSLV3_ALERT_HANDSHAKE_FAILURE).
      assert.equal(n.error?.code, 'ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE', `${c.what}: ${n.error?.message}`);
      assert.match(n.error?.message ?? '', /SSL alert number 40/);
      assertRefused(n, `node ${c.what}`);
    }
    assert.ok(
      h.handshakeErrors().length === 2 * forbidden.length && h.handshakeErrors().every((e) => /no shared cipher/.test(e)),
      h.handshakeErrors().join('\n'),
    );
    assert.deepEqual(h.accepted, []);

    // Control: the same invocation with each allowed suite is accepted.
    for (const args of [
      ['-tls1_2', '-cipher', 'ECDHE-RSA-AES256-GCM-SHA384'],
      ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'],
      ['-tls1_3', '-ciphersuites', 'TLS_AES_128_GCM_SHA256'],
      ['-tls1_3', '-ciphersuites', 'TLS_AES_256_GCM_SHA384'],
    ]) {
      const r = await sClient(sArgs(h, f.m2cp, ...args, '-alpn', ALPN.cp, '-servername', SERVERNAME.cp), {
        send: rpc(1),
        holdMs: 5000,
        holdUntil: /"result":/,
      });
      const suite = args[2];
      assert.match(r.stdout, new RegExp(`Cipher is ${suite}`), `control ${suite}:\n${r.stderr}`);
      assert.match(r.stdout, /"result":\{"method":"ping","plane":"cp","from":2\}/, `control ${suite}: no RPC reply`);
      assert.equal(r.aliveAfterHold, true, `control ${suite}`);
    }
  } finally {
    await h.srv.close();
  }
});

test('8. sslscan sees exactly the four allowed suites and no SSLv3 / TLS 1.0 / TLS 1.1', async (t) => {
  const h = await startServer(9);
  const target = `${h.host}:${h.port}`;
  const allowed = new Set([...TLS12_ALLOWED.map((s) => `TLSv1.2 ${s}`), ...TLS13_ALLOWED.map((s) => `TLSv1.3 ${s}`)]);
  const parse = (out: string) => ({
    protocols: Object.fromEntries([...out.matchAll(/^(SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled)\s*$/gm)].map((m) => [m[1], m[2]])),
    suites: [...out.matchAll(/^(Preferred|Accepted)\s+(\S+)\s+\d+ bits\s+(\S+)/gm)].map((m) => `${m[2]} ${m[3]}`),
    preferred: [...out.matchAll(/^Preferred\s+(\S+)\s+\d+ bits\s+(\S+)/gm)].map((m) => `${m[1]} ${m[2]}`),
  });
  const checkProtocols = (p: Record<string, string>, out: string) =>
    assert.deepEqual(
      p,
      { SSLv2: 'disabled', SSLv3: 'disabled', 'TLSv1.0': 'disabled', 'TLSv1.1': 'disabled', 'TLSv1.2': 'enabled', 'TLSv1.3': 'enabled' },
      out,
    );
  try {
    // sslscan needs a client certificate (--certs/--pk) to get through the
    // mTLS handshake at all; it sends SNI "<ip>" (which the server maps to its
    // default cp certificate) and no ALPN. Without ALPN the server closes each
    // connection right after the handshake, before its TLS 1.2 CCS+Finished
    // leave: sslscan's TLS 1.3 enumeration (raw ClientHellos, it reads the
    // ServerHello) still works, but its TLS 1.2 enumeration (which needs
    // SSL_connect() to succeed) sees nothing. So the plain run can only show
    // the protocols and a subset; the second run preloads a shim that makes
    // sslscan's libssl offer ALPN tessera-cp/1 (see buildAlpnShim), and that
    // one must list exactly the four suites.
    const plain = await run('sslscan', ['--no-colour', `--certs=${f.m2cp.cert}`, `--pk=${f.m2cp.key}`, target], 60_000);
    assert.equal(plain.code, 0, plain.stderr);
    const p = parse(plain.stdout);
    checkProtocols(p.protocols, plain.stdout);
    assert.ok(p.suites.length > 0, plain.stdout);
    for (const s of p.suites) assert.ok(allowed.has(s), `sslscan (no ALPN) found a forbidden suite: ${s}`);
    assert.deepEqual(p.suites.filter((s) => s.startsWith('TLSv1.3')).sort(), [
      'TLSv1.3 TLS_AES_128_GCM_SHA256',
      'TLSv1.3 TLS_AES_256_GCM_SHA384',
    ]);
    assert.match(plain.stdout, /Subject:\s+node1-cp/);
    assert.match(plain.stdout, /URI:tessera:\/\/c1\/node\/1\/cp/);
    t.diagnostic(`sslscan without ALPN: ${p.suites.join(', ')}`);

    const shim = await buildAlpnShim(tmp.dir);
    assert.equal(typeof shim, 'string', `cannot build the ALPN shim for sslscan: ${JSON.stringify(shim)}`);
    const acceptedBefore = h.accepted.length;
    const full = await runEnv(
      'sslscan',
      ['--no-colour', `--certs=${f.m2cp.cert}`, `--pk=${f.m2cp.key}`, target],
      { LD_PRELOAD: shim as string, TESSERA_SHIM_ALPN: ALPN.cp },
      60_000,
    );
    assert.equal(full.code, 0, full.stderr);
    const q = parse(full.stdout);
    checkProtocols(q.protocols, full.stdout);
    assert.deepEqual([...q.suites].sort(), [...allowed].sort(), full.stdout);
    // The server's preference order wins.
    assert.deepEqual(q.preferred.sort(), ['TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384', 'TLSv1.3 TLS_AES_128_GCM_SHA256']);
    assert.doesNotMatch(full.stdout, /^Accepted\s+(SSLv|TLSv1\.[01])/m);
    // The shim's handshakes were real, authenticated cp connections of node 2.
    const viaShim = h.accepted.slice(acceptedBefore);
    assert.ok(viaShim.length >= 2 && viaShim.every((pi) => pi.uid === 2 && pi.plane === 'cp'), JSON.stringify(viaShim));
  } finally {
    await h.srv.close();
  }
});

test('9. deny list and membership: new connections refused, live ones closed by recheck()', async () => {
  const h = await startServer(10);
  const open: ProbeResult[] = [];
  try {
    const keep = async (b: Bundle, plane: Plane) => {
      const r = await probe(client(h, b, plane, { keepOpen: true, untilReply: true, watchMs: 3000 }));
      open.push(r);
      assertAccepted(r, plane, certInfo(b.certPem).uid!, `live ${plane} of node ${certInfo(b.certPem).uid}`);
      return r;
    };
    const a = await keep(cc.nodes[1].cp, 'cp'); // node 2 cp: its serial gets denied
    const b = await keep(cc.nodes[1].dp, 'dp'); // node 2 dp: another serial, stays
    const c = await keep(cc.nodes[2].cp, 'cp'); // node 3 cp: node 3 gets removed
    assert.equal(h.srv.connections().length, 3);

    // --- deny list
    h.denied.add(serialOf(cc.nodes[1].cp));
    assert.equal(h.srv.recheck(), 1);
    await waitFor('the denied live connection to be closed', () => a.closed, 1000, 20);
    assert.equal(b.closed || c.closed, false, 'recheck closed a connection that is still allowed');
    const na = await probe(client(h, cc.nodes[1].cp, 'cp'));
    assertRefused(na, 'new connection with a denied serial');
    assert.equal(h.refusals().at(-1), `certificate ${serialOf(cc.nodes[1].cp)} is revoked`);
    // The deny list is per certificate: node 2's dp certificate still works.
    assertAccepted(await probe(client(h, cc.nodes[1].dp, 'dp')), 'dp', 2, 'node 2 dp after its cp serial was denied');

    // --- membership
    h.members.delete(3);
    assert.equal(h.srv.recheck(), 1);
    await waitFor('the removed node’s live connection to be closed', () => c.closed, 1000, 20);
    const nc = await probe(client(h, cc.nodes[2].cp, 'cp'));
    assertRefused(nc, 'new connection of a removed node');
    assert.equal(h.refusals().at(-1), 'node 3 is not a member');
    const sc = await sClient(sArgs(h, f.m3cp, '-alpn', ALPN.cp, '-servername', SERVERNAME.cp), { send: rpc(1), holdMs: 1500 });
    assertSClientRefused(sc, 's_client of a removed node');
    assert.equal(h.refusals().at(-1), 'node 3 is not a member');

    // The connection that is still allowed kept working through both rechecks.
    assert.equal(b.closed, false);
    b.socket!.write(rpc(2));
    await waitFor('a reply on the surviving connection', () => b.replies.length === 2, 2000, 20);
    assert.deepEqual(JSON.parse(b.replies[1]), reply(2, 'dp', 2));
    assert.deepEqual(
      h.srv.connections().map((p) => [p.uid, p.plane]),
      [[2, 'dp']],
    );
  } finally {
    for (const r of open) r.socket?.destroy();
    await h.srv.close();
  }
});

// 10. (an authenticated idle connection stays open for at least 31 seconds) is
// test/integration/internode-idle.test.ts: it has to wait those 31 seconds.

test('11. certificate hot swap: live connections survive, new ones see the new certificate, a bad bundle is refused', async () => {
  const h = await startServer(12);
  let live: ProbeResult | undefined;
  try {
    live = await probe(client(h, cc.nodes[1].cp, 'cp', { keepOpen: true, untilReply: true, watchMs: 3000 }));
    assertAccepted(live, 'cp', 2, 'before the swap');
    assert.equal(live.peerSerial, serialOf(cc.nodes[0].cp));

    const issued = await issueLocally(cc.ca, { clusterId: CLUSTER, uid: 1, plane: 'cp', addr: h.host, validitySeconds: 3600 });
    const fresh: Bundle = { certPem: issued.certPem, keyPem: issued.keyPem, caPem: cc.ca.certPem };
    assert.notEqual(serialOf(fresh), serialOf(cc.nodes[0].cp));
    h.certs.set('cp', fresh);

    // The connection opened before the swap still works.
    live.socket!.write(rpc(2));
    await waitFor('a reply on the pre-swap connection', () => live!.replies.length === 2, 2000, 20);
    assert.deepEqual(JSON.parse(live.replies[1]), reply(2, 'cp', 2));
    assert.equal(live.closed, false);

    // New connections see the new certificate: with SNI (SNICallback) and without (default context).
    const withSni = await probe(client(h, cc.nodes[1].cp, 'cp'));
    assertAccepted(withSni, 'cp', 2, 'after the swap, SNI cp');
    assert.equal(withSni.peerSerial, serialOf(fresh));
    const noSni = await sClient(sArgs(h, f.m2cp, '-alpn', ALPN.cp, '-noservername'), { send: rpc(1), holdMs: 800 });
    assert.equal(servedCert(noSni.stdout).fingerprint256, fp(fresh), 'without SNI the server still presents the old certificate');
    assert.match(noSni.stdout, /"result":\{"method":"ping","plane":"cp","from":2\}/);
    // The other plane is untouched.
    const dp = await probe(client(h, cc.nodes[1].dp, 'dp'));
    assertAccepted(dp, 'dp', 2, 'dp after the cp swap');
    assert.equal(dp.peerSerial, serialOf(cc.nodes[0].dp));

    // A bad bundle: a certificate with somebody else's key.
    const other = await issueLocally(cc.ca, { clusterId: CLUSTER, uid: 1, plane: 'cp', addr: h.host, validitySeconds: 3600 });
    assert.throws(
      () => h.certs.set('cp', { certPem: other.certPem, keyPem: fresh.keyPem, caPem: cc.ca.certPem }),
      /private key does not match/,
    );
    // And one from another CA.
    assert.throws(() => h.certs.set('cp', { ...foreign.nodes[0].cp, caPem: cc.ca.certPem }), /not signed by the cluster CA/);
    assert.equal(h.certs.bundle('cp').certPem, fresh.certPem);
    const afterBad = await probe(client(h, cc.nodes[1].cp, 'cp'));
    assertAccepted(afterBad, 'cp', 2, 'after the refused swap, SNI cp');
    assert.equal(afterBad.peerSerial, serialOf(fresh), 'a refused bundle changed the served certificate');
    const afterBadNoSni = await sClient(sArgs(h, f.m2cp, '-alpn', ALPN.cp, '-noservername'), { holdMs: 500 });
    assert.equal(servedCert(afterBadNoSni.stdout).fingerprint256, fp(fresh));

    // The pre-swap connection is still alive at the end.
    live.socket!.write(rpc(3));
    await waitFor('a reply on the pre-swap connection at the end', () => live!.replies.length === 3, 2000, 20);
    assert.equal(live.closed, false);
  } finally {
    live?.socket?.destroy();
    await h.srv.close();
  }
});

test('11b. certificate hot swap refuses a bundle that chains to another CA (it would replace the trust anchor)', async () => {
  const h = await startServer(13);
  try {
    // A complete, self-consistent bundle of another CA for the same identity
    // (tessera://c1/node/1/cp): key matches, chain ends at *its* caPem, valid.
    // DESIGN.md: peers are verified against "this cluster's CA", and a swap is
    // validated (chain included) and "a bad bundle is refused and the old one
    // kept". The bundle's chain does not end at this cluster's CA.
    let threw: Error | undefined;
    try {
      h.certs.set('cp', foreign.nodes[0].cp);
    } catch (err) {
      threw = err as Error;
    }
    // Whatever set() did, look at what the cp plane now lets in.
    const trustBoth = [cc.ca.certPem, foreign.ca.certPem];
    const stranger = await probe(client(h, foreign.nodes[1].cp, 'cp', { ca: trustBoth }));
    const strangerNoSni = await probe(client(h, foreign.nodes[1].cp, 'cp', { ca: trustBoth, servername: undefined }));
    const member = await probe(client(h, cc.nodes[1].cp, 'cp', { ca: trustBoth }));
    const served = member.peerFingerprint256 ?? stranger.peerFingerprint256;
    assert.ok(
      threw,
      'CertStore.set accepted a cp bundle chained to another CA. Afterwards: ' +
        `the server presents ${served === fp(foreign.nodes[0].cp) ? 'the other CA’s certificate' : 'its own certificate'}; ` +
        `a peer of the other CA is ${stranger.replies.length ? 'ACCEPTED' : 'refused'} on cp (${strangerNoSni.replies.length ? 'ACCEPTED' : 'refused'} without SNI); ` +
        `our own member is ${member.replies.length ? 'accepted' : 'REFUSED'} on cp; caPem() is now ${h.certs.caPem() === foreign.ca.certPem ? 'the OTHER CA' : 'ours'}.`,
    );
    assert.equal(h.certs.bundle('cp').certPem, cc.nodes[0].cp.certPem, 'the old bundle was not kept');
    assertRefused(stranger, 'peer of the other CA after the refused swap');
    assertRefused(strangerNoSni, 'peer of the other CA after the refused swap, no SNI');
    assertAccepted(member, 'cp', 2, 'our member after the refused swap');
  } finally {
    await h.srv.close();
  }
});
