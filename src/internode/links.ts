// What each live internode connection carries, for `tessera verify encryption`
// and GET /v1/nodes/{uid}/internode_links: the thread that owns a set of
// connections (the main thread its control RPC dials, the data-plane worker
// everything else) registers each one with what it is for, and lists them on
// demand with what was negotiated and the peer's certificate.
import type net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { sessionSecurity } from '../tls/policy.js';
import { normalizeSerial, parseIdentity } from '../pki/pki.js';
import { issuedByAny } from '../pki/ca-list.js';

/**
 * `control`: RPC between nodes; `proxy`: an endpoint's link to a remote shard; `replication`: a replica's tunnel to its master shard;
 * `migration`: a resharding's key mover writing to the shard that takes the slots over.
 */
export type LinkPurpose = 'control' | 'proxy' | 'replication' | 'migration' | 'unknown';
export type LinkSide = 'dialed' | 'accepted';

export interface LinkTag {
  side: LinkSide;
  purpose: LinkPurpose;
  /** The node at the other end, when known (by certificate, or by address on the plaintext channel). */
  remoteUid?: number;
  bdbUid?: number;
  /** The shard the link reaches (for replication: the master shard). */
  shardUid?: number;
  /** Replication: the replica shard fed through the tunnel. */
  replicaShardUid?: number;
}

/** One live internode connection as one of its two ends sees it. JSON-safe: absent facts are null. */
export interface InternodeLink {
  local_uid: number;
  remote_uid: number | null;
  side: LinkSide;
  purpose: LinkPurpose;
  bdb_uid: number | null;
  shard_uid: number | null;
  replica_shard_uid: number | null;
  /** The internode port the connection uses: 3342 (TLS) or 3343 (plaintext) by default. */
  channel_port: number | null;
  local_address: string;
  remote_address: string;
  /** `TLSv1.3`, `TLSv1.2` or `plaintext`. */
  protocol: string;
  cipher: string | null;
  /** The key-exchange group; only the dialing side learns it (OpenSSL does not tell a server). */
  group: string | null;
  peer_cert_serial: string | null;
  peer_cert_not_after: string | null;
  /** Whole days until the peer certificate expires; negative once it has. */
  peer_cert_days_left: number | null;
  peer_cert_expired: boolean | null;
  /** On the cluster's deny list (revoked, or of a removed node). */
  peer_cert_denied: boolean | null;
  /** The subject of the CA that signed the peer certificate (absent from 0.1.0 nodes). */
  peer_cert_issuer?: string | null;
  /**
   * An end's cluster-issued certificate is from a CA this node no longer
   * trusts (a link from before a CA rollover's step 4, about to be cut);
   * null when the thread does not follow its trust. Absent from 0.1.0 nodes.
   */
  untrusted_ca?: boolean | null;
  established: string;
}

/** What one node reports: GET /v1/nodes/{uid}/internode_links. */
export interface NodeLinksReport {
  uid: number;
  addr: string;
  time: string;
  links: InternodeLink[];
}

interface Entry {
  tag: LinkTag;
  local: string;
  remote: string;
  channelPort: number | null;
  protocol: string;
  cipher: string | null;
  group: string | null;
  serial: string | null;
  notAfter: number | null;
  issuer: string | null;
  /** Cluster-issued certificates (a tessera identity) of the two ends, checked when trust changes. */
  clusterCerts: X509Certificate[];
  established: number;
}

const DAY_MS = 86_400_000;

function addrOf(host: string | undefined, port: number | undefined): string {
  return `${host ?? '?'}:${port ?? '?'}`;
}

/** The live connections of one thread, each with what it is for. */
export class LinkRegistry {
  private readonly links = new Map<net.Socket, Entry>();
  /** The cert store followed (followTrust), whose CAs the listing checks each link against. */
  private trust?: TrustSource;

  /** Track a connected socket until it closes. What was negotiated is read now: it does not change on a live link. */
  add(s: net.Socket, tag: LinkTag): void {
    if (s.destroyed) return;
    let security: { protocol: string; cipher: string | null; group: string | null } = { protocol: 'plaintext', cipher: null, group: null };
    let serial: string | null = null;
    let notAfter: number | null = null;
    let issuer: string | null = null;
    const clusterCerts: X509Certificate[] = [];
    if (s instanceof tls.TLSSocket) {
      const sec = sessionSecurity(s);
      security = { protocol: sec.protocol, cipher: sec.cipher ?? null, group: sec.group ?? null };
      const cert = s.getPeerCertificate();
      if (cert?.serialNumber) {
        serial = normalizeSerial(cert.serialNumber);
        const t = Date.parse(cert.valid_to);
        notAfter = Number.isFinite(t) ? t : null;
      }
      if (cert?.raw) {
        const x = new X509Certificate(cert.raw);
        issuer = x.issuer.replace(/\n/g, ', ');
        if (parseIdentity(x.subjectAltName)) clusterCerts.push(x);
      }
      const own = s.getX509Certificate();
      if (own && parseIdentity(own.subjectAltName)) clusterCerts.push(own);
    }
    const channelPort = (tag.side === 'dialed' ? s.remotePort : s.localPort) ?? null;
    this.links.set(s, {
      tag,
      local: addrOf(s.localAddress, s.localPort),
      remote: addrOf(s.remoteAddress, s.remotePort),
      channelPort,
      ...security,
      serial,
      notAfter,
      issuer,
      clusterCerts,
      established: Date.now(),
    });
    s.once('close', () => this.links.delete(s));
  }

