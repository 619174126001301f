// Each node renews its own internode certificates: when fewer than
// expiry_days_before_rotation days remain it makes a new key pair, has the
// CSR signed by the cluster CA, validates the result, swaps it in memory for
// new connections (live ones are untouched) and replaces its files. Failures
// are retried with backoff; a node that was down renews as soon as it is back
// (the check runs at start and every second). The same loop keeps the node's
// `node_internal_certs_about_to_expire` alert current.
//
// It renews the client-facing certificates (`api`, `cm`, `proxy`,
// `metrics_exporter`, signed by the services CA) on the same schedule: the
// new one goes into ServiceCerts, whose listeners (REST, UI, metrics, the
// data plane's endpoints) swap their secure context, so open connections stay.
// A node that lacks one (made before the services CA existed) gets it at start.
//
// It also carries out the on-demand rotations of every node
// (POST /v1/cluster/certificates/rotate, cert-rotation-action.ts): for each
// CertRotationRequest naming this node it renews the planes asked and
// records what it did (a CertRotatedRecord), which the master's controller
// follows into the action.
import type { Logger } from 'pino';
import type { CertStore } from '../../pki/certstore.js';
import type { ServiceCerts } from '../../pki/service-certs.js';
import type { NodeConfig, NodeIdentity } from '../membership/config.js';
import {
  type AlertSetting,
  type AlertSettingsRecord,
  type CertMeta,
  type CertRotatedRecord,
  type CertRotationRequest,
  type CustomerCertRecord,
  type CertRotationSettings,
  type NodeAlertsRecord,
  type ServiceCertRecord,
  type StoredAlertSettings,
  type StoredJobScheduler,
  type TrustRecord,
  alertSettingsWithDefaults,
  jobSchedulerWithDefaults,
} from '../../coord/schema.js';
import type { CaRecord } from '../../coord/schema-ca.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore, StoreHost } from '../../coord/store.js';
import {
  PLANE_CERT_NAME,
  type Plane,
  PLANES,
  SERVICE_NAMES,
  type ServiceName,
  certInfo,
  createCa,
  createCsr,
  generateKeyPair,
  issueFromCsr,
} from '../../pki/pki.js';
import { installPlaneFiles } from '../../pki/node-files.js';
import { parseCron, type Cron } from '../../util/cron.js';
import { joinPems, trustedPems } from '../../pki/ca-list.js';
import { CaTrust } from './ca-trust.js';

const DAY = 86_400;
const TICK_MS = 1000;

export interface RenewResult {
  plane: Plane | ServiceName;
  serial: string;
  not_after: string;
}

/** What certificate rotation needs of its node's membership (src/node/loops.ts builds it from the membership parts). */
export interface RotatorHost {
  readonly uid: number;
  readonly cfg: NodeConfig;
  readonly identity: NodeIdentity;
  readonly certs: CertStore;
  readonly customerCerts: PrefixCache<CustomerCertRecord>;
  readonly services: ServiceCerts;
  readonly serviceCustomerCerts: PrefixCache<ServiceCertRecord>;
  readonly cluster: { name: string };
  /** The node's etcd member: restarted one at a time by a CA rollover to load a changed CA list. */
  readonly etcd?: { caAtStart(): string; restart(): Promise<void> };
}
export class CertRotator {
  private readonly store: ClusterStore;
  private settings: PrefixCache<StoredJobScheduler>;
  private alertSettings: PrefixCache<StoredAlertSettings>;
  private timer?: NodeJS.Timeout;
  private renewing = new Map<Plane | ServiceName, Promise<RenewResult>>();
  private failures = new Map<Plane | ServiceName, { count: number; retryAt: number }>();
  private lastAlert?: string;
  private lastCustomerTry = 0;
  private cron?: Cron;
  private lastServiceCustomerTry = 0;
  /** The node record does not show the client-facing certificates in force yet (a failed write is retried each tick). */
  private servicesUnpublished = false;
  /** Rotations asked of every node (desired state), and those this node has reported on. */
  private rotations: PrefixCache<CertRotationRequest>;
  private readonly rotationsReported = new Set<string>();
  /** Reports whose write failed: written again (without renewing again) by the next pass. */
  private readonly rotationsUnreported = new Map<string, CertRotatedRecord>();
  private rotationsBusy = false;
  /** A request came while a pass was running: run another pass after it. */
  private rotationsAgain = false;
  /** The cluster's CA lists applied to this node's trust (ca-trust.ts). */
  readonly caTrust: CaTrust;

