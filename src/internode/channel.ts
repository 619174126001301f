// The internode TLS channel (port 3342): one listener for both planes, told
// apart by ALPN. The client also names its plane by SNI, which is how the
// server picks the certificate of that plane to present (OpenSSL chooses the
// certificate before ALPN is settled). After the handshake both sides check
// the peer's identity: this cluster, the plane of the connection, a current
// member, a serial not on the deny list. Anything else is closed at once.
import tls from 'node:tls';
import net from 'node:net';
import type { Logger } from 'pino';
import { BASE_OPTIONS } from '../tls/policy.js';
import { CertStore } from '../tls/certstore.js';
import { Plane, normalizeSerial, parseIdentity } from '../pki/pki.js';

export const ALPN: Record<Plane, string> = { cp: 'tessera-cp/1', dp: 'tessera-dp/1' };
export const SERVERNAME: Record<Plane, string> = { cp: 'cp.tessera.internal', dp: 'dp.tessera.internal' };

function planeOfAlpn(p: string | false | null | undefined): Plane | undefined {
  if (p === ALPN.cp) return 'cp';
  if (p === ALPN.dp) return 'dp';
  return undefined;
}
function planeOfServername(s: string | false | null | undefined): Plane | undefined {
  if (s === SERVERNAME.cp) return 'cp';
  if (s === SERVERNAME.dp) return 'dp';
  return undefined;
}

/** Who may talk to us: answered from the coordination store's view, kept current by watches. */
export interface PeerPolicy {
  clusterId(): string;
  isMember(uid: number): boolean;
  isDenied(serial: string): boolean;
  /** Whose an operator-provided certificate is (it has no tessera identity of its own). */
  identityOf?(serial: string): { uid: number; plane: Plane } | undefined;
}

export interface PeerIdentity {
  uid: number;
  plane: Plane;
  serial: string;
}

/** Check a verified peer certificate against the policy; a string is the reason to refuse. */
export function checkPeer(cert: tls.PeerCertificate | undefined, plane: Plane, policy: PeerPolicy): PeerIdentity | string {
  if (!cert || !cert.raw) return 'no peer certificate';
  const serial = normalizeSerial(cert.serialNumber);
  const id = parseIdentity(cert.subjectaltname) ?? (() => {
    const known = policy.identityOf?.(serial);
    return known ? { clusterId: policy.clusterId(), uid: known.uid, plane: known.plane } : undefined;
  })();
  if (!id) return 'certificate carries no tessera identity';
  if (id.clusterId !== policy.clusterId()) return `certificate is for cluster ${id.clusterId}`;
  if (id.plane !== plane) return `certificate is for plane ${id.plane}, connection is ${plane}`;
  if (policy.isDenied(serial)) return `certificate ${serial} is revoked`;
  // uid 0: one operator certificate shared by all nodes; it cannot say which node it is.
  if (id.uid !== 0 && !policy.isMember(id.uid)) return `node ${id.uid} is not a member`;
  return { uid: id.uid, plane, serial };
}

export type ConnectionHandler = (socket: tls.TLSSocket, peer: PeerIdentity) => void;

export interface InternodeServerOptions {
  host: string;
  port: number;
  certs: CertStore;
  policy: PeerPolicy;
  log: Logger;
  handlers: Partial<Record<Plane, ConnectionHandler>>;
}

export class InternodeServer {
  private server: tls.Server;
  private live = new Map<tls.TLSSocket, PeerIdentity>();

  constructor(private opts: InternodeServerOptions) {
    const { certs } = opts;
    this.server = tls.createServer({
      ...BASE_OPTIONS,
      ...this.defaultContextOptions(),
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: 10_000,
      ALPNProtocols: [ALPN.cp, ALPN.dp],
      SNICallback: (name, cb) => cb(null, certs.context(planeOfServername(name) ?? 'cp')),
    });
    // The default context serves clients that send no SNI; keep it current.
    certs.on('change', () => this.server.setSecureContext({ ...BASE_OPTIONS, ...this.defaultContextOptions() }));
    this.server.on('secureConnection', (s) => this.accept(s));
    this.server.on('tlsClientError', (err, s) => {
      opts.log.debug({ err: err.message, remote: s.remoteAddress }, 'internode handshake refused');
      s.destroy();
    });
  }

  private defaultContextOptions() {
    const b = this.opts.certs.bundle('cp');
    return { cert: b.certPem, key: b.keyPem, ca: b.caPem };
  }

