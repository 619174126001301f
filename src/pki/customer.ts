// Validation of operator-provided ("customer") internode certificates, before
// anything is applied. Pure and synchronous: it reads the PEM the operator
// gave, builds the path from the leaf up to a self-signed root, and refuses
// with a CertificateRejected naming the failing check and saying, in words an
// operator can act on, what is wrong.
//
// What it checks (the `check` name in brackets):
//   - the certificate chain and the key parse [pem_invalid], the name is known [name_invalid]
//   - the key is RSA [key_type] of at least 2048 bits [key_size]: the cluster's
//     TLS 1.2 suites are ECDHE-RSA, so ECDSA / Ed25519 / RSA-PSS keys cannot work
//   - the key belongs to a certificate in the chain: that certificate is the leaf [key_mismatch]
//   - the leaf is an end-entity certificate [leaf_is_ca], not self-signed [self_signed]
//   - the leaf allows both TLS Web Client Authentication [eku_client_auth] and
//     TLS Web Server Authentication [eku_server_auth] (every internode link is
//     mutual TLS; reference bug RS176474), and, if it restricts key usage, allows
//     digitalSignature [key_usage] (ECDHE-RSA and TLS 1.3 sign with the leaf key)
//   - every certificate of the path is valid now [not_yet_valid, expired] and
//     stays valid for more than `minRemainingSeconds` [expires_too_soon]
//   - the path from the leaf reaches a self-signed root, given in the PEM or in
//     `extraTrust`, through intermediate CAs of any depth and in any order
//     (reference bug RS194253) [chain_incomplete]; each certificate is signed by
//     the next [chain_invalid]; each issuer is a CA with keyCertSign [not_a_ca],
//     respects its pathLenConstraint [path_length], and does not restrict its
//     extended key usage away from client/server auth [eku_client_auth, eku_server_auth]
//   - no MD5/SHA-1 signatures below the root [weak_signature]; no critical
//     extension TLS stacks (OpenSSL, Go) do not understand [critical_extension]
//   - finally, the bundle loads into a TLS context with the cluster's own TLS
//     policy, as it will be used [tls_context]
// Not evaluated: nameConstraints of CAs in the path, certificate policies, and
// revocation (CRL/OCSP).
import 'reflect-metadata';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { normalizeSerial } from './pki.js';
import { secureContext } from '../tls/policy.js';

import { CERT_NAMES, SERVICE_NAMES, isServiceName, type CertName, type ServiceName } from './pki.js';
export { CERT_NAMES, type CertName };

/**
 * Every name an operator may give a certificate for: the internode planes and
 * the client-facing services. A client-facing certificate is only presented
 * to clients, so it needs serverAuth but not clientAuth; every other check is
 * the same.
 */
export type OperatorCertName = CertName | ServiceName;
export const OPERATOR_CERT_NAMES: readonly OperatorCertName[] = [...CERT_NAMES, ...SERVICE_NAMES];

export interface CustomerCert {
  name: OperatorCertName;
  /** PEM: leaf first, then intermediates, optionally the root. */
  certificate: string;
  /** PEM private key (PKCS#8 or PKCS#1, unencrypted). */
  key: string;
}

export interface ValidatedCustomerCert {
  name: OperatorCertName;
  /** The leaf alone. */
  leafPem: string;
  /** Leaf + intermediates, in order, as a TLS server/client should present them (no root). */
  chainPem: string;
  /** CA certificates (root first, then the intermediates from the top down) that peers must trust. */
  trustPems: string[];
  /** Normalised PKCS#8 PEM. */
  keyPem: string;
  /** Lower-case hex, no leading zeros (normalizeSerial). */
  serial: string;
  subject: string;
  issuer: string;
  not_before: string;
  not_after: string;
  /**
   * The earliest notAfter over the whole path (leaf, intermediates, root): the
   * chain stops working then even if the leaf itself lasts longer. The cluster
   * should replace the customer certificate 5 days before this.
   */
  chain_not_after: string;
}

