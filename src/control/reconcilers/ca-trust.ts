// Every node trusts the cluster's CAs as the store lists them (pki/ca-list.ts):
// the internode list goes into the cert store (3342, both directions, the
// data plane's copy too) and into `ca.pem`, which etcd reads for its peers at
// its next start and the etcd client follows; the services list goes into
// `services-ca.pem`, the bundle clients are given. What the node trusts is
// reported in its record (`ca_trust`), which a CA rollover waits on.
//
// A list that would leave a certificate this node presents unverifiable is
// refused by the cert store (logged, kept as it was, tried again at the next
// change or tick): a node that missed the reissue keeps both CAs.
import type { Logger } from 'pino';
import type { CertStore } from '../../pki/certstore.js';
import type { ServiceCerts } from '../../pki/service-certs.js';
import type { CaRecord } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore } from '../../coord/store.js';
import { joinPems, samePems, splitPems, trustedPems } from '../../pki/ca-list.js';
import { sha256Fingerprint } from '../../pki/pki.js';
import { certPath } from '../../pki/node-files.js';
import { writeFileAtomic } from '../../util/files.js';
import fs from 'node:fs';

export interface CaTrustHost {
  readonly uid: number;
  readonly cfg: { dataDir: string };
  readonly certs: CertStore;
  readonly services: ServiceCerts;
  readonly store: ClusterStore;
}

export class CaTrust {
  private readonly internode: PrefixCache<CaRecord>;
  private readonly services: PrefixCache<CaRecord>;
  private reported?: string;
  private busy = false;
  private again = false;

  constructor(
    private readonly m: CaTrustHost,
    private readonly log: Logger,
  ) {
    this.internode = m.store.cluster.caCache('internode');
    this.services = m.store.cluster.caCache('services');
    for (const c of [this.internode, this.services])
      c.on('malformed', (err: Error) => this.log.error({ err: err.message }, 'ignoring a malformed CA record'));
  }

  async start(): Promise<void> {
    await Promise.all([this.internode.start(), this.services.start()]);
    for (const c of [this.internode, this.services]) c.on('change', () => void this.apply());
    await this.apply();
  }

  async stop(): Promise<void> {
    await Promise.all([this.internode.stop(), this.services.stop()]);
  }

  /** The internode CAs the store lists (undefined before the cache has the record). */
  internodeList(): string[] | undefined {
    const rec = this.internode.items.get('');
    return rec ? trustedPems(rec) : undefined;
  }

  /** Bring the node's trust to the store's lists; one pass at a time (a change meanwhile runs another). */
  async apply(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      do {
        this.again = false;
        this.applyInternode();
        this.applyServices();
        await this.report();
      } while (this.again);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot report the CAs this node trusts yet; the next tick retries');
    } finally {
      this.busy = false;
    }
  }

  private applyInternode(): void {
    const pems = this.internodeList();
    if (!pems) return;
    if (!samePems(pems, this.m.certs.casPem())) {
      try {
        this.m.certs.setCas(pems);
        this.log.info({ cas: pems.map(sha256Fingerprint) }, 'internode trust changed');
      } catch (err) {
        // Kept as it was: dropping a CA this node's own certificate needs would cut it off.
        this.log.warn({ err: (err as Error).message }, 'not applying the internode CA list yet');
        return;
      }
    }
    // What etcd (peers, at its next start) and the etcd client read.
    const file = certPath(this.m.cfg.dataDir, 'ca');
    const want = joinPems(this.m.certs.casPem());
    let have = '';
    try {
      have = fs.readFileSync(file, 'utf8');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot read ca.pem; writing it again');
    }
    if (!samePems(splitPems(have), splitPems(want))) writeFileAtomic(file, want);
  }

  private applyServices(): void {
    const rec = this.services.items.get('');
    if (!rec) return;
    try {
      this.m.services.setCa(joinPems(trustedPems(rec)));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'not applying the services CA list');
    }
  }

  /** Record what this node trusts in its record (only when it changed). */
  private async report(): Promise<void> {
    const ca_trust = {
      internode: this.m.certs.casPem().map(sha256Fingerprint),
      services: splitPems(this.m.services.caPem() ?? '').map(sha256Fingerprint),
    };
    const key = JSON.stringify(ca_trust);
    if (key === this.reported) return;
    await this.m.store.nodes.update(this.m.uid, (rec) => ({ ...rec, ca_trust: { ...rec.ca_trust, ...ca_trust } }));
    this.reported = key;
  }

  /** A report that failed is written again (called by the rotator's tick). */
  tick(): void {
    void this.apply();
  }
}
