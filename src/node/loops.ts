// Every loop of a running member, built here with what each uses, and nothing
// more: the node's own reconcilers (databases, certificates), the data-plane
// worker's host, and the cluster master's controllers. Each gets a narrow
// host assembled from the membership parts (control/membership/); none
// reaches another through a shared object. The control-RPC methods the loops
// answer are registered with the peers here.
import os from 'node:os';
import type { Logger } from 'pino';
import type { ClusterStore } from '../coord/store.js';
import type { BdbRecord, ClusterRecord, ObservedRecord } from '../coord/schema.js';
import type { PrefixCache } from '../coord/watch.js';
import type { CertStore } from '../pki/certstore.js';
import type { ServiceCerts } from '../pki/service-certs.js';
import type { Plane } from '../pki/pki.js';
import type { NodeLinksReport } from '../internode/links.js';
import { DataplaneHost } from '../dataplane/host.js';
import type { ClusterView } from '../control/membership/cluster-view.js';
import type { Election } from '../control/membership/election.js';
import type { Liveness } from '../control/membership/liveness.js';
import type { Peers, StatusReply } from '../control/membership/peers.js';
import { type NodeConfig, type NodeIdentity, SOFTWARE_VERSION } from '../control/membership/config.js';
import { SHARD_RPCS } from '../control/model/shard-protocol.js';
import { BdbReconciler } from '../control/reconcilers/bdb-reconciler.js';
import { CertRotator } from '../control/reconcilers/cert-rotator.js';
import { shardRpc } from '../control/reconcilers/shard-rpc.js';
import { TRAFFIC_RPC, localTraffic, type NodeTraffic } from '../control/reconcilers/traffic.js';
import { PORTS_FREE_RPC, bindablePorts, portsParam } from '../control/reconcilers/ports.js';
import { BdbController } from '../control/controllers/bdb-controller.js';
import { FailoverController } from '../control/controllers/failover-controller.js';
import { ShardOpsController } from '../control/controllers/shard-ops.js';
import { MaintenanceController } from '../control/controllers/maintenance.js';
import { CertRotationController } from '../control/controllers/cert-rotation-action.js';
import { CaRolloverController } from '../control/controllers/ca-rollover.js';
import { ActionRetention } from '../control/controllers/action-retention.js';
import { JoinController } from '../control/controllers/join-controller.js';
import { ClusterVersionController } from '../control/controllers/cluster-version.js';
import {
  RESHARD_HOLD_RPC,
  RESHARD_MOVE_RPC,
  RESHARD_RELEASE_RPC,
  ReshardController,
  reshardRpcOp,
  reshardRpcTimeout,
} from '../control/controllers/reshard.js';
import { MasterVersionGuard } from '../control/reconcilers/master-version-guard.js';
import { clusterAtLeast, membersOlderThan } from '../control/model/version-gates.js';

/** The membership parts and the node's own things the loops are built from. */

/** A node heard over its control link within this long counts as heard (its heartbeats come every 0.5 s; a cut-off node stops hearing it soon after the cut). */
const HEARD_WITHIN_MS = 800;
/** After its etcd member was restarted on purpose, the fence may ride the restart out for this long (liveness.ts storeRestarting). */
const PLANNED_RESTART_WINDOW_MS = 10_000;
export interface LoopParts {
  cfg: NodeConfig;
  identity: NodeIdentity;
  cluster: ClusterRecord;
  store: ClusterStore;
  certs: CertStore;
  services: ServiceCerts;
  view: ClusterView;
  liveness: Liveness;
  election: Election;
  peers: Peers;
  startedAt: number;
  log: Logger;
  /** The node's etcd member (a CA rollover restarts it to load a changed CA list). */
  etcd?: { caAtStart(): string; restart(): Promise<void>; readonly plannedRestartAt: number };
}

