// Which client certificates a TLS database endpoint serves
// (authentication_ssl_client_certs): a listed certificate itself, or one issued
// by a listed CA. Used at the handshake and again when the list changes, so a
// client whose certificate was taken off the list is disconnected.
import { X509Certificate } from 'node:crypto';

export interface ClientCertList {
  /** SHA-256 fingerprints of the listed certificates, as Node prints them. */
  readonly fingerprints: Set<string>;
  /** The listed certificates that are CAs. */
  readonly cas: X509Certificate[];
  /** The PEMs, for the TLS context's `ca` (what OpenSSL verifies chains against). */
  readonly pems: string[];
}

/** Parse the listed certificates (validated by the REST API when they were set). */
export function clientCertList(pems: string[]): ClientCertList {
  const certs = pems.map((p) => new X509Certificate(p));
  return { fingerprints: new Set(certs.map((c) => c.fingerprint256)), cas: certs.filter((c) => c.ca), pems };
}

/**
 * Is this client certificate served? `chainVerified`: OpenSSL verified its
 * chain to the listed certificates at the handshake (intermediates the client
 * sent included).
 */
export function clientCertAllowed(list: ClientCertList, peer: X509Certificate | undefined, chainVerified: boolean): boolean {
  if (!peer) return false;
  const now = Date.now();
  if (now < Date.parse(peer.validFrom) || now > Date.parse(peer.validTo)) return false;
  if (list.fingerprints.has(peer.fingerprint256)) return true;
  if (chainVerified) return true;
  return list.cas.some((ca) => peer.checkIssued(ca) && peer.verify(ca.publicKey));
}
