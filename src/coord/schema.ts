// The coordination store's key layout and the records kept under it.
// Desired state is written by the REST API; observed state by each node.
import { DEFAULT_KEY_EXCHANGE, type KeyExchange } from '../tls/policy.js';

export const KEYS = {
  cluster: '/tessera/cluster',
  ca: '/tessera/ca',
  policy: '/tessera/policy',
  nodeSeq: '/tessera/seq/node_uid',
  user: (name: string) => `/tessera/users/${name}`,
  nodesPrefix: '/tessera/nodes/',
  node: (uid: number) => `/tessera/nodes/${uid}`,
  livePrefix: '/tessera/live/',
  live: (uid: number) => `/tessera/live/${uid}`,
  denyPrefix: '/tessera/deny/',
  deny: (serial: string) => `/tessera/deny/${serial}`,
  joinsPrefix: '/tessera/joins/',
  bdbSeq: '/tessera/seq/bdb_uid',
  shardSeq: '/tessera/seq/shard_uid',
  actionSeq: '/tessera/seq/action_uid',
  bdbsPrefix: '/tessera/bdbs/',
  bdb: (uid: number) => `/tessera/bdbs/${uid}`,
  observedPrefix: '/tessera/observed/',
  observed: (bdb: number, node: number) => `/tessera/observed/${bdb}/${node}`,
  jobScheduler: '/tessera/job_scheduler',
  trust: '/tessera/trust',
  certIdentitiesPrefix: '/tessera/cert_identities/',
  certIdentity: (serial: string) => `/tessera/cert_identities/${serial}`,
  customerCertsPrefix: '/tessera/customer_certs/',
  customerCert: (uid: number, plane: string) => `/tessera/customer_certs/${uid}/${plane}`,
  alertSettings: '/tessera/alert_settings',
  alertsPrefix: '/tessera/alerts/',
  alerts: (uid: number) => `/tessera/alerts/${uid}`,
  actionsPrefix: '/tessera/actions/',
  action: (uid: number) => `/tessera/actions/${uid}`,
  join: (uid: number) => `/tessera/joins/${uid}`,
  master: '/tessera/master',
} as const;

export interface ClusterRecord {
  name: string;
  cluster_id: string;
  created_time: string;
}

export interface CaRecord {
  cert: string;
  key: string;
}

export interface UserRecord {
  username: string;
  password_hash: string;
  role: 'admin';
}

export interface NodePorts {
  rest: number;
  internode: number;
  dp_plain: number;
  etcd_peer: number;
  etcd_client: number;
  metrics: number;
}

export interface CertMeta {
  name: string;
  serial: string;
  subject: string;
  issuer: string;
  not_before: string;
  not_after: string;
}

export interface NodeRecord {
  uid: number;
  addr: string;
  ports: NodePorts;
  etcd_member_id: string;
  software_version: string;
  capabilities: string[];
  joined_time: string;
  certificates: { cp?: CertMeta; dp?: CertMeta };
}

/** Written under a lease: present while the node is alive. */
export interface LiveRecord {
  uid: number;
  started_time: string;
  pid: number;
}

export interface PolicyRecord {
  data_internode_encryption: boolean;
  /** Internode channel key exchange: hybrid post-quantum preferred, or required. */
  internode_key_exchange: KeyExchange;
  /** Seconds after a node's last liveness renewal at which the master fails its shards over. */
  failover_timeout: number;
}

export const DEFAULT_POLICY: PolicyRecord = {
  data_internode_encryption: false,
  internode_key_exchange: DEFAULT_KEY_EXCHANGE,
  failover_timeout: 5,
};

export interface DenyRecord {
  serial: string;
  node_uid: number;
  plane: string;
  time: string;
}

export interface JoinRecord {
  uid: number;
  addr: string;
  etcd_member_id: string;
  started_time: string;
}

/** The cluster master: held under the master's liveness lease. */
export interface MasterRecord {
  uid: number;
  since: string;
}