export class Loops {
  readonly dataplane: DataplaneHost;
  readonly reconciler: BdbReconciler;
  readonly rotator: CertRotator;
  readonly controller: BdbController;
  readonly failover: FailoverController;
  readonly shardOps: ShardOpsController;
  readonly maintenanceMode: MaintenanceController;
  readonly rotations: CertRotationController;
  readonly caRollover: CaRolloverController;
  readonly retention: ActionRetention;
  readonly joins: JoinController;
  readonly clusterVersion: ClusterVersionController;
  /** Resharding actions (cluster master). */
  readonly reshard: ReshardController;
  /** Every node: the stored cluster version, and a member older than it kept from the master role. */
  readonly versionGuard: MasterVersionGuard;
  /** The node's one watched copy of the databases and of every node's observed records, read by the loops below. */
  private readonly bdbs: PrefixCache<BdbRecord>;
  private readonly observed: PrefixCache<ObservedRecord>;
  private started = false;

  /** Build every loop (nothing runs yet) and register the control-RPC methods they answer. */
  constructor(private readonly p: LoopParts) {
    const { cfg, identity, cluster, store, certs, services, view, liveness, election, peers, log } = p;
    const uid = identity.uid;
    // What lets the write fence ride out an etcd election (control/membership/fence-rule.ts).
    liveness.senseQuorum(
      {
        leaderStatus: async () => {
          const s = await store.leaderStatus();
          const uid = /^n(\d+)$/.exec(s?.leaderName ?? '')?.[1];
          return s && { leader: s.leader, raftTerm: s.raftTerm, ...(uid ? { leaderUid: Number(uid) } : {}) };
        },
        heardPeers: () => peers.heardFrom(HEARD_WITHIN_MS),
        hears: (n) => peers.hears(n, HEARD_WITHIN_MS),
        clusterNodes: () => view.nodes.values().length,
        storeRestarting: () => Date.now() - (p.etcd?.plannedRestartAt ?? 0) < PLANNED_RESTART_WINDOW_MS,
      },
      cfg.timings.fenceMs,
    );
    // The internode listeners live in the data-plane worker, off this event loop; it hands control RPCs to the peers' registry.
    this.dataplane = new DataplaneHost({
      node: { uid, addr: cfg.addr, ports: cfg.ports },
      certs: () => ({ cp: this.bundleForWorker('cp'), dp: this.bundleForWorker('dp') }),
      proxyCert: () => services.get('proxy'),
      policy: () => view.policySnapshot(certs.keyExchange()),
      rpc: (m, params, who) => peers.handle(m, params, who),
      log: log.child({ component: 'dataplane-host' }),
      logLevel: log.level,
    });
    const dataplane = this.dataplane;
    this.bdbs = store.bdbs.cache();
    this.observed = store.observed.cache();
    // The reconciler logs a database record it cannot read; an observed record is only skipped.
    this.observed.on('malformed', (err: Error) => log.warn({ err: err.message }, 'ignoring a malformed observed record'));
    const { bdbs, observed } = this;
    this.rotator = new CertRotator(
      {
        uid,
        cfg,
        identity,
        store,
        certs,
        services,
        cluster,
        customerCerts: view.customerCerts,
        serviceCustomerCerts: view.serviceCustomerCerts,
        etcd: p.etcd,
      },
      log.child({ component: 'cert-rotation' }),
    );
    this.reconciler = new BdbReconciler(
      {
        uid,
        cfg,
        store,
        nodes: view.nodes,
        live: view.live,
        bdbs,
        dataplane,
        failoverTimeoutSeconds: () => view.failoverTimeoutSeconds(),
        alertSettings: () => this.rotator.alertSettingsNow(),
        // The live record's started_time (control/membership/liveness.ts writes it from the same startedAt).
        incarnation: new Date(p.startedAt).toISOString(),
      },
      log.child({ component: 'reconciler' }),
    );
    const reconciler = this.reconciler;
    // One writer per decision: the reconciler only reports a crashed or returning master (`handover`, naming
    // this run of the node) and the cluster master's FailoverController promotes. A 0.1.0 master never
    // reads reports, so while the cluster version is 0.1 or any member still runs 0.1.0 the reconciler
    // writes the promotion itself, as 0.1.0 nodes do.
    reconciler.reportOnly = () => this.clusterAtLeast('0.2') && membersOlderThan(this.versionGuard.view(), '0.2').length === 0;
    // What every master loop reads: the role, whether this node's view is current, and who is up.
    const master = {
      uid,
      store,
      nodes: view.nodes,
      live: view.live,
      isMaster: () => election.isMaster(),
      storeIsCurrent: () => liveness.storeIsCurrent(),
      silentMs: (n: number) => view.silentMs(n),
      deadAfterMs: () => view.deadAfterMs(),
    };
    this.controller = new BdbController({ ...master, bdbs, observed }, log.child({ component: 'bdb-controller' }));
    const controller = this.controller;
    // Maintenance mode (0.2): empties a node, or fills it again, as shard operations; its records are the placement mark.
    this.maintenanceMode = new MaintenanceController(
      { ...master, changeMaster: (to) => election.handTo(to) },
      log.child({ component: 'maintenance' }),
    );
    const maintenance = this.maintenanceMode;
    this.failover = new FailoverController(
      {
        ...master,
        observed,
        replicaHa: () => view.replicaHa(),
        databases: () => bdbs.values(),
        syncOf: (bdb, shard, node) => controller.syncOf(bdb, shard, node),
        inMaintenance: () => new Set(maintenance.values().map((m) => m.node_uid)),
      },
      log.child({ component: 'failover' }),
    );
    this.shardOps = new ShardOpsController(
      {
        ...master,
        rpc: (n) => peers.rpc(n),
        call: (n, method, params, timeoutMs) => peers.call(n, method, params, timeoutMs),
        resignMaster: (why) => election.resign(why),
      },
      log.child({ component: 'shard-ops' }),
    );
    this.rotations = new CertRotationController(master, log.child({ component: 'cert-rotation-action' }));
    this.caRollover = new CaRolloverController(master, log.child({ component: 'ca-rollover' }));
    this.retention = new ActionRetention(master, log.child({ component: 'action-retention' }));
    // The cluster version (lowest member version, never lowered): decided by the cluster master.
    this.clusterVersion = new ClusterVersionController(master, log.child({ component: 'cluster-version' }));
    // Every node: a member older than the cluster version (a 0.1.0 node restarted into a 0.2 cluster) is kept from the master role.
    this.versionGuard = new MasterVersionGuard(
      {
        uid,
        store,
        nodes: view.nodes,
        get masterUid() {
          return election.masterUid;
        },
        storeIsCurrent: () => liveness.storeIsCurrent(),
      },
      SOFTWARE_VERSION,
      log.child({ component: 'version-guard' }),
    );
    // Joins (join_node actions): finished, or undone at their deadline, by the cluster master, whoever admitted them.
    this.joins = new JoinController(master, log.child({ component: 'join-controller' }));

    this.reshard = new ReshardController(
      { ...master, call: (n, method, params, timeoutMs) => peers.call(n, method, params, timeoutMs) },
      log.child({ component: 'reshard' }),
    );

    // The control RPCs this node answers.
    peers.register('status', async () => this.statusReply());
    peers.register(PORTS_FREE_RPC, (params) => this.portsFree(portsParam(params)));
    peers.register('internode_links', () => this.internodeLinks());
    peers.register(TRAFFIC_RPC, () => this.localTraffic());
    // Operator shard operations (control/controllers/shard-ops.ts) on a shard this node runs.
    const shards = { uid, shardProcess: (s: number) => reconciler.shardProcess(s), databases: () => reconciler.bdbs.values() };
    const shardLog = log.child({ component: 'shard-rpc' });
    for (const method of SHARD_RPCS) peers.register(method, (params) => shardRpc(shards, shardLog, method, params));
    // A resharding's holds (this node's endpoints) and key moves (its source shards), done by the data plane.
    for (const method of [RESHARD_HOLD_RPC, RESHARD_RELEASE_RPC, RESHARD_MOVE_RPC])
      peers.register(method, async (params) => {
        const op = reshardRpcOp(method, params);
        return dataplane.reshard(op, reshardRpcTimeout(op));
      });
  }

