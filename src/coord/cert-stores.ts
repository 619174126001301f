// The certificate resources of the cluster store (coord/store.ts): what
// operators give (trust anchors, their certificates) and the rotation of
// every node's certificates. Reached as `store.operatorCerts` and
// `store.certRotations`.
import type { Etcd3 } from 'etcd3';
import {
  KEYS,
  type ActionRecord,
  CertIdentityRecord,
  CertRotatedRecord,
  CertRotationRequest,
  CustomerCertRecord,
  ServiceCertRecord,
  TrustRecord,
} from './schema.js';
import { CaRolloverRecord } from './schema-ca.js';
import { readRecord, readRecords, updateRecord } from './records.js';
import { PrefixCache } from './watch.js';

const json = (v: unknown) => JSON.stringify(v);

/** What operators give: trust anchors, and certificates for nodes' planes and client-facing services. */
export interface OperatorCerts {
  /** Every trust anchor, the new ones added. */
  anchors: string[];
  customer: CustomerCertRecord[];
  identities: CertIdentityRecord[];
  service: ServiceCertRecord[];
}

export class OperatorCertStore {
  constructor(private readonly c: Etcd3) {}

  trust(): Promise<TrustRecord | null> {
    return readRecord(this.c, KEYS.trust, TrustRecord);
  }

  /**
   * Record operator certificates with the trust anchors and identities they
   * need, in one transaction, so no node presents a certificate its peers
   * cannot place. False when there is no cluster.
   */
  async apply(o: OperatorCerts): Promise<boolean> {
    const c = this.c;
    const ops = [
      c.put(KEYS.trust).value(json({ anchors: o.anchors } satisfies TrustRecord)),
      ...o.customer.map((r) => c.put(KEYS.customerCert(r.uid, r.plane)).value(json(r))),
      ...o.identities.map((r) => c.put(KEYS.certIdentity(r.serial)).value(json(r))),
      ...o.service.map((r) => c.put(KEYS.serviceCert(r.uid, r.name)).value(json(r))),
    ];
    const r = await c
      .if(KEYS.cluster, 'Create', '>', 0)
      .then(...ops)
      .commit();
    return r.succeeded;
  }

  /** A node's operator certificate for a plane is given up (the cluster issues its own again). */
  async deleteCustomerCert(uid: number, plane: CustomerCertRecord['plane']): Promise<void> {
    await this.c.delete().key(KEYS.customerCert(uid, plane));
  }

  async deleteServiceCert(uid: number, name: ServiceCertRecord['name']): Promise<void> {
    await this.c.delete().key(KEYS.serviceCert(uid, name));
  }

  /** Watched copies (start them): the trust anchors (one item, ''), identities by serial, one node's certificates by plane or by name. */
  trustCache(): PrefixCache<TrustRecord> {
    return new PrefixCache(this.c, KEYS.trust, TrustRecord);
  }
  identitiesCache(): PrefixCache<CertIdentityRecord> {
    return new PrefixCache(this.c, KEYS.certIdentitiesPrefix, CertIdentityRecord);
  }
  customerCertsCache(uid: number): PrefixCache<CustomerCertRecord> {
    return new PrefixCache(this.c, `${KEYS.customerCertsPrefix}${uid}/`, CustomerCertRecord);
  }
  serviceCertsCache(uid: number): PrefixCache<ServiceCertRecord> {
    return new PrefixCache(this.c, `${KEYS.serviceCertsPrefix}${uid}/`, ServiceCertRecord);
  }
}

// --- rotation of every node's certificates (control/controllers/cert-rotation-action.ts) ---

export class CertRotationStore {
  constructor(private readonly c: Etcd3) {}

  /** The action and the request that asks the nodes for it, in one transaction; false when the action exists. */
  async create(action: ActionRecord, request: CertRotationRequest): Promise<boolean> {
    const r = await this.c
      .if(KEYS.action(Number(action.action_uid)), 'Create', '==', 0)
      .then(
        this.c.put(KEYS.action(Number(action.action_uid))).value(json(action)),
        this.c.put(KEYS.certRotation(request.action_uid)).value(json(request)),
      )
      .commit();
    return r.succeeded;
  }

