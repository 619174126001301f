// A node that belongs to a cluster: runs its etcd member, keeps a live view of
// the cluster (nodes, liveness, deny list, master), holds its liveness lease,
// campaigns for master, serves the internode channel and probes its peers
// over the control plane.
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from 'pino';
import type { Etcd3, Lease } from 'etcd3';
import { EtcdMember, etcdClient, etcdPaths, waitReady } from '../../coord/etcd.js';
import { conflict } from '../../util/errors.js';
import {
  type PolicyRecord,
  type ClusterRecord,
  type NodeRecord,
  type LiveRecord,
  type DenyRecord,
  type CertMeta,
  type MasterRecord,
  type TrustRecord,
  type CertIdentityRecord,
  type CustomerCertRecord,
  type ServiceCertRecord,
  type StoredPolicy,
  policyWithDefaults,
} from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import { storeOf, type ClusterStore } from '../../coord/store.js';
import { Heartbeats } from '../../coord/heartbeats.js';
import { CertStore } from '../../pki/certstore.js';
import { ServiceCerts } from '../../pki/service-certs.js';
import { LiveLinks, type PeerPolicy, type PeerIdentity } from '../../internode/channel.js';
import { RpcClient, unknownMethod } from '../../internode/rpc.js';
import { LinkRegistry, type NodeLinksReport } from '../../internode/links.js';
import { DataplaneHost } from '../../dataplane/host.js';
import type { PolicySnapshot } from '../../dataplane/messages.js';
import { BdbReconciler } from '../reconcilers/bdb-reconciler.js';
import { BdbController } from '../controllers/bdb-controller.js';
import { CertRotator } from '../reconcilers/cert-rotator.js';
import { FailoverController } from '../controllers/failover-controller.js';
import { shardRpc } from '../reconcilers/shard-rpc.js';
import { TRAFFIC_RPC, localTraffic } from '../reconcilers/traffic.js';
import { PORTS_FREE_RPC, bindablePorts, portsParam } from '../reconcilers/ports.js';
import { type NodeConfig, type NodeIdentity, SOFTWARE_VERSION } from './config.js';
import { certPath } from '../../pki/node-files.js';
import { PLANE_CERT_NAME, type Plane, certInfo } from '../../pki/pki.js';

/** What a node tells its peers about itself over the control plane. */
export interface StatusReply {
  uid: number;
  uptime: number;
  cores: number;
  total_memory: number;
  software_version: string;
  master_uid?: number;
}

export interface ProbeResult {
  ok: boolean;
  at: number;
  status?: StatusReply;
  error?: string;
}

export function loadPlaneBundles(dataDir: string): Record<Plane, { certPem: string; keyPem: string; caPem: string }> {
  const caPem = fs.readFileSync(certPath(dataDir, 'ca'), 'utf8');
  return {
    cp: { certPem: fs.readFileSync(certPath(dataDir, 'cp'), 'utf8'), keyPem: fs.readFileSync(certPath(dataDir, 'cpKey'), 'utf8'), caPem },
    dp: { certPem: fs.readFileSync(certPath(dataDir, 'dp'), 'utf8'), keyPem: fs.readFileSync(certPath(dataDir, 'dpKey'), 'utf8'), caPem },
  };
}

function certMeta(plane: Plane, pem: string): CertMeta {
  const i = certInfo(pem);
  return {
    name: PLANE_CERT_NAME[plane],
    serial: i.serial,
    subject: i.subject,
    issuer: i.issuer,
    not_before: i.not_before,
    not_after: i.not_after,
  };
}

/** How often this node writes its heartbeat (coord/heartbeats.ts), which renews its write fence. */
const STORE_PROBE_MS = 500;
/** How often a node checks whether the master key is free or its holder silent. */
const MASTER_CHECK_MS = 250;

