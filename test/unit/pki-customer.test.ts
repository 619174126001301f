// Customer-provided internode certificates: validation before anything is
// applied. Real hierarchies (root, 0-3 intermediates, leaves) are generated
// here; every chain the validator accepts is cross-checked with
// `openssl verify -purpose sslclient|sslserver`, refused chains are checked to
// be refused for the named reason (and, where it is a chain matter, by openssl
// too), and a validated 3-level chain is used for real mutual TLS against
// `openssl s_client`.
import 'reflect-metadata';
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import { reap } from '../support/reaper.js';
import { createPrivateKey, generateKeyPairSync, X509Certificate, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import {
  validateCustomerCert,
  validateCustomerCerts,
  CertificateRejected,
  type CustomerCert,
  type ValidatedCustomerCert,
  CUSTOMER_CERT_CHECKS,
} from '../../src/pki/customer.js';
import { normalizeSerial } from '../../src/pki/pki.js';
import { BASE_OPTIONS } from '../../src/tls/policy.js';
import {
  type Entity,
  rsaKeys,
  ecKeys,
  keyPem,
  makeRoot,
  makeCa,
  makeLeaf,
  makeHierarchy,
  days,
  openssl,
  RSA_ALG,
} from '../support/pki-hierarchy.js';

const NAME = 'data_internode_encryption' as const;
const { serverAuth, clientAuth } = x509.ExtendedKeyUsage;

let tmp: string;
// RSA 2048 keys, few because generating them is the slow part: 0-3 are
// hierarchy A's root and intermediates (and are reused for other CAs, under
// other names), 4 and 5 are leaf keys.
let K: CryptoKeyPair[];
let A: { root: Entity; cas: Entity[] }; // root -> int1 -> int2 -> int3
let leafKeyPem: string;
let leafKey2Pem: string;

const pems = (...e: Entity[]): string => e.map((x) => x.pem).join('');

/** Expect a rejection with `check`; returns it for more assertions. */
function refused(c: CustomerCert, check: string, opts?: Parameters<typeof validateCustomerCert>[1]): CertificateRejected {
  let err: unknown;
  try {
    validateCustomerCert(c, opts);
  } catch (e) {
    err = e;
  }
  assert.ok(
    err instanceof CertificateRejected,
    `expected CertificateRejected(${check}), got ${err === undefined ? 'acceptance' : String(err)}`,
  );
  assert.equal(err.check, check, `wrong check; message: ${err.message}`);
  assert.ok((CUSTOMER_CERT_CHECKS as readonly string[]).includes(err.check));
  assert.ok(err.message.length > 20, 'a message an operator can read');
  if (c.name === 'ccs_internode_encryption' || c.name === 'data_internode_encryption') assert.equal(err.certName, c.name);
  else assert.equal(err.certName, undefined);
  return err;
}

let fileNo = 0;
function write(content: string): string {
  const p = path.join(tmp, `f${++fileNo}.pem`);
  fs.writeFileSync(p, content, { mode: 0o600 });
  return p;
}

/** `openssl verify` of `leafPem` against `rootPem`, with untrusted intermediates, for one purpose. */
async function opensslVerify(
  rootPem: string,
  intermediates: string[],
  leafPem: string,
  purpose: 'sslclient' | 'sslserver',
): Promise<{ ok: boolean; out: string }> {
  const args = ['verify', '-CAfile', write(rootPem)];
  if (intermediates.length) args.push('-untrusted', write(intermediates.join('')));
  args.push('-purpose', purpose, write(leafPem));
  const r = await openssl(args);
  return { ok: r.code === 0 && /: OK\s*$/.test(r.stdout), out: r.stdout + r.stderr };
}

/** Every chain the validator accepts, openssl accepts too, as client and as server certificate. */
async function assertOpensslAccepts(v: ValidatedCustomerCert): Promise<void> {
  const [root, ...inters] = v.trustPems;
  for (const purpose of ['sslclient', 'sslserver'] as const) {
    const r = await opensslVerify(root, inters, v.leafPem, purpose);
    assert.ok(r.ok, `openssl verify -purpose ${purpose} refused a chain we accepted:\n${r.out}`);
  }
}

function certsOf(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
}

/** The validated result has the right shape: chain in order, trust root first, fields. */
function assertShape(v: ValidatedCustomerCert, leaf: Entity, intermediatesUp: Entity[], root: Entity): void {
  const fp = (e: Entity) => new X509Certificate(e.pem).fingerprint256;
  assert.equal(v.name, NAME);
  assert.deepEqual(
    certsOf(v.leafPem).map((c) => c.fingerprint256),
    [fp(leaf)],
  );
  assert.deepEqual(
    certsOf(v.chainPem).map((c) => c.fingerprint256),
    [leaf, ...intermediatesUp].map(fp),
    'chain: leaf, then each intermediate up to (not including) the root',
  );
  assert.deepEqual(
    v.trustPems.map((p) => new X509Certificate(p).fingerprint256),
    [root, ...intermediatesUp.slice().reverse()].map(fp),
    'trust: root, then the intermediates',
  );
  assert.match(v.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal(v.serial, normalizeSerial(new X509Certificate(leaf.pem).serialNumber));
  assert.match(v.serial, /^[0-9a-f]+$/);
  assert.ok(!v.serial.startsWith('0'));
  assert.match(v.subject, new RegExp(`CN=${leaf.name}`));
  assert.match(v.issuer, new RegExp(`CN=${(intermediatesUp[0] ?? root).name}`));
  assert.equal(v.not_before, leaf.cert.notBefore.toISOString());
  assert.equal(v.not_after, leaf.cert.notAfter.toISOString());
  const earliest = Math.min(...[leaf, ...intermediatesUp, root].map((e) => e.cert.notAfter.getTime()));
  assert.equal(v.chain_not_after, new Date(earliest).toISOString());
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-pki-customer-'));
  K = await rsaKeys(6);
  A = await makeHierarchy('Acme', 3, K);
  leafKeyPem = await keyPem(K[4]);
  leafKey2Pem = await keyPem(K[5]);
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('accepted chains (and openssl agrees)', () => {
  for (const depth of [0, 1, 2, 3]) {
    test(`root -> ${depth} intermediate CA(s) -> leaf (${depth + 2} certificates)`, async () => {
      const issuer = depth === 0 ? A.root : A.cas[depth - 1];
      const leaf = await makeLeaf(issuer, `node-d${depth}`, K[4]);
      const up = A.cas.slice(0, depth).reverse();
      const v = validateCustomerCert({ name: NAME, certificate: pems(leaf, ...up, A.root), key: leafKeyPem });
      assertShape(v, leaf, up, A.root);
      await assertOpensslAccepts(v);
    });
  }

  test('intermediates (and even the leaf) in any order; duplicates and text around the PEM blocks ignored', async () => {
    const leaf = await makeLeaf(A.cas[2], 'node-shuffled', K[4]);
    const [i1, i2, i3] = A.cas;
    const orders = [
      [leaf, A.root, i1, i3, i2],
      [leaf, i1, i2, i3],
      [i2, A.root, leaf, i3, i1],
      [i3, i2, i1, A.root, leaf, i2],
    ];
    for (const order of orders) {
      const certificate = order.map((e) => `Bag Attributes\n    friendlyName: ${e.name}\nsubject=CN = ${e.name}\n${e.pem}`).join('\n');
      const withRoot = order.includes(A.root);
      const v = validateCustomerCert({ name: NAME, certificate, key: leafKeyPem }, withRoot ? {} : { extraTrust: [A.root.pem] });
      assertShape(v, leaf, [i3, i2, i1], A.root);
      await assertOpensslAccepts(v);
    }
  });

  test('root given via extraTrust instead of in the PEM; extraTrust may also carry the intermediates', async () => {
    const leaf = await makeLeaf(A.cas[1], 'node-extratrust', K[4]);
    const [i1, i2] = A.cas;
    const v = validateCustomerCert({ name: NAME, certificate: pems(leaf, i2, i1), key: leafKeyPem }, { extraTrust: [A.root.pem] });
    assertShape(v, leaf, [i2, i1], A.root);
    await assertOpensslAccepts(v);
    const v2 = validateCustomerCert({ name: NAME, certificate: leaf.pem, key: leafKeyPem }, { extraTrust: [pems(A.root, i1), i2.pem] });
    assertShape(v2, leaf, [i2, i1], A.root);
  });

  test('PKCS#1 key is normalised to PKCS#8; leaf with exactly 6 days left is fine; both names; validateCustomerCerts', async () => {
    const leaf = await makeLeaf(A.cas[0], 'node-pkcs1', K[4], { notAfter: new Date(Date.now() + days(6)) });
    const pkcs1 = createPrivateKey(leafKeyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
    assert.match(pkcs1, /BEGIN RSA PRIVATE KEY/);
    const [a, b] = validateCustomerCerts([
      { name: 'ccs_internode_encryption', certificate: pems(leaf, A.cas[0], A.root), key: pkcs1 },
      { name: 'data_internode_encryption', certificate: pems(leaf, A.cas[0], A.root), key: leafKeyPem },
    ]);
    assert.equal(a.name, 'ccs_internode_encryption');
    assert.equal(b.name, 'data_internode_encryption');
    assert.equal(a.keyPem, createPrivateKey(leafKeyPem).export({ type: 'pkcs8', format: 'pem' }).toString());
    assert.equal(a.keyPem, b.keyPem);
    // minRemainingSeconds is a setting: with 7 days required the same leaf is refused.
    refused({ name: NAME, certificate: pems(leaf, A.cas[0], A.root), key: leafKeyPem }, 'expires_too_soon', {
      minRemainingSeconds: 7 * 86_400,
    });
    // ...and `now` moves the clock the validator uses: 2 days on, fewer than 5 remain.
    refused({ name: NAME, certificate: pems(leaf, A.cas[0], A.root), key: leafKeyPem }, 'expires_too_soon', {
      now: new Date(Date.now() + days(2)),
    });
  });
});

describe('refused, naming the check', () => {
  const chainFor = (leaf: Entity, issuerDepth: number) => pems(leaf, ...A.cas.slice(0, issuerDepth).reverse(), A.root);

  test('garbage, truncated, or misplaced PEM: pem_invalid', async () => {
    const leaf = await makeLeaf(A.cas[0], 'node-pem', K[4]);
    const good = chainFor(leaf, 1);
    refused({ name: NAME, certificate: 'hello world', key: leafKeyPem }, 'pem_invalid');
    refused({ name: NAME, certificate: '', key: leafKeyPem }, 'pem_invalid');
    refused(
      { name: NAME, certificate: '-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n', key: leafKeyPem },
      'pem_invalid',
    );
    refused({ name: NAME, certificate: leaf.pem.slice(0, 300), key: leafKeyPem }, 'pem_invalid');
    refused({ name: NAME, certificate: good + leafKeyPem, key: leafKeyPem }, 'pem_invalid');
    refused({ name: NAME, certificate: good, key: 'not a key' }, 'pem_invalid');
    refused({ name: NAME, certificate: good, key: leaf.pem }, 'pem_invalid');
    refused({ name: NAME, certificate: good, key: leafKeyPem + leafKey2Pem }, 'pem_invalid');
    const encrypted = createPrivateKey(leafKeyPem)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' })
      .toString();
    const e = refused({ name: NAME, certificate: good, key: encrypted }, 'pem_invalid');
    assert.match(e.message, /encrypted/);
    refused({ name: NAME, certificate: good, key: leafKeyPem }, 'pem_invalid', {
      extraTrust: ['garbage'.repeat(3) + '-----BEGIN CERTIFICATE-----\n'],
    });
    refused({ name: 'bogus' as never, certificate: good, key: leafKeyPem }, 'name_invalid');
  });

  test('no client-auth EKU (RS176474), no EKU at all, no server-auth EKU', async () => {
    const noClient = await makeLeaf(A.cas[0], 'node-no-client', K[4], { eku: [serverAuth] });
    const e = refused({ name: NAME, certificate: chainFor(noClient, 1), key: leafKeyPem }, 'eku_client_auth');
    assert.match(e.message, /TLS Web Client Authentication/);
    assert.ok(
      !(await opensslVerify(A.root.pem, [A.cas[0].pem], noClient.pem, 'sslclient')).ok,
      'openssl refuses it as a client certificate too',
    );

    const noEku = await makeLeaf(A.cas[0], 'node-no-eku', K[4], { eku: null });
    refused({ name: NAME, certificate: chainFor(noEku, 1), key: leafKeyPem }, 'eku_client_auth');

    const noServer = await makeLeaf(A.cas[0], 'node-no-server', K[4], { eku: [clientAuth] });
    const e2 = refused({ name: NAME, certificate: chainFor(noServer, 1), key: leafKeyPem }, 'eku_server_auth');
    assert.match(e2.message, /TLS Web Server Authentication/);
    assert.ok(!(await opensslVerify(A.root.pem, [A.cas[0].pem], noServer.pem, 'sslserver')).ok);
  });

  test('leaf key usage without digitalSignature: key_usage', async () => {
    const leaf = await makeLeaf(A.cas[0], 'node-ku', K[4], { keyUsage: x509.KeyUsageFlags.keyEncipherment });
    refused({ name: NAME, certificate: chainFor(leaf, 1), key: leafKeyPem }, 'key_usage');
  });

  test('ECDSA leaf, Ed25519 key, 1024-bit RSA: key_type / key_size', async () => {
    const ec = await ecKeys();
    const ecLeaf = await makeLeaf(A.cas[0], 'node-ecdsa', ec);
    const e = refused({ name: NAME, certificate: chainFor(ecLeaf, 1), key: await keyPem(ec) }, 'key_type');
    assert.match(e.message, /ECDSA/);
    assert.match(e.message, /RSA/);
    // An RSA key offered with an ECDSA certificate: the certificate's key type is the problem.
    refused({ name: NAME, certificate: chainFor(ecLeaf, 1), key: leafKeyPem }, 'key_type');
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const rsaLeaf = await makeLeaf(A.cas[0], 'node-rsa', K[4]);
    assert.match(refused({ name: NAME, certificate: chainFor(rsaLeaf, 1), key: ed }, 'key_type').message, /Ed25519/);
    const [small] = await rsaKeys(1, 1024);
    const smallLeaf = await makeLeaf(A.cas[0], 'node-1024', small);
    refused({ name: NAME, certificate: chainFor(smallLeaf, 1), key: await keyPem(small) }, 'key_size');
  });

  test('key that does not match: key_mismatch', async () => {
    const leaf = await makeLeaf(A.cas[1], 'node-mismatch', K[4]);
    const e = refused({ name: NAME, certificate: chainFor(leaf, 2), key: leafKey2Pem }, 'key_mismatch');
    assert.match(e.message, /node-mismatch/);
    // The CA's key is not the leaf's either.
    refused({ name: NAME, certificate: chainFor(leaf, 2), key: await keyPem(K[2]) }, 'leaf_is_ca');
  });

  test('expired, not yet valid, expiring within 5 days (leaf or intermediate)', async () => {
    const now = Date.now();
    const expired = await makeLeaf(A.cas[0], 'node-expired', K[4], {
      notBefore: new Date(now - days(30)),
      notAfter: new Date(now - days(1)),
    });
    assert.match(refused({ name: NAME, certificate: chainFor(expired, 1), key: leafKeyPem }, 'expired').message, /expired on/);
    assert.ok(!(await opensslVerify(A.root.pem, [A.cas[0].pem], expired.pem, 'sslclient')).ok);

    const future = await makeLeaf(A.cas[0], 'node-future', K[4], {
      notBefore: new Date(now + days(1)),
      notAfter: new Date(now + days(91)),
    });
    refused({ name: NAME, certificate: chainFor(future, 1), key: leafKeyPem }, 'not_yet_valid');

    const soon = await makeLeaf(A.cas[0], 'node-soon', K[4], { notAfter: new Date(now + days(4)) });
    const e = refused({ name: NAME, certificate: chainFor(soon, 1), key: leafKeyPem }, 'expires_too_soon');
    assert.match(e.message, /5 days/);
    // It is a setting: with no margin the same certificate passes.
    validateCustomerCert({ name: NAME, certificate: chainFor(soon, 1), key: leafKeyPem }, { minRemainingSeconds: 0 });

    // An intermediate expiring in 3 days makes the whole chain useless in 3 days.
    const shortInt = await makeCa(A.root, 'Acme Short Intermediate', K[3], { notAfter: new Date(now + days(3)) });
    const leaf = await makeLeaf(shortInt, 'node-short-int', K[4]);
    assert.match(
      refused({ name: NAME, certificate: pems(leaf, shortInt, A.root), key: leafKeyPem }, 'expires_too_soon').message,
      /Acme Short Intermediate/,
    );
    const expiredInt = await makeCa(A.root, 'Acme Expired Intermediate', K[3], {
      notBefore: new Date(now - days(400)),
      notAfter: new Date(now - days(2)),
    });
    const leaf2 = await makeLeaf(expiredInt, 'node-expired-int', K[4]);
    refused({ name: NAME, certificate: pems(leaf2, expiredInt, A.root), key: leafKeyPem }, 'expired');
  });

  test('chain missing an intermediate, or the root: chain_incomplete', async () => {
    const leaf = await makeLeaf(A.cas[2], 'node-missing', K[4]);
    const [i1, i2, i3] = A.cas;
    const e = refused({ name: NAME, certificate: pems(leaf, i3, A.root, i1), key: leafKeyPem }, 'chain_incomplete');
    assert.match(e.message, /Acme Intermediate CA 2/);
    assert.ok(!(await opensslVerify(A.root.pem, [i3.pem, i1.pem], leaf.pem, 'sslclient')).ok, 'openssl also finds it incomplete');
    refused({ name: NAME, certificate: pems(leaf, i3, i2, i1), key: leafKeyPem }, 'chain_incomplete');
    refused({ name: NAME, certificate: leaf.pem, key: leafKeyPem }, 'chain_incomplete');
  });

  test('leaf signed by a different root than the one included: chain_invalid (same name) / chain_incomplete (other name)', async () => {
    // An impostor root with exactly the same name as Acme's, but its own key.
    const impostor = await makeRoot('Acme Root CA', K[1]);
    const leaf = await makeLeaf(impostor, 'node-impostor', K[4]);
    const e = refused({ name: NAME, certificate: pems(leaf, A.root), key: leafKeyPem }, 'chain_invalid');
    assert.match(e.message, /signature/);
    assert.ok(!(await opensslVerify(A.root.pem, [], leaf.pem, 'sslclient')).ok, 'openssl also refuses it');
    // The impostor given separately is just another root: the leaf chains to it.
    validateCustomerCert({ name: NAME, certificate: pems(leaf, A.root), key: leafKeyPem }, { extraTrust: [impostor.pem] });

    const other = await makeHierarchy('Globex', 1, [K[1], K[2]]);
    const leaf2 = await makeLeaf(other.cas[0], 'node-globex', K[4]);
    refused({ name: NAME, certificate: pems(leaf2, other.cas[0], A.root), key: leafKeyPem }, 'chain_incomplete');
  });

  test('an intermediate that is not a CA, or may not sign certificates: not_a_ca', async () => {
    const notCa = await makeCa(A.root, 'Acme Not A CA', K[3], {
      ca: false,
      keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign,
    });
    const leaf = await makeLeaf(notCa, 'node-not-ca', K[4]);
    const e = refused({ name: NAME, certificate: pems(leaf, notCa, A.root), key: leafKeyPem }, 'not_a_ca');
    assert.match(e.message, /CA:TRUE/);
    assert.ok(!(await opensslVerify(A.root.pem, [notCa.pem], leaf.pem, 'sslclient')).ok, 'openssl refuses it too');

    const noBc = await makeCa(A.root, 'Acme No Basic Constraints', K[3], { ca: null });
    const leaf2 = await makeLeaf(noBc, 'node-no-bc', K[4]);
    refused({ name: NAME, certificate: pems(leaf2, noBc, A.root), key: leafKeyPem }, 'not_a_ca');

    const noCertSign = await makeCa(A.root, 'Acme No CertSign', K[3], {
      keyUsage: x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
    });
    const leaf3 = await makeLeaf(noCertSign, 'node-no-certsign', K[4]);
    assert.match(refused({ name: NAME, certificate: pems(leaf3, noCertSign, A.root), key: leafKeyPem }, 'not_a_ca').message, /keyCertSign/);
    assert.ok(!(await opensslVerify(A.root.pem, [noCertSign.pem], leaf3.pem, 'sslclient')).ok);
  });

  test('pathLenConstraint exceeded, CA EKU without client auth: path_length / eku_client_auth (openssl agrees)', async () => {
    const root0 = await makeRoot('Pathlen Root', K[1], { pathLength: 0 });
    const int = await makeCa(root0, 'Pathlen Intermediate', K[2]);
    const leaf = await makeLeaf(int, 'node-pathlen', K[4]);
    refused({ name: NAME, certificate: pems(leaf, int, root0), key: leafKeyPem }, 'path_length');
    assert.ok(!(await opensslVerify(root0.pem, [int.pem], leaf.pem, 'sslclient')).ok);
    // pathLen 0 still allows a leaf right under the root.
    const direct = await makeLeaf(root0, 'node-pathlen-direct', K[4]);
    await assertOpensslAccepts(validateCustomerCert({ name: NAME, certificate: pems(direct, root0), key: leafKeyPem }));

    const serverOnlyCa = await makeCa(A.root, 'Acme Server-only CA', K[3], { eku: [serverAuth] });
    const leaf2 = await makeLeaf(serverOnlyCa, 'node-server-only-ca', K[4]);
    refused({ name: NAME, certificate: pems(leaf2, serverOnlyCa, A.root), key: leafKeyPem }, 'eku_client_auth');
    assert.ok(!(await opensslVerify(A.root.pem, [serverOnlyCa.pem], leaf2.pem, 'sslclient')).ok, 'openssl refuses its client certificates');
    assert.ok((await opensslVerify(A.root.pem, [serverOnlyCa.pem], leaf2.pem, 'sslserver')).ok);
  });

  test('CA certificate or self-signed certificate as the leaf: leaf_is_ca / self_signed', async () => {
    const caLeaf = await makeLeaf(A.cas[0], 'node-ca-leaf', K[4], { ca: true });
    refused({ name: NAME, certificate: chainFor(caLeaf, 1), key: leafKeyPem }, 'leaf_is_ca');
    const self = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '0a1b',
      name: 'CN=node-self-signed',
      notBefore: new Date(Date.now() - days(1)),
      notAfter: new Date(Date.now() + days(90)),
      signingAlgorithm: RSA_ALG,
      keys: K[4],
      extensions: [new x509.ExtendedKeyUsageExtension([serverAuth, clientAuth])],
    });
    refused({ name: NAME, certificate: self.toString('pem'), key: leafKeyPem }, 'self_signed');
  });

  test('SHA-1 signature below the root, unknown critical extension: weak_signature / critical_extension', async () => {
    // The same RSA key, imported for signing with SHA-1.
    const sha1Ca = await makeCa(A.root, 'Acme SHA1 CA', K[3]);
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', K[3].privateKey);
    const sha1Key = await webcrypto.subtle.importKey('pkcs8', pkcs8, { ...RSA_ALG, hash: 'SHA-1' }, false, ['sign']);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: '0c0ffee1',
      subject: 'CN=node-sha1,O=Tessera Test',
      issuer: sha1Ca.cert.subject,
      notBefore: new Date(Date.now() - days(1)),
      notAfter: new Date(Date.now() + days(90)),
      signingAlgorithm: { ...RSA_ALG, hash: 'SHA-1' },
      publicKey: K[4].publicKey,
      signingKey: sha1Key as CryptoKey, // node:crypto's key type is wider (ML-KEM usages) than the global one x509 names
      extensions: [new x509.ExtendedKeyUsageExtension([serverAuth, clientAuth])],
    });
    assert.equal(leaf.signatureAlgorithm.hash.name, 'SHA-1');
    refused({ name: NAME, certificate: leaf.toString('pem') + pems(sha1Ca, A.root), key: leafKeyPem }, 'weak_signature');

    const crit = await makeLeaf(A.cas[0], 'node-critical', K[4], {
      extensions: [new x509.Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([0x05, 0x00]))],
    });
    refused({ name: NAME, certificate: chainFor(crit, 1), key: leafKeyPem }, 'critical_extension');
    assert.ok(!(await opensslVerify(A.root.pem, [A.cas[0].pem], crit.pem, 'sslclient')).ok, 'openssl refuses unknown critical extensions');
  });

  test('validateCustomerCerts is all-or-nothing and says which certificate failed', async () => {
    const good = await makeLeaf(A.cas[0], 'node-good', K[4]);
    const bad = await makeLeaf(A.cas[0], 'node-bad', K[4], { eku: [serverAuth] });
    let err: unknown;
    try {
      validateCustomerCerts([
        { name: 'ccs_internode_encryption', certificate: chainFor(good, 1), key: leafKeyPem },
        { name: 'data_internode_encryption', certificate: chainFor(bad, 1), key: leafKeyPem },
      ]);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof CertificateRejected);
    assert.equal(err.check, 'eku_client_auth');
    assert.equal(err.certName, 'data_internode_encryption');
  });
});

