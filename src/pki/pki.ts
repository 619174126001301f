// The cluster's private CA: key pairs, CSRs, issuing plane certificates, and
// reading certificates back. Every node generates its own keys; only CSRs and
// certificates travel. Built on @peculiar/x509 over Node's WebCrypto.
import 'reflect-metadata';
import { webcrypto, randomBytes, X509Certificate, createPrivateKey } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const subtle = webcrypto.subtle;
const RSA_ALG = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
} as const;

/** Internode planes. `cp` = control plane, `dp` = data plane. */
import type { Plane } from '../tls/contexts.js';
export type { Plane };
export const PLANES: readonly Plane[] = ['cp', 'dp'];
/** Redis Enterprise's certificate names for the two planes. */
export type CertName = 'ccs_internode_encryption' | 'data_internode_encryption';
export const PLANE_CERT_NAME: Record<Plane, CertName> = {
  cp: 'ccs_internode_encryption',
  dp: 'data_internode_encryption',
};
export const CERT_NAMES: readonly CertName[] = [PLANE_CERT_NAME.cp, PLANE_CERT_NAME.dp];
export const planeOfCertName = (name: CertName): Plane => (name === PLANE_CERT_NAME.cp ? 'cp' : 'dp');

/**
 * The client-facing certificates, by Redis Enterprise's names: `api` (REST),
 * `cm` (web UI), `proxy` (database endpoints), `metrics_exporter` (8070).
 * They are signed by the cluster's services CA, never by the internode CA.
 */
export type ServiceName = 'api' | 'cm' | 'proxy' | 'metrics_exporter';
export const SERVICE_NAMES: readonly ServiceName[] = ['api', 'cm', 'proxy', 'metrics_exporter'];
export const isServiceName = (n: unknown): n is ServiceName => (SERVICE_NAMES as readonly unknown[]).includes(n);

export interface KeyPair {
  keys: CryptoKeyPair;
  keyPem: string;
}
export interface Issued {
  certPem: string;
  keyPem: string;
}

const DAY_MS = 86_400_000;