/** Every `check` name a CertificateRejected can carry. */
export const CUSTOMER_CERT_CHECKS = [
  'name_invalid',
  'pem_invalid',
  'key_type',
  'key_size',
  'key_mismatch',
  'leaf_is_ca',
  'self_signed',
  'eku_client_auth',
  'eku_server_auth',
  'key_usage',
  'not_yet_valid',
  'expired',
  'expires_too_soon',
  'chain_incomplete',
  'chain_invalid',
  'not_a_ca',
  'path_length',
  'weak_signature',
  'critical_extension',
  'tls_context',
] as const;

export class CertificateRejected extends Error {
  constructor(
    readonly check: string,
    message: string,
    /** Which customer certificate was refused, when known. */
    readonly certName?: OperatorCertName,
  ) {
    super(message);
    this.name = 'CertificateRejected';
  }
}

export interface ValidateOptions {
  /** The time to validate at (default: now). */
  now?: Date;
  /** Every certificate of the path must have more than this left (default 5 days). */
  minRemainingSeconds?: number;
  /** Extra CA certificates (PEM; each string may hold several) to build the path with, e.g. the root. */
  extraTrust?: string[];
}

export const DEFAULT_MIN_REMAINING_SECONDS = 5 * 86_400;
const MIN_RSA_BITS = 2048;
const MAX_PATH = 12;

const OID = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  anyEku: '2.5.29.37.0',
  nsCertType: '2.16.840.1.113730.1.1',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  subjectAltName: '2.5.29.17',
  extKeyUsage: '2.5.29.37',
  certificatePolicies: '2.5.29.32',
  nameConstraints: '2.5.29.30',
} as const;

/** Critical extensions both OpenSSL and Go's crypto/x509 process. */
const UNDERSTOOD_CRITICAL = new Set<string>([
  OID.keyUsage,
  OID.basicConstraints,
  OID.subjectAltName,
  OID.extKeyUsage,
  OID.certificatePolicies,
  OID.nameConstraints,
]);

const WEAK_SIG_OIDS = new Set<string>([
  '1.2.840.113549.1.1.2', // md2WithRSAEncryption
  '1.2.840.113549.1.1.3', // md4WithRSAEncryption
  '1.2.840.113549.1.1.4', // md5WithRSAEncryption
  '1.2.840.113549.1.1.5', // sha1WithRSAEncryption
  '1.3.14.3.2.29', // sha1WithRSA (OIW)
  '1.2.840.10045.4.1', // ecdsa-with-SHA1
  '1.2.840.10040.4.3', // dsa-with-sha1
]);

interface Cert {
  pem: string;
  node: X509Certificate;
  px: x509.X509Certificate;
  subject: string;
  issuer: string;
  /** Where the operator gave it, for messages. */
  where: string;
}

interface PemBlock {
  label: string;
  text: string;
  headers: string;
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n?([\s\S]*?)-----END \1-----/g;

function pemBlocks(s: string): { blocks: PemBlock[]; unterminated: boolean } {
  const blocks: PemBlock[] = [];
  for (const m of s.matchAll(PEM_RE)) {
    const body = m[2];
    const headers = /^[A-Za-z-]+:.*$/m.test(body) ? body : '';
    blocks.push({ label: m[1], text: m[0], headers });
  }
  const begins = (s.match(/-----BEGIN /g) ?? []).length;
  return { blocks, unterminated: begins !== blocks.length };
}

function oneLine(dn: string): string {
  return dn.replace(/\n/g, ', ');
}

function iso(d: Date): string {
  return d.toISOString();
}

function describe(c: Cert): string {
  return `'${c.subject}' (${c.where})`;
}

/** "3 days 4 hours", "17 minutes", "42 seconds". */
function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(Math.abs(seconds)));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (d > 0) return h > 0 ? `${plural(d, 'day')} ${plural(h, 'hour')}` : plural(d, 'day');
  if (h > 0) return m > 0 ? `${plural(h, 'hour')} ${plural(m, 'minute')}` : plural(h, 'hour');
  if (m > 0) return plural(m, 'minute');
  return plural(s, 'second');
}

