// The one TLS policy every Tessera listener and dialer uses: TLS 1.2 with the
// two ECDHE-RSA GCM suites, TLS 1.3 with the two AES-GCM suites, nothing else;
// key exchange by the hybrid post-quantum group X25519MLKEM768 first (OpenSSL
// 3.5, Node >= 24), then the classical X25519 and P-256 for peers without it.
import tls from 'node:tls';

export const TLS12_CIPHERS = ['ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES128-GCM-SHA256'] as const;
export const TLS13_CIPHERSUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'] as const;
/** Node accepts TLS 1.3 suite names in the same list and splits them itself. */
export const CIPHERS = [...TLS13_CIPHERSUITES, ...TLS12_CIPHERS].join(':');
/** The same TLS 1.2 suites in Go's spelling, for etcd's --cipher-suites. */
export const ETCD_CIPHER_SUITES = ['TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'].join(',');

/** The hybrid ML-KEM-768 + X25519 group (IANA 0x11EC). */
export const HYBRID_GROUP = 'X25519MLKEM768';
export const HYBRID_GROUP_CODEPOINT = 0x11ec;
/**
 * Groups in order of preference. The `*` asks OpenSSL to send a key share for
 * both the hybrid and X25519 in the first flight, so a classical server
 * (etcd) answers without a HelloRetryRequest; a Tessera server picks the
 * hybrid share.
 */
export const GROUPS = `*${HYBRID_GROUP}:*X25519:P-256`;

/**
 * The internode channel's key-exchange rule, a cluster setting:
 * hybrid_preferred lets a peer without ML-KEM in with a classical group;
 * hybrid_required refuses any handshake that does not use the hybrid group
 * (and so TLS 1.2, which cannot carry it). Client-facing ports ignore it.
 */
export const KEY_EXCHANGES = ['hybrid_preferred', 'hybrid_required'] as const;
export type KeyExchange = (typeof KEY_EXCHANGES)[number];
export const DEFAULT_KEY_EXCHANGE: KeyExchange = 'hybrid_preferred';

type ProtocolOptions = Pick<tls.SecureContextOptions, 'minVersion' | 'maxVersion' | 'ciphers' | 'honorCipherOrder' | 'ecdhCurve'>;

/** Versions, suites and groups: what every context of this process is made with. */
export function protocolOptions(kx: KeyExchange = DEFAULT_KEY_EXCHANGE): ProtocolOptions {
  return kx === 'hybrid_required'
    ? { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: CIPHERS, honorCipherOrder: true, ecdhCurve: HYBRID_GROUP }
    : { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ciphers: CIPHERS, honorCipherOrder: true, ecdhCurve: GROUPS };
}

/** The groups offered under a rule, in order of preference, as operators read them. */
export function keyExchangeGroups(kx: KeyExchange): string[] {
  return String(protocolOptions(kx).ecdhCurve)
    .split(':')
    .map((g) => g.replace(/^\*/, ''));
}

/** Options shared by servers and clients (client-facing ports, the HTTPS client). */
export const BASE_OPTIONS = protocolOptions();

/**
 * Make the process default match the policy too, so libraries that open TLS
 * connections on their own (the etcd gRPC client) offer only these suites
 * and groups.
 */
export function applyProcessDefaults(): void {
  tls.DEFAULT_MIN_VERSION = 'TLSv1.2';
  tls.DEFAULT_MAX_VERSION = 'TLSv1.3';
  tls.DEFAULT_ECDH_CURVE = GROUPS;
  (tls as unknown as { DEFAULT_CIPHERS: string }).DEFAULT_CIPHERS = CIPHERS;
}

export interface Bundle {
  certPem: string;
  keyPem: string;
  caPem: string;
}

/** A bundle's context options under a key-exchange rule (also a listener's default context). */
export function contextOptions(b: Bundle, kx: KeyExchange = DEFAULT_KEY_EXCHANGE): tls.SecureContextOptions {
  return { ...protocolOptions(kx), cert: b.certPem, key: b.keyPem, ca: b.caPem };
}

export function secureContext(b: Bundle, kx: KeyExchange = DEFAULT_KEY_EXCHANGE): tls.SecureContext {
  return tls.createSecureContext(contextOptions(b, kx));
}

/**
 * Add a CA to a context in use (its next handshakes trust it too). For the
 * one context that cannot be replaced: the etcd client's, which gRPC keeps
 * for the life of the client, while a CA rollover reissues the local member's
 * certificate from the next CA. Node's SecureContext has no public call for
 * it; `addCACert` is what createSecureContext itself uses for `ca`.
 */
export function addTrustedCa(ctx: tls.SecureContext, caPem: string): void {
  const native = (ctx as unknown as { context?: { addCACert?: (pem: string) => void } }).context;
  if (typeof native?.addCACert !== 'function') throw new Error('this Node.js cannot add a CA to a live TLS context');
  native.addCACert(caPem);
}

/**
 * The key-exchange group a connection negotiated, as a dialer sees it
 * (OpenSSL does not tell a server). `plaintext`/undefined for non-TLS.
 */
export function negotiatedGroup(s: tls.TLSSocket): string | undefined {
  const k = s.getEphemeralKeyInfo?.();
  return k && typeof k === 'object' && 'name' in k ? String(k.name) : undefined;
}

/** What a TLS session negotiated, as `tessera verify encryption` reports it. */
export interface SessionSecurity {
  /** `TLSv1.3`, `TLSv1.2`, ... as OpenSSL names it. */
  protocol: string;
  cipher?: string;
  /** Known on the dialing side only (see negotiatedGroup). */
  group?: string;
}

/** The protocol, cipher and (dialing side) key-exchange group of a connected TLS socket. */
export function sessionSecurity(s: tls.TLSSocket): SessionSecurity {
  return { protocol: s.getProtocol() ?? 'unknown', cipher: s.getCipher()?.name, group: negotiatedGroup(s) };
}

/**
 * Why a negotiated session is outside this policy under a key-exchange rule,
 * or undefined when it is within: TLS 1.2 or 1.3 only, with one of the
 * version's allowed suites; under hybrid_required, TLS 1.3 with the hybrid
 * group (when the group is known: a listener does not learn it).
 */
export function sessionPolicyViolation(s: SessionSecurity, kx: KeyExchange = DEFAULT_KEY_EXCHANGE): string | undefined {
  const allowed: readonly string[] | undefined =
    s.protocol === 'TLSv1.3' ? TLS13_CIPHERSUITES : s.protocol === 'TLSv1.2' ? TLS12_CIPHERS : undefined;
  if (!allowed) return `protocol ${s.protocol} is not allowed (TLS 1.2 or 1.3 only)`;
  if (!s.cipher || !allowed.includes(s.cipher)) return `cipher ${s.cipher ?? '(none)'} is not allowed with ${s.protocol}`;
  if (kx === 'hybrid_required') {
    if (s.protocol !== 'TLSv1.3') return `${s.protocol} under internode_key_exchange hybrid_required (TLS 1.3 with ${HYBRID_GROUP} only)`;
    if (s.group && s.group !== HYBRID_GROUP)
      return `key exchange ${s.group} under internode_key_exchange hybrid_required (${HYBRID_GROUP} only)`;
  }
  return undefined;
}
