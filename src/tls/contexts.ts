// The options of every TLS listener and dialer of Tessera, built here and
// nowhere else: the internode channel (3342, both ends), the REST API and
// metrics listeners, the HTTPS client of the CLI and of joining nodes, and
// the etcd client (its context: policy.ts's secureContext). Callers bring certificates and identity checks; versions,
// suites, groups, ALPN, client-certificate demands and verification switches
// come from here.
import type tls from 'node:tls';
import { BASE_OPTIONS } from './policy.js';

/** The two internode planes: control (cp) and data (dp). */
export type Plane = 'cp' | 'dp';
/** A plane is named by ALPN, and by SNI so a server can pick the plane's certificate before ALPN settles. */
export const ALPN: Record<Plane, string> = { cp: 'tessera-cp/1', dp: 'tessera-dp/1' };
export const SERVERNAME: Record<Plane, string> = { cp: 'cp.tessera.internal', dp: 'dp.tessera.internal' };
/** A handshake that has not finished by then is dropped. */
const INTERNODE_HANDSHAKE_TIMEOUT_MS = 10_000;

export function planeOfAlpn(p: string | false | null | undefined): Plane | undefined {
  if (p === ALPN.cp) return 'cp';
  if (p === ALPN.dp) return 'dp';
  return undefined;
}
export function planeOfServername(s: string | false | null | undefined): Plane | undefined {
  if (s === SERVERNAME.cp) return 'cp';
  if (s === SERVERNAME.dp) return 'dp';
  return undefined;
}

/** The internode listener: mutual TLS, both planes by ALPN, the plane's certificate picked by SNI. */
export function internodeServerOptions(
  defaultContext: tls.SecureContextOptions,
  contextFor: (plane: Plane) => tls.SecureContext,
): tls.TlsOptions {
  return {
    ...defaultContext,
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: INTERNODE_HANDSHAKE_TIMEOUT_MS,
    ALPNProtocols: [ALPN.cp, ALPN.dp],
    SNICallback: (name, cb) => cb(null, contextFor(planeOfServername(name) ?? 'cp')),
  };
}

/**
 * An internode dial for one plane. `context` carries the plane's certificate,
 * trust and the key-exchange rule; `checkPeer` replaces host-name checks
 * (nodes are known by certificate identity, not by name).
 */
export function internodeDialOptions(
  plane: Plane,
  context: tls.SecureContext,
  checkPeer: (cert: tls.PeerCertificate) => Error | undefined,
): tls.ConnectionOptions {
  return {
    secureContext: context,
    servername: SERVERNAME[plane],
    ALPNProtocols: [ALPN[plane]],
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => checkPeer(cert),
  };
}

/** A client-facing HTTPS listener (REST API, metrics). */
export function httpsServerOptions(cert: { certPem: string; keyPem: string }): tls.TlsOptions {
  return { ...BASE_OPTIONS, cert: cert.certPem, key: cert.keyPem };
}

/** A TLS database endpoint's handshake must finish within this. */
const ENDPOINT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * A database endpoint with tls_mode enabled: the `proxy` certificate under the
 * policy. With `clientCas` (authentication_ssl_client_certs), a client
 * certificate is asked for and OpenSSL checks it against them; the endpoint
 * itself decides (src/proxy/client-auth.ts), since a listed leaf that is not
 * self-signed is accepted as itself, which OpenSSL cannot express.
 */
export function endpointTlsOptions(cert: { certPem: string; keyPem: string }, clientCas: string[] | undefined): tls.TlsOptions {
  return {
    ...BASE_OPTIONS,
    cert: cert.certPem,
    key: cert.keyPem,
    handshakeTimeout: ENDPOINT_HANDSHAKE_TIMEOUT_MS,
    ...(clientCas?.length ? { requestCert: true, rejectUnauthorized: false, ca: clientCas } : { requestCert: false }),
  };
}

/**
 * The HTTPS client (CLI, joining node). With a CA it verifies the chain and
 * pins the cluster by that CA rather than by host name (addresses change).
 * Without one: `systemTrust` verifies against the system's roots and the host
 * name (an operator's publicly issued certificate); otherwise it does not
 * verify, like `curl -k`.
 */
export function httpsClientOptions(caPem: string | undefined, systemTrust = false): tls.ConnectionOptions {
  if (!caPem && systemTrust) return { ...BASE_OPTIONS, rejectUnauthorized: true };
  return { ...BASE_OPTIONS, ca: caPem, rejectUnauthorized: !!caPem, checkServerIdentity: () => undefined };
}
