// A node's certificate files, read as X509 (the CA rollover tests): which CAs
// its ca.pem trusts, whether its cp/dp certificates come from a given CA; and
// the length of each phase of a rollover, from its record.
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { TestNode } from './cluster.js';
import type { CaRolloverRecord } from '../../src/coord/schema-ca.js';

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

/** Each phase of a rollover and how long it took (s), in order, from the record's `phase_times`. */
export function phaseDurations(rec: Pick<CaRolloverRecord, 'phase_times' | 'finished_time'>): [string, number][] {
  const times = Object.entries(rec.phase_times ?? {}).sort((a, b) => Date.parse(a[1]) - Date.parse(b[1]));
  return times.map(([phase, at], i) => {
    const end = i + 1 < times.length ? Date.parse(times[i + 1][1]) : Date.parse(rec.finished_time ?? at);
    return [phase, (end - Date.parse(at)) / 1000];
  });
}
