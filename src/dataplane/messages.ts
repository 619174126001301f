// Messages between the node's control loop (main thread) and its data-plane
// worker thread. The worker owns every data-path socket: the internode
// listeners (3342, 3343), database endpoints, shard links and replication
// tunnels, so that client load never delays the control loop's lease renewals.
import type { Bundle, KeyExchange } from '../tls/policy.js';
import type { Plane } from '../pki/pki.js';
import type { NodePorts } from '../coord/schema.js';
import type { InternodeLink } from '../internode/links.js';
import type { EndpointStatsSnapshot } from '../proxy/stats.js';
import type { MoveSpec, MoveStep } from './mover.js';

export interface PeerNode {
  uid: number;
  addr: string;
  internode: number;
  dp_plain: number;
}

/** Who may use the internode channel, as the control loop currently sees it. */
export interface PolicySnapshot {
  clusterId: string;
  members: number[];
  denied: string[];
  nodes: PeerNode[];
  /** Trust anchors added with operator-provided certificates (the cluster CA is always trusted). */
  anchors: string[];
  /** Operator-provided certificates carry no tessera identity; the cluster records whose they are. */
  identities: { serial: string; uid: number; plane: 'cp' | 'dp' }[];
  /** The cluster's internode_key_exchange setting. */
  keyExchange: KeyExchange;
}

export interface LocalShard {
  shardUid: number;
  bdbUid: number;
  socketPath: string;
}

export interface BdbLinkConfig {
  uid: number;
  /** data_internode_encryption: links to other nodes use 3342 (TLS, dp plane) when true, 3343 when false. */
  encrypted: boolean;
  /** Changes whenever links must be re-established (mode switch). */
  linkGeneration: number;
  /** Per-database internal secret: authenticates the plaintext channel and the shards. */
  secret: string;
}

export interface ShardLocation {
  shardUid: number;
  bdbUid: number;
  nodeUid: number;
}

export interface EndpointSpec {
  bdbUid: number;
  port: number;
  password?: string;
  /** The database's custom hashing rules (shard_key_regex); absent: standard hash tags. */
  shardKeyRegex?: string[];
  shards: { shardUid: number; slots: [number, number][] }[];
  /** How long commands for an unreachable master wait before -CLUSTERDOWN (covers a failover). */
  holdMs: number;
  /** tls_mode enabled: TLS only, with the node's proxy certificate; `clientCerts` (PEM) when client certificates are enforced. */
  tls?: { clientCerts?: string[] };
}

export interface TunnelSpec {
  /** The local replica shard that replicates through this tunnel. */
  replicaShardUid: number;
  bdbUid: number;
  masterShardUid: number;
}

export interface DataplaneConfig {
  localShards: LocalShard[];
  bdbs: BdbLinkConfig[];
  shardLocations: ShardLocation[];
  endpoints: EndpointSpec[];
  tunnels: TunnelSpec[];
}

/** A resharding's requests to the data plane (control/controllers/reshard.ts through the reshard RPCs). */
export type ReshardOp =
  /** Hold the slots on this node's endpoint of the database; answered once what was sent to `from` is answered. */
  | { kind: 'hold'; bdbUid: number; ranges: [number, number][]; from: number; timeoutMs: number; token?: string }
  | { kind: 'release'; bdbUid: number; ranges: [number, number][]; token?: string }
  /** A step of the key mover (dataplane/mover.ts) for a source shard on this node. */
  | { kind: 'move'; spec: MoveSpec; step: MoveStep };

export type ToWorker =
  | {
      type: 'init';
      node: { uid: number; addr: string; ports: NodePorts };
      certs: Record<Plane, Bundle>;
      policy: PolicySnapshot;
      logLevel: string;
      proxyCert?: { certPem: string; keyPem: string };
    }
  | { type: 'certs'; plane: Plane; bundle: Bundle }
  /** The node's `proxy` certificate (services CA), presented by TLS endpoints; sent at start and on each renewal. */
  | { type: 'proxy-cert'; cert: { certPem: string; keyPem: string } }
  | { type: 'policy'; policy: PolicySnapshot }
  | { type: 'config'; config: DataplaneConfig }
  | { type: 'rpc-reply'; conn: number; line: string }
  /**
   * The control loop reached the cluster store: writes stay allowed for
   * `validForMs`. `ordered`: applied only after every earlier message (the
   * lift of a fence must follow the config that made the map current).
   */
  | { type: 'contact'; validForMs: number; ordered: boolean }
  /** Ask for the worker's live internode connections (verify encryption); answered by `links-reply` with the same id. */
  | { type: 'links-request'; id: number }
  /** Ask for every endpoint's traffic counters (metrics); answered by `stats-reply` with the same id. */
  | { type: 'stats-request'; id: number }
  | { type: 'reshard'; id: number; op: ReshardOp }
  | { type: 'stop' };

export interface EndpointState {
  bdbUid: number;
  port: number;
  listening: boolean;
  error?: string;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'listen-error'; message: string }
  | { type: 'endpoints'; endpoints: EndpointState[] }
  | { type: 'tunnel'; replicaShardUid: number; host: string; port: number }
  | { type: 'rpc'; conn: number; peer: { uid: number; plane: Plane; serial: string }; line: string }
  | { type: 'links-reply'; id: number; links: InternodeLink[] }
  | { type: 'stats-reply'; id: number; endpoints: EndpointStatsSnapshot[] }
  | { type: 'reshard-reply'; id: number; result?: unknown; error?: string }
  | { type: 'stopped' };
