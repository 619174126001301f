// Test fixtures for customer certificates: real CA hierarchies (root, any
// number of intermediates, leaves) made with @peculiar/x509 over WebCrypto,
// with knobs for every way a customer certificate can be wrong, plus an
// `openssl` runner to cross-check what the validator accepts.
import 'reflect-metadata';
import { webcrypto, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const subtle = webcrypto.subtle;

const DAY = 86_400_000;
export const RSA_ALG = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
} as const;
export const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export interface Entity {
  name: string;
  cert: x509.X509Certificate;
  pem: string;
  keys: CryptoKeyPair;
}

export async function rsaKeys(count: number, modulusLength = 2048): Promise<CryptoKeyPair[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () => subtle.generateKey({ ...RSA_ALG, modulusLength }, true, ['sign', 'verify']) as Promise<CryptoKeyPair>,
    ),
  );
}

export async function ecKeys(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function keyPem(keys: CryptoKeyPair): Promise<string> {
  const der = await subtle.exportKey('pkcs8', keys.privateKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

function serial(): string {
  const b = randomBytes(12);
  b[0] &= 0x7f;
  if (b[0] === 0) b[0] = 1;
  return b.toString('hex');
}

function sigAlgFor(keys: CryptoKeyPair): Algorithm {
  return keys.privateKey.algorithm.name === 'ECDSA' ? ({ name: 'ECDSA', hash: 'SHA-256' } as Algorithm) : RSA_ALG;
}

export interface CertOptions {
  notBefore?: Date;
  notAfter?: Date;
  /** basicConstraints; `null` leaves the extension out. Default: CA:TRUE for CAs, CA:FALSE for leaves. */
  ca?: boolean | null;
  pathLength?: number;
  /** Key usage flags; `null` leaves the extension out. */
  keyUsage?: number | null;
  /** EKU OIDs; `null` leaves the extension out. Default: serverAuth+clientAuth for leaves, none for CAs. */
  eku?: string[] | null;
  /** Extra extensions. */
  extensions?: x509.Extension[];
}

export async function makeRoot(name: string, keys: CryptoKeyPair, o: CertOptions = {}): Promise<Entity> {
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name},O=Tessera Test`,
    notBefore: o.notBefore ?? new Date(now - 30 * DAY),
    notAfter: o.notAfter ?? new Date(now + 3650 * DAY),
    signingAlgorithm: sigAlgFor(keys),
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, o.pathLength, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name, cert, pem: cert.toString('pem'), keys };
}

async function issue(issuer: Entity, name: string, keys: CryptoKeyPair, leaf: boolean, o: CertOptions): Promise<Entity> {
  const now = Date.now();
  const exts: x509.Extension[] = [];
  const ca = o.ca === undefined ? !leaf : o.ca;
  if (ca !== null) exts.push(new x509.BasicConstraintsExtension(ca, ca ? o.pathLength : undefined, true));
  const ku =
    o.keyUsage === undefined
      ? leaf
        ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
        : x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
      : o.keyUsage;
  if (ku !== null) exts.push(new x509.KeyUsagesExtension(ku, true));
  const eku = o.eku === undefined ? (leaf ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : null) : o.eku;
  if (eku !== null) exts.push(new x509.ExtendedKeyUsageExtension(eku));
  if (leaf)
    exts.push(
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: `${name}.test` },
        { type: 'ip', value: '127.0.30.1' },
      ]),
    );
  exts.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey));
  exts.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  exts.push(...(o.extensions ?? []));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${name},O=Tessera Test`,
    issuer: issuer.cert.subject,
    notBefore: o.notBefore ?? new Date(now - (leaf ? 1 : 20) * DAY),
    notAfter: o.notAfter ?? new Date(now + (leaf ? 90 : 1825) * DAY),
    signingAlgorithm: sigAlgFor(issuer.keys),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    extensions: exts,
  });
  return { name, cert, pem: cert.toString('pem'), keys };
}

export function makeCa(issuer: Entity, name: string, keys: CryptoKeyPair, o: CertOptions = {}): Promise<Entity> {
  return issue(issuer, name, keys, false, o);
}

export function makeLeaf(issuer: Entity, name: string, keys: CryptoKeyPair, o: CertOptions = {}): Promise<Entity> {
  return issue(issuer, name, keys, true, o);
}

/** A root and `depth` intermediates below it, each signed by the previous. */
export async function makeHierarchy(prefix: string, depth: number, keys: CryptoKeyPair[]): Promise<{ root: Entity; cas: Entity[] }> {
  if (keys.length < depth + 1) throw new Error('not enough keys');
  const root = await makeRoot(`${prefix} Root CA`, keys[0]);
  const cas: Entity[] = [];
  let parent = root;
  for (let i = 1; i <= depth; i++) {
    parent = await makeCa(parent, `${prefix} Intermediate CA ${i}`, keys[i]);
    cas.push(parent);
  }
  return { root, cas };
}

export function days(n: number): number {
  return n * DAY;
}

export interface OpensslResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function openssl(args: string[], timeoutMs = 10_000): Promise<OpensslResult> {
  return new Promise((resolve) => {
    execFile('openssl', args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
