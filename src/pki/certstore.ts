// An atomic holder of this node's plane certificates and of what it trusts.
// Listeners ask it for a context at each handshake and dialers at each dial,
// so a swap takes effect on the next connection and never touches live ones.
//
// Trust is the cluster CA plus any anchors an operator added with customer
// certificates. A leaf swap never changes trust: a cluster-issued leaf must
// chain to the cluster CA, a customer leaf to the current anchors.
import type tls from 'node:tls';
import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { type Bundle, DEFAULT_KEY_EXCHANGE, type KeyExchange, contextOptions, secureContext } from '../tls/policy.js';
import { PLANE_CERT_NAME, type Plane, parseIdentity, validateBundle } from './pki.js';
import { validateCustomerCert } from './customer.js';

function firstPem(pem: string): string {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  return m ? m[0] + '\n' : pem;
}

export class CertStore extends EventEmitter {
  private bundles = new Map<Plane, Bundle>();
  private contexts = new Map<Plane, tls.SecureContext>();
  private clusterCa: string;
  private anchors: string[] = [];
  private kx: KeyExchange = DEFAULT_KEY_EXCHANGE;

  constructor(initial: Record<Plane, Bundle>, extraAnchors: string[] = []) {
    super();
    this.clusterCa = initial.cp.caPem.trim() + '\n';
    this.anchors = extraAnchors;
    for (const plane of ['cp', 'dp'] as Plane[]) this.set(plane, initial[plane]);
  }

  /** Everything this node trusts for peers: the cluster CA and the operator's anchors, as one PEM bundle. */
  trustPem(): string {
    return [this.clusterCa, ...this.anchors].map((p) => p.trim()).join('\n') + '\n';
  }

  /**
   * Validate, then swap. A bad bundle throws and the old one stays. The
   * bundle's own CA field is ignored for trust: it must equal the cluster CA
   * (cluster-issued leaves) and is replaced by the store's trust bundle.
   */
  set(plane: Plane, b: Bundle): void {
    const leaf = new X509Certificate(firstPem(b.certPem));
    const id = parseIdentity(leaf.subjectAltName);
    if (id) {
      if (b.caPem.trim() !== this.clusterCa.trim()) throw new Error('bundle brings a different CA than the one this node trusts');
      validateBundle(firstPem(b.certPem), b.keyPem, this.clusterCa);
      if (id.plane !== plane) throw new Error(`certificate is for plane ${id.plane}, not ${plane}`);
    } else {
      // An operator's certificate: chain and key checked against the anchors in force.
      validateCustomerCert(
        { name: PLANE_CERT_NAME[plane], certificate: b.certPem, key: b.keyPem },
        { extraTrust: this.anchors, minRemainingSeconds: 0 },
      );
    }
    const next = { certPem: b.certPem, keyPem: b.keyPem, caPem: this.trustPem() };
    const ctx = secureContext(next, this.kx);
    this.bundles.set(plane, next);
    this.contexts.set(plane, ctx);
    this.emit('change', plane);
  }

  /** Replace the operator's trust anchors; contexts are rebuilt so new handshakes use them. */
  setAnchors(anchors: string[]): void {
    const same = anchors.length === this.anchors.length && anchors.every((a, i) => a.trim() === this.anchors[i]?.trim());
    if (same) return;
    for (const a of anchors) new X509Certificate(a); // must parse
    this.anchors = anchors.map((a) => a.trim() + '\n');
    for (const plane of ['cp', 'dp'] as Plane[]) {
      const b = this.bundles.get(plane);
      if (!b) continue;
      const next = { ...b, caPem: this.trustPem() };
      this.contexts.set(plane, secureContext(next, this.kx));
      this.bundles.set(plane, next);
      this.emit('change', plane);
    }
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

  /** The cluster's own CA (not the operator's anchors). */
  caPem(): string {
    return this.clusterCa;
  }

  /** Is the plane's current certificate one the operator provided? */
  isCustomer(plane: Plane): boolean {
    return !parseIdentity(new X509Certificate(firstPem(this.bundle(plane).certPem)).subjectAltName);
  }
}