export class ClusterMember implements PeerPolicy {
  readonly client: Etcd3;
  /** The typed cluster store of `client`. */
  private readonly store: ClusterStore;
  readonly certs: CertStore;
  readonly nodes: PrefixCache<NodeRecord>;
  readonly live: PrefixCache<LiveRecord>;
  readonly deny: PrefixCache<DenyRecord>;
  private readonly master: PrefixCache<MasterRecord>;
  /** Every node's heartbeat as this node sees it: who is silent, and for how long. */
  readonly beats: Heartbeats;
  readonly trust: PrefixCache<TrustRecord>;
  readonly identities: PrefixCache<CertIdentityRecord>;
  readonly customerCerts: PrefixCache<CustomerCertRecord>;
  /** The client-facing certificates (api, cm, proxy, metrics_exporter) and the services CA. */
  readonly services: ServiceCerts;
  readonly serviceCustomerCerts: PrefixCache<ServiceCertRecord>;
  private readonly clusterPolicy: PrefixCache<StoredPolicy>;
  cluster!: ClusterRecord;
  masterUid?: number;
  /** Gave the master role up (being removed): never campaigns again. */
  private resigned = false;
  private takingOver = false;
  readonly probes = new Map<number, ProbeResult>();

  dataplane?: DataplaneHost;
  reconciler?: BdbReconciler;
  controller?: BdbController;
  rotator?: CertRotator;
  failover?: FailoverController;
  /** Services that live as long as this membership (wired by src/node); closed first on stop. */
  private readonly attached: { close(): Promise<void> }[] = [];
  private lease?: Lease;
  private livenessFailures = 0;
  /** When this node last reached the store (a liveness renewal); 0 before the first. */
  private storeContactAt = 0;
  /** Cut off longer than fenceAfterMs(): writes stay fenced until the map is current again. */
  private fenceLifting = false;
  /** Heartbeats, twice a second: each success renews the write fence. */
  private contactTimer?: NodeJS.Timeout;
  private contactProbe = false;
  private masterTimer?: NodeJS.Timeout;
  private rpcClients = new Map<number, RpcClient>();
  /** This thread's dialed control links, cut when their peer is revoked or removed. */
  private readonly rpcLinks = new LiveLinks('dialed');
  /** The same links with what they are for, for verify encryption (the worker lists the rest). */
  private readonly rpcRegistry = new LinkRegistry();
  private probeTimer?: NodeJS.Timeout;
  private stopped = false;
  /** Called when the cluster removes this node. */
  onRemoved?: () => void;
  private readonly startedAt = Date.now();

  private constructor(
    readonly cfg: NodeConfig,
    readonly identity: NodeIdentity,
    readonly etcd: EtcdMember,
    private readonly log: Logger,
  ) {
    this.client = etcdClient(cfg.addr, cfg.ports.etcd_client, etcdPaths(cfg.dataDir));
    this.store = storeOf(this.client);
    this.certs = new CertStore(loadPlaneBundles(cfg.dataDir));
    // Checked as a full record or the first node's stub, which lasts until publishNodeRecord (see NodeStore.cache).
    this.nodes = this.store.nodes.cache();
    this.live = this.store.nodes.liveCache();
    this.deny = this.store.nodes.denyCache();
    this.master = this.store.master.cache();
    this.beats = new Heartbeats(this.client, identity.uid);
    this.trust = this.store.operatorCerts.trustCache();
    this.identities = this.store.operatorCerts.identitiesCache();
    this.customerCerts = this.store.operatorCerts.customerCertsCache(identity.uid);
    this.clusterPolicy = this.store.cluster.policyCache();
    this.services = ServiceCerts.load(cfg.dataDir);
    this.serviceCustomerCerts = this.store.operatorCerts.serviceCertsCache(identity.uid);
    for (const c of [
      this.nodes,
      this.live,
      this.deny,
      this.master,
      this.trust,
      this.identities,
      this.customerCerts,
      this.serviceCustomerCerts,
      this.clusterPolicy,
    ]) {
      c.on('malformed', (err: Error) => this.log.error({ err: err.message }, 'ignoring a malformed record'));
    }
    this.beats.on('malformed', (err: Error) => this.log.error({ err: err.message }, 'ignoring a malformed record'));
  }