  constructor(
    private readonly m: RotatorHost & StoreHost,
    private readonly log: Logger,
  ) {
    this.store = m.store;
    this.settings = this.store.settings.jobSchedulerCache();
    this.alertSettings = this.store.settings.alertSettingsCache();
    this.rotations = this.store.certRotations.requestsCache();
    this.caTrust = new CaTrust(
      {
        uid: m.uid,
        cfg: m.cfg,
        certs: m.certs,
        services: m.services,
        store: m.store,
        etcd: m.etcd,
        renew: (plane, why) => this.renew(plane, why),
      },
      log.child({ component: 'ca-trust' }),
    );
    for (const cache of [this.settings, this.alertSettings, this.rotations]) {
      cache.on('malformed', (err: Error) => this.log.error({ err: err.message }, 'ignoring a malformed settings record'));
    }
  }

  rotation(): CertRotationSettings {
    return jobSchedulerWithDefaults(this.settings.values()[0]).cert_rotation_job_settings;
  }

  /** Every alert setting as the watched record has it now (defaults filled in): the disk alerts read them too. */
  alertSettingsNow(): AlertSettingsRecord {
    return alertSettingsWithDefaults(this.alertSettings.values()[0]);
  }

  alertSetting(): AlertSetting {
    return this.alertSettingsNow().node_internal_certs_about_to_expire;
  }

  async start(): Promise<void> {
    await Promise.all([this.settings.start(), this.alertSettings.start()]);
    this.m.customerCerts.on('change', () => void this.applyCustomer());
    await this.applyCustomer();
    // The client-facing certificates must exist before the services that present them start.
    await this.ensureServicesCa();
    await this.caTrust.start();
    this.m.serviceCustomerCerts.on('change', () => void this.applyServiceCustomer());
    await this.applyServiceCustomer();
    for (const name of SERVICE_NAMES)
      if (!this.m.services.isCurrent(name)) await this.renewService(name, 'missing or not from the services CA');
    await this.publishServices();
    await this.rotations.start();
    this.rotations.on('change', () => void this.applyRotations());
    await this.applyRotations();
    // A failed tick must not become an unhandled rejection (it would end the process): log it, the next one retries.
    this.timer = setInterval(
      () => void this.tick().catch((e) => this.log.error({ err: (e as Error).message }, 'certificate schedule tick failed')),
      TICK_MS,
    );
    this.timer.unref();
    await this.tick();
  }

  /** Seconds left on this node's certificate of a plane. */
  secondsLeft(plane: Plane): number {
    return (Date.parse(certInfo(this.m.certs.bundle(plane).certPem).not_after) - Date.now()) / 1000;
  }

  /** Apply the operator's certificates meant for this node; a removed one gives way to a cluster-issued one. */
  private async applyCustomer(): Promise<void> {
    // The anchors that the certificate chains to travel in another key; read them first.
    // If they cannot be read, keep the anchors in force (never fall back to none) and try later.
    let trust: TrustRecord | null;
    try {
      trust = await this.store.operatorCerts.trust();
      this.m.certs.setAnchors(trust?.anchors ?? []);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot read or apply the trust anchors; keeping the current ones');
      return;
    }
    for (const plane of PLANES) {
      const rec = this.m.customerCerts.items.get(plane);
      const current = certInfo(this.m.certs.bundle(plane).certPem).serial;
      try {
        if (rec && rec.serial !== current) {
          this.m.certs.set(plane, { certPem: rec.chain, keyPem: rec.key, caPem: this.m.certs.caPem() });
          installPlaneFiles(this.m.cfg.dataDir, plane, rec.chain, rec.key, { etcd: false });
          await this.publish(plane, rec.chain);
          this.log.info({ plane, serial: rec.serial }, 'operator-provided certificate applied');
        } else if (!rec && this.m.certs.isCustomer(plane)) {
          await this.renew(plane, 'operator certificate withdrawn');
        }
      } catch (err) {
        this.log.error({ plane, err: (err as Error).message }, 'cannot apply operator-provided certificate');
      }
    }
  }

