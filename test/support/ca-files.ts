// A node's certificate files, read as X509 (the CA rollover tests): which CAs
// its ca.pem trusts, whether its cp/dp certificates come from a given CA.
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { TestNode } from './cluster.js';

export const certFile = (n: TestNode, f: string) => path.join(n.dataDir, 'certs', f);
export const pemsOf = (text: string) =>
  (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
export const fp = (c: X509Certificate) => `sha256:${c.fingerprint256.replace(/:/g, '').toLowerCase()}`;
export const signedBy = (leaf: X509Certificate, ca: X509Certificate) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
/** The CAs a node trusts (its ca.pem bundle). */
export const trusted = (n: TestNode) => pemsOf(fs.readFileSync(certFile(n, 'ca.pem'), 'utf8'));
/** The node's cp and dp certificates are both signed by `ca`. */
export const presentsFrom = (n: TestNode, ca: X509Certificate) =>
  ['cp.pem', 'dp.pem'].every((f) => signedBy(new X509Certificate(fs.readFileSync(certFile(n, f))), ca));