  get uid(): number {
    return this.identity.uid;
  }

  /** Start etcd and wait for it to serve; the caller finishes with `run()` (joins promote in between). */
  static startEtcd(cfg: NodeConfig, identity: NodeIdentity, log: Logger): ClusterMember {
    const etcd = new EtcdMember({
      name: identity.etcd.name,
      addr: cfg.addr,
      peerPort: cfg.ports.etcd_peer,
      clientPort: cfg.ports.etcd_client,
      initialCluster: identity.etcd.initial_cluster,
      state: identity.etcd.state,
      token: identity.etcd.token,
      paths: etcdPaths(cfg.dataDir),
      log: log.child({ component: 'etcd' }),
      etcdBinary: cfg.etcdBinary,
    });
    etcd.start();
    return new ClusterMember(cfg, identity, etcd, log);
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    await waitReady(this.client, this.etcd, timeoutMs);
  }

  /** Join the live cluster: caches, own record, liveness, election, internode channel, probes. */
  async run(): Promise<void> {
    await this.waitReady();
    // From here on a member that dies is restarted (with backoff), not left dead.
    this.etcd.supervise();
    this.cluster = await this.store.cluster.get();
    await Promise.all([
      this.nodes.start(),
      this.live.start(),
      this.deny.start(),
      this.trust.start(),
      this.identities.start(),
      this.customerCerts.start(),
      this.serviceCustomerCerts.start(),
      this.clusterPolicy.start(),
      this.beats.start(),
    ]);
    this.applyKeyExchange();
    this.certs.setAnchors(this.trust.values()[0]?.anchors ?? []);
    const pushPolicy = () => {
      this.rpcLinks.recheck(this, this.log);
      this.dataplane?.setPolicy(this.policySnapshot());
    };
    this.nodes.on('change', pushPolicy);
    this.nodes.on('change', (id: string) => {
      if (id === String(this.uid) && !this.nodes.items.has(id) && !this.stopped) {
        this.log.warn({ uid: this.uid }, 'this node was removed from the cluster');
        this.onRemoved?.();
      }
    });
    this.deny.on('change', pushPolicy);
    this.clusterPolicy.on('change', () => {
      this.applyKeyExchange();
      pushPolicy();
    });
    this.identities.on('change', pushPolicy);
    this.trust.on('change', () => {
      this.certs.setAnchors(this.trust.values()[0]?.anchors ?? []);
      pushPolicy();
    });

    await this.publishNodeRecord();
    await this.holdLiveness();
    this.contactTimer = setInterval(() => this.probeStore(), STORE_PROBE_MS);
    this.contactTimer.unref();
    this.probeStore();
    // The internode listeners live in the data-plane worker, off this event loop.
    this.dataplane = new DataplaneHost({
      node: { uid: this.uid, addr: this.cfg.addr, ports: this.cfg.ports },
      certs: () => ({ cp: this.bundleForWorker('cp'), dp: this.bundleForWorker('dp') }),
      proxyCert: () => this.services.get('proxy'),
      policy: () => this.policySnapshot(),
      rpc: (m, p, who) => this.handleRpc(m, p, who),
      log: this.log.child({ component: 'dataplane-host' }),
      logLevel: this.log.level,
    });
    this.certs.on('change', (plane: 'cp' | 'dp') => this.dataplane?.setCerts(plane, this.bundleForWorker(plane)));
    // TLS endpoints present the proxy certificate; a renewal reaches them without closing a connection.
    this.services.on('change', (name: string) => {
      const c = this.services.get('proxy');
      if (name === 'proxy' && c) this.dataplane?.setProxyCert(c);
    });
    await this.dataplane.start();
    await this.master.start();
    this.master.on('change', () => this.onMasterChange());
    this.onMasterChange();
    this.masterTimer = setInterval(() => {
      void this.claimMaster();
      void this.takeOverMaster();
    }, MASTER_CHECK_MS);
    this.masterTimer.unref();
    await this.claimMaster();
    this.rotator = new CertRotator(this, this.log.child({ component: 'cert-rotation' }));
    await this.rotator.start();
    this.reconciler = new BdbReconciler(this, this.log.child({ component: 'reconciler' }));
    await this.reconciler.start();
    this.controller = new BdbController(this, this.reconciler, this.log.child({ component: 'bdb-controller' }));
    await this.controller.start();
    this.failover = new FailoverController(this, this.log.child({ component: 'failover' }));
    this.failover.start();
    this.probeTimer = setInterval(() => void this.probePeers(), this.cfg.timings.probeIntervalMs);
    this.probeTimer.unref();
    this.log.info({ uid: this.uid, cluster: this.cluster.name }, 'node is a running cluster member');
  }

