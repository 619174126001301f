// A running cluster member, composed: its etcd member and store, the
// membership parts (control/membership/: the read view, liveness and the
// write fence, the election, the peers) and the loops (loops.ts), started in
// order and stopped in reverse. Outward it is what bootstrap
// (BootstrapMember) and the REST, UI and metrics layers (api/services.ts's
// ApiMember and MetricsMember) read: an adapter over the parts, in one place.
import type { Logger } from 'pino';
import { type EtcdMember, etcdPaths, waitReady } from '../coord/etcd.js';
import { type ClusterStore, openStore } from '../coord/store.js';
import type { BdbRecord, ClusterRecord, ObservedRecord, PolicyRecord } from '../coord/schema.js';
import type { PrefixCache } from '../coord/watch.js';
import { CertStore } from '../pki/certstore.js';
import { ServiceCerts } from '../pki/service-certs.js';
import type { RpcClient } from '../internode/rpc.js';
import type { NodeLinksReport } from '../internode/links.js';
import type { NodeConfig, NodeIdentity } from '../control/membership/config.js';
import { type BootstrapMember, loadPlaneBundles, publishNodeRecord, startEtcd } from '../control/membership/member.js';
import { ClusterView } from '../control/membership/cluster-view.js';
import { Liveness } from '../control/membership/liveness.js';
import { Election } from '../control/membership/election.js';
import { Peers, type StatusReply } from '../control/membership/peers.js';
import type { NodeTraffic } from '../control/reconcilers/traffic.js';
import { Loops } from './loops.js';
import { requestFailover, requestMigrate, requestNodeRemoval } from '../control/controllers/shard-ops.js';
import type { OpLog } from '../control/model/shard-protocol.js';
import { type HandOverResult, handOverMasters } from '../control/services/graceful-stop.js';

export class RunningMember implements BootstrapMember {
  readonly etcd: EtcdMember;
  /** The typed cluster store (the REST routes write through it). */
  readonly store: ClusterStore;
  readonly certs: CertStore;
  /** The client-facing certificates (api, cm, proxy, metrics_exporter) and the services CA. */
  readonly services: ServiceCerts;
  readonly view: ClusterView;
  readonly liveness: Liveness;
  readonly election: Election;
  readonly peers: Peers;
  cluster!: ClusterRecord;
  private loops?: Loops;
  /** Services that live as long as this membership (the REST, UI and metrics wiring); closed first on stop. */
  private readonly attached: { close(): Promise<void> }[] = [];
  private stopped = false;
  private readonly startedAt = Date.now();

  /** Starts the etcd member; `run()` follows (a join promotes it in between). */
  constructor(
    readonly cfg: NodeConfig,
    readonly identity: NodeIdentity,
    private readonly log: Logger,
  ) {
    this.etcd = startEtcd(cfg, identity, log);
    this.store = openStore(cfg.addr, cfg.ports.etcd_client, etcdPaths(cfg.dataDir));
    this.certs = new CertStore(loadPlaneBundles(cfg.dataDir));
    this.services = ServiceCerts.load(cfg.dataDir);
    const { liveTtlSeconds, probeIntervalMs } = cfg.timings;
    this.view = new ClusterView(this.store, identity.uid, { clusterId: identity.cluster_id, liveTtlSeconds }, log);
    this.liveness = new Liveness({
      store: this.store,
      beats: this.view.beats,
      uid: identity.uid,
      liveTtlSeconds,
      startedAt: this.startedAt,
      // The loops do not exist before run(): until then a renewal has no worker to reach, and nothing to resync.
      fence: {
        renewContact: (ms, lifted) => this.loops?.dataplane.renewContact(ms, lifted),
        resync: async () => this.loops?.resync(),
      },
      log,
    });
    this.election = new Election({
      store: this.store,
      master: this.view.master,
      uid: identity.uid,
      liveness: this.liveness,
      view: this.view,
      log,
    });
    this.peers = new Peers({
      uid: identity.uid,
      addr: cfg.addr,
      certs: this.certs,
      policy: this.view,
      nodes: this.view.nodes,
      probeIntervalMs,
      log,
    });
  }

  get uid(): number {
    return this.identity.uid;
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    await waitReady(this.store, this.etcd, timeoutMs);
  }

