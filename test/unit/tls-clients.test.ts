// Every Tessera TLS client keeps to the policy whatever the process-wide TLS
// defaults say. The test first makes those defaults as weak as Node allows
// (TLS 1.0, every cipher at security level 0, any group), then points each
// client (the etcd gRPC client, the REST HTTPS client, the internode dialer,
// and the CLI as a real process) at servers that accept only what the policy
// forbids: TLS 1.0/1.1, TLS 1.2 with CBC/ChaCha20/RSA-key-exchange suites,
// TLS 1.3 with ChaCha20 only. No handshake may complete there. A policy-
// compliant server proves the same clients do connect, with TLS 1.3 and the
// hybrid group.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type net from 'node:net';
import { makeClusterCerts, type ClusterCerts } from '../support/certs.js';
import { cli } from '../support/cluster.js';
import { CertStore } from '../../src/pki/certstore.js';
import { TLS12_CIPHERS, TLS13_CIPHERSUITES } from '../../src/tls/policy.js';
import { dial } from '../../src/internode/channel.js';
import { etcdClient, type EtcdPaths } from '../../src/coord/etcd.js';
import { requestJson } from '../../src/util/https-json.js';

const HOST = '127.0.10.1';
const ALLOWED = new Set<string>([...TLS12_CIPHERS, ...TLS13_CIPHERSUITES]);

interface Seen {
  accepted: { protocol: string | null; cipher: string }[];
  refused: string[];
}
interface WeakServer {
  what: string;
  server: tls.Server;
  port: number;
  seen: Seen;
}

const weakConfigs: { what: string; opts: tls.TlsOptions }[] = [
  { what: 'TLS 1.0/1.1 only', opts: { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' } },
  {
    what: 'TLS 1.2 with forbidden suites only',
    opts: {
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
      ciphers: 'AES128-SHA:AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA:ECDHE-RSA-CHACHA20-POLY1305:@SECLEVEL=0',
    },
  },
  { what: 'TLS 1.3 with ChaCha20 only', opts: { minVersion: 'TLSv1.3', ciphers: 'TLS_CHACHA20_POLY1305_SHA256' } },
];

let certs: ClusterCerts;
let dir: string;
let etcdPaths: EtcdPaths;
const servers: WeakServer[] = [];
let good: WeakServer;
const saved = { min: tls.DEFAULT_MIN_VERSION, max: tls.DEFAULT_MAX_VERSION, curve: tls.DEFAULT_ECDH_CURVE, ciphers: tls.DEFAULT_CIPHERS };

function serve(what: string, opts: tls.TlsOptions): Promise<WeakServer> {
  const seen: Seen = { accepted: [], refused: [] };
  const b = certs.nodes[0].cp;
  const server = tls.createServer(
    {
      cert: b.certPem,
      key: b.keyPem,
      ca: b.caPem,
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: ['h2', 'http/1.1', 'tessera-cp/1'],
      ...opts,
    },
    (s) => {
      seen.accepted.push({ protocol: s.getProtocol(), cipher: s.getCipher().name });
      s.on('error', () => s.destroy());
      // Enough of an HTTP answer for the REST client; the others just see a close.
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}'));
    },
  );
  server.on('tlsClientError', (err) => seen.refused.push((err as NodeJS.ErrnoException).code ?? err.message));
  return new Promise((resolve) =>
    server.listen(0, HOST, () => resolve({ what, server, port: (server.address() as net.AddressInfo).port, seen })),
  );
}

before(async () => {
  certs = await makeClusterCerts('weak-test', [1, 2], HOST);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-tls-clients-'));
  const client = certs.nodes[1].cp;
  const w = (n: string, d: string) => {
    const f = path.join(dir, n);
    fs.writeFileSync(f, d, { mode: 0o600 });
    return f;
  };
  etcdPaths = {
    dataDir: dir,
    logFile: path.join(dir, 'etcd.log'),
    caFile: w('ca.pem', client.caPem),
    certFile: '',
    keyFile: '',
    clientCaFile: '',
    clientCertFile: w('client.pem', client.certPem),
    clientKeyFile: w('client.key', client.keyPem),
  };
  for (const c of weakConfigs) servers.push(await serve(c.what, c.opts));
  good = await serve('policy-compliant', { minVersion: 'TLSv1.2' });
  // The weakest process-wide defaults Node allows: no client may lean on them.
  tls.DEFAULT_MIN_VERSION = 'TLSv1';
  tls.DEFAULT_MAX_VERSION = 'TLSv1.3';
  tls.DEFAULT_ECDH_CURVE = 'auto';
  (tls as unknown as { DEFAULT_CIPHERS: string }).DEFAULT_CIPHERS = 'ALL:@SECLEVEL=0';
});
after(async () => {
  tls.DEFAULT_MIN_VERSION = saved.min;
  tls.DEFAULT_MAX_VERSION = saved.max;
  tls.DEFAULT_ECDH_CURVE = saved.curve;
  (tls as unknown as { DEFAULT_CIPHERS: string }).DEFAULT_CIPHERS = saved.ciphers;
  for (const s of [...servers, good]) await new Promise((r) => s.server.close(r));
  fs.rmSync(dir, { recursive: true, force: true });
});

type Client = (port: number) => Promise<unknown>;
const clients: Record<string, Client> = {
  'internode dialer': async (port) => {
    const store = new CertStore({ cp: certs.nodes[1].cp, dp: certs.nodes[1].dp });
    const policy = { clusterId: () => 'weak-test', isMember: () => true, isDenied: () => false };
    const { socket } = await dial({ host: HOST, port, plane: 'cp', certs: store, policy, timeoutMs: 3000 });
    // Let the server see the finished handshake: it answers a line and closes.
    await new Promise((r) => {
      socket.once('close', r);
      socket.resume();
      socket.end('\n');
    });
  },
  'REST HTTPS client': (port) => requestJson({ host: HOST, port, path: '/v1/bootstrap', timeoutMs: 3000 }),
  'etcd client': async (port) => {
    const c = etcdClient(HOST, port, etcdPaths);
    let timer: NodeJS.Timeout | undefined;
    try {
      // A TLS server that is not etcd never answers gRPC: 2 s is enough to see the handshake.
      await Promise.race([
        c.get('/tessera/ping').exec(),
        new Promise((_, rej) => (timer = setTimeout(() => rej(new Error('no gRPC answer')), 2000))),
      ]);
    } finally {
      clearTimeout(timer);
      c.close();
    }
  },
};

/** Run a client against a server; settle either way, and give the server a moment to record. */
async function attempt(c: Client, s: WeakServer): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    c(s.port).then(
      () => undefined,
      (e: Error) => e,
    ),
    new Promise<Error>((res) => (timer = setTimeout(() => res(new Error('client gave no answer within 8 s')), 8000))),
  ]);
  clearTimeout(timer);
  await new Promise((res) => setTimeout(res, 100));
  return r;
}