  /** Tie a service's life to this membership: it is closed when the member stops. */
  attach(service: { close(): Promise<void> }): void {
    this.attached.push(service);
  }

  /** The worker gets the cluster CA as the bundle's CA; anchors travel with the policy. */
  private bundleForWorker(plane: Plane) {
    return { ...this.certs.bundle(plane), caPem: this.certs.caPem() };
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
  syncOf(bdbUid: number, shardUid: number, nodeUid: number) {
    return this.controller?.syncOf(bdbUid, shardUid, nodeUid);
  }
  /**
   * How long a node must have been silent (no heartbeat seen) to count as
   * dead: failover_timeout, but never less than the liveness TTL, because a
   * cut-off node stops taking writes only 80% of it after its last heartbeat
   * (fenceAfterMs); failing it over sooner could leave two writable masters.
   */
  deadAfterMs(): number {
    return Math.max(this.failoverTimeoutSeconds(), this.cfg.timings.liveTtlSeconds) * 1000;
  }
  /** How long node `uid` has been silent, in ms, or undefined while this node cannot judge (its own view is not current). */
  silentMs(uid: number): number | undefined {
    return this.beats.current() ? this.beats.silentMs(uid) : undefined;
  }
  databases() {
    return this.reconciler?.bdbs.values() ?? [];
  }

  /** The cluster's internode key-exchange rule, applied to this node's own dialers (control RPC). */
  private applyKeyExchange(): void {
    const kx = this.policy().internode_key_exchange;
    if (kx !== this.certs.keyExchange()) this.log.info({ internode_key_exchange: kx }, 'internode key exchange rule applied');
    this.certs.setKeyExchange(kx);
  }

  policySnapshot(): PolicySnapshot {
    return {
      keyExchange: this.certs.keyExchange(),
      anchors: this.trust.values()[0]?.anchors ?? [],
      identities: this.identities.values(),
      clusterId: this.identity.cluster_id,
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
    return this.identity.cluster_id;
  }
  isMember(uid: number): boolean {
    return this.nodes.items.has(String(uid));
  }
  isDenied(serial: string): boolean {
    return this.deny.items.has(serial);
  }
  identityOf(serial: string) {
    const r = this.identities.items.get(serial);
    return r ? { uid: r.uid, plane: r.plane } : undefined;
  }

  private async publishNodeRecord(): Promise<void> {
    // Possibly the stub the cluster's creation wrote: only its joined_time is kept.
    const prev = await this.store.nodes.getStub(this.uid);
    const own = await this.client.maintenance.status();
    const rec: NodeRecord = {
      uid: this.uid,
      addr: this.cfg.addr,
      ports: this.cfg.ports,
      etcd_member_id: String(own.header.member_id),
      software_version: SOFTWARE_VERSION,
      capabilities: [...this.cfg.capabilities],
      joined_time: prev?.joined_time ?? new Date().toISOString(),
      certificates: {
        cp: certMeta('cp', this.certs.bundle('cp').certPem),
        dp: certMeta('dp', this.certs.bundle('dp').certPem),
      },
    };
    await this.store.nodes.put(rec);
  }

  /** A lease that lapses when this process stops renewing it: how the others see us go down. */
  private async holdLiveness(): Promise<void> {
    if (this.stopped) return;
    const lease = this.client.lease(this.cfg.timings.liveTtlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    lease.on('lost', (err) => {
      if (this.stopped) return;
      if (this.livenessFailures === 0) this.log.warn({ err: err.message }, 'liveness lease lost; taking a new one');
      setTimeout(
        () =>
          void this.holdLiveness().catch((e) => {
            // Retried twice a second while the store is away: log the first and then every 20th, with the count.
            if (this.livenessFailures++ % 20 === 0)
              this.log.error({ err: (e as Error).message, failures: this.livenessFailures }, 'cannot renew liveness');
          }),
        500,
      );
    });
    const rec: LiveRecord = { uid: this.uid, started_time: new Date(this.startedAt).toISOString(), pid: process.pid };
    await this.store.nodes.putLive(lease, rec);
    if (this.livenessFailures > 0) this.log.info({ failures: this.livenessFailures }, 'liveness renewed again');
    this.livenessFailures = 0;
  }

  /**
   * How long writes stay allowed after the last heartbeat was sent. Others
   * fail this node over only after deadAfterMs() (at least liveTtlSeconds)
   * without seeing a heartbeat, so 80% of the TTL fences first; heartbeats
   * come twice a second, so an etcd leader election (1.5-3 s) does not trip it.
   */
  private fenceAfterMs(): number {
    return this.cfg.timings.liveTtlSeconds * 800;
  }

  /**
   * Write this node's heartbeat. Only heartbeats renew the fence (counted
   * from when they were sent), because heartbeats are what the others judge
   * this node by; the lease library renews the lease itself on its own.
   */
  private probeStore(): void {
    const lease = this.lease;
    if (!lease || this.contactProbe || this.stopped) return;
    const sent = Date.now();
    this.contactProbe = true;
    this.beats
      .beat(lease, STORE_PROBE_MS * 2)
      .then(
        () => this.onStoreContact(sent),
        () => undefined, // a failed heartbeat is what the fence counts; a lost lease is re-granted by its own handler
      )
      .finally(() => (this.contactProbe = false));
  }

  /** This node's view of the store is recent: it may act on it (failover decisions). */
  storeIsCurrent(): boolean {
    return !this.fenceLifting && this.storeContactAt !== 0 && Date.now() - this.storeContactAt <= this.fenceAfterMs();
  }

  /**
   * The store took a heartbeat. After a silence longer than the
   * fence (a partition, or SIGSTOP of the whole node) this node may have been
   * failed over: its endpoints stay fenced until the reconciler has converged
   * on the current database map, and only then are writes allowed again.
   */
  private onStoreContact(at: number): void {
    if (this.stopped || this.fenceLifting || at < this.storeContactAt) return;
    const silentMs = at - this.storeContactAt;
    if (this.storeContactAt === 0 || silentMs <= this.fenceAfterMs()) {
      this.storeContactAt = at;
      this.dataplane?.renewContact(this.fenceAfterMs() - (Date.now() - at), false);
      return;
    }
    this.fenceLifting = true;
    this.log.warn(
      { silent_ms: silentMs },
      'fencing: this node was cut off from the cluster store; writes through its endpoints are refused until its database map is current',
    );
    void (async () => {
      try {
        await this.reconciler?.resync();
        this.storeContactAt = Date.now();
        this.dataplane?.renewContact(this.fenceAfterMs(), true);
        this.log.info('fencing lifted: the database map is current');
      } catch (err) {
        this.log.warn(
          { err: (err as Error).message },
          'fencing stays: cannot bring the database map up to date yet; the next renewal retries',
        );
      } finally {
        this.fenceLifting = false;
      }
    })();
  }

  /**
   * Master election: the master key exists while its holder's liveness lease
   * does. Whoever finds it absent creates it (a create-only transaction, so one
   * wins); when the master stops renewing, the key goes with its lease.
   */
  private async claimMaster(): Promise<void> {
    if (this.stopped || this.resigned || this.master.items.size > 0 || !this.lease) return;
    try {
      const rec: MasterRecord = { uid: this.uid, since: new Date().toISOString() };
      if (await this.store.master.claim(rec, await this.lease.grant())) this.log.info({ uid: this.uid }, 'elected cluster master');
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'master claim failed');
    }
  }

  /**
   * Take the master role from a holder that has been silent as long as a
   * dead node (deadAfterMs): it has fenced itself by then, and its master key
   * would otherwise last as long as its lease, which an etcd leader change
   * extends by seconds. One compare-and-swap on the key, so one node wins; a
   * holder that was only cut off learns it from the key when it is back.
   */
  private async takeOverMaster(): Promise<void> {
    const holder = this.master.values()[0]?.uid;
    const lease = this.lease;
    if (this.stopped || this.resigned || this.takingOver || !lease || holder === undefined || holder === this.uid) return;
    const silent = this.silentMs(holder);
    if (silent === undefined || silent < this.deadAfterMs() || !this.storeIsCurrent()) return;
    this.takingOver = true;
    try {
      // False when the key is gone meanwhile (claimMaster takes it) or another node holds it now.
      const rec: MasterRecord = { uid: this.uid, since: new Date().toISOString() };
      if (await this.store.master.takeOver(holder, rec, await lease.grant()))
        this.log.warn(
          { uid: this.uid, previous: holder, silent_ms: silent },
          'elected cluster master: the previous master sent no heartbeat for longer than the failover timeout',
        );
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'master takeover failed; the next check retries');
    } finally {
      this.takingOver = false;
    }
  }

  private onMasterChange(): void {
    const rec = this.master.values()[0];
    const uid = rec?.uid;
    if (uid !== this.masterUid) this.log.info({ master: uid }, 'cluster master changed');
    this.masterUid = uid;
    if (uid === undefined) void this.claimMaster();
  }

  isMaster(): boolean {
    return !this.resigned && this.masterUid === this.uid;
  }

  /**
   * Make node `target` the cluster master (RE's change_master): the master
   * key is rewritten bound to the target's own liveness lease, so it lasts
   * exactly as long as the target is alive, as if it had won the election.
   * The current master's controllers stop at their next step (they check
   * isMaster) and the target's resume what they left.
   */
  async changeMaster(target: number): Promise<void> {
    const r = await this.store.master.handTo({ uid: target, since: new Date().toISOString() });
    if (r === 'down') throw conflict('node_down', `node ${target} is down: only a live node can become the master`);
    if (r === 'went_down') throw conflict('node_down', `node ${target} went down while it was made the master`);
    this.log.warn({ master: target, by: this.uid }, 'cluster master changed by request');
  }

  /**
   * Give the master role up for good: this node is being removed. It no
   * longer campaigns, and its master key goes (only if still its own), so
   * another node is elected at once.
   */
  async resignMaster(why: string): Promise<void> {
    this.resigned = true;
    this.log.warn({ why }, 'giving up the cluster master role; this node no longer campaigns');
    // Only the uid of the stored record is compared; false (nothing to do) when another node holds the key or none does.
    await this.store.master.resign(this.uid);
  }

  statusReply(): StatusReply {
    return {
      uid: this.uid,
      uptime: Math.round((Date.now() - this.startedAt) / 1000),
      cores: os.cpus().length,
      total_memory: os.totalmem(),
      software_version: SOFTWARE_VERSION,
      master_uid: this.masterUid,
    };
  }

  private async handleRpc(method: string, _params: unknown, _peer: PeerIdentity): Promise<unknown> {
    switch (method) {
      case 'status':
        return this.statusReply();
      case PORTS_FREE_RPC:
        return this.portsFree(portsParam(_params));
      case 'internode_links':
        return this.internodeLinks();
      case TRAFFIC_RPC:
        return localTraffic(this);
      // Operator shard operations (control/controllers/shard-ops.ts) on a shard this node runs.
      case 'shard_replication':
      case 'shard_pause':
      case 'shard_unpause':
        return shardRpc(this, this.log, method, _params);
      default:
        throw unknownMethod(method);
    }
  }

  /** Which of `ports` are free on this node's address (asked before a database takes one). */
  async portsFree(ports: number[]): Promise<{ free: number[] }> {
    return { free: await bindablePorts(this.cfg.addr, ports) };
  }

  /** Every live internode connection of this node: control links this thread dialed, and the data-plane worker's. */
  async internodeLinks(): Promise<NodeLinksReport> {
    if (!this.dataplane) throw new Error('node is starting');
    const worker = await this.dataplane.internodeLinks();
    const own = this.rpcRegistry.list(this.uid, (serial) => this.isDenied(serial));
    return { uid: this.uid, addr: this.cfg.addr, time: new Date().toISOString(), links: [...own, ...worker] };
  }

  rpc(uid: number): RpcClient | undefined {
    const rec = this.nodes.items.get(String(uid));
    if (!rec) return undefined;
    let c = this.rpcClients.get(uid);
    if (!c) {
      c = new RpcClient(
        { uid, host: rec.addr, port: rec.ports.internode },
        this.certs,
        this,
        this.log.child({ component: 'rpc' }),
        this.rpcLinks,
        this.rpcRegistry,
      );
      this.rpcClients.set(uid, c);
    }
    return c;
  }

  private async probePeers(): Promise<void> {
    for (const [id, c] of this.rpcClients) {
      if (!this.nodes.items.has(id.toString())) {
        c.close();
        this.rpcClients.delete(id);
        this.probes.delete(id);
      }
    }
    await Promise.all(
      this.nodes.values().map(async (n) => {
        if (n.uid === this.uid) return;
        const client = this.rpc(n.uid);
        if (!client) return;
        try {
          const status = await client.call<StatusReply>('status', {}, Math.max(500, this.cfg.timings.probeIntervalMs));
          this.probes.set(n.uid, { ok: true, at: Date.now(), status });
        } catch (err) {
          const prev = this.probes.get(n.uid);
          this.probes.set(n.uid, { ok: false, at: prev?.at ?? 0, status: prev?.status, error: (err as Error).message });
        }
      }),
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.contactTimer) clearInterval(this.contactTimer);
    if (this.masterTimer) clearInterval(this.masterTimer);
    for (const c of this.rpcClients.values()) c.close();
    for (const a of this.attached) await a.close().catch((e) => this.log.warn({ err: (e as Error).message }, 'closing a member service'));
    await this.rotator?.stop().catch((e) => this.log.warn({ err: (e as Error).message }, 'stopping certificate rotation'));
    this.failover?.stop();
    await this.controller?.stop().catch((e) => this.log.warn({ err: (e as Error).message }, 'stopping the database controller'));
    await this.reconciler?.stop().catch((e) => this.log.warn({ err: (e as Error).message }, 'stopping the reconciler'));
    await this.dataplane?.stop().catch((e) => this.log.warn({ err: (e as Error).message }, 'stopping the data plane'));
    // Give mastership and liveness back at once, so the others need not wait for a TTL.
    await Promise.race([
      Promise.all([
        // Revoking the lease also drops the master key if we held it.
        this.lease?.revoke().catch((e) => this.log.debug({ err: (e as Error).message }, 'lease not revoked; it expires after its TTL')),
        this.master.stop(),
        this.beats.stop(),
        this.nodes.stop(),
        this.live.stop(),
        this.deny.stop(),
        this.trust.stop(),
        this.identities.stop(),
        this.customerCerts.stop(),
        this.serviceCustomerCerts.stop(),
        this.clusterPolicy.stop(),
      ]),
      new Promise((r) => setTimeout(r, 3000)),
    ]);
    this.client.close();
    await this.etcd.stop();
  }
}
