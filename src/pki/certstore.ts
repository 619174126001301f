// An atomic holder of this node's plane certificates and of what it trusts.
// Listeners ask it for a context at each handshake and dialers at each dial,
// so a swap takes effect on the next connection and never touches live ones.
//
// Trust is the cluster's CAs (one, or two during a CA rollover: ca-list.ts)
// plus any anchors an operator added with customer certificates. A
// cluster-issued leaf must chain to one of the cluster's CAs, a customer leaf
// to the current anchors. Trust changes with `setCas` (or a bundle whose CA
// list differs), and never drops the CA of a leaf this node presents.
import type tls from 'node:tls';
import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { type Bundle, DEFAULT_KEY_EXCHANGE, type KeyExchange, contextOptions, secureContext } from '../tls/policy.js';
import { PLANE_CERT_NAME, type Plane, parseIdentity, validateBundle } from './pki.js';
import { validateCustomerCert } from './customer.js';
import { issuedByAny, joinPems, samePems, splitPems } from './ca-list.js';

function firstPem(pem: string): string {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  return m ? m[0] + '\n' : pem;
}

export class CertStore extends EventEmitter {
  private bundles = new Map<Plane, Bundle>();
  private contexts = new Map<Plane, tls.SecureContext>();
  private cas: string[];
  private anchors: string[] = [];
  private kx: KeyExchange = DEFAULT_KEY_EXCHANGE;

  constructor(initial: Record<Plane, Bundle>, extraAnchors: string[] = []) {
    super();
    this.cas = splitPems(initial.cp.caPem);
    if (this.cas.length === 0) throw new Error('no cluster CA in the bundle');
    this.anchors = extraAnchors;
    for (const plane of ['cp', 'dp'] as Plane[]) this.set(plane, initial[plane]);
  }

  /** Everything this node trusts for peers: the cluster's CAs and the operator's anchors, as one PEM bundle. */
  trustPem(): string {
    return joinPems([...this.cas, ...this.anchors]);
  }

  /**
   * Validate, then swap. A bad bundle throws and the old one stays. The
   * bundle's CA field is the cluster's CA list (the main thread hands the
   * data plane its list this way); a different list is adopted as by
   * `setCas`. A cluster-issued leaf must chain to one of the CAs.
   */
  set(plane: Plane, b: Bundle): void {
    const leaf = new X509Certificate(firstPem(b.certPem));
    const id = parseIdentity(leaf.subjectAltName);
    const cas = splitPems(b.caPem);
    if (id) {
      if (cas.length === 0) throw new Error('bundle brings no cluster CA');
      validateBundle(firstPem(b.certPem), b.keyPem, joinPems(cas));
      if (id.plane !== plane) throw new Error(`certificate is for plane ${id.plane}, not ${plane}`);
    } else {
      // An operator's certificate: chain and key checked against the anchors in force.
      validateCustomerCert(
        { name: PLANE_CERT_NAME[plane], certificate: b.certPem, key: b.keyPem },
        { extraTrust: this.anchors, minRemainingSeconds: 0 },
      );
    }
    const other: Plane = plane === 'cp' ? 'dp' : 'cp';
    if (cas.length > 0 && !samePems(cas, this.cas)) {
      const o = this.bundles.get(other);
      if (o && !this.isCustomer(other) && !issuedByAny(firstPem(o.certPem), cas))
        throw new Error(`the ${other} certificate in force is not signed by any CA of the new list`);
      this.cas = cas;
      if (o) this.rebuild(other);
    }
    const next = { certPem: b.certPem, keyPem: b.keyPem, caPem: this.trustPem() };
    const ctx = secureContext(next, this.kx);
    this.bundles.set(plane, next);
    this.contexts.set(plane, ctx);
    this.emit('change', plane);
  }

  /**
   * Trust exactly these cluster CAs (a CA rollover adds the next one, then
   * drops the old one). Refused (throws, nothing changes) when a
   * cluster-issued certificate this node presents would chain to none of them.
   */
  setCas(pems: readonly string[]): void {
    const cas = pems.map((p) => p.trim() + '\n');
    if (cas.length === 0) throw new Error('a node must trust at least one cluster CA');
    if (samePems(cas, this.cas)) return;
    for (const c of cas) new X509Certificate(c); // must parse
    for (const plane of ['cp', 'dp'] as Plane[]) {
      const b = this.bundles.get(plane);
      if (b && !this.isCustomer(plane) && !issuedByAny(firstPem(b.certPem), cas))
        throw new Error(`the ${plane} certificate in force is not signed by any CA of the new list`);
    }
    this.cas = cas;
    for (const plane of ['cp', 'dp'] as Plane[]) if (this.bundles.has(plane)) this.rebuild(plane);
  }

  /** The cluster CAs this node trusts (PEMs, issuer first as given). */
  casPem(): string[] {
    return [...this.cas];
  }

  private rebuild(plane: Plane): void {
    const b = this.bundles.get(plane)!;
    const next = { ...b, caPem: this.trustPem() };
    this.contexts.set(plane, secureContext(next, this.kx));
    this.bundles.set(plane, next);
    this.emit('change', plane);
  }

  /** Replace the operator's trust anchors; contexts are rebuilt so new handshakes use them. */
  setAnchors(anchors: string[]): void {
    const same = anchors.length === this.anchors.length && anchors.every((a, i) => a.trim() === this.anchors[i]?.trim());
    if (same) return;
    for (const a of anchors) new X509Certificate(a); // must parse
    this.anchors = anchors.map((a) => a.trim() + '\n');
    for (const plane of ['cp', 'dp'] as Plane[]) if (this.bundles.has(plane)) this.rebuild(plane);
  }

  /** Switch the internode key-exchange rule; new handshakes (both directions) follow it. */
  setKeyExchange(kx: KeyExchange): void {
    if (kx === this.kx) return;
    this.kx = kx;
    for (const [plane, b] of this.bundles) {
      this.contexts.set(plane, secureContext(b, kx));
      this.emit('change', plane);
    }
  }

  keyExchange(): KeyExchange {
    return this.kx;
  }

  /** Server options for a listener's default context (clients that send no SNI). */
  serverContextOptions(plane: Plane): tls.SecureContextOptions {
    return contextOptions(this.bundle(plane), this.kx);
  }

  anchorsPem(): string[] {
    return [...this.anchors];
  }

  bundle(plane: Plane): Bundle {
    return this.bundles.get(plane)!;
  }

  context(plane: Plane): tls.SecureContext {
    return this.contexts.get(plane)!;
  }

  /** The cluster's own CAs as one PEM bundle (not the operator's anchors). */
  caPem(): string {
    return joinPems(this.cas);
  }

  /** Is the plane's current certificate one the operator provided? */
  isCustomer(plane: Plane): boolean {
    return !parseIdentity(new X509Certificate(firstPem(this.bundle(plane).certPem)).subjectAltName);
  }
}
