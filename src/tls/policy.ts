// The one TLS policy every Tessera listener and dialer uses: TLS 1.2 with the
// two ECDHE-RSA GCM suites, TLS 1.3 with the two AES-GCM suites, nothing else.
import tls from 'node:tls';

export const TLS12_CIPHERS = ['ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES128-GCM-SHA256'] as const;
export const TLS13_CIPHERSUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'] as const;
/** Node accepts TLS 1.3 suite names in the same list and splits them itself. */
export const CIPHERS = [...TLS13_CIPHERSUITES, ...TLS12_CIPHERS].join(':');
/** The same TLS 1.2 suites in Go's spelling, for etcd's --cipher-suites. */
export const ETCD_CIPHER_SUITES = [
  'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
  'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
].join(',');

export const ALLOWED_NEGOTIATED = new Set<string>([...TLS12_CIPHERS, ...TLS13_CIPHERSUITES]);

/** Options shared by servers and clients. */
export const BASE_OPTIONS = {
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  ciphers: CIPHERS,
  honorCipherOrder: true,
} as const satisfies tls.SecureContextOptions & tls.TlsOptions;

/**
 * Make the process default match the policy too, so libraries that open TLS
 * connections on their own (the etcd gRPC client) offer only these suites.
 */
export function applyProcessDefaults(): void {
  tls.DEFAULT_MIN_VERSION = 'TLSv1.2';
  tls.DEFAULT_MAX_VERSION = 'TLSv1.3';
  (tls as unknown as { DEFAULT_CIPHERS: string }).DEFAULT_CIPHERS = CIPHERS;
}

export interface Bundle {
  certPem: string;
  keyPem: string;
  caPem: string;
}

export function secureContext(b: Bundle): tls.SecureContext {
  return tls.createSecureContext({ ...BASE_OPTIONS, cert: b.certPem, key: b.keyPem, ca: b.caPem });
}
