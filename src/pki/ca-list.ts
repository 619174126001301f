// A cluster CA as a list: every node trusts every CA in `cas` and issues from
// the issuer (the record's own `cert`/`key`, which is what 0.1.0 nodes read).
// A record without `cas` is the one-CA list of 0.1.0: [issuer, active].
//
//   trustedPems(rec)      // what listeners, dialers and etcd trust
//   caList(rec)           // every CA with its state, for GET /v1/cluster/certificates
//
// States: `active` issues; `next` is trusted and will issue (rollover, before
// every node trusts it); `retiring` is trusted while leaves it signed are
// replaced, then removed.
import { X509Certificate } from 'node:crypto';
import { sha256Fingerprint } from './pki.js';

export type CaState = 'active' | 'next' | 'retiring';
export const CA_STATES: readonly CaState[] = ['active', 'next', 'retiring'];

/** The shape of a stored CA record that this module reads (coord/schema.ts `CaRecord`). */
export interface CaListRecord {
  cert: string;
  key: string;
  cas?: Array<{ cert: string; key?: string; state: CaState }>;
}

export interface CaView {
  state: CaState;
  cert: string;
  fingerprint: string;
  subject: string;
  not_before: string;
  not_after: string;
}

const PEM_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle, each normalized (trimmed, one trailing newline). */
export function splitPems(bundle: string): string[] {
  return (bundle.match(PEM_RE) ?? []).map((p) => p.trim() + '\n');
}

/** One PEM bundle of certificates, in order. */
export function joinPems(pems: readonly string[]): string {
  return pems.map((p) => p.trim()).join('\n') + '\n';
}

const same = (a: string, b: string) => a.trim() === b.trim();

/** Every CA of the record with its state; the issuer is always in it, `active`. */
export function caEntries(rec: CaListRecord): Array<{ cert: string; key?: string; state: CaState }> {
  const listed = rec.cas ?? [];
  if (!listed.some((c) => same(c.cert, rec.cert))) return [{ cert: rec.cert, key: rec.key, state: 'active' }, ...listed];
  return listed.map((c) => (same(c.cert, rec.cert) ? { ...c, state: 'active' as const } : c));
}

/** The PEMs every node trusts for this CA (issuer first). */
export function trustedPems(rec: CaListRecord): string[] {
  const e = caEntries(rec);
  return [...e.filter((c) => c.state === 'active'), ...e.filter((c) => c.state !== 'active')].map((c) => c.cert.trim() + '\n');
}

/** What an operator sees of each CA (no keys). */
export function caList(rec: CaListRecord): CaView[] {
  return caEntries(rec).map((c) => {
    const x = new X509Certificate(c.cert);
    return {
      state: c.state,
      cert: c.cert.trim() + '\n',
      fingerprint: sha256Fingerprint(c.cert),
      subject: x.subject.replace(/\n/g, ', '),
      not_before: new Date(x.validFrom).toISOString(),
      not_after: new Date(x.validTo).toISOString(),
    };
  });
}

/** Does `leafPem` chain directly to one of `caPems` (signature and issuer name)? */
export function issuedByAny(leafPem: string, caPems: readonly string[]): boolean {
  const leaf = new X509Certificate(leafPem);
  return caPems.some((p) => {
    const ca = new X509Certificate(p);
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  });
}

/** The same set of certificates (order aside)? */
export function samePems(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((p) => b.some((q) => same(p, q)));
}
