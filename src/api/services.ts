// What the operator routes need from the node, and nothing more: the seam
// between api/ and the node object. The running member (control/membership/member.ts's
// ClusterMember) and the daemon (control/bootstrap/daemon.ts's NodeDaemon) implement it
// as they are (structurally; nothing is registered), and the route tests
// build it around a real etcd (test/support/api-host.ts), so a route can be
// driven in-process with Fastify's `inject`.
//
// A route that needs something new from the node adds it here, typed as
// narrowly as the route uses it (a read-only view, one method), not the
// member's own class. Routes hold no etcd client and no loop: they write
// through `store`, read through the view (`ApiReadView`), and leave planning
// to control/services.
import type { Logger } from 'pino';
import type { ClusterStore } from '../coord/store.js';
import type {
  BdbRecord,
  ClusterRecord,
  LiveRecord,
  NodePorts,
  NodeRecord,
  ObservedRecord,
  PolicyRecord,
  ActionRecord,
} from '../coord/schema.js';
import type { Plane, ServiceName } from '../pki/pki.js';
import type { NodeLinksReport } from '../internode/links.js';
import type { RpcClient } from '../internode/rpc.js';
import type { ProbeResult, StatusReply } from '../control/membership/member.js';
import type { BootstrapStatus, CreateClusterRequest, JoinClusterRequest, JoinGrant, JoinNodeRequest } from '../control/bootstrap/daemon.js';
import type { NodeStateHost } from '../control/model/node-state.js';
import type { WatchedNodes } from '../control/services/customer-certs.js';

/**
 * The store operations the routes use: coord's typed cluster store (`storeOf`,
 * coord/store.ts), narrowed to the resources they read and write. The routes
 * never hold an etcd client.
 */
export type ApiStore = Pick<
  ClusterStore,
  | 'seqs'
  | 'clusterVersion'
  | 'bdbs'
  | 'actions'
  | 'shardOps'
  | 'users'
  | 'nodes'
  | 'master'
  | 'members'
  | 'cluster'
  | 'settings'
  | 'operatorCerts'
  | 'certRotations'
  | 'caRollovers'
  | 'maintenanceMode'
>;

/** What the routes read of the cluster: the member's watched caches and what it derives from them. */
export interface ApiReadView extends NodeStateHost {
  readonly uid: number;
  readonly cluster: ClusterRecord;
  readonly masterUid?: number;
  /** The nodes' records (watched; `on('change')` for a route that waits on them) and their liveness leases. */
  readonly nodes: WatchedNodes;
  readonly live: { readonly items: ReadonlyMap<string, LiveRecord> };
  /** The last control-plane probe of each other node. */
  readonly probes: ReadonlyMap<number, ProbeResult>;
  policy(): PolicyRecord;
  /** The databases, as the store holds them (a watched cache). */
  databases(): readonly BdbRecord[];
  /** The shards of database `bdbUid` as each node last reported them, by node uid (empty until reported). */
  observedOf(bdbUid: number): ReadonlyMap<number, ObservedRecord>;
}

/** A log the requests write to (the route's request log). */
export type OpLog = Pick<Logger, 'info' | 'warn' | 'error'>;

/**
 * Operator shard operations, validated and queued as actions that the cluster
 * master runs (control/controllers/shard-ops.ts): `requestNodeRemoval` answers
 * undefined when the node hosts no shard (nothing to migrate).
 */
export interface ShardOpRequests {
  requestFailover(log: OpLog, shardUids: number[], opts: { immediate?: boolean }): Promise<ActionRecord>;
  requestMigrate(log: OpLog, shardUids: number[], target: number | undefined): Promise<ActionRecord>;
  requestNodeRemoval(log: OpLog, node: number): Promise<ActionRecord | undefined>;
}

/** A running cluster member, as the operator routes see it. */
export interface ApiMember extends ApiReadView {
  /** The desired state, read and written through the typed store. */
  readonly store: ApiStore;
  readonly shardOps: ShardOpRequests;
  readonly cfg: { readonly ports: NodePorts; readonly dataDir: string };
  /** This node's plane certificates. */
  readonly certs: { isCustomer(plane: Plane): boolean; bundle(plane: Plane): { certPem: string } };
  statusReply(): StatusReply;
  internodeLinks(): Promise<NodeLinksReport>;
  /** The control-RPC client of another node (the `ports_free` query, another node's internode links). */
  rpc(uid: number): RpcClient | undefined;
  /** Which of `ports` this node can bind now (control/reconcilers/ports.ts). */
  portsFree(ports: number[]): Promise<{ free: number[] }>;
  /** Hand the cluster master role to node `uid`. */
  changeMaster(uid: number): Promise<void>;
}

/** The node: its member once it belongs to a cluster (`requireMember` answers 503 `node_not_in_cluster` before). */
export interface ApiNode {
  requireMember(): ApiMember;
}

/** A node's bootstrap (REST only, before it has users to check): create a cluster, or join one. */
export interface BootstrapNode {
  readonly cfg: { readonly addr: string };
  readonly bootstrap: BootstrapStatus;
  localNodeInfo(): object;
  /** The certificate a CLI may pin this node's REST API by, once it has one. */
  restTrust(): { certPem: string; fingerprint: string } | undefined;
  createCluster(req: CreateClusterRequest): Promise<void>;
  joinCluster(req: JoinClusterRequest): Promise<void>;
}

/** A member's side of a join: admit a node (sign its CSRs), promote it once caught up, or undo it. */
export interface JoinAdmission {
  /** `softwareVersion`: what the joiner says it runs (the `x-tessera-version` header; 0.1.0 nodes send none). */
  admitNode(req: JoinNodeRequest, softwareVersion?: string): Promise<JoinGrant>;
  promoteJoin(uid: number): Promise<void>;
  abortJoin(uid: number): Promise<void>;
}

/** What the metrics endpoint (api/metrics.ts) reads of its node: the running member implements it as it is. */
export interface MetricsMember extends NodeStateHost {
  readonly uid: number;
  readonly cluster: { readonly name: string };
  readonly masterUid?: number;
  readonly cfg: { readonly addr: string; readonly dataDir: string; readonly ports: { readonly metrics: number } };
  /** Watched caches of the nodes' records and their liveness leases. */
  readonly nodes: { values(): NodeRecord[]; readonly items: ReadonlyMap<string, NodeRecord> };
  /** This node's client-facing certificates. */
  readonly services: { get(name: ServiceName): { readonly certPem: string } | undefined; caPem?(): string | undefined };
  /** The cluster CAs this node trusts on 3342 (its CA list: pki/ca-list.ts). */
  readonly certs?: { casPem(): string[] };
  /** Replicas promoted per database: by this node as cluster master (node down), and for its own shards (shard down). */
  readonly failover?: { readonly promotions: ReadonlyMap<number, number>; readonly refusalPromotions?: ReadonlyMap<number, number> };
  readonly reconciler?: { readonly promotions: ReadonlyMap<number, number> };
  databases(): readonly BdbRecord[];
}
