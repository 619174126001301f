// The internode TLS channel (port 3342): one listener for both planes, told
// apart by ALPN. The client also names its plane by SNI, which is how the
// server picks the certificate of that plane to present (OpenSSL chooses the
// certificate before ALPN is settled). After the handshake both sides check
// the peer's identity: this cluster, the plane of the connection, a current
// member, a serial not on the deny list. Anything else is closed at once.
import tls from 'node:tls';
import net from 'node:net';
import type { Logger } from 'pino';
import { sessionSecurity } from '../tls/policy.js';
import { ALPN, internodeDialOptions, internodeServerOptions, planeOfAlpn, planeOfServername } from '../tls/contexts.js';
import type { CertStore } from '../pki/certstore.js';
import { type Plane, normalizeSerial, parseIdentity } from '../pki/pki.js';

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
  if (!cert?.raw) return 'no peer certificate';
  const serial = normalizeSerial(cert.serialNumber);
  const id =
    parseIdentity(cert.subjectaltname) ??
    (() => {
      const known = policy.identityOf?.(serial);
      return known ? { clusterId: policy.clusterId(), uid: known.uid, plane: known.plane } : undefined;
    })();
  if (!id) return 'certificate carries no tessera identity';
  if (id.clusterId !== policy.clusterId()) return `certificate is for cluster ${id.clusterId}`;
  if (id.plane !== plane) return `certificate is for plane ${id.plane}, connection is ${plane}`;
  const peer = { uid: id.uid, plane, serial };
  return liveRefusal(peer, policy) ?? peer;
}

/** Why a live, once-accepted peer must now be cut off (revoked or removed), or undefined. */
export function liveRefusal(peer: PeerIdentity, policy: PeerPolicy): string | undefined {
  if (policy.isDenied(peer.serial)) return `certificate ${peer.serial} is revoked`;
  // uid 0: one operator certificate shared by all nodes; it cannot say which node it is.
  if (peer.uid !== 0 && !policy.isMember(peer.uid)) return `node ${peer.uid} is not a member`;
  return undefined;
}

/**
 * Live authenticated internode connections, accepted or dialed: after the
 * deny list or membership changes, `recheck` closes those now refused, with
 * the reason in the log.
 */
export class LiveLinks {
  private live = new Map<tls.TLSSocket, PeerIdentity>();

  constructor(private readonly side: 'accepted' | 'dialed') {}

  add(s: tls.TLSSocket, peer: PeerIdentity): void {
    this.live.set(s, peer);
    s.once('close', () => this.live.delete(s));
  }

  recheck(policy: PeerPolicy, log: Logger): number {
    let closed = 0;
    for (const [s, peer] of this.live) {
      const reason = liveRefusal(peer, policy);
      if (!reason) continue;
      log.warn({ peer, reason, side: this.side }, 'closing internode connection: peer refused now');
      s.destroy();
      this.live.delete(s);
      closed++;
    }
    return closed;
  }

  peers(): PeerIdentity[] {
    return [...this.live.values()];
  }

  closeAll(): void {
    for (const s of this.live.keys()) s.destroy();
  }
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
  private live = new LiveLinks('accepted');

  constructor(private opts: InternodeServerOptions) {
    const { certs } = opts;
    this.server = tls.createServer(internodeServerOptions(certs.serverContextOptions('cp'), (plane) => certs.context(plane)));
    // The default context serves clients that send no SNI; keep it current.
    // Versions and groups come from this context, not the SNI one: keep it current.
    certs.on('change', () => this.server.setSecureContext(certs.serverContextOptions('cp')));
    this.server.on('secureConnection', (s) => this.accept(s));
    this.server.on('tlsClientError', (err, s) => {
      opts.log.debug({ err: err.message, remote: s.remoteAddress }, 'internode handshake refused');
      s.destroy();
    });
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
    this.live.add(s, verdict);
    handler(s, verdict);
  }

  listen(): Promise<void> {
    return listenOrExplain(this.server, this.opts.host, this.opts.port, 'internode channel');
  }

  /** Re-check live connections after membership or the deny list changed; close the ones now refused. */
  recheck(): number {
    return this.live.recheck(this.opts.policy, this.opts.log);
  }

  connections(): PeerIdentity[] {
    return this.live.peers();
  }

  async close(): Promise<void> {
    this.live.closeAll();
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
  /** Where to record the link's setup (protocol, cipher, key-exchange group), and what it is for. */
  log?: Logger;
  purpose?: string;
  /** Register the link here, so it is closed if its peer is later revoked or removed. */
  links?: LiveLinks;
}

/** Open an authenticated internode connection for one plane. */
export function dial(o: DialOptions): Promise<{ socket: tls.TLSSocket; peer: PeerIdentity }> {
  return new Promise((resolve, reject) => {
    let peer: PeerIdentity | undefined;
    const verify = (cert: tls.PeerCertificate) => {
      const v = checkPeer(cert, o.plane, o.policy);
      if (typeof v === 'string') return new Error(`internode peer refused: ${v}`);
      if (o.expectUid !== undefined && v.uid !== 0 && v.uid !== o.expectUid)
        return new Error(`expected node ${o.expectUid}, reached node ${v.uid}`);
      peer = v;
      return undefined;
    };
    const socket = tls.connect({
      host: o.host,
      port: o.port,
      ...(o.localAddress ? { socket: net.connect({ host: o.host, port: o.port, localAddress: o.localAddress }) } : {}),
      ...internodeDialOptions(o.plane, o.certs.context(o.plane), verify),
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
      o.links?.add(socket, peer);
      // The group is visible only on the dialing side (OpenSSL does not tell a server).
      const security = sessionSecurity(socket);
      o.log?.info({ peer: peer.uid, serial: peer.serial, plane: o.plane, purpose: o.purpose, ...security }, 'internode link established');
      resolve({ socket, peer });
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}
