// The node's read view of the cluster: the watched caches of the store
// (nodes, liveness, deny list, master, trust, identities, operator
// certificates, policy), every node's heartbeats as this node sees them, and
// the rules read from them: the policy with its defaults, when a node counts
// as up, and who may use the internode channel (PeerPolicy). It writes
// nothing; the loops and the REST layer are given it (src/node).
import type { Logger } from 'pino';
import {
  type CertIdentityRecord,
  type CustomerCertRecord,
  type DenyRecord,
  type LiveRecord,
  type MasterRecord,
  type NodeRecord,
  type PolicyRecord,
  type ServiceCertRecord,
  type StoredPolicy,
  type TrustRecord,
  policyWithDefaults,
} from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore } from '../../coord/store.js';
import type { Heartbeats } from '../../coord/heartbeats.js';
import type { PeerPolicy } from '../../internode/channel.js';
import type { Plane } from '../../pki/pki.js';
import type { PolicySnapshot } from '../../dataplane/messages.js';
import type { KeyExchange } from '../../tls/policy.js';
import { nodeIsUp } from '../model/node-state.js';

export class ClusterView implements PeerPolicy {
  readonly nodes: PrefixCache<NodeRecord>;
  readonly live: PrefixCache<LiveRecord>;
  readonly deny: PrefixCache<DenyRecord>;
  readonly master: PrefixCache<MasterRecord>;
  readonly trust: PrefixCache<TrustRecord>;
  readonly identities: PrefixCache<CertIdentityRecord>;
  /** This node's operator-provided plane certificates, and its client-facing ones. */
  readonly customerCerts: PrefixCache<CustomerCertRecord>;
  readonly serviceCustomerCerts: PrefixCache<ServiceCertRecord>;
  readonly clusterPolicy: PrefixCache<StoredPolicy>;
  /** Every node's heartbeat as this node sees it: who is silent, and for how long. */
  readonly beats: Heartbeats;
  private readonly caches: PrefixCache<unknown>[];

  constructor(
    store: ClusterStore,
    readonly uid: number,
    private readonly cluster: { readonly clusterId: string; readonly liveTtlSeconds: number },
    log: Logger,
  ) {
    // Checked as a full record or the first node's stub, which lasts until the node publishes its record (see NodeStore.cache).
    this.nodes = store.nodes.cache();
    this.live = store.nodes.liveCache();
    this.deny = store.nodes.denyCache();
    this.master = store.master.cache();
    this.trust = store.operatorCerts.trustCache();
    this.identities = store.operatorCerts.identitiesCache();
    this.customerCerts = store.operatorCerts.customerCertsCache(uid);
    this.serviceCustomerCerts = store.operatorCerts.serviceCertsCache(uid);
    this.clusterPolicy = store.cluster.policyCache();
    this.beats = store.heartbeats(uid);
    this.caches = [
      this.nodes,
      this.live,
      this.deny,
      this.master,
      this.trust,
      this.identities,
      this.customerCerts,
      this.serviceCustomerCerts,
      this.clusterPolicy,
    ] as PrefixCache<unknown>[];
    for (const c of this.caches) c.on('malformed', (err: Error) => log.error({ err: err.message }, 'ignoring a malformed record'));
    this.beats.on('malformed', (err: Error) => log.error({ err: err.message }, 'ignoring a malformed record'));
  }

  /** Load every cache and follow the store from there. The master key is followed by the election, started later. */
  async start(): Promise<void> {
    await Promise.all([...this.caches.filter((c) => c !== this.master).map((c) => c.start()), this.beats.start()]);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.caches.map((c) => c.stop()), this.beats.stop()]);
  }

  /** The cluster policy as stored, with defaults for what it does not say. */
  policy(): PolicyRecord {
    return policyWithDefaults(this.clusterPolicy.items.get(''));
  }
  failoverTimeoutSeconds(): number {
    return this.policy().failover_timeout;
  }
  replicaHa(): { enabled: boolean; graceSeconds: number } {
    const p = this.policy();
    return { enabled: p.slave_ha, graceSeconds: p.slave_ha_grace_period };
  }
  /**
   * How long a node must have been silent (no heartbeat seen) to count as
   * dead: failover_timeout, but never less than the liveness TTL, because a
   * cut-off node stops taking writes only 80% of it after its last heartbeat
   * (Liveness.fenceAfterMs); failing it over sooner could leave two writable masters.
   */
  deadAfterMs(): number {
    return Math.max(this.failoverTimeoutSeconds(), this.cluster.liveTtlSeconds) * 1000;
  }
  /** How long node `uid` has been silent, in ms, or undefined while this node cannot judge (its own view is not current). */
  silentMs(uid: number): number | undefined {
    return this.beats.current() ? this.beats.silentMs(uid) : undefined;
  }
  /** The one rule of "up" (control/model/node-state.ts). */
  nodeIsUp(uid: number): boolean {
    return nodeIsUp(this, uid);
  }
  /** The master key's holder, as stored. */
  masterRecord(): MasterRecord | undefined {
    return this.master.values()[0];
  }
  /** The trust anchors of operator-provided certificates. */
  anchors(): string[] {
    return this.trust.values()[0]?.anchors ?? [];
  }

  /** What the data-plane worker checks peers by. */
  policySnapshot(keyExchange: KeyExchange): PolicySnapshot {
    return {
      keyExchange,
      anchors: this.anchors(),
      identities: this.identities.values(),
      clusterId: this.cluster.clusterId,
      members: this.nodes.values().map((n) => n.uid),
      denied: [...this.deny.items.keys()],
      nodes: this.nodes
        .values()
        .filter((n) => n.addr)
        .map((n) => ({ uid: n.uid, addr: n.addr, internode: n.ports.internode, dp_plain: n.ports.dp_plain })),
    };
  }

  // --- PeerPolicy: who may use the internode channel ---
  clusterId(): string {
    return this.cluster.clusterId;
  }
  isMember(uid: number): boolean {
    return this.nodes.items.has(String(uid));
  }
  isDenied(serial: string): boolean {
    return this.deny.items.has(serial);
  }
  identityOf(serial: string): { uid: number; plane: Plane } | undefined {
    const r = this.identities.items.get(serial);
    return r ? { uid: r.uid, plane: r.plane } : undefined;
  }
}
