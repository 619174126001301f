// An atomic holder of this node's plane certificates and the cluster CA.
// Listeners ask it for a context at each handshake and dialers at each dial,
// so a swap takes effect on the next connection and never touches live ones.
import tls from 'node:tls';
import { EventEmitter } from 'node:events';
import { Bundle, secureContext } from './policy.js';
import { X509Certificate } from 'node:crypto';
import { Plane, parseIdentity, validateBundle } from '../pki/pki.js';

export class CertStore extends EventEmitter {
  private bundles = new Map<Plane, Bundle>();
  private contexts = new Map<Plane, tls.SecureContext>();

  constructor(initial: Record<Plane, Bundle>) {
    super();
    for (const plane of ['cp', 'dp'] as Plane[]) this.set(plane, initial[plane]);
  }

  /**
   * Validate, then swap. A bad bundle throws and the old one stays. The chain
   * is checked against the CA this store already trusts, not the one the
   * bundle brings: a leaf swap must never change whom we trust.
   */
  set(plane: Plane, b: Bundle): void {
    const trusted = this.bundles.get('cp')?.caPem ?? this.bundles.get('dp')?.caPem ?? b.caPem;
    if (b.caPem.trim() !== trusted.trim()) throw new Error('bundle brings a different CA than the one this node trusts');
    validateBundle(b.certPem, b.keyPem, trusted);
    const id = parseIdentity(new X509Certificate(b.certPem).subjectAltName);
    if (id && id.plane !== plane) throw new Error(`certificate is for plane ${id.plane}, not ${plane}`);
    const ctx = secureContext(b);
    this.bundles.set(plane, b);
    this.contexts.set(plane, ctx);
    this.emit('change', plane);
  }

  bundle(plane: Plane): Bundle {
    return this.bundles.get(plane)!;
  }

  context(plane: Plane): tls.SecureContext {
    return this.contexts.get(plane)!;
  }

  caPem(): string {
    return this.bundles.get('cp')!.caPem;
  }
}