for (const [name, c] of Object.entries(clients)) {
  test(`${name}: no handshake with a server that offers only what the policy forbids, even under weak process defaults`, async () => {
    for (const s of servers) {
      const before = { acc: s.seen.accepted.length, ref: s.seen.refused.length };
      const err = await attempt(c, s);
      assert.ok(err instanceof Error, `${name} against ${s.what}: the call succeeded`);
      assert.deepEqual(
        s.seen.accepted.slice(before.acc),
        [],
        `${name} negotiated with ${s.what}: ${JSON.stringify(s.seen.accepted.slice(before.acc))}`,
      );
      assert.ok(s.seen.refused.length > before.ref, `${name} never reached ${s.what} (${(err as Error).message})`);
    }
  });
}

test('the same clients connect to a policy-compliant server with TLS 1.3, an allowed suite', async () => {
  for (const [name, c] of Object.entries(clients)) {
    const n = good.seen.accepted.length;
    const err = await attempt(c, good);
    const got = good.seen.accepted.slice(n);
    assert.ok(
      got.length > 0,
      `${name} did not complete a handshake with a compliant server: ${good.seen.refused.join(', ')} ${String(err)}`,
    );
    for (const g of got) {
      assert.equal(g.protocol, 'TLSv1.3', name);
      assert.ok(ALLOWED.has(g.cipher), `${name}: ${g.cipher}`);
    }
  }
});

test('the CLI process, with its own process setup, refuses a TLS 1.0/1.1 server and names the TLS problem', async () => {
  const s = servers[0];
  const before = s.seen.accepted.length;
  const r = await cli(['--node', HOST, '--port', String(s.port), 'info', 'cluster'], { TESSERA_USERNAME: 'a@b.c', TESSERA_PASSWORD: 'x' });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /TLS|SSL|protocol/i);
  assert.deepEqual(s.seen.accepted.slice(before), []);
});
