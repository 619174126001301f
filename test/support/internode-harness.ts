// The harness of the internode channel tests from the outside
// (test/unit/internode-security.test.ts, test/integration/internode-idle.test.ts):
// a real InternodeServer on a loopback address with an RPC echo on both
// planes, the certificates of a cluster and of a foreign CA (as objects and
// as PEM files for openssl), Node and s_client clients, and the assertions on
// what was seen on the wire.
//
// Addresses: server n listens on 127.0.10.n:(13342+n).
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import pino from 'pino';
import { makeClusterCerts, type ClusterCerts } from './certs.js';
import { CertStore } from '../../src/pki/certstore.js';
import type { Bundle } from '../../src/tls/policy.js';
import { InternodeServer, type PeerIdentity, type PeerPolicy } from '../../src/internode/channel.js';
import { ALPN, SERVERNAME } from '../../src/tls/contexts.js';
import { RPC_VERSION, serveRpc, type RpcHandler } from '../../src/internode/rpc.js';
import { certInfo, type Plane } from '../../src/pki/pki.js';
import { TlsTempDir, type ProbeOptions, type ProbeResult, type CmdResult } from './tls-tools.js';

export const CLUSTER = 'c1';
// The suites DESIGN.md allows, spelled out here rather than imported from
// policy.ts, so that a change to the policy module cannot move the goalposts.
export const TLS12_ALLOWED = ['ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES128-GCM-SHA256'];
export const TLS13_ALLOWED = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'];
export const ALLOWED = new Set([...TLS12_ALLOWED, ...TLS13_ALLOWED]);

export type Files = { cert: string; key: string; ca: string };

export interface Harness {
  srv: InternodeServer;
  certs: CertStore;
  host: string;
  port: number;
  members: Set<number>;
  denied: Set<string>;
  /** Every connection the server handed to a plane handler. */
  accepted: PeerIdentity[];
  /** Every RPC the handlers served. */
  calls: Array<{ method: string; plane: Plane; from: number }>;
  logs: Array<{ msg?: string; reason?: string; err?: string }>;
  /** The reasons the server logged for refusing authenticated connections. */
  refusals(): string[];
  /** The errors the server logged for failed handshakes. */
  handshakeErrors(): string[];
}

export const rpc = (id: number, method = 'ping') => JSON.stringify({ id, method, params: {} }) + '\n';
export const reply = (id: number, plane: Plane, from: number, method = 'ping') => ({ id, v: RPC_VERSION, result: { method, plane, from } });
export const fp = (b: Bundle) => certInfo(b.certPem).fingerprint256;
export const serialOf = (b: Bundle) => certInfo(b.certPem).serial;

/** The certificates (node 1 is the server; nodes 2 and 3 are the clients) and how to start servers and clients with them. */
export class InternodeFixture {
  private constructor(
    readonly cc: ClusterCerts,
    /** Same cluster id and uids, but another CA. */
    readonly foreign: ClusterCerts,
    readonly tmp: TlsTempDir,
    readonly f: { m2cp: Files; m2dp: Files; m3cp: Files; f2cp: Files; f2dp: Files },
  ) {}

  static async create(): Promise<InternodeFixture> {
    const cc = await makeClusterCerts(CLUSTER, [1, 2, 3], '127.0.10.1');
    const foreign = await makeClusterCerts(CLUSTER, [1, 2], '127.0.10.1');
    const tmp = new TlsTempDir('tessera-internode-sec-');
    return new InternodeFixture(cc, foreign, tmp, {
      m2cp: tmp.writeBundle('m2cp', cc.nodes[1].cp),
      m2dp: tmp.writeBundle('m2dp', cc.nodes[1].dp),
      m3cp: tmp.writeBundle('m3cp', cc.nodes[2].cp),
      f2cp: tmp.writeBundle('f2cp', foreign.nodes[1].cp),
      f2dp: tmp.writeBundle('f2dp', foreign.nodes[1].dp),
    });
  }

  cleanup(): void {
    this.tmp.cleanup();
  }