  private async tick(): Promise<void> {
    const s = this.rotation();
    // An operator certificate that could not be applied yet is tried again.
    const pendingCustomer = PLANES.some((p) => {
      const rec = this.m.customerCerts.items.get(p);
      return rec && rec.serial !== certInfo(this.m.certs.bundle(p).certPem).serial;
    });
    if (pendingCustomer && Date.now() - this.lastCustomerTry > 5000) {
      this.lastCustomerTry = Date.now();
      await this.applyCustomer();
    }
    // Operator certificates are not rotated; 5 days before their chain expires the cluster takes over.
    for (const plane of PLANES) {
      const rec = this.m.customerCerts.items.get(plane);
      if (
        rec &&
        this.m.certs.isCustomer(plane) &&
        Date.parse(rec.chain_not_after) - Date.now() < 5 * DAY * 1000 &&
        !this.renewing.has(plane)
      ) {
        this.log.warn(
          { plane, chain_not_after: rec.chain_not_after },
          'operator-provided certificate expires within 5 days; replacing it with a cluster-issued one',
        );
        this.renew(plane, 'operator certificate about to expire')
          .then(() => this.store.operatorCerts.deleteCustomerCert(this.m.uid, plane))
          .catch((e) => this.log.warn({ plane, err: (e as Error).message }, 'cannot replace the expiring operator-provided certificate'));
      }
    }
    if (s.enabled) {
      // With a cron expression, a renewal that is due starts in a matching minute only; one that failed keeps retrying.
      let cronRun = true;
      if (s.cron_expression) {
        try {
          if (this.cron?.expression !== s.cron_expression) this.cron = parseCron(s.cron_expression);
          cronRun = this.cron.matches(new Date());
        } catch (err) {
          // The REST API validates it; a bad stored value must not stop rotation: check continuously.
          this.log.warn({ cron_expression: s.cron_expression, err: (err as Error).message }, 'ignoring an invalid cron_expression');
        }
      }
      // Stagger nodes a little so they do not all renew in the same second.
      const stagger = Math.min(60, (s.validity_days - s.expiry_days_before_rotation) * DAY * 0.01) * ((this.m.uid - 1) % 10);
      for (const plane of PLANES) {
        if (this.m.certs.isCustomer(plane)) continue;
        const due = this.secondsLeft(plane) < s.expiry_days_before_rotation * DAY - stagger;
        const f = this.failures.get(plane);
        if (due && (cronRun || f) && !this.renewing.has(plane) && (!f || Date.now() >= f.retryAt)) {
          // renew() logs the failure and sets the retry backoff itself.
          this.renew(plane, 'schedule').catch(() => undefined);
        }
      }
    }
    this.tickServices(s);
    // A request missed while a pass was running, or a report that could not be written, is taken up here.
    void this.applyRotations();
    this.caTrust.tick();
    await this.evaluateAlert().catch((err) => this.log.debug({ err: (err as Error).message }, 'alert evaluation failed'));
  }

  /** The client-facing certificates, on the internode schedule; operator ones only when about to expire. */
  private tickServices(s: CertRotationSettings): void {
    if (this.servicesUnpublished) void this.publishServices();
    // An operator certificate that could not be applied yet is tried again.
    const pending = SERVICE_NAMES.some((n) => {
      const rec = this.m.serviceCustomerCerts.items.get(n);
      const cur = this.m.services.get(n);
      return rec && (!cur || certInfo(cur.certPem).serial !== rec.serial);
    });
    if (pending && Date.now() - this.lastServiceCustomerTry > 5000) {
      this.lastServiceCustomerTry = Date.now();
      void this.applyServiceCustomer();
    }
    const stagger = Math.min(60, (s.validity_days - s.expiry_days_before_rotation) * DAY * 0.01) * ((this.m.uid - 1) % 10);
    for (const name of SERVICE_NAMES) {
      const rec = this.m.serviceCustomerCerts.items.get(name);
      const operator = !!rec && !this.m.services.isClusterIssued(name);
      let due: string | undefined;
      if (operator) {
        if (Date.parse(rec.chain_not_after) - Date.now() < 5 * DAY * 1000) due = 'operator certificate about to expire';
      } else if (!this.m.services.isCurrent(name)) due = 'missing or not from the services CA';
      else if (s.enabled && this.m.services.secondsLeft(name) < s.expiry_days_before_rotation * DAY - stagger) due = 'schedule';
      const f = this.failures.get(name);
      if (!due || this.renewing.has(name) || (f && Date.now() < f.retryAt)) continue;
      const p = this.renewService(name, due);
      if (operator)
        p.then(() => this.store.operatorCerts.deleteServiceCert(this.m.uid, name)).catch((e) =>
          this.log.warn({ name, err: (e as Error).message }, 'cannot replace the expiring operator-provided certificate'),
        );
      else p.catch(() => undefined); // logged, with its retry backoff, by doRenewService
    }
  }