// ---- real mutual TLS with a validated 3-level chain --------------------------

interface SClient {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `openssl s_client`, keeping stdin open until the server's line arrives (or `ms` pass). */
function sClient(args: string[], until: RegExp, ms = 6000): Promise<SClient> {
  return new Promise((resolve, reject) => {
    const p = reap(spawn('openssl', ['s_client', ...args], { stdio: ['pipe', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    const stop = () => p.stdin.end();
    const t = setTimeout(stop, ms);
    const kill = setTimeout(() => p.kill('SIGKILL'), ms + 3000);
    p.stdin.on('error', () => undefined);
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (until.test(stdout)) stop();
    });
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('a validated 3-level chain works for mutual TLS', () => {
  test('Node TLS server with chainPem/keyPem/trustPems; openssl s_client with a second leaf', async () => {
    // root -> int1 -> int2 -> leaf: three levels below the root.
    const [i1, i2] = A.cas;
    const serverLeaf = await makeLeaf(i2, 'node1-dp', K[4]);
    const clientLeaf = await makeLeaf(i2, 'node2-dp', K[5]);
    const server = validateCustomerCert(
      { name: NAME, certificate: pems(serverLeaf, i1, i2), key: leafKeyPem },
      { extraTrust: [A.root.pem] },
    );
    const client = validateCustomerCert({ name: NAME, certificate: pems(clientLeaf, i2, i1, A.root), key: leafKey2Pem });
    assert.equal(certsOf(server.chainPem).length, 3);
    await assertOpensslAccepts(server);
    await assertOpensslAccepts(client);

    const files = {
      leaf: write(client.leafPem),
      chain: write(
        certsOf(client.chainPem)
          .slice(1)
          .map((c) => c.toString())
          .join(''),
      ),
      key: write(client.keyPem),
      root: write(client.trustPems[0]),
    };

    // Once with the full trust list, once trusting only the root: then the
    // intermediates must come from what each side presents.
    // TLS 1.2 (ECDHE-RSA: why the key must be RSA) and TLS 1.3.
    const runs = [
      { ca: server.trustPems, version: '-tls1_2' },
      { ca: [server.trustPems[0]], version: '-tls1_2' },
      { ca: server.trustPems, version: '-tls1_3' },
      { ca: [server.trustPems[0]], version: '-tls1_3' },
    ];
    for (const { ca, version } of runs) {
      const seen: { authorized: boolean; error: string | null; subject: string }[] = [];
      const srv = tls.createServer(
        { ...BASE_OPTIONS, cert: server.chainPem, key: server.keyPem, ca, requestCert: true, rejectUnauthorized: true },
        (s) => {
          const peer = s.getPeerCertificate();
          seen.push({
            authorized: s.authorized,
            error: s.authorizationError ? String(s.authorizationError) : null,
            subject: peer?.subject?.CN ? String(peer.subject.CN) : '',
          });
          s.end(`authorized=${s.authorized} peer=${peer?.subject?.CN}\n`);
        },
      );
      const tlsErrors: string[] = [];
      srv.on('tlsClientError', (e) => tlsErrors.push(e.message));
      await new Promise<void>((r, j) => srv.listen(0, '127.0.30.1', r).once('error', j));
      try {
        const port = (srv.address() as { port: number }).port;
        const r = await sClient(
          [
            '-connect',
            `127.0.30.1:${port}`,
            version,
            '-cert',
            files.leaf,
            '-cert_chain',
            files.chain,
            '-key',
            files.key,
            '-CAfile',
            files.root,
            '-verify_return_error',
          ],
          /authorized=\w+/,
        );
        assert.match(
          r.stdout,
          /Verify return code: 0 \(ok\)/,
          `s_client output:\n${r.stdout}\n${r.stderr}\nserver errors: ${tlsErrors.join('; ')}`,
        );
        assert.match(r.stdout, /authorized=true peer=node2-dp/);
        assert.deepEqual(seen, [{ authorized: true, error: null, subject: 'node2-dp' }], `server errors: ${tlsErrors.join('; ')}`);
        assert.match(r.stdout, version === '-tls1_2' ? /Cipher is ECDHE-RSA-AES\d+-GCM-SHA\d+/ : /Cipher is TLS_AES_\d+_GCM_SHA\d+/);
      } finally {
        await new Promise<void>((r) => srv.close(() => r()));
      }
    }

    // And a client from another CA is turned away by the same server.
    const other = await makeHierarchy('Initech', 1, [K[1], K[2]]);
    const stranger = await makeLeaf(other.cas[0], 'stranger', K[5]);
    let accepted = 0;
    const refusedErrors: string[] = [];
    const srv = tls.createServer(
      { ...BASE_OPTIONS, cert: server.chainPem, key: server.keyPem, ca: server.trustPems, requestCert: true, rejectUnauthorized: true },
      (s) => {
        accepted++;
        s.end('authorized=true\n');
      },
    );
    srv.on('tlsClientError', (e) => refusedErrors.push(e.message));
    await new Promise<void>((r, j) => srv.listen(0, '127.0.30.1', r).once('error', j));
    try {
      const port = (srv.address() as { port: number }).port;
      const r = await sClient(
        [
          '-connect',
          `127.0.30.1:${port}`,
          '-cert',
          write(stranger.pem),
          '-cert_chain',
          write(other.cas[0].pem),
          '-key',
          files.key,
          '-CAfile',
          files.root,
        ],
        /authorized=\w+/,
        3000,
      );
      assert.doesNotMatch(r.stdout, /authorized=true/);
      assert.equal(accepted, 0);
      // Node destroys the unauthorized socket before 'secureConnection'; it shows as a client error.
      assert.ok(refusedErrors.length >= 1, 'the server refused the handshake');
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