  /** Server n on 127.0.10.n:(13342+n), or on `o.host`; its RPC handler echoes, or is `o.rpc`. */
  async startServer(n: number, o: { host?: string; rpc?: RpcHandler } = {}): Promise<Harness> {
    const { cc } = this;
    const host = o.host ?? `127.0.10.${n}`;
    const port = 13342 + n;
    const members = new Set([1, 2, 3]);
    const denied = new Set<string>();
    const policy: PeerPolicy = { clusterId: () => CLUSTER, isMember: (u) => members.has(u), isDenied: (s) => denied.has(s) };
    const logs: Harness['logs'] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s)) });
    const certs = new CertStore({ cp: cc.nodes[0].cp, dp: cc.nodes[0].dp });
    const accepted: PeerIdentity[] = [];
    const calls: Harness['calls'] = [];
    const handler = (plane: Plane) => (s: tls.TLSSocket, peer: PeerIdentity) => {
      accepted.push(peer);
      serveRpc(s, peer, async (method, params, p) => {
        calls.push({ method, plane, from: p.uid });
        return o.rpc ? o.rpc(method, params, p) : { method, plane, from: p.uid };
      });
    };
    const srv = new InternodeServer({ host, port, certs, policy, log, handlers: { cp: handler('cp'), dp: handler('dp') } });
    await srv.listen();
    return {
      srv,
      certs,
      host,
      port,
      members,
      denied,
      accepted,
      calls,
      logs,
      refusals: () => logs.filter((l) => l.msg === 'internode connection refused').map((l) => String(l.reason)),
      handshakeErrors: () => logs.filter((l) => l.msg === 'internode handshake refused').map((l) => String(l.err)),
    };
  }

  /** Node client options: a bundle's cert/key, our cluster's CA, the plane's SNI and ALPN. */
  client(h: Harness, b: Bundle | undefined, plane: Plane | undefined, extra: ProbeOptions = {}): ProbeOptions {
    return {
      host: h.host,
      port: h.port,
      ca: this.cc.ca.certPem, // the client trusts our cluster: any refusal is the server's
      ...(b ? { cert: b.certPem, key: b.keyPem } : {}),
      ...(plane ? { servername: SERVERNAME[plane], ALPNProtocols: [ALPN[plane]] } : {}),
      // The client-side name check is not under test here (the chain still is).
      checkServerIdentity: () => undefined,
      send: rpc(1),
      watchMs: 1200,
      ...extra,
    };
  }

  /** s_client arguments: connect, trust our CA, optionally a client cert. */
  sArgs(h: Harness, files: Files | undefined, ...extra: string[]): string[] {
    return [
      '-connect',
      `${h.host}:${h.port}`,
      '-CAfile',
      this.f.m2cp.ca,
      ...(files ? ['-cert', files.cert, '-key', files.key] : []),
      ...extra,
    ];
  }
}

export function assertAccepted(r: ProbeResult, plane: Plane, from: number, what: string): void {
  assert.ok(r.secureConnected, `${what}: handshake did not complete (${r.error?.message})`);
  assert.equal(r.alpn, ALPN[plane], `${what}: ALPN`);
  assert.ok(r.cipher && ALLOWED.has(r.cipher), `${what}: negotiated ${r.cipher}`);
  assert.deepEqual(
    r.replies.map((l) => JSON.parse(l)),
    [reply(1, plane, from)],
    `${what}: RPC reply`,
  );
  assert.equal(r.closedDuringWatch, false, `${what}: the server closed an accepted connection`);
}

/** Refused: nothing came back, and the connection is gone within a second (or never got up). */
export function assertRefused(r: ProbeResult, what: string): void {
  assert.deepEqual(r.replies, [], `${what}: the server answered application data`);
  assert.ok(r.closed, `${what}: connection still open after ${1200} ms`);
  assert.ok((r.closedAfterMs ?? Infinity) < 1000, `${what}: closed only after ${r.closedAfterMs} ms`);
}

/** The refusal of an s_client run: exited on its own (stdin still open), no RPC reply printed. */
export function assertSClientRefused(r: CmdResult, what: string): void {
  assert.equal(r.aliveAfterHold, false, `${what}: s_client still connected after the hold\n${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stdout, /"result"/, `${what}: an RPC reply came through`);
}

/** The server certificate s_client printed, as an X509Certificate. */
export function servedCert(stdout: string): X509Certificate {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout);
  assert.ok(m, `no server certificate in s_client output:\n${stdout}`);
  return new X509Certificate(m[0]);
}

/** The cipher suites of the ClientHello that `openssl s_client -trace` sent (IANA names). */
export function offeredSuites(trace: string): string[] {
  const i = trace.indexOf('ClientHello');
  assert.ok(i >= 0, `no ClientHello in trace:\n${trace}`);
  const block = /cipher_suites \(len=\d+\)\n((?:\s+\{0x[0-9A-F]{2}, 0x[0-9A-F]{2}\} \S+\n)+)/.exec(trace.slice(i));
  assert.ok(block, `no cipher_suites in the ClientHello trace:\n${trace.slice(i, i + 2000)}`);
  return [...block[1].matchAll(/\} (\S+)/g)].map((m) => m[1]).filter((s) => s !== 'TLS_EMPTY_RENEGOTIATION_INFO_SCSV');
}