  request(actionUid: string): Promise<CertRotationRequest | null> {
    return readRecord(this.c, KEYS.certRotation(actionUid), CertRotationRequest);
  }

  /**
   * Record a rotation's outcome (compare-and-swap): the request is marked
   * finished with `failed`, unless it is gone or finished already. Resolves
   * with the stored request (the earlier outcome when there was one).
   */
  finishRequest(actionUid: string, failed?: CertRotationRequest['failed']): Promise<CertRotationRequest | undefined> {
    return updateRecord(this.c, KEYS.certRotation(actionUid), CertRotationRequest, (cur) =>
      cur && !cur.finished_time ? { ...cur, finished_time: new Date().toISOString(), ...(failed ? { failed } : {}) } : undefined,
    );
  }

  async putRequest(rec: CertRotationRequest): Promise<void> {
    await this.c.put(KEYS.certRotation(rec.action_uid)).value(json(rec));
  }

  /** What node `node` reported for the rotation, if it did. */
  report(actionUid: string, node: number): Promise<CertRotatedRecord | null> {
    return readRecord(this.c, KEYS.certRotated(actionUid, node), CertRotatedRecord);
  }

  async reports(actionUid: string): Promise<CertRotatedRecord[]> {
    return [...(await readRecords(this.c, `${KEYS.certRotatedPrefix}${actionUid}/`, CertRotatedRecord)).values()];
  }

  async putReport(rec: CertRotatedRecord): Promise<void> {
    await this.c.put(KEYS.certRotated(rec.action_uid, rec.node_uid)).value(json(rec));
  }

  /** Remove a finished rotation's request and reports. */
  async forget(actionUid: string): Promise<void> {
    await this.c.delete().key(KEYS.certRotation(actionUid));
    await this.c.delete().prefix(`${KEYS.certRotatedPrefix}${actionUid}/`);
  }

  /** Watched copies (start them): the requests by action uid, the reports by `<action uid>/<node uid>`. */
  requestsCache(): PrefixCache<CertRotationRequest> {
    return new PrefixCache(this.c, KEYS.certRotationsPrefix, CertRotationRequest);
  }
  reportsCache(): PrefixCache<CertRotatedRecord> {
    return new PrefixCache(this.c, KEYS.certRotatedPrefix, CertRotatedRecord);
  }
}

// --- CA rollovers (control/controllers/ca-rollover.ts) ---

export class CaRolloverStore {
  constructor(private readonly c: Etcd3) {}

  /** The action and the rollover, in one transaction; false when the action exists or another rollover is unfinished. */
  async create(action: ActionRecord, rec: CaRolloverRecord): Promise<boolean> {
    const open = (await this.list()).filter((r) => !r.finished_time);
    if (open.length) return false;
    const r = await this.c
      .if(KEYS.action(Number(action.action_uid)), 'Create', '==', 0)
      .then(
        this.c.put(KEYS.action(Number(action.action_uid))).value(json(action)),
        this.c.put(KEYS.caRollover(rec.action_uid)).value(json(rec)),
      )
      .commit();
    return r.succeeded;
  }

  get(actionUid: string): Promise<CaRolloverRecord | null> {
    return readRecord(this.c, KEYS.caRollover(actionUid), CaRolloverRecord);
  }

  async list(): Promise<CaRolloverRecord[]> {
    return [...(await readRecords(this.c, KEYS.caRolloversPrefix, CaRolloverRecord)).values()];
  }

  /** Compare-and-swap; `fn` returns undefined to leave it. */
  update(
    actionUid: string,
    fn: (cur: CaRolloverRecord | undefined) => CaRolloverRecord | undefined,
  ): Promise<CaRolloverRecord | undefined> {
    return updateRecord(this.c, KEYS.caRollover(actionUid), CaRolloverRecord, fn);
  }

  /** Watched copy (start it), by action uid. */
  cache(): PrefixCache<CaRolloverRecord> {
    return new PrefixCache(this.c, KEYS.caRolloversPrefix, CaRolloverRecord);
  }
}