  /** Join the live cluster: the view, own record, liveness, the data plane, election, the loops, probes. */
  async run(onRemoved: () => void): Promise<void> {
    const { view, peers, certs, log } = this;
    await this.waitReady();
    // From here on a member that dies is restarted (with backoff), not left dead.
    this.etcd.supervise();
    this.cluster = await this.store.cluster.get();
    const loops = new Loops({
      cfg: this.cfg,
      identity: this.identity,
      cluster: this.cluster,
      store: this.store,
      certs,
      services: this.services,
      view,
      liveness: this.liveness,
      election: this.election,
      peers,
      startedAt: this.startedAt,
      log,
      etcd: this.etcd,
    });
    this.loops = loops;
    await view.start();
    this.applyKeyExchange();
    certs.setAnchors(view.anchors());
    const pushPolicy = () => {
      peers.recheck();
      loops.dataplane.setPolicy(view.policySnapshot(certs.keyExchange()));
    };
    view.nodes.on('change', pushPolicy);
    view.nodes.on('change', (id: string) => {
      if (id === String(this.uid) && !view.nodes.items.has(id) && !this.stopped) {
        log.warn({ uid: this.uid }, 'this node was removed from the cluster');
        onRemoved();
      }
    });
    view.deny.on('change', pushPolicy);
    view.clusterPolicy.on('change', () => {
      this.applyKeyExchange();
      pushPolicy();
    });
    view.identities.on('change', pushPolicy);
    view.trust.on('change', () => {
      certs.setAnchors(view.anchors());
      pushPolicy();
    });

    await publishNodeRecord(this.store, this.cfg, this.uid, certs);
    await this.liveness.start();
    certs.on('change', (plane: 'cp' | 'dp') => loops.dataplane.setCerts(plane, { ...certs.bundle(plane), caPem: certs.caPem() }));
    // TLS endpoints present the proxy certificate; a renewal reaches them without closing a connection.
    this.services.on('change', (name: string) => {
      const c = this.services.get('proxy');
      if (name === 'proxy' && c) loops.dataplane.setProxyCert(c);
    });
    await loops.dataplane.start();
    await this.election.start();
    await loops.start();
    peers.startProbes();
    log.info({ uid: this.uid, cluster: this.cluster.name }, 'node is a running cluster member');
  }

  /** Tie a service's life to this membership: it is closed when the member stops (the last attached first). */
  attach(service: { close(): Promise<void> }): void {
    this.attached.push(service);
  }

  /** The cluster's internode key-exchange rule, applied to this node's own dialers (control RPC). */
  private applyKeyExchange(): void {
    const kx = this.view.policy().internode_key_exchange;
    if (kx !== this.certs.keyExchange()) this.log.info({ internode_key_exchange: kx }, 'internode key exchange rule applied');
    this.certs.setKeyExchange(kx);
  }