export type ProxyPolicy = 'single' | 'all-master-shards' | 'all-nodes';
export type Persistence = 'disabled' | 'aof' | 'snapshot';
export type BdbStatus = 'pending' | 'active' | 'active-change-pending' | 'delete-pending' | 'creation-failed';

export interface ShardPlacement {
  uid: number;
  role: 'master' | 'slave';
  node_uid: number;
  /** Inclusive slot range served by this shard's master. */
  slots: [number, number];
  /** For a replica: its master shard. */
  master_uid?: number;
}

/** A database's desired state (Redis Enterprise bdb fields), written by the REST API. */
export interface BdbRecord {
  uid: number;
  name: string;
  type: 'redis';
  port: number;
  memory_size: number;
  shards_count: number;
  sharding: boolean;
  replication: boolean;
  proxy_policy: ProxyPolicy;
  shards_placement: 'dense' | 'sparse';
  data_internode_encryption: boolean;
  data_persistence: Persistence;
  eviction_policy: string;
  authentication_redis_pass?: string;
  /** Never shown: authenticates shards and the plaintext data-plane channel. */
  internal_secret: string;
  shards: ShardPlacement[];
  status: BdbStatus;
  /** Bumped on every change of desired state; nodes report the generation they have converged to. */
  generation: number;
  /** Bumped when links must be re-established (encryption switched). */
  link_generation: number;
  created_time: string;
  last_changed_time: string;
  action_uid?: string;
  error?: string;
}

/** What one node reports about one database. */
export interface ObservedRecord {
  node_uid: number;
  generation: number;
  /** Has this node done everything the generation asks of it? */
  converged: boolean;
  error?: string;
  fatal?: boolean;
  endpoint?: { port: number; listening: boolean; error?: string };
  shards: { uid: number; role: 'master' | 'slave'; status: 'active' | 'down' | 'starting'; pid?: number; used_memory?: number; master_link_status?: string }[];
  time: string;
}

export interface ActionRecord {
  action_uid: string;
  name: string;
  object_name: string;
  progress: number;
  status: 'pending' | 'active' | 'completed' | 'failed';
  creation_time: string;
  error?: string;
}

/** Redis Enterprise's cert_rotation_job_settings, in days (fractions allowed so tests run in seconds). */
export interface CertRotationSettings {
  enabled: boolean;
  validity_days: number;
  expiry_days_before_rotation: number;
}

export interface JobSchedulerRecord {
  cert_rotation_job_settings: CertRotationSettings;
}

export const DEFAULT_JOB_SCHEDULER: JobSchedulerRecord = {
  cert_rotation_job_settings: { enabled: true, validity_days: 90, expiry_days_before_rotation: 60 },
};

export interface AlertSetting {
  enabled: boolean;
  /** Days. */
  threshold: number;
}

export interface AlertSettingsRecord {
  node_internal_certs_about_to_expire: AlertSetting;
}

export const DEFAULT_ALERT_SETTINGS: AlertSettingsRecord = {
  node_internal_certs_about_to_expire: { enabled: true, threshold: 45 },
};

/** One alert of one node (Redis Enterprise's alert object). */
export interface AlertState {
  enabled: boolean;
  state: boolean;
  severity: 'WARNING' | 'ERROR' | 'INFO';
  threshold: number;
  change_time: string;
  change_value: { certificate?: string; days_left?: number; seconds_left?: number; state: boolean };
}

export interface NodeAlertsRecord {
  node_internal_certs_about_to_expire?: AlertState;
}

/** Trust anchors an operator added with customer certificates. */
export interface TrustRecord {
  anchors: string[];
}

export interface CertIdentityRecord {
  serial: string;
  uid: number;
  plane: 'cp' | 'dp';
}

/** An operator-provided certificate for one node and plane, to be applied by that node. */
export interface CustomerCertRecord {
  uid: number;
  plane: 'cp' | 'dp';
  chain: string;
  key: string;
  serial: string;
  not_after: string;
  /** Earliest expiry anywhere in the chain: the cluster replaces the certificate 5 days before it. */
  chain_not_after: string;
  applied_time: string;
}