function parseCert(text: string, where: string, reject: (check: string, msg: string) => never): Cert {
  let node: X509Certificate;
  let px: x509.X509Certificate;
  try {
    node = new X509Certificate(text);
    px = new x509.X509Certificate(text);
  } catch (err) {
    return reject('pem_invalid', `${where} is not a valid X.509 certificate (${(err as Error).message}).`);
  }
  return { pem: node.toString(), node, px, subject: oneLine(node.subject), issuer: oneLine(node.issuer), where };
}

function parseCertificates(text: string, what: string, reject: (check: string, msg: string) => never): Cert[] {
  const { blocks, unterminated } = pemBlocks(text);
  if (unterminated)
    return reject('pem_invalid', `${what} has a "-----BEGIN" line without its matching "-----END" line: the PEM is truncated or damaged.`);
  const certs: Cert[] = [];
  for (const b of blocks) {
    if (/PRIVATE KEY/.test(b.label)) {
      return reject(
        'pem_invalid',
        `${what} contains a private key (${b.label}). Give only certificates there, and the private key separately in "key".`,
      );
    }
    if (b.label !== 'CERTIFICATE') {
      return reject('pem_invalid', `${what} contains a "${b.label}" PEM block; only "CERTIFICATE" blocks are accepted.`);
    }
    certs.push(parseCert(b.text, `certificate #${certs.length + 1} of ${what}`, reject));
  }
  return certs;
}

function parseKey(text: string, reject: (check: string, msg: string) => never): KeyObject {
  const { blocks, unterminated } = pemBlocks(text);
  if (unterminated)
    return reject(
      'pem_invalid',
      'The private key PEM has a "-----BEGIN" line without its matching "-----END" line: it is truncated or damaged.',
    );
  const keys = blocks.filter((b) => /PRIVATE KEY$/.test(b.label));
  if (keys.length === 0) {
    return reject(
      'pem_invalid',
      'The key is not a PEM private key: expected a "-----BEGIN PRIVATE KEY-----" (PKCS#8) or "-----BEGIN RSA PRIVATE KEY-----" (PKCS#1) block.',
    );
  }
  if (keys.length > 1)
    return reject('pem_invalid', `The key field holds ${keys.length} private keys; give exactly one, the leaf certificate's.`);
  const k = keys[0];
  if (k.label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(k.headers)) {
    return reject(
      'pem_invalid',
      'The private key is encrypted with a passphrase; give it unencrypted (for example `openssl pkey -in key.pem -out plain.pem`).',
    );
  }
  try {
    return createPrivateKey({ key: k.text, format: 'pem' });
  } catch (err) {
    return reject('pem_invalid', `The private key cannot be read (${(err as Error).message}).`);
  }
}

function keyTypeName(t: string | undefined): string {
  switch (t) {
    case 'ec':
      return 'ECDSA';
    case 'ed25519':
      return 'Ed25519';
    case 'ed448':
      return 'Ed448';
    case 'rsa-pss':
      return 'RSA-PSS (restricted RSA)';
    case 'dsa':
      return 'DSA';
    default:
      return t ?? 'unknown';
  }
}

const WHY_RSA = 'the cluster\'s TLS 1.2 cipher suites are ECDHE-RSA, so internode certificates need an RSA key ("rsaEncryption")';

function ekus(c: Cert): string[] | undefined {
  const e = c.px.getExtension(x509.ExtendedKeyUsageExtension);
  return e ? e.usages.map((u) => String(u)) : undefined;
}

/** nsCertType bits as OpenSSL names them, or undefined when absent. */
function nsCertType(c: Cert): number | undefined {
  const e = c.px.getExtension(OID.nsCertType);
  if (!e) return undefined;
  const v = new Uint8Array(e.value); // DER BIT STRING: 03 len unused bits...
  return v.length >= 4 && v[0] === 0x03 ? v[3] : 0;
}
const NS_SSL_CLIENT = 0x80;
const NS_SSL_SERVER = 0x40;
const NS_SSL_CA = 0x04;

function isCa(c: Cert): boolean {
  return c.px.getExtension(x509.BasicConstraintsExtension)?.ca === true;
}

function isSelfIssued(c: Cert): boolean {
  return c.subject === c.issuer;
}