  private accept(s: tls.TLSSocket): void {
    s.on('error', () => s.destroy());
    const plane = planeOfAlpn(s.alpnProtocol);
    const sniPlane = planeOfServername((s as unknown as { servername?: string }).servername);
    let verdict: PeerIdentity | string;
    if (!plane) verdict = 'no plane named by ALPN';
    else if (sniPlane && sniPlane !== plane) verdict = 'SNI and ALPN name different planes';
    else verdict = checkPeer(s.getPeerCertificate(), plane, this.opts.policy);
    if (typeof verdict === 'string') {
      this.opts.log.warn({ remote: s.remoteAddress, reason: verdict }, 'internode connection refused');
      s.destroy();
      return;
    }
    const handler = this.opts.handlers[verdict.plane];
    if (!handler) {
      s.destroy();
      return;
    }
    s.setKeepAlive(true, 10_000);
    s.setNoDelay(true);
    this.live.set(s, verdict);
    s.once('close', () => this.live.delete(s));
    handler(s, verdict);
  }

  listen(): Promise<void> {
    return listenOrExplain(this.server, this.opts.host, this.opts.port, 'internode channel');
  }

  /** Re-check live connections after membership or the deny list changed; close the ones now refused. */
  recheck(): number {
    let closed = 0;
    for (const [s, peer] of this.live) {
      if (this.opts.policy.isDenied(peer.serial) || (peer.uid !== 0 && !this.opts.policy.isMember(peer.uid))) {
        this.opts.log.warn({ peer }, 'closing internode connection of a removed or revoked peer');
        s.destroy();
        this.live.delete(s);
        closed++;
      }
    }
    return closed;
  }

  connections(): PeerIdentity[] {
    return [...this.live.values()];
  }

  async close(): Promise<void> {
    for (const s of this.live.keys()) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Listen, turning EADDRINUSE and friends into an error that says which port of what. */
export function listenOrExplain(server: net.Server, host: string, port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onErr = (err: NodeJS.ErrnoException) => {
      server.off('listening', onOk);
      if (err.code === 'EADDRINUSE') reject(new Error(`${what}: port ${host}:${port} is already in use`));
      else if (err.code === 'EADDRNOTAVAIL') reject(new Error(`${what}: address ${host} is not available on this host`));
      else reject(new Error(`${what}: cannot listen on ${host}:${port}: ${err.message}`));
    };
    const onOk = () => {
      server.off('error', onErr);
      resolve();
    };
    server.once('error', onErr);
    server.once('listening', onOk);
    server.listen({ host, port, exclusive: true });
  });
}

export interface DialOptions {
  host: string;
  port: number;
  plane: Plane;
  certs: CertStore;
  policy: PeerPolicy;
  /** The node uid we mean to reach; its certificate must say so. */
  expectUid?: number;
  timeoutMs?: number;
  /** Leave from this node's own address, so traffic between nodes is seen as such. */
  localAddress?: string;
}

/** Open an authenticated internode connection for one plane. */
export function dial(o: DialOptions): Promise<{ socket: tls.TLSSocket; peer: PeerIdentity }> {
  return new Promise((resolve, reject) => {
    let peer: PeerIdentity | undefined;
    const socket = tls.connect({
      ...BASE_OPTIONS,
      host: o.host,
      port: o.port,
      ...(o.localAddress ? { socket: net.connect({ host: o.host, port: o.port, localAddress: o.localAddress }) } : {}),
      secureContext: o.certs.context(o.plane),
      servername: SERVERNAME[o.plane],
      ALPNProtocols: [ALPN[o.plane]],
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => {
        const v = checkPeer(cert, o.plane, o.policy);
        if (typeof v === 'string') return new Error(`internode peer refused: ${v}`);
        if (o.expectUid !== undefined && v.uid !== 0 && v.uid !== o.expectUid) return new Error(`expected node ${o.expectUid}, reached node ${v.uid}`);
        peer = v;
        return undefined;
      },
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`internode dial ${o.host}:${o.port} timed out`));
    }, o.timeoutMs ?? 5000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      if (socket.alpnProtocol !== ALPN[o.plane] || !peer) {
        socket.destroy();
        reject(new Error(`internode peer ${o.host}:${o.port} did not accept plane ${o.plane}`));
        return;
      }
      socket.setKeepAlive(true, 10_000);
      socket.setNoDelay(true);
      resolve({ socket, peer });
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}
