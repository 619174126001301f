// Operator-provided certificates (PUT /v1/cluster/certificates), as a service
// the REST handler calls: plan (validate every certificate and decide what goes
// to which node, before anything is written), apply (one transaction: the
// certificates, their owners and the new trust anchors), and wait until every
// node's record shows what it was given. Each node applies its own (its
// certificate reconciler swaps its listeners' contexts); the wait follows the
// nodes' records through the store's watch (the member's node cache), so it
// ends as soon as the last one lands, with no polling.
import { X509Certificate } from 'node:crypto';
import type { CertIdentityRecord, CustomerCertRecord, NodeRecord, ServiceCertRecord } from '../../coord/schema.js';
import type { ClusterStore, OperatorCerts } from '../../coord/store.js';
import {
  CertificateRejected,
  type CertName,
  type OperatorCertName,
  type ValidatedCustomerCert,
  validateCustomerCerts,
} from '../../pki/customer.js';
import { PLANE_CERT_NAME, type Plane, type ServiceName, isServiceName, planeOfCertName } from '../../pki/pki.js';
import { OperatorError, invalid } from '../../util/errors.js';

/** How long the call waits for every node to present its new certificates. */
export const APPLY_WAIT_MS = 30_000;

/** One certificate as the operator gives it: for one node (`node_uid`) or for every node. */
export interface CertInput {
  name: OperatorCertName;
  certificate: string;
  key: string;
  node_uid?: number;
}

/** The nodes' records as a watched cache (coord/watch.ts's PrefixCache): read now, and told of each change. */
export interface WatchedNodes {
  values(): NodeRecord[];
  readonly items: ReadonlyMap<string, NodeRecord>;
  on(event: 'change', fn: () => void): unknown;
  off(event: 'change', fn: () => void): unknown;
}

/** A certificate for one node: an internode plane (cp, dp) or a client-facing service. */
export interface CertTarget {
  uid: number;
  name: Plane | ServiceName;
  v: ValidatedCustomerCert;
}

export interface CustomerCertPlan {
  /** What one transaction writes. */
  records: OperatorCerts;
  targets: CertTarget[];
}

/**
 * Validate `input` against the nodes (`nodeUids`) and the trust anchors already
 * recorded, and build the records. Throws OperatorError (400): invalid_certificate,
 * node_not_found, duplicate_certificate. Writes nothing.
 */
export function planCustomerCerts(input: readonly CertInput[], nodeUids: readonly number[], existing: readonly string[]): CustomerCertPlan {
  let validated: ValidatedCustomerCert[];
  try {
    validated = validateCustomerCerts(
      input.map(({ name, certificate, key }) => ({ name, certificate, key })),
      { extraTrust: [...existing] },
    );
  } catch (err) {
    if (err instanceof CertificateRejected) {
      throw new OperatorError(
        'invalid',
        'invalid_certificate',
        `${err.certName ? `${err.certName}: ` : ''}${err.message} [check: ${err.check}]`,
      );
    }
    throw err;
  }
  // Client-facing certificates: each node presents its own; clients trust the operator's CA, not the nodes.
  // Internode ones: a plane named twice for one node is ambiguous.
  const service = new Map<string, CertTarget>();
  const internode = new Map<string, CertTarget>();
  for (const pass of ['service', 'internode'] as const) {
    for (const [i, c] of input.entries()) {
      if (isServiceName(c.name) !== (pass === 'service')) continue;
      const name = isServiceName(c.name) ? c.name : planeOfCertName(c.name as CertName);
      for (const uid of c.node_uid !== undefined ? [c.node_uid] : nodeUids) {
        if (!nodeUids.includes(uid)) throw invalid('node_not_found', `node ${uid} does not exist`);
        const k = `${uid}/${name}`;
        const into = pass === 'service' ? service : internode;
        if (into.has(k)) throw invalid('duplicate_certificate', `${c.name} is given twice for node ${uid}`);
        into.set(k, { uid, name, v: validated[i] });
      }
    }
  }
  const anchors = [...existing];
  const fp = (pem: string) => new X509Certificate(pem).fingerprint256;
  for (const t of internode.values()) for (const p of t.v.trustPems) if (!anchors.some((a) => fp(a) === fp(p))) anchors.push(p);
  const now = new Date().toISOString();
  const stored = (t: CertTarget) => ({
    uid: t.uid,
    chain: t.v.chainPem,
    key: t.v.keyPem,
    serial: t.v.serial,
    not_after: t.v.not_after,
    chain_not_after: t.v.chain_not_after,
    applied_time: now,
  });
  const customer: CustomerCertRecord[] = [...internode.values()].map((t) => ({ ...stored(t), plane: t.name as Plane }));
  const serviceRecs: ServiceCertRecord[] = [...service.values()].map((t) => ({ ...stored(t), name: t.name as ServiceName }));
  // One identity per certificate: one given for every node (no node_uid) is shared (uid 0); etcd refuses a key twice in a transaction.
  const shared = new Map<string, number>();
  for (const t of internode.values()) shared.set(t.v.serial, (shared.get(t.v.serial) ?? 0) + 1);
  const identities: CertIdentityRecord[] = [...new Map([...internode.values()].map((t) => [t.v.serial, t])).values()].map((t) => ({
    serial: t.v.serial,
    uid: (shared.get(t.v.serial) ?? 1) > 1 ? 0 : t.uid,
    plane: t.name as Plane,
  }));
  return {
    records: { anchors, customer, identities, service: serviceRecs },
    targets: [...internode.values(), ...service.values()],
  };
}

/** Whether node `t.uid`'s record shows the certificate (each node publishes the serials it presents). */
export function isApplied(nodes: Pick<WatchedNodes, 'items'>, t: CertTarget): boolean {
  const n = nodes.items.get(String(t.uid));
  const shown = t.name === 'cp' || t.name === 'dp' ? n?.certificates?.[t.name] : n?.service_certificates?.[t.name];
  return shown?.serial === t.v.serial;
}

/** The targets not applied once every one is, or when `timeoutMs` has passed: woken by each change of the nodes' records. */
export function waitApplied(nodes: WatchedNodes, targets: readonly CertTarget[], timeoutMs = APPLY_WAIT_MS): Promise<CertTarget[]> {
  const pending = () => targets.filter((t) => !isApplied(nodes, t));
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      nodes.off('change', check);
      resolve(pending());
    };
    const check = () => {
      if (!pending().length) done();
    };
    const timer = setTimeout(done, timeoutMs);
    nodes.on('change', check);
    check();
  });
}

/** The answer's name of a certificate: the plane's certificate name, or the service's. */
export const certName = (t: CertTarget): string => (t.name === 'cp' || t.name === 'dp' ? PLANE_CERT_NAME[t.name] : t.name);

/** Record the plan's certificates (trust and identities land with them), then wait for the nodes; the ones that did not apply in time. */
export async function applyCustomerCerts(
  store: Pick<ClusterStore, 'operatorCerts'>,
  nodes: WatchedNodes,
  plan: CustomerCertPlan,
  timeoutMs = APPLY_WAIT_MS,
): Promise<CertTarget[]> {
  await store.operatorCerts.apply(plan.records);
  return waitApplied(nodes, plan.targets, timeoutMs);
}