function verifies(child: Cert, parent: Cert): boolean {
  try {
    return child.node.verify(parent.node.publicKey);
  } catch {
    return false; // a key that cannot check this signature (e.g. another algorithm) is not the issuer's
  }
}

function isSelfSigned(c: Cert): boolean {
  return isSelfIssued(c) && verifies(c, c);
}

function sigIsWeak(c: Cert): string | undefined {
  const alg = c.px.signatureAlgorithm as { name?: string; hash?: { name?: string } | string };
  const hash = typeof alg.hash === 'string' ? alg.hash : alg.hash?.name;
  if (hash && /^(SHA-1|SHA1|MD5|MD2|MD4)$/i.test(hash)) return `${alg.name ?? 'signature'} with ${hash}`;
  if (alg.name && WEAK_SIG_OIDS.has(alg.name)) return alg.name;
  return undefined;
}

function hexEq(a: string, b: string): boolean {
  return a.replace(/[^0-9a-f]/gi, '').toLowerCase() === b.replace(/[^0-9a-f]/gi, '').toLowerCase();
}

/**
 * Validate one customer certificate (chain + key). Returns what to install and
 * what peers must trust; throws CertificateRejected naming the failing check.
 */
export function validateCustomerCert(c: CustomerCert, opts: ValidateOptions = {}): ValidatedCustomerCert {
  const name = c?.name;
  const reject = (check: string, message: string): never => {
    throw new CertificateRejected(check, message, OPERATOR_CERT_NAMES.includes(name) ? name : undefined);
  };
  if (!OPERATOR_CERT_NAMES.includes(name)) {
    reject('name_invalid', `Unknown certificate name ${JSON.stringify(name)}; expected one of ${OPERATOR_CERT_NAMES.join(', ')}.`);
  }
  const clientFacing = isServiceName(name);
  const now = (opts.now ?? new Date()).getTime();
  const minRemaining = opts.minRemainingSeconds ?? DEFAULT_MIN_REMAINING_SECONDS;

  // --- PEM ------------------------------------------------------------------
  if (typeof c.certificate !== 'string' || !c.certificate.trim())
    reject('pem_invalid', 'The certificate is empty: give the PEM chain, leaf first, then the intermediate CAs (and optionally the root).');
  if (typeof c.key !== 'string' || !c.key.trim())
    reject('pem_invalid', 'The private key is empty: give the PEM private key of the leaf certificate.');
  const given = parseCertificates(c.certificate, 'the certificate chain', reject);
  if (given.length === 0) {
    reject(
      'pem_invalid',
      'The certificate field contains no "-----BEGIN CERTIFICATE-----" block: give the PEM chain, leaf first, then the intermediate CAs.',
    );
  }
  const trusted: Cert[] = [];
  (opts.extraTrust ?? []).forEach((t, i) => trusted.push(...parseCertificates(t, `trusted CA bundle #${i + 1}`, reject)));
  const key = parseKey(c.key, reject);

  // --- key ------------------------------------------------------------------
  const kt = key.asymmetricKeyType;
  if (kt !== 'rsa') reject('key_type', `The private key is ${keyTypeName(kt)}; ${WHY_RSA}. ECDSA and Ed25519 certificates are refused.`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) reject('key_size', `The RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required.`);

  // --- leaf: the certificate the key belongs to ---------------------------------
  const matching = given.filter((g) => {
    try {
      return g.node.checkPrivateKey(key);
    } catch {
      return false; // a key that cannot be compared (e.g. another key type) does not belong to this certificate
    }
  });
  if (matching.length === 0) {
    const first = given[0];
    const ft = first.node.publicKey.asymmetricKeyType;
    if (ft !== 'rsa') reject('key_type', `The leaf certificate ${describe(first)} has a ${keyTypeName(ft)} public key; ${WHY_RSA}.`);
    reject(
      'key_mismatch',
      `The private key does not match the leaf certificate ${describe(first)}` +
        (given.length > 1 ? ' nor any other certificate in the chain' : '') +
        ': the key and the certificate are not a pair.',
    );
  }
  const leaf = matching[0];
  if (isCa(leaf)) {
    reject(
      'leaf_is_ca',
      `The certificate the key belongs to, ${describe(leaf)}, is a CA certificate (basicConstraints CA:TRUE); an internode certificate must be an end-entity certificate issued by a CA.`,
    );
  }
  if (isSelfSigned(leaf)) {
    reject(
      'self_signed',
      `The leaf certificate ${describe(leaf)} is self-signed; it must be issued by a CA whose certificate (and any intermediates) is included in the chain.`,
    );
  }

  // --- leaf usages --------------------------------------------------------------
  const leafEku = ekus(leaf);
  const ekuHint =
    'Internode links are mutual TLS: each node is both client and server, so the certificate needs both "TLS Web Client Authentication" (clientAuth, 1.3.6.1.5.5.7.3.2) and "TLS Web Server Authentication" (serverAuth, 1.3.6.1.5.5.7.3.1) in its Extended Key Usage.';
  if (!leafEku && !clientFacing) {
    reject('eku_client_auth', `The leaf certificate ${describe(leaf)} has no Extended Key Usage extension. ${ekuHint}`);
  }
  const serverHint = `The ${name} certificate is presented to clients, so its Extended Key Usage must allow "TLS Web Server Authentication" (serverAuth, 1.3.6.1.5.5.7.3.1).`;
  if (clientFacing && leafEku && !leafEku.includes(OID.serverAuth)) {
    reject(
      'eku_server_auth',
      `The leaf certificate ${describe(leaf)} lacks the "TLS Web Server Authentication" (serverAuth) Extended Key Usage. ${serverHint}`,
    );
  }
  if (!clientFacing && !leafEku!.includes(OID.clientAuth)) {
    reject(
      'eku_client_auth',
      `The leaf certificate ${describe(leaf)} lacks the "TLS Web Client Authentication" (clientAuth) Extended Key Usage. ${ekuHint}`,
    );
  }
  if (!clientFacing && !leafEku!.includes(OID.serverAuth)) {
    reject(
      'eku_server_auth',
      `The leaf certificate ${describe(leaf)} lacks the "TLS Web Server Authentication" (serverAuth) Extended Key Usage. ${ekuHint}`,
    );
  }
  const ns = nsCertType(leaf);
  if (!clientFacing && ns !== undefined && !(ns & NS_SSL_CLIENT)) {
    reject(
      'eku_client_auth',
      `The leaf certificate ${describe(leaf)} has a Netscape Cert Type extension without "SSL Client"; remove the extension or allow both SSL Client and SSL Server.`,
    );
  }
  if (ns !== undefined && !(ns & NS_SSL_SERVER)) {
    reject(
      'eku_server_auth',
      `The leaf certificate ${describe(leaf)} has a Netscape Cert Type extension without "SSL Server"; remove the extension or allow both SSL Client and SSL Server.`,
    );
  }
  const leafKu = leaf.px.getExtension(x509.KeyUsagesExtension);
  if (leafKu && !(leafKu.usages & x509.KeyUsageFlags.digitalSignature)) {
    reject(
      'key_usage',
      `The leaf certificate ${describe(leaf)} has a Key Usage extension without "Digital Signature"; the cluster's TLS (ECDHE-RSA, TLS 1.3) signs the handshake with the leaf key, so it needs Digital Signature (usually with Key Encipherment).`,
    );
  }

  // --- validity -------------------------------------------------------------------
  const checkTime = (x: Cert, role: string): void => {
    const nb = x.px.notBefore.getTime();
    const na = x.px.notAfter.getTime();
    if (now < nb) {
      reject(
        'not_yet_valid',
        `The ${role} ${describe(x)} is not valid yet: it becomes valid on ${iso(x.px.notBefore)}, in ${duration((nb - now) / 1000)}. Check the issuing CA's clock, or wait.`,
      );
    }
    if (now > na) {
      reject('expired', `The ${role} ${describe(x)} expired on ${iso(x.px.notAfter)}, ${duration((now - na) / 1000)} ago.`);
    }
    if ((na - now) / 1000 <= minRemaining) {
      reject(
        'expires_too_soon',
        `The ${role} ${describe(x)} expires on ${iso(x.px.notAfter)}, in ${duration((na - now) / 1000)}; it must have more than ${duration(minRemaining)} left, ` +
          `because the cluster replaces customer certificates with its own ${duration(DEFAULT_MIN_REMAINING_SECONDS)} before they expire.`,
      );
    }
  };
  checkTime(leaf, 'leaf certificate');
  checkCritical(leaf, 'leaf certificate', reject);

  // --- the path from the leaf to a self-signed root ----------------------------
  const seen = new Set<string>();
  const pool: Cert[] = [];
  for (const x of [...given, ...trusted]) {
    if (seen.has(x.node.fingerprint256)) continue;
    seen.add(x.node.fingerprint256);
    pool.push(x);
  }

  let best: { score: number; err: CertificateRejected } | undefined;
  let visits = 0;
  const fail = (score: number, fn: () => never): void => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof CertificateRejected)) throw err;
      if (!best || score > best.score) best = { score, err };
    }
  };

  /** Extend `path` upward; returns a complete path ending at a self-signed root, or undefined (failures in `best`). */
  const extend = (path: Cert[]): Cert[] | undefined => {
    const cur = path[path.length - 1];
    const depth = path.length;
    if (++visits > 1000) return undefined;
    if (depth > MAX_PATH) {
      fail(depth * 4, () => reject('chain_invalid', `The certificate chain is longer than ${MAX_PATH} certificates.`));
      return undefined;
    }
    const candidates = pool.filter((p) => !path.includes(p) && p.subject === cur.issuer);
    if (candidates.length === 0 && depth > 1 && isSelfIssued(cur)) {
      fail(depth * 4, () =>
        reject(
          'chain_invalid',
          `The root CA certificate ${describe(cur)} names itself as issuer, but its signature does not verify with its own key: the certificate is damaged.`,
        ),
      );
      return undefined;
    }
    if (candidates.length === 0) {
      fail(depth * 4, () =>
        reject(
          'chain_incomplete',
          `The chain is incomplete: ${describe(cur)} was issued by '${cur.issuer}', whose certificate is not in the chain` +
            `${trusted.length ? ' nor among the trusted CAs' : ''}. Add every intermediate CA certificate, up to and including the root CA ` +
            `(or give the root separately).`,
        ),
      );
      return undefined;
    }
    // Intermediate CAs this CA vouches for below it (self-issued ones do not count).
    const intermediatesBelow = path.slice(1).filter((p) => !isSelfIssued(p)).length;
    for (const cand of candidates) {
      if (!verifies(cur, cand)) {
        fail(depth * 4 + 1, () =>
          reject(
            'chain_invalid',
            `The signature of ${describe(cur)} does not verify with the public key of ${describe(cand)}: ` +
              `it was signed by a different CA that has the same name. Include the CA certificate that actually issued it.`,
          ),
        );
        continue;
      }
      const akid = cur.px.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
      const skid = cand.px.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
      if (akid && skid && !hexEq(akid, skid)) {
        fail(depth * 4 + 1, () =>
          reject(
            'chain_invalid',
            `${describe(cur)} names an issuer key identifier (${akid}) different from that of ${describe(cand)} (${skid}); TLS stacks will not link them.`,
          ),
        );
        continue;
      }
      const ok = (): boolean => {
        try {
          checkIssuer(cand, cur, intermediatesBelow);
          return true;
        } catch (err) {
          if (!(err instanceof CertificateRejected)) throw err;
          fail(depth * 4 + 2, () => {
            throw err;
          });
          return false;
        }
      };
      if (!ok()) continue;
      if (isSelfSigned(cand)) return [...path, cand];
      const done = extend([...path, cand]);
      if (done) return done;
    }
    return undefined;
  };

  const checkIssuer = (ca: Cert, child: Cert, intermediatesBelow: number): void => {
    if (!isCa(ca)) {
      reject(
        'not_a_ca',
        `${describe(ca)} issued ${describe(child)} but is not a CA: it lacks basicConstraints CA:TRUE. Every issuer in the chain must be a CA certificate.`,
      );
    }
    const ku = ca.px.getExtension(x509.KeyUsagesExtension);
    if (ku && !(ku.usages & x509.KeyUsageFlags.keyCertSign)) {
      reject('not_a_ca', `${describe(ca)} issued ${describe(child)} but its Key Usage does not include "Certificate Sign" (keyCertSign).`);
    }
    const pathLen = ca.px.getExtension(x509.BasicConstraintsExtension)?.pathLength;
    if (pathLen !== undefined && intermediatesBelow > pathLen) {
      reject(
        'path_length',
        `${describe(ca)} allows at most ${pathLen} intermediate CA(s) below it (pathLenConstraint), but the chain has ${intermediatesBelow}.`,
      );
    }
    const caEku = ekus(ca);
    if (!clientFacing && caEku && !caEku.includes(OID.clientAuth)) {
      reject(
        'eku_client_auth',
        `The CA ${describe(ca)} restricts its Extended Key Usage without "TLS Web Client Authentication"; TLS stacks then refuse its client certificates.`,
      );
    }
    if (caEku && !caEku.includes(OID.serverAuth)) {
      reject(
        'eku_server_auth',
        `The CA ${describe(ca)} restricts its Extended Key Usage without "TLS Web Server Authentication"; TLS stacks then refuse its server certificates.`,
      );
    }
    const caNs = nsCertType(ca);
    if (caNs !== undefined && !(caNs & NS_SSL_CA)) {
      reject('not_a_ca', `The CA ${describe(ca)} has a Netscape Cert Type extension without "SSL CA".`);
    }
    const weak = sigIsWeak(child);
    if (weak)
      reject(
        'weak_signature',
        `${describe(child)} is signed with ${weak}, which TLS stacks refuse; it must be signed with SHA-256 or stronger.`,
      );
    checkTime(ca, isSelfSigned(ca) ? 'root CA certificate' : 'intermediate CA certificate');
    checkCritical(ca, 'CA certificate', reject);
  };

  const path = extend([leaf]);
  if (!path) {
    throw (
      best?.err ??
      new CertificateRejected('chain_incomplete', 'No path from the leaf certificate to a self-signed root CA could be built.', name)
    );
  }

  const root = path[path.length - 1];
  const intermediates = path.slice(1, -1);
  const chainPem = path
    .slice(0, -1)
    .map((p) => p.pem)
    .join('');
  const trustPems = [root, ...intermediates.slice().reverse()].map((p) => p.pem);
  const keyPem = key.export({ type: 'pkcs8', format: 'pem' }).toString();

  // --- the bundle as the cluster's TLS will load it ------------------------------
  try {
    secureContext({ certPem: chainPem, keyPem, caPem: trustPems.join('') });
  } catch (err) {
    reject('tls_context', `The certificate and key cannot be loaded for TLS with the cluster's policy: ${(err as Error).message}.`);
  }

  const chainNotAfter = Math.min(...path.map((p) => p.px.notAfter.getTime()));
  return {
    name,
    leafPem: leaf.pem,
    chainPem,
    trustPems,
    keyPem,
    serial: normalizeSerial(leaf.node.serialNumber),
    subject: leaf.subject,
    issuer: leaf.issuer,
    not_before: iso(leaf.px.notBefore),
    not_after: iso(leaf.px.notAfter),
    chain_not_after: new Date(chainNotAfter).toISOString(),
  };
}

function checkCritical(c: Cert, role: string, reject: (check: string, msg: string) => never): void {
  for (const e of c.px.extensions) {
    if (e.critical && !UNDERSTOOD_CRITICAL.has(e.type)) {
      reject(
        'critical_extension',
        `The ${role} ${describe(c)} has a critical extension ${e.type} that TLS stacks do not process, so they would refuse the certificate.`,
      );
    }
  }
}

/**
 * Validate several customer certificates; all or nothing. Throws the first
 * rejection (its `certName` says which one).
 */
export function validateCustomerCerts(list: CustomerCert[], opts: ValidateOptions = {}): ValidatedCustomerCert[] {
  return list.map((c) => validateCustomerCert(c, opts));
}