  get size(): number {
    return this.links.size;
  }

  /** The links still open, as node `localUid` sees them; `isDenied` asks the cluster's deny list now. */
  list(localUid: number, isDenied: (serial: string) => boolean, now = Date.now()): InternodeLink[] {
    const out: InternodeLink[] = [];
    const cas = this.trust?.casPem();
    for (const [s, e] of this.links) {
      if (s.destroyed) continue;
      out.push({
        local_uid: localUid,
        remote_uid: e.tag.remoteUid ?? null,
        side: e.tag.side,
        purpose: e.tag.purpose,
        bdb_uid: e.tag.bdbUid ?? null,
        shard_uid: e.tag.shardUid ?? null,
        replica_shard_uid: e.tag.replicaShardUid ?? null,
        channel_port: e.channelPort,
        local_address: e.local,
        remote_address: e.remote,
        protocol: e.protocol,
        cipher: e.cipher,
        group: e.group,
        peer_cert_serial: e.serial,
        peer_cert_not_after: e.notAfter === null ? null : new Date(e.notAfter).toISOString(),
        peer_cert_days_left: e.notAfter === null ? null : Math.floor((e.notAfter - now) / DAY_MS),
        peer_cert_expired: e.notAfter === null ? null : e.notAfter < now,
        peer_cert_denied: e.serial === null ? null : isDenied(e.serial),
        peer_cert_issuer: e.issuer,
        untrusted_ca: cas ? e.clusterCerts.some((c) => !issuedByAny(c.toString(), cas)) : null,
        established: new Date(e.established).toISOString(),
      });
    }
    return out;
  }

  /**
   * Live TLS links authenticated (either end) by a cluster-issued certificate
   * that no CA of `cas` signed: after a CA rollover drops the old CA, these
   * were set up under trust that no longer holds.
   */
  untrusted(cas: readonly string[]): net.Socket[] {
    const out: net.Socket[] = [];
    for (const [s, e] of this.links) {
      if (s.destroyed) continue;
      if (e.clusterCerts.some((c) => !issuedByAny(c.toString(), cas))) out.push(s);
    }
    return out;
  }

  /**
   * Close the links that the trust of `certs` no longer covers, each time it
   * changes (a CA rollover's step 4): `onUntrusted` first (the data plane
   * relinks its endpoints there, so commands move to new links without
   * failing), then, after a grace that lets them drain, the links still
   * untrusted are cut and re-dialed by their owners with the new
   * certificates. The dialing side cuts first, so the accepting side seldom
   * has to cut a link a peer is still writing to.
   */
  followTrust(certs: TrustSource, log: Logger, onUntrusted?: () => void, grace = TRUST_GRACE): void {
    this.trust = certs;
    let timer: NodeJS.Timeout | undefined;
    const check = () => {
      timer = undefined;
      const cas = certs.casPem();
      if (this.untrusted(cas).length === 0) return;
      onUntrusted?.();
      const cut = (side: LinkSide) => {
        let n = 0;
        for (const s of this.untrusted(certs.casPem())) {
          if (this.links.get(s)?.tag.side !== side) continue;
          s.destroy();
          n++;
        }
        if (n > 0) log.info({ side, links: n }, 'closed internode links set up under a CA no longer trusted');
      };
      setTimeout(() => cut('dialed'), grace.dialedMs).unref();
      setTimeout(() => cut('accepted'), grace.acceptedMs).unref();
    };
    certs.on('change', () => {
      timer ??= setTimeout(check, 100);
    });
  }
}

/** What followTrust reads of a cert store (pki/certstore.ts). */
export interface TrustSource {
  casPem(): string[];
  on(event: 'change', listener: () => void): unknown;
}

/** How long a link under a dropped CA may drain before it is cut: the dialer's, then the acceptor's. */
export const TRUST_GRACE = { dialedMs: 3000, acceptedMs: 6000 };
