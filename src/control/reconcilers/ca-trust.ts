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
//
// For a rollover (control/model/ca-rollover.ts) it also: renews cp and dp
// when the issuer is no longer the CA that signed them (a node that was down
// catches up the same way), and restarts its etcd member when the rollover
// names this node and etcd's trust differs from `ca.pem` (etcd 3.4 does not
// reload it). It reports which CA issued its cp/dp and what etcd loaded.
import type { Logger } from 'pino';
import type { CertStore } from '../../pki/certstore.js';
import type { ServiceCerts } from '../../pki/service-certs.js';
import type { CaRecord, CaRolloverRecord } from '../../coord/schema-ca.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore } from '../../coord/store.js';
import { issuedByAny, joinPems, samePems, splitPems, trustedPems } from '../../pki/ca-list.js';
import { type Plane, PLANES, sha256Fingerprint } from '../../pki/pki.js';
import { certPath } from '../../pki/node-files.js';
import { writeFileAtomic } from '../../util/files.js';
import fs from 'node:fs';

export interface CaTrustHost {
  readonly uid: number;
  readonly cfg: { dataDir: string };
  readonly certs: CertStore;
  readonly services: ServiceCerts;
  readonly store: ClusterStore;
  /** This node's etcd member (absent in tests without one). */
  readonly etcd?: { caAtStart(): string; restart(): Promise<void> };
  /** Renew a plane's certificate from the current issuer (the rotator's renewal). */
  renew(plane: Plane, why: string): Promise<unknown>;
}

/** How long after a failed catch-up renewal the next one is tried. */
const RETRY_MS = 5000;
/** How often the stored report is compared with what the node trusts. */
const RECHECK_MS = 15_000;
/** How long a restarted etcd member may take to serve again. */
const ETCD_READY_MS = 60_000;

export class CaTrust {
  private readonly internode: PrefixCache<CaRecord>;
  private readonly services: PrefixCache<CaRecord>;
  private readonly rollovers: PrefixCache<CaRolloverRecord>;
  private readonly lastRenew = new Map<Plane, number>();
  /** The rollover restart (action/time) this node has carried out. */
  private etcdRestarted?: string;
  private etcdRestarting = false;
  private reported?: string;
  private checkedAt = 0;
  private busy = false;
  private again = false;

  constructor(
    private readonly m: CaTrustHost,
    private readonly log: Logger,
  ) {
    this.internode = m.store.cluster.caCache('internode');
    this.services = m.store.cluster.caCache('services');
    this.rollovers = m.store.caRollovers.cache();
    for (const c of [this.internode, this.services, this.rollovers])
      c.on('malformed', (err: Error) => this.log.error({ err: err.message }, 'ignoring a malformed CA record'));
  }

  async start(): Promise<void> {
    await Promise.all([this.internode.start(), this.services.start(), this.rollovers.start()]);
    for (const c of [this.internode, this.services, this.rollovers]) c.on('change', () => void this.apply());
    await this.apply();
  }

  async stop(): Promise<void> {
    await Promise.all([this.internode.stop(), this.services.stop(), this.rollovers.stop()]);
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
        this.catchUp();
        await this.report();
        this.restartEtcdIfAsked();
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

  /** A cluster-issued cp/dp not signed by the issuer is renewed (after a rollover's promotion, or on a node's return). */
  private catchUp(): void {
    const rec = this.internode.items.get('');
    if (!rec) return;
    for (const plane of PLANES) {
      if (this.m.certs.isCustomer(plane)) continue;
      if (issuedByAny(this.m.certs.bundle(plane).certPem, [rec.cert])) continue;
      if (Date.now() - (this.lastRenew.get(plane) ?? 0) < RETRY_MS) continue;
      this.lastRenew.set(plane, Date.now());
      this.m.renew(plane, 'the cluster CA that issues certificates changed (CA rollover)').then(
        () => void this.apply(),
        (err) => this.log.warn({ plane, err: (err as Error).message }, 'cannot renew from the new issuer yet; retrying'),
      );
    }
  }

  /** The CA (fingerprint) among those trusted that signed a plane's certificate. */
  private issuerOf(plane: Plane): string | undefined {
    const pem = this.m.certs.bundle(plane).certPem;
    const ca = this.m.certs.casPem().find((c) => issuedByAny(pem, [c]));
    return ca ? sha256Fingerprint(ca) : undefined;
  }

  /** The rollover asks this node to restart its etcd member: once per ask, and only if etcd's trust is not ca.pem's. */
  private restartEtcdIfAsked(): void {
    const etcd = this.m.etcd;
    if (!etcd || this.etcdRestarting) return;
    const ask = this.rollovers.values().find((r) => !r.finished_time && r.etcd_restart === this.m.uid);
    if (!ask) return;
    const id = `${ask.action_uid}@${ask.etcd_restart_time ?? ''}`;
    if (this.etcdRestarted === id) return;
    const want = this.m.certs.casPem();
    if (samePems(splitPems(etcd.caAtStart()), want)) {
      this.etcdRestarted = id;
      return;
    }
    this.etcdRestarting = true;
    const t0 = Date.now();
    this.log.info({ action: ask.action_uid, cas: want.map(sha256Fingerprint) }, 'restarting the etcd member to load the CA list');
    void (async () => {
      try {
        await etcd.restart();
        const deadline = Date.now() + ETCD_READY_MS;
        for (;;) {
          try {
            await this.m.store.ping();
            break;
          } catch (err) {
            if (Date.now() > deadline) throw err;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        this.etcdRestarted = id;
        this.log.info({ action: ask.action_uid, ms: Date.now() - t0 }, 'etcd member restarted with the CA list');
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'etcd member restart for the CA list failed; asked again at the next pass');
      } finally {
        this.etcdRestarting = false;
        void this.apply();
      }
    })();
  }

  /** Record what this node trusts in its record (only when it changed). */
  private async report(): Promise<void> {
    const etcd = this.m.etcd ? splitPems(this.m.etcd.caAtStart()).map(sha256Fingerprint) : undefined;
    const ca_trust = {
      internode: this.m.certs.casPem().map(sha256Fingerprint),
      services: splitPems(this.m.services.caPem() ?? '').map(sha256Fingerprint),
      ...(etcd ? { etcd } : {}),
      issued_by: { cp: this.issuerOf('cp'), dp: this.issuerOf('dp') },
    };
    const key = JSON.stringify(ca_trust);
    // Now and then the stored record is checked too: a full rewrite of the node record (a restart's) drops the report.
    if (key === this.reported && Date.now() - this.checkedAt < RECHECK_MS) return;
    this.checkedAt = Date.now();
    if (key === this.reported && JSON.stringify((await this.m.store.nodes.get(this.m.uid))?.ca_trust) === JSON.stringify(ca_trust)) return;
    await this.m.store.nodes.update(this.m.uid, (rec) => ({ ...rec, ca_trust: { ...rec.ca_trust, ...ca_trust } }));
    this.reported = key;
  }

  /** A report that failed is written again (called by the rotator's tick). */
  tick(): void {
    void this.apply();
  }
}