  /**
   * The first part of a graceful stop, while everything still serves: this
   * node's masters (and the cluster master role) go to other nodes
   * (control/services/graceful-stop.ts). Bounded by `deadlineMs`, cut short by
   * `signal`; a store that does not answer does not hold the stop up.
   * Undefined when the member does not run yet.
   */
  async handOver(o: { deadlineMs: number; signal?: AbortSignal }): Promise<HandOverResult | undefined> {
    if (this.stopped || !this.loops) return undefined;
    const log = this.log.child({ component: 'graceful-stop' });
    // The loop is told to end whichever way the race ends, so it asks for nothing once the stop goes on.
    const end = new AbortController();
    const cut = () => end.abort();
    o.signal?.addEventListener('abort', cut);
    let timer: NodeJS.Timeout | undefined;
    // Caught here, not by the race: a loop that fails after the race is over must not become an unhandled rejection mid-stop.
    const run = handOverMasters(
      {
        uid: this.uid,
        store: this.store,
        live: this.view.live,
        nodes: this.view.nodes,
        silentMs: (u) => this.silentMs(u),
        deadAfterMs: () => this.deadAfterMs(),
        isMaster: () => this.isMaster(),
        changeMaster: (u) => this.changeMaster(u),
        requestFailover: (l, uids) => requestFailover(this, l, uids, {}),
      },
      log,
      { deadlineMs: o.deadlineMs, signal: end.signal },
    ).catch((err) => {
      log.error({ err: (err as Error).message }, 'graceful stop: the handover failed; stopping anyway');
      return undefined;
    });
    try {
      return await Promise.race([
        run,
        new Promise<undefined>((resolve) => {
          // A little past the loop's own deadline: it returns by itself unless a store call hangs.
          timer = setTimeout(() => {
            log.warn({ deadline_ms: o.deadlineMs }, 'graceful stop: the handover did not return by its deadline; stopping anyway');
            resolve(undefined);
          }, o.deadlineMs + 1000);
          end.signal.addEventListener('abort', () => resolve(undefined));
        }),
      ]);
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', cut);
      end.abort();
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.peers.stop();
    this.election.stop();
    this.liveness.stopBeating();
    for (const a of this.attached.reverse())
      await a.close().catch((e) => this.log.warn({ err: (e as Error).message }, 'closing a member service'));
    await this.loops?.stop();
    // Give mastership and liveness back at once, so the others need not wait for a TTL.
    await Promise.race([
      // Revoking the lease also drops the master key if we held it.
      Promise.all([this.liveness.stop(), this.view.stop()]),
      new Promise((r) => setTimeout(r, 3000)),
    ]);
    this.store.close();
    await this.etcd.stop();
  }

  // --- what the REST, UI and metrics layers read (api/services.ts: ApiMember, MetricsMember) ---
  get nodes() {
    return this.view.nodes;
  }
  get live() {
    return this.view.live;
  }
  get probes() {
    return this.peers.probes;
  }
  get masterUid(): number | undefined {
    return this.election.masterUid;
  }
  /** The databases' shards as each node last reported them (read by the master's controller; every node watches them). */
  get controller(): { observedOf(bdbUid: number): Map<number, ObservedRecord> } | undefined {
    return this.loops?.controller;
  }
  /** The database map this node converges on, and the replicas its reconciler promoted (metrics). */
  get reconciler(): { readonly bdbs: PrefixCache<BdbRecord>; readonly promotions: ReadonlyMap<number, number> } | undefined {
    return this.loops?.reconciler;
  }
  /** Replicas promoted by this node as cluster master (metrics). */
  get failover():
    | { readonly promotions: ReadonlyMap<number, number>; readonly refusalPromotions: ReadonlyMap<number, number> }
    | undefined {
    return this.loops?.failover;
  }
  databases(): BdbRecord[] {
    return this.loops?.reconciler.bdbs.values() ?? [];
  }
  observedOf(bdbUid: number): ReadonlyMap<number, ObservedRecord> {
    return this.loops?.controller.observedOf(bdbUid) ?? new Map();
  }
  /** Operator shard operations, requested by REST and carried out by the cluster master's ShardOpsController. */
  readonly shardOps = {
    requestFailover: (log: OpLog, uids: number[], o: { immediate?: boolean }) => requestFailover(this, log, uids, o),
    requestMigrate: (log: OpLog, uids: number[], target: number | undefined) => requestMigrate(this, log, uids, target),
    requestNodeRemoval: (log: OpLog, node: number) => requestNodeRemoval(this, log, node),
  };
  policy(): PolicyRecord {
    return this.view.policy();
  }
  silentMs(uid: number): number | undefined {
    return this.view.silentMs(uid);
  }
  deadAfterMs(): number {
    return this.view.deadAfterMs();
  }
  isMaster(): boolean {
    return this.election.isMaster();
  }
  storeIsCurrent(): boolean {
    return this.liveness.storeIsCurrent();
  }
  changeMaster(uid: number): Promise<void> {
    return this.election.handTo(uid);
  }
  resignMaster(why: string): Promise<void> {
    return this.election.resign(why);
  }
  rpc(uid: number): RpcClient | undefined {
    return this.peers.rpc(uid);
  }
  call<T>(uid: number, method: string, params: object, timeoutMs?: number): Promise<T> {
    return this.peers.call<T>(uid, method, params, timeoutMs);
  }
  statusReply(): StatusReply {
    return this.requireLoops().statusReply();
  }
  portsFree(ports: number[]): Promise<{ free: number[] }> {
    return this.requireLoops().portsFree(ports);
  }
  internodeLinks(): Promise<NodeLinksReport> {
    return this.requireLoops().internodeLinks();
  }
  localTraffic(): Promise<NodeTraffic> {
    return this.requireLoops().localTraffic();
  }

  /** Whether the cluster version is `version` or later (every member runs it); false before the loops run. */
  clusterAtLeast(version: string): boolean {
    return this.loops?.clusterAtLeast(version) ?? false;
  }

  private requireLoops(): Loops {
    if (!this.loops) throw new Error('node is starting');
    return this.loops;
  }
}