export async function generateKeyPair(modulusLength = 2048): Promise<KeyPair> {
  const keys = (await subtle.generateKey({ ...RSA_ALG, modulusLength }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pkcs8 = await subtle.exportKey('pkcs8', keys.privateKey);
  return { keys, keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

async function importKeyPair(certPem: string, keyPem: string): Promise<CryptoKeyPair> {
  const der = x509.PemConverter.decode(keyPem)[0];
  const privateKey = await subtle.importKey('pkcs8', der, RSA_ALG, true, ['sign']);
  const cert = new x509.X509Certificate(certPem);
  const publicKey = await cert.publicKey.export(RSA_ALG, ['verify']);
  return { privateKey, publicKey } as CryptoKeyPair;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f; // positive INTEGER
  if (b[0] === 0) b[0] = 1; // no leading zero byte, so the hex form is stable
  return b.toString('hex');
}

/**
 * Make one of a cluster's CAs: RSA, self-signed, 10 years, unique per call.
 * `internode` (the default) signs cp/dp (and etcd) certificates and never
 * leaves the cluster; `services` signs the client-facing certificates.
 */
export async function createCa(
  clusterName: string,
  clusterId: string,
  kind: 'internode' | 'services' = 'internode',
  /** A successor's mark (a rollover): its subject differs from the CA it replaces, so chains never mix them up. */
  generation?: string,
): Promise<Issued> {
  const kp = await generateKeyPair(3072);
  const now = new Date(Date.now() - 60_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Tessera ${kind === 'internode' ? 'cluster' : 'services'} CA ${clusterName}${generation ? ` ${generation}` : ''},O=Tessera,OU=${clusterId}`,
    notBefore: now,
    notAfter: new Date(now.getTime() + 3650 * DAY_MS),
    signingAlgorithm: RSA_ALG,
    keys: kp.keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(kp.keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: kp.keyPem };
}

/** A CSR for a node's own key. The CA decides the identity; the CSR only proves the key. */
export async function createCsr(kp: KeyPair, commonName: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys: kp.keys,
    signingAlgorithm: RSA_ALG,
  });
  return csr.toString('pem');
}

export function identityUri(clusterId: string, uid: number, plane: Plane | ServiceName): string {
  return `tessera://${clusterId}/node/${uid}/${plane}`;
}

export interface IssueRequest {
  csrPem: string;
  clusterId: string;
  uid: number;
  plane: Plane | ServiceName;
  addr: string;
  validitySeconds: number;
}

function ipSans(addr: string): x509.JsonGeneralName[] {
  const names: x509.JsonGeneralName[] = [{ type: 'ip', value: addr }];
  // etcd's peer port matches the client certificate's SAN against the source
  // address; on loopback that source is 127.0.0.1 whatever the node's address.
  if (addr.startsWith('127.') && addr !== '127.0.0.1') names.push({ type: 'ip', value: '127.0.0.1' });
  return names;
}

/**
 * Sign a node's CSR for one plane (client- and server-auth EKUs: every
 * internode link is mTLS) or one client-facing service (server-auth only).
 */
export async function issueFromCsr(ca: Issued, req: IssueRequest): Promise<string> {
  const csr = new x509.Pkcs10CertificateRequest(req.csrPem);
  if (!(await csr.verify())) throw new Error('CSR signature does not verify');
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKeys = await importKeyPair(ca.certPem, ca.keyPem);
  const now = Date.now() - 60_000;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=node${req.uid}-${req.plane},O=Tessera,OU=${req.clusterId}`,
    issuer: caCert.subject,
    notBefore: new Date(now),
    notAfter: new Date(now + 60_000 + req.validitySeconds * 1000),
    signingAlgorithm: RSA_ALG,
    publicKey: csr.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(
        isServiceName(req.plane)
          ? [x509.ExtendedKeyUsage.serverAuth]
          : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
      ),
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: identityUri(req.clusterId, req.uid, req.plane) },
        ...ipSans(req.addr),
        { type: 'dns', value: `node${req.uid}.${req.plane.replace(/_/g, '-')}.tessera` },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
    ],
  });
  return cert.toString('pem');
}

/** Generate key + CSR locally and have `sign` turn the CSR into a certificate. */
export async function issueLocally(ca: Issued, req: Omit<IssueRequest, 'csrPem'>): Promise<Issued> {
  const kp = await generateKeyPair();
  const csrPem = await createCsr(kp, `node${req.uid}-${req.plane}`);
  return { certPem: await issueFromCsr(ca, { ...req, csrPem }), keyPem: kp.keyPem };
}

/** A throwaway self-signed certificate: the REST API's before the node has a cluster. */
export async function selfSigned(addr: string, days = 365): Promise<Issued> {
  const kp = await generateKeyPair();
  const now = Date.now() - 60_000;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=tessera-bootstrap-${addr}`,
    notBefore: new Date(now),
    notAfter: new Date(now + days * DAY_MS),
    signingAlgorithm: RSA_ALG,
    keys: kp.keys,
    extensions: [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: addr }]),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: kp.keyPem };
}

/** A certificate's SHA-256 fingerprint as Tessera prints and takes it: `sha256:<64 lower-case hex>`. */
export function sha256Fingerprint(pem: string): string {
  return 'sha256:' + new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
}

/** A fingerprint as an operator may type it (`sha256:AB:CD…`, `ab cd…`, plain hex), normalized; undefined if it is not one. */
export function parseFingerprint(s: string): string | undefined {
  const hex = s
    .trim()
    .replace(/^sha256:/i, '')
    .replace(/[:\s]/g, '')
    .toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? `sha256:${hex}` : undefined;
}

export interface CertInfo {
  serial: string; // lower-case hex, as Node's getPeerCertificate().serialNumber lower-cased
  subject: string;
  issuer: string;
  not_before: string;
  not_after: string;
  fingerprint256: string;
  uri?: string;
  clusterId?: string;
  uid?: number;
  plane?: string;
}

const URI_RE = /^tessera:\/\/([^/]+)\/node\/(\d+)\/(cp|dp|api|cm|proxy|metrics_exporter)$/;

/** Parse the tessera identity out of a SAN string as Node prints it ("URI:..., IP Address:..."). */
export function parseIdentity(
  subjectAltName: string | undefined,
): { clusterId: string; uid: number; plane: string; uri: string } | undefined {
  if (!subjectAltName) return undefined;
  for (const part of subjectAltName.split(/,\s*/)) {
    if (!part.startsWith('URI:')) continue;
    const uri = part.slice(4);
    const m = URI_RE.exec(uri);
    if (m) return { clusterId: m[1], uid: Number(m[2]), plane: m[3], uri };
  }
  return undefined;
}

export function normalizeSerial(s: string): string {
  return s.replace(/:/g, '').toLowerCase().replace(/^0+/, '');
}

export function certInfo(pem: string): CertInfo {
  const c = new X509Certificate(pem);
  const id = parseIdentity(c.subjectAltName);
  return {
    serial: normalizeSerial(c.serialNumber),
    subject: c.subject.replace(/\n/g, ', '),
    issuer: c.issuer.replace(/\n/g, ', '),
    not_before: new Date(c.validFrom).toISOString(),
    not_after: new Date(c.validTo).toISOString(),
    fingerprint256: c.fingerprint256,
    ...(id ? { uri: id.uri, clusterId: id.clusterId, uid: id.uid, plane: id.plane } : {}),
  };
}

/**
 * Check a key/certificate bundle before it is used: key matches, chain ends at
 * the CA (or one of the CAs of a bundle), currently valid. Throws with the failing check named.
 */
export function validateBundle(certPem: string, keyPem: string, caPem: string, caName = 'the cluster CA'): void {
  const cert = new X509Certificate(certPem);
  const key = createPrivateKey(keyPem);
  if (!cert.checkPrivateKey(key)) throw new Error('private key does not match certificate');
  // `caPem` may be a bundle (a CA rollover trusts two): the leaf must be signed by one of them.
  const cas = (caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [caPem]).map((p) => new X509Certificate(p));
  if (!cas.some((ca) => cert.verify(ca.publicKey) && cert.checkIssued(ca))) throw new Error(`certificate is not signed by ${caName}`);
  const now = Date.now();
  if (now < Date.parse(cert.validFrom)) throw new Error('certificate is not yet valid');
  if (now > Date.parse(cert.validTo)) throw new Error('certificate has expired');
}
