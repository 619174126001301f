// An atomic holder of a node's client-facing certificates (`api`, `cm`,
// `proxy`, `metrics_exporter`) and of the services CA that signs them.
//
//   const services = ServiceCerts.load(dataDir);
//   services.on('change', (name) => server.setSecureContext(httpsServerOptions(services.get(name)!)));
//   services.set('api', { certPem, keyPem });   // validated first; a bad one throws and the old one stays
//
// Listeners swap their secure context on 'change', so a renewal takes effect
// on the next handshake and never touches open connections. A cluster-issued
// certificate must chain to the services CA; an operator's certificate was
// validated by customer.ts before it got here and is only checked for key
// match and validity.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { SERVICE_NAMES, type ServiceName, certInfo, parseIdentity, validateBundle } from './pki.js';
import { writeFileAtomic } from '../util/files.js';
import { certPath, installServiceFiles, readServiceFiles } from './node-files.js';
import { joinPems, splitPems } from './ca-list.js';

export interface ServiceCert {
  certPem: string;
  keyPem: string;
}

function leafOf(pem: string): X509Certificate {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  return new X509Certificate(m ? m[0] : pem);
}

export class ServiceCerts extends EventEmitter {
  private readonly certs = new Map<ServiceName, ServiceCert>();

  constructor(
    private readonly dataDir: string,
    private ca: string | undefined,
  ) {
    super();
  }

  /** What the node's files hold (any certificate may be missing on a node made before the services CA existed). */
  static load(dataDir: string): ServiceCerts {
    const caFile = certPath(dataDir, 'servicesCa');
    const s = new ServiceCerts(dataDir, fs.existsSync(caFile) ? fs.readFileSync(caFile, 'utf8') : undefined);
    for (const name of SERVICE_NAMES) {
      const c = readServiceFiles(dataDir, name);
      if (c) s.certs.set(name, c);
    }
    return s;
  }

  caPem(): string | undefined {
    return this.ca;
  }

  /**
   * Adopt the services CA bundle (written to `services-ca.pem` for clients):
   * the issuer first, then any other CA clients should trust (a rollover's).
   */
  setCa(caPem: string): void {
    const pems = splitPems(caPem);
    if (pems.length === 0) throw new Error('no certificate in the services CA bundle');
    const pem = joinPems(pems);
    if (pem === this.ca) return;
    for (const p of pems) new X509Certificate(p); // must parse
    this.ca = pem;
    writeFileAtomic(certPath(this.dataDir, 'servicesCa'), pem);
  }

  get(name: ServiceName): ServiceCert | undefined {
    return this.certs.get(name);
  }

  /** Was this certificate issued by the cluster (it carries a tessera identity), rather than given by the operator? */
  isClusterIssued(name: ServiceName): boolean {
    const c = this.certs.get(name);
    return !!c && !!parseIdentity(leafOf(c.certPem).subjectAltName);
  }

  /** Is it a cluster-issued certificate of the current services CA, the bundle's issuer? (false when missing, or from another CA.) */
  isCurrent(name: ServiceName): boolean {
    const c = this.certs.get(name);
    if (!c || !this.ca) return false;
    if (!this.isClusterIssued(name)) return true; // the operator's: the operator's to replace
    const issuer = new X509Certificate(splitPems(this.ca)[0]);
    return leafOf(c.certPem).checkIssued(issuer) && leafOf(c.certPem).verify(issuer.publicKey);
  }

  /** Seconds left on a certificate (-Infinity when there is none). */
  secondsLeft(name: ServiceName): number {
    const c = this.certs.get(name);
    return c ? (Date.parse(certInfo(c.certPem).not_after) - Date.now()) / 1000 : -Infinity;
  }

  /** Validate, install on disk, swap in memory, and tell the listeners. A bad bundle throws and nothing changes. */
  set(name: ServiceName, c: ServiceCert): void {
    const leaf = leafOf(c.certPem);
    if (parseIdentity(leaf.subjectAltName)) {
      if (!this.ca) throw new Error('no services CA to check the certificate against');
      validateBundle(leaf.toString(), c.keyPem, this.ca, 'the services CA');
    } else {
      if (!leaf.checkPrivateKey(createPrivateKey(c.keyPem))) throw new Error('private key does not match certificate');
      if (Date.now() > Date.parse(leaf.validTo)) throw new Error('certificate has expired');
    }
    installServiceFiles(this.dataDir, name, c.certPem, c.keyPem);
    this.certs.set(name, { certPem: c.certPem, keyPem: c.keyPem });
    this.emit('change', name);
  }
}