  /** The services CA: adopt the cluster's, or make it once for a cluster created before it existed. */
  private async ensureServicesCa(): Promise<void> {
    let rec = await this.store.cluster.servicesCa();
    if (!rec) {
      const ca = await createCa(this.m.cluster.name, this.m.identity.cluster_id, 'services');
      if (await this.store.cluster.createServicesCa({ cert: ca.certPem, key: ca.keyPem }))
        this.log.info('services CA created (the cluster had none)');
      rec = await this.store.cluster.requireServicesCa();
    }
    this.m.services.setCa(joinPems(trustedPems(rec)));
  }

  /** Renew one client-facing certificate now (schedule, start, or an operator's one withdrawn). */
  renewService(name: ServiceName, why: string): Promise<RenewResult> {
    return this.once(name, () => this.doRenewService(name, why));
  }

  /** One renewal of a certificate at a time: a second request joins the running one. */
  private once(name: Plane | ServiceName, run: () => Promise<RenewResult>): Promise<RenewResult> {
    const running = this.renewing.get(name);
    if (running) return running;
    const p = run().finally(() => this.renewing.delete(name));
    this.renewing.set(name, p);
    return p;
  }

  private async doRenewService(name: ServiceName, why: string): Promise<RenewResult> {
    try {
      const s = (await this.store.settings.jobScheduler()).cert_rotation_job_settings;
      const ca = await this.store.cluster.requireServicesCa();
      this.m.services.setCa(joinPems(trustedPems(ca)));
      const { certPem, keyPem } = await this.issue(ca, name, s.validity_days);
      // Validated, written to disk, then swapped in every listener that presents it.
      this.m.services.set(name, { certPem, keyPem });
      await this.publishServices();
      this.failures.delete(name);
      const info = certInfo(certPem);
      this.log.info({ name, serial: info.serial, not_after: info.not_after, why }, 'client-facing certificate renewed');
      return { plane: name, serial: info.serial, not_after: info.not_after };
    } catch (err) {
      this.failed(name, err, 'client-facing certificate renewal failed; will retry');
      throw err;
    }
  }

  /** Apply the operator's client-facing certificates meant for this node; a withdrawn one gives way to a cluster-issued one. */
  private async applyServiceCustomer(): Promise<void> {
    for (const name of SERVICE_NAMES) {
      const rec = this.m.serviceCustomerCerts.items.get(name);
      const cur = this.m.services.get(name);
      try {
        if (rec && (!cur || certInfo(cur.certPem).serial !== rec.serial)) {
          this.m.services.set(name, { certPem: rec.chain, keyPem: rec.key });
          await this.publishServices();
          this.log.info({ name, serial: rec.serial }, 'operator-provided certificate applied');
        } else if (!rec && cur && !this.m.services.isClusterIssued(name)) {
          await this.renewService(name, 'operator certificate withdrawn');
        }
      } catch (err) {
        this.log.error({ name, err: (err as Error).message }, 'cannot apply operator-provided certificate');
      }
    }
  }

  /** Record what the client-facing listeners present in this node's record; a failure is logged and retried by the next tick. */
  private async publishServices(): Promise<void> {
    this.servicesUnpublished = true;
    try {
      await this.writeServicesRecord();
      this.servicesUnpublished = false;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot record the client-facing certificates in the node record yet; retrying');
    }
  }