  /** The worker gets the cluster CA as the bundle's CA; anchors travel with the policy. */
  private bundleForWorker(plane: Plane) {
    return { ...this.p.certs.bundle(plane), caPem: this.p.certs.caPem() };
  }

  /** Start the node's own reconcilers, then the cluster master's controllers (each acts only while this node is master). */
  async start(): Promise<void> {
    this.started = true;
    await this.versionGuard.start();
    await this.rotator.start();
    await Promise.all([this.bdbs.start(), this.observed.start()]);
    await this.reconciler.start();
    await this.controller.start();
    this.failover.start();
    await this.shardOps.start();
    await this.maintenanceMode.start();
    await this.rotations.start();
    await this.caRollover.start();
    await this.joins.start();
    await this.reshard.start();
    this.clusterVersion.start();
    this.retention.start();
  }

  /** Whether every member runs `version` or later (the cluster version): 0.2 behaviours that a 0.1.0 master cannot follow wait for it. */
  clusterAtLeast(version: string): boolean {
    return clusterAtLeast(this.versionGuard.view(), version);
  }

  /** After a cut-off: converge on the current database map (before start, the reconciler's first pass reads it anyway). */
  async resync(): Promise<void> {
    if (this.started) await this.reconciler.resync();
  }

  /** Stop in reverse order of start; the data-plane worker last. */
  async stop(): Promise<void> {
    const warn = (what: string) => (e: unknown) => this.p.log.warn({ err: (e as Error).message }, `stopping ${what}`);
    if (this.started) {
      await this.retention.close().catch(warn('action retention'));
      await this.clusterVersion.close().catch(warn('the cluster version controller'));
      await this.reshard.close().catch(warn('the resharding controller'));
      await this.joins.close().catch(warn('the join controller'));
      await this.rotations.close().catch(warn('the rotation controller'));
      await this.caRollover.close().catch(warn('the CA rollover controller'));
      await this.maintenanceMode.close().catch(warn('maintenance mode'));
      await this.shardOps.close().catch(warn('shard operations'));
      this.failover.stop();
      await this.controller.stop().catch(warn('the database controller'));
      await this.reconciler.stop().catch(warn('the reconciler'));
      await Promise.all([this.bdbs.stop(), this.observed.stop()]).catch(warn('the database and observed-record watches'));
      await this.rotator.stop().catch(warn('certificate rotation'));
    }
    await this.dataplane.stop().catch(warn('the data plane'));
  }

  statusReply(): StatusReply {
    return {
      uid: this.p.identity.uid,
      uptime: Math.round((Date.now() - this.p.startedAt) / 1000),
      cores: os.cpus().length,
      total_memory: os.totalmem(),
      software_version: SOFTWARE_VERSION,
      master_uid: this.p.election.masterUid,
    };
  }

  /** Which of `ports` are free on this node's address (asked before a database takes one). */
  async portsFree(ports: number[]): Promise<{ free: number[] }> {
    return { free: await bindablePorts(this.p.cfg.addr, ports) };
  }

  /** Every live internode connection of this node: control links this thread dialed, and the data-plane worker's. */
  async internodeLinks(): Promise<NodeLinksReport> {
    const worker = await this.dataplane.internodeLinks();
    const own = this.p.peers.listLinks((serial) => this.p.view.isDenied(serial));
    return { uid: this.p.identity.uid, addr: this.p.cfg.addr, time: new Date().toISOString(), links: [...own, ...worker] };
  }

  /** This node's databases' traffic (the metrics endpoint, and the `traffic` RPC). */
  localTraffic(): Promise<NodeTraffic> {
    return localTraffic({ uid: this.p.identity.uid, dataplane: this.dataplane, shards: this.reconciler });
  }
}