  private async writeServicesRecord(): Promise<void> {
    // Read what is in force inside the compare-and-swap: a retried write must not put back an older certificate.
    const metas = (): Record<string, CertMeta> => {
      const out: Record<string, CertMeta> = {};
      for (const name of SERVICE_NAMES) {
        const c = this.m.services.get(name);
        if (!c) continue;
        const i = certInfo(c.certPem);
        out[name] = { name, serial: i.serial, subject: i.subject, issuer: i.issuer, not_before: i.not_before, not_after: i.not_after };
      }
      return out;
    };
    await this.store.nodes.update(this.m.uid, (rec) => ({ ...rec, service_certificates: metas() }));
  }

  /** Carry out the rotations asked of this node that it has not reported on yet, one pass at a time. */
  private async applyRotations(): Promise<void> {
    if (this.rotationsBusy) {
      this.rotationsAgain = true;
      return;
    }
    this.rotationsBusy = true;
    this.rotationsAgain = false;
    try {
      const asked = this.rotations.values();
      // Requests the master removed (finished a while ago) need no memory here.
      for (const id of [...this.rotationsReported, ...this.rotationsUnreported.keys()]) {
        if (!asked.some((r) => r.action_uid === id)) {
          this.rotationsReported.delete(id);
          this.rotationsUnreported.delete(id);
        }
      }
      for (const req of asked) {
        if (req.finished_time || !req.nodes.includes(this.m.uid) || this.rotationsReported.has(req.action_uid)) continue;
        await this.rotateFor(req);
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot carry out a certificate rotation request yet; the next tick retries');
    } finally {
      this.rotationsBusy = false;
    }
    if (this.rotationsAgain) await this.applyRotations();
  }

  private async rotateFor(req: CertRotationRequest): Promise<void> {
    let rec = this.rotationsUnreported.get(req.action_uid);
    if (!rec) {
      // Reported before this process started (it restarted since): nothing to do again.
      if (await this.store.certRotations.report(req.action_uid, this.m.uid)) {
        this.rotationsReported.add(req.action_uid);
        return;
      }
      const renewed: CertRotatedRecord['renewed'] = [];
      let error: string | undefined;
      for (const plane of req.planes) {
        // Operator-provided certificates are the operator's to replace, not ours to rotate.
        if (this.m.certs.isCustomer(plane)) continue;
        try {
          const r = await this.renew(plane, `on demand (action ${req.action_uid})`);
          renewed.push({ plane, serial: r.serial, not_after: r.not_after });
        } catch (err) {
          error = `${PLANE_CERT_NAME[plane]} was not renewed: ${(err as Error).message}`; // logged by doRenew
          break;
        }
      }
      rec = { node_uid: this.m.uid, action_uid: req.action_uid, renewed, ...(error ? { error } : {}), time: new Date().toISOString() };
      this.rotationsUnreported.set(req.action_uid, rec);
    }
    await this.store.certRotations.putReport(rec);
    this.rotationsUnreported.delete(req.action_uid);
    this.rotationsReported.add(req.action_uid);
    this.log.info(
      { action: req.action_uid, renewed: rec.renewed.map((r) => r.plane), error: rec.error },
      'certificate rotation request carried out',
    );
  }

  /** Renew one plane now (shared by the schedule and POST /v1/cluster/certificates/rotate). */
  renew(plane: Plane, why: string): Promise<RenewResult> {
    return this.once(plane, () => this.doRenew(plane, why));
  }

  private async doRenew(plane: Plane, why: string): Promise<RenewResult> {
    try {
      // Read the settings afresh: a rotation asked for right after a settings change must use them.
      const s = (await this.store.settings.jobScheduler()).cert_rotation_job_settings;
      const ca = await this.store.cluster.ca();
      const { certPem, keyPem } = await this.issue(ca, plane, s.validity_days);
      // CertStore.set validates key match, chain and validity before anything changes; the
      // record's CA list comes with it (a rollover's next CA is trusted before it issues).
      // Never narrower than what the node trusts now: the other plane may still be from the old CA.
      const cas = [...trustedPems(ca), ...this.m.certs.casPem().filter((p) => !trustedPems(ca).some((q) => q.trim() === p.trim()))];
      this.m.certs.set(plane, { certPem, keyPem, caPem: joinPems(cas) });
      installPlaneFiles(this.m.cfg.dataDir, plane, certPem, keyPem);
      const info = certInfo(certPem);
      await this.publish(plane, certPem);
      this.failures.delete(plane);
      this.log.info({ plane, serial: info.serial, not_after: info.not_after, why }, 'internode certificate renewed');
      return { plane, serial: info.serial, not_after: info.not_after };
    } catch (err) {
      this.failed(plane, err, 'certificate renewal failed; will retry');
      throw err;
    }
  }

  /** A new key and a certificate for it from `ca`, for this node (a plane or a client-facing name). */
  private async issue(ca: CaRecord, name: Plane | ServiceName, validityDays: number): Promise<{ certPem: string; keyPem: string }> {
    const kp = await generateKeyPair();
    const csrPem = await createCsr(kp, `node${this.m.uid}-${name}`);
    const certPem = await issueFromCsr(
      { certPem: ca.cert, keyPem: ca.key },
      {
        csrPem,
        clusterId: this.m.identity.cluster_id,
        uid: this.m.uid,
        plane: name,
        addr: this.m.cfg.addr,
        validitySeconds: Math.max(1, Math.round(validityDays * DAY)),
      },
    );
    return { certPem, keyPem: kp.keyPem };
  }

  /** A renewal failed: the next try waits, backing off up to a minute. */
  private failed(name: Plane | ServiceName, err: unknown, what: string): void {
    const f = this.failures.get(name) ?? { count: 0, retryAt: 0 };
    f.count++;
    f.retryAt = Date.now() + Math.min(60_000, 500 * 2 ** Math.min(f.count, 7));
    this.failures.set(name, f);
    this.log.error({ name, err: (err as Error).message, attempt: f.count }, what);
  }

  /** Record the new certificate's metadata in this node's record (what the API and other nodes read). */
  private async publish(plane: Plane, certPem: string): Promise<void> {
    const i = certInfo(certPem);
    const meta: CertMeta = {
      name: PLANE_CERT_NAME[plane],
      serial: i.serial,
      subject: i.subject,
      issuer: i.issuer,
      not_before: i.not_before,
      not_after: i.not_after,
    };
    await this.store.nodes.update(this.m.uid, (rec) => ({ ...rec, certificates: { ...rec.certificates, [plane]: meta } }));
  }

  /** The alert is true while any internode certificate of this node has fewer than `threshold` days left. */
  private async evaluateAlert(): Promise<void> {
    const a = this.alertSetting();
    let worst: { plane: Plane; left: number } | undefined;
    for (const plane of PLANES) {
      const left = this.secondsLeft(plane);
      if (!worst || left < worst.left) worst = { plane, left };
    }
    const state = a.enabled && !!worst && worst.left < a.threshold * DAY;
    const key = JSON.stringify({ state, enabled: a.enabled, threshold: a.threshold, plane: state ? worst!.plane : undefined });
    if (key === this.lastAlert) return;
    const rec: NodeAlertsRecord = {
      node_internal_certs_about_to_expire: {
        enabled: a.enabled,
        state,
        severity: 'WARNING',
        threshold: a.threshold,
        change_time: new Date().toISOString(),
        change_value: {
          state,
          ...(worst
            ? { certificate: PLANE_CERT_NAME[worst.plane], days_left: +(worst.left / DAY).toFixed(6), seconds_left: Math.round(worst.left) }
            : {}),
        },
      },
    };
    await this.store.nodes.putAlerts(this.m.uid, rec);
    this.lastAlert = key;
    if (state)
      this.log.warn(
        { alert: 'node_internal_certs_about_to_expire', certificate: PLANE_CERT_NAME[worst!.plane], seconds_left: Math.round(worst!.left) },
        'internode certificate about to expire',
      );
    else this.log.info({ alert: 'node_internal_certs_about_to_expire' }, 'alert cleared');
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([this.settings.stop(), this.alertSettings.stop(), this.rotations.stop(), this.caTrust.stop()]);
  }
}
