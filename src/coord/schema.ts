// The coordination store's key layout and the records kept under it.
// Desired state is written by the REST API; observed state by each node.
//
// Each record is declared once, as a TypeBox schema; its TypeScript type is
// derived from it (`Static<>`) under the same name, and the schema is what a
// read checks the stored JSON against (coord/records.ts). Optional fields stay
// optional so that records written by older code still read, and no schema
// rejects fields it does not know (a newer node may have added some).
import { Type, type Static } from '@sinclair/typebox';
import { OneOf, Role, Time, Uid } from './schema-types.js';

export { MaintenanceRecord, MaintenanceShard } from './schema-maintenance.js';
import { DEFAULT_KEY_EXCHANGE, KEY_EXCHANGES } from '../tls/policy.js';

export const KEYS = {
  cluster: '/tessera/cluster',
  ca: '/tessera/ca',
  /** The services CA (client-facing certificates); same record shape as the internode CA's. */
  servicesCa: '/tessera/services_ca',
  policy: '/tessera/policy',
  nodeSeq: '/tessera/seq/node_uid',
  user: (name: string) => `/tessera/users/${name}`,
  usersPrefix: '/tessera/users/',
  userSeq: '/tessera/seq/user_uid',
  nodesPrefix: '/tessera/nodes/',
  node: (uid: number) => `/tessera/nodes/${uid}`,
  livePrefix: '/tessera/live/',
  live: (uid: number) => `/tessera/live/${uid}`,
  /** Heartbeats: each node rewrites its own twice a second (coord/heartbeats.ts). */
  beatsPrefix: '/tessera/beats/',
  beat: (uid: number) => `/tessera/beats/${uid}`,
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
  serviceCertsPrefix: '/tessera/service_certs/',
  serviceCert: (uid: number, name: string) => `/tessera/service_certs/${uid}/${name}`,
  alertSettings: '/tessera/alert_settings',
  alertsPrefix: '/tessera/alerts/',
  alerts: (uid: number) => `/tessera/alerts/${uid}`,
  actionsPrefix: '/tessera/actions/',
  action: (uid: number) => `/tessera/actions/${uid}`,
  shardOpsPrefix: '/tessera/shard_ops/',
  shardOp: (actionUid: string) => `/tessera/shard_ops/${actionUid}`,
  certRotationsPrefix: '/tessera/cert_rotations/',
  certRotation: (actionUid: string) => `/tessera/cert_rotations/${actionUid}`,
  certRotatedPrefix: '/tessera/cert_rotated/',
  /** What node `node` did for rotation `actionUid` (observed state). */
  certRotated: (actionUid: string, node: number) => `/tessera/cert_rotated/${actionUid}/${node}`,
  join: (uid: number) => `/tessera/joins/${uid}`,
  /** A CA rollover (0.2): its phase, which the cluster master moves on (control/controllers/ca-rollover.ts). */
  caRolloversPrefix: '/tessera/ca_rollovers/',
  caRollover: (actionUid: string) => `/tessera/ca_rollovers/${actionUid}`,
  master: '/tessera/master',
  /** The cluster version (ClusterVersionRecord), written by the cluster master only. */
  clusterVersion: '/tessera/cluster_version',
  uiSessionsPrefix: '/tessera/ui_sessions/',
  /** By a digest of the session's token (the token itself is never stored). */
  uiSession: (digest: string) => `/tessera/ui_sessions/${digest}`,
  /** Maintenance mode of a node (MaintenanceRecord), written by the REST API and the cluster master's maintenance controller. */
  maintenancePrefix: '/tessera/maintenance/',
  maintenance: (uid: number) => `/tessera/maintenance/${uid}`,
} as const;

const PlaneName = OneOf('cp', 'dp');

/** The value of a uid sequence key (`KEYS.*Seq`): the last uid handed out. */
export const SeqValue = Type.Integer({ minimum: 0 });

export const ClusterRecord = Type.Object({
  name: Type.String(),
  cluster_id: Type.String(),
  created_time: Time,
});
export type ClusterRecord = Static<typeof ClusterRecord>;

/** The management roles (Redis Enterprise's names): `db_viewer` reads, `admin` does everything. */
export const USER_ROLES = ['admin', 'db_viewer'] as const;
export type UserRole = (typeof USER_ROLES)[number];

export const UserRecord = Type.Object({
  /** The login name: an email address, as Redis Enterprise's `email`. */
  username: Type.String(),
  password_hash: Type.String(),
  role: OneOf(...USER_ROLES),
  /** Absent on the first admin as older versions wrote it: that user is uid 1. */
  uid: Type.Optional(Uid),
  name: Type.Optional(Type.String()),
  password_issue_date: Type.Optional(Time),
});
export type UserRecord = Static<typeof UserRecord>;

export const NodePorts = Type.Object({
  rest: Type.Integer(),
  internode: Type.Integer(),
  dp_plain: Type.Integer(),
  etcd_peer: Type.Integer(),
  etcd_client: Type.Integer(),
  metrics: Type.Integer(),
  /** The web UI (HTTPS); optional: records written before the UI existed lack it. */
  ui: Type.Optional(Type.Integer()),
});
export type NodePorts = Static<typeof NodePorts>;

export const CertMeta = Type.Object({
  name: Type.String(),
  serial: Type.String(),
  subject: Type.String(),
  issuer: Type.String(),
  not_before: Time,
  not_after: Time,
});
export type CertMeta = Static<typeof CertMeta>;

export const NodeRecord = Type.Object({
  uid: Uid,
  addr: Type.String(),
  ports: NodePorts,
  etcd_member_id: Type.String(),
  software_version: Type.String(),
  capabilities: Type.Array(Type.String()),
  joined_time: Time,
  certificates: Type.Object({ cp: Type.Optional(CertMeta), dp: Type.Optional(CertMeta) }),
  /** The client-facing certificates the node presents, by name (api, cm, proxy, metrics_exporter). */
  service_certificates: Type.Optional(Type.Record(Type.String(), CertMeta)),
  /**
   * The cluster CAs the node trusts (SHA-256 fingerprints, `sha256:<hex>`), as it reports them (0.2):
   * `internode` (3342), `etcd` (what its etcd member loaded when it started) and `services` (the bundle it hands clients).
   */
  ca_trust: Type.Optional(
    Type.Object({
      internode: Type.Array(Type.String()),
      etcd: Type.Optional(Type.Array(Type.String())),
      services: Type.Optional(Type.Array(Type.String())),
      /** The CA (fingerprint) that issued the node's cp and dp certificates. */
      issued_by: Type.Optional(Type.Object({ cp: Type.Optional(Type.String()), dp: Type.Optional(Type.String()) })),
    }),
  ),
});
export type NodeRecord = Static<typeof NodeRecord>;

/**
 * What every node record has, including the first node's as cluster creation
 * writes it, before that node publishes the rest of it (membership/member.ts publishNodeRecord).
 */
export const NodeStubRecord = Type.Object({
  uid: Uid,
  etcd_member_id: Type.String(),
  joined_time: Time,
});
export type NodeStubRecord = Static<typeof NodeStubRecord>;

/** A web UI session, valid on every node until its user signs out or it lapses (ui/sessions.ts). */
export const UiSessionRecord = Type.Object({
  username: Type.String(),
  /** A digest of the user's password hash at sign-in (ui/sessions.ts credentialOf): a password change ends the session. */
  credential: Type.Optional(Type.String()),
  csrf_token: Type.String(),
  /** ms since the epoch */
  created: Type.Number(),
  /** The last call of the user's that was recorded (ms since the epoch; recorded at most once a minute). */
  last_active: Type.Number(),
});
export type UiSessionRecord = Static<typeof UiSessionRecord>;

/** Written under a lease: present while the node is alive. */
export const LiveRecord = Type.Object({
  uid: Uid,
  started_time: Time,
  pid: Type.Integer(),
  /** Set when the node has begun a graceful stop (it hands its masters over): nothing is handed to it. 0.1.0 ignores it. */
  stopping: Type.Optional(Time),
});
export type LiveRecord = Static<typeof LiveRecord>;

/** A node's heartbeat: only that it was written matters; `seq` makes each one a change. */
export const BeatRecord = Type.Object({
  seq: Type.Integer(),
});
export type BeatRecord = Static<typeof BeatRecord>;

export const PolicyRecord = Type.Object({
  data_internode_encryption: Type.Boolean(),
  /** Internode channel key exchange: hybrid post-quantum preferred, or required. */
  internode_key_exchange: OneOf(...KEY_EXCHANGES),
  /** Seconds without a heartbeat of a node after which the master fails its shards over (at least the liveness TTL). */
  failover_timeout: Type.Number(),
  /** Replica high availability (RE's name): a dead node's replicas are rebuilt on other nodes. */
  slave_ha: Type.Boolean(),
  /** Seconds a node must stay dead, beyond failover_timeout, before its replicas are rebuilt elsewhere (RE's name). */
  slave_ha_grace_period: Type.Number(),
  /** Redis Enterprise's database defaults: what a database created without these fields gets. */
  default_sharded_proxy_policy: OneOf('single', 'all-master-shards', 'all-nodes'),
  default_non_sharded_proxy_policy: OneOf('single', 'all-master-shards', 'all-nodes'),
  default_shards_placement: OneOf('dense', 'sparse'),
  /** OSS Cluster API mode for new databases: not supported, so always false. */
  default_oss_cluster: Type.Boolean(),
  /** Days before a cluster CA expires from which the `cluster_ca_expiring` alert is raised (0.2). */
  ca_expiry_alert_days: Type.Number(),
  /** Seconds a services CA rollover publishes the next CA before the servers switch to it, and keeps the old one after (0.2). */
  services_ca_overlap_seconds: Type.Number(),
});
export type PolicyRecord = Static<typeof PolicyRecord>;

export const DEFAULT_POLICY: PolicyRecord = {
  data_internode_encryption: false,
  internode_key_exchange: DEFAULT_KEY_EXCHANGE,
  failover_timeout: 5,
  slave_ha: true,
  slave_ha_grace_period: 0,
  default_sharded_proxy_policy: 'all-master-shards',
  default_non_sharded_proxy_policy: 'single',
  default_shards_placement: 'sparse',
  default_oss_cluster: false,
  ca_expiry_alert_days: 365,
  services_ca_overlap_seconds: 7 * 86_400,
};

/**
 * The policy as stored: any field may be missing (a record written before the
 * field existed); read it through `policyWithDefaults`.
 */
export const StoredPolicy = Type.Partial(PolicyRecord);
export type StoredPolicy = Static<typeof StoredPolicy>;

/** The cluster policy: the defaults, overlaid by each given layer in turn (the stored record, then a change). */
export function policyWithDefaults(...layers: (StoredPolicy | null | undefined)[]): PolicyRecord {
  return Object.assign({ ...DEFAULT_POLICY }, ...layers.map((l) => l ?? {})) as PolicyRecord;
}

export const DenyRecord = Type.Object({
  serial: Type.String(),
  node_uid: Uid,
  plane: Type.String(),
  time: Time,
});
export type DenyRecord = Static<typeof DenyRecord>;

export const JoinRecord = Type.Object({
  uid: Uid,
  addr: Type.String(),
  etcd_member_id: Type.String(),
  started_time: Time,
  /** The `join_node` action that follows this join (0.2): absent when the admitting node keeps its own watchdog (0.1.0). */
  action_uid: Type.Optional(Type.String()),
  /** When the cluster master gives the join up (with action_uid). */
  deadline: Type.Optional(Time),
});
export type JoinRecord = Static<typeof JoinRecord>;

/** The cluster version: the lowest major.minor among the members when the master last decided it; never lowered. */
export const ClusterVersionRecord = Type.Object({
  version: Type.String(),
  updated_time: Time,
});
export type ClusterVersionRecord = Static<typeof ClusterVersionRecord>;

/** The cluster master: held under the master's liveness lease. */
export const MasterRecord = Type.Object({
  uid: Uid,
  since: Time,
});
export type MasterRecord = Static<typeof MasterRecord>;

export const ProxyPolicy = OneOf('single', 'all-master-shards', 'all-nodes');
export type ProxyPolicy = Static<typeof ProxyPolicy>;
export const Persistence = OneOf('disabled', 'aof', 'snapshot');
export type Persistence = Static<typeof Persistence>;
export const BdbStatus = OneOf('pending', 'active', 'active-change-pending', 'delete-pending', 'creation-failed');
export type BdbStatus = Static<typeof BdbStatus>;

export const ShardPlacement = Type.Object({
  uid: Uid,
  role: Role,
  node_uid: Uid,
  /** Inclusive slot range served by this shard's master. */
  slots: Type.Tuple([Type.Integer(), Type.Integer()]),
  /** For a replica: its master shard. */
  master_uid: Type.Optional(Uid),
  /**
   * 0.2, only while a resharding moves slots (control/controllers/reshard.ts): the slot
   * ranges this shard's family serves, possibly several or none; when present it, not
   * `slots`, is what endpoints route by. Absent: `slots`.
   */
  slot_ranges: Type.Optional(Type.Array(Type.Tuple([Type.Integer(), Type.Integer()]))),
});
export type ShardPlacement = Static<typeof ShardPlacement>;

/** A database's desired state (Redis Enterprise bdb fields), written by the REST API. */
export const BdbRecord = Type.Object({
  uid: Uid,
  name: Type.String(),
  type: OneOf('redis'),
  port: Type.Integer(),
  memory_size: Type.Number(),
  shards_count: Type.Integer(),
  sharding: Type.Boolean(),
  replication: Type.Boolean(),
  proxy_policy: ProxyPolicy,
  shards_placement: OneOf('dense', 'sparse'),
  data_internode_encryption: Type.Boolean(),
  data_persistence: Persistence,
  eviction_policy: Type.String(),
  /**
   * 0.2: Redis's own guard (min-replicas-to-write / min-replicas-max-lag): a
   * master with fewer replicas acknowledging within the lag refuses writes.
   * Absent or 0: off. A 0.1.0 node ignores it (its shards run without it).
   */
  min_replicas_to_write: Type.Optional(Type.Integer()),
  min_replicas_max_lag: Type.Optional(Type.Integer()),
  authentication_redis_pass: Type.Optional(Type.String()),
  /** Redis Enterprise's custom hashing policy; absent: the standard one (its default rule list). */
  shard_key_regex: Type.Optional(Type.Array(Type.Object({ regex: Type.String() }))),
  /** Client TLS on the endpoint (RE's field); absent: disabled. */
  tls_mode: Type.Optional(OneOf('disabled', 'enabled')),
  /** With tls_mode enabled and certificates listed: only clients presenting one of them (or one a listed CA issued) are served. Absent: enabled. */
  enforce_client_authentication: Type.Optional(OneOf('enabled', 'disabled')),
  authentication_ssl_client_certs: Type.Optional(Type.Array(Type.Object({ client_cert: Type.String() }))),
  /** Never shown: authenticates shards and the plaintext data-plane channel. */
  internal_secret: Type.String(),
  shards: Type.Array(ShardPlacement),
  status: BdbStatus,
  /** Bumped on every change of desired state; nodes report the generation they have converged to. */
  generation: Type.Integer(),
  /** Bumped when links must be re-established (encryption switched). */
  link_generation: Type.Integer(),
  created_time: Time,
  last_changed_time: Time,
  action_uid: Type.Optional(Type.String()),
  error: Type.Optional(Type.String()),
  /** 0.2: a resharding under way (its action is `action_uid`); removed when the last slot has moved. */
  reshard: Type.Optional(
    Type.Object({
      /** The shards_count asked for. */
      shards_count: Type.Integer(),
      /** Slot moves still to do, in order: each range goes from one master shard to another. */
      moves: Type.Array(Type.Object({ source: Uid, target: Uid, slots: Type.Tuple([Type.Integer(), Type.Integer()]) })),
      /** Master shards (with their replicas) that are removed once every move is done. */
      remove: Type.Array(Uid),
      /** Slots whose keys still lie on their former shard (the flip is done): removed there, then dropped from this list. */
      cleanup: Type.Optional(Type.Array(Type.Object({ source: Uid, slots: Type.Tuple([Type.Integer(), Type.Integer()]) }))),
      /** Slots moved so far and in all (the action's progress). */
      moved_slots: Type.Integer(),
      total_slots: Type.Integer(),
    }),
  ),
});
export type BdbRecord = Static<typeof BdbRecord>;

/** What one node reports about one database. */
export const ObservedRecord = Type.Object({
  node_uid: Uid,
  generation: Type.Integer(),
  /** Has this node done everything the generation asks of it? */
  converged: Type.Boolean(),
  error: Type.Optional(Type.String()),
  fatal: Type.Optional(Type.Boolean()),
  endpoint: Type.Optional(Type.Object({ port: Type.Integer(), listening: Type.Boolean(), error: Type.Optional(Type.String()) })),
  /**
   * Which run of the node wrote it: the `started_time` of that process's live record (0.2; 0.1.0 nodes
   * write none). A shard's `handover` counts only while this is the node's current one.
   */
  incarnation: Type.Optional(Type.String()),
  shards: Type.Array(
    Type.Object({
      uid: Uid,
      role: Role,
      status: OneOf('active', 'down', 'starting'),
      pid: Type.Optional(Type.Integer()),
      used_memory: Type.Optional(Type.Number()),
      master_link_status: Type.Optional(Type.String()),
      /** A replica's full sync from its master: how far the transfer is, in percent. */
      sync_progress: Type.Optional(Type.Number()),
      /** Why the shard is down: its last failed start. */
      error: Type.Optional(Type.String()),
      /**
       * A master shard that asks the cluster master to promote its replica (0.2; 0.1.0 nodes ignore it):
       * it crashed, or its node returns and it may lack writes its replica took meanwhile.
       */
      handover: Type.Optional(OneOf('crashed', 'returning')),
      /**
       * The shard refuses writes (0.2; 0.1.0 nodes neither write nor read it): its AOF cannot be written or its
       * last snapshot failed (clients get MISCONF), or it is full with noeviction (OOM). shards/shard-health.ts.
       */
      write_refused: Type.Optional(Type.Object({ reason: OneOf('aof_write', 'bgsave', 'oom'), message: Type.String() })),
      /** Its last AOF rewrite failed (0.2): writes go on, the AOF grows. */
      aof_rewrite_failed: Type.Optional(Type.Boolean()),
    }),
  ),
  time: Time,
});
export type ObservedRecord = Static<typeof ObservedRecord>;
export type ObservedShard = ObservedRecord['shards'][number];

export const ActionRecord = Type.Object({
  action_uid: Type.String(),
  name: Type.String(),
  object_name: Type.String(),
  progress: Type.Number(),
  status: OneOf('pending', 'active', 'completed', 'failed'),
  creation_time: Time,
  error: Type.Optional(Type.String()),
  /** What the action is doing now (shard operations report each step here). */
  description: Type.Optional(Type.String()),
  /** The steps so far, oldest first, each `<progress>% <description>`. */
  steps: Type.Optional(Type.Array(Type.String())),
  /** replica_rebuild: the replicas being rebuilt (their full sync is the progress). */
  shard_uids: Type.Optional(Type.Array(Uid)),
});
export type ActionRecord = Static<typeof ActionRecord>;

/** A completed or failed action: nothing changes it any more. */
export const isFinished = (a: Pick<ActionRecord, 'status'>): boolean => a.status === 'completed' || a.status === 'failed';

/** An action that runs from the moment it is written (with the record it follows, in one transaction): its description is its first step. */
export function runningAction(
  uid: string,
  name: string,
  objectName: string,
  description: string,
  creationTime = new Date().toISOString(),
): ActionRecord {
  return {
    action_uid: uid,
    name,
    object_name: objectName,
    progress: 0,
    status: 'active',
    creation_time: creationTime,
    description,
    steps: [`0% ${description}`],
  };
}

/**
 * An operator's shard operation (`failover`, `migrate`), waiting for or being
 * run by the shard-operations controller on the cluster master; removed when
 * its action has finished. Its progress is the action's (`KEYS.action`).
 */
export const ShardOpRecord = Type.Object({
  action_uid: Type.String(),
  /** replication (0.2, gated): replicas added to each master (`new_shard_uid` on `target_node_uid`) or removed (`shard_uid`, a replica). */
  kind: OneOf('failover', 'migrate', 'remove_node', 'replication'),
  items: Type.Array(
    Type.Object({
      bdb_uid: Uid,
      shard_uid: Uid,
      /** migrate, remove_node: the uid of the shard that is built on the target node (taken from the shard sequence when asked). */
      new_shard_uid: Type.Optional(Uid),
      /** remove_node: where this shard goes (chosen when the removal was asked). */
      target_node_uid: Type.Optional(Uid),
      /** failover (0.2, maintenance mode's restore): the replica to promote; absent: the best live one. */
      to_shard_uid: Type.Optional(Uid),
    }),
  ),
  /** migrate: where the shards go. */
  target_node_uid: Type.Optional(Uid),
  /** remove_node: the node whose shards move away, and which is then removed. */
  node_uid: Type.Optional(Uid),
  /** failover: switch without waiting for the replica to catch up. */
  immediate: Type.Optional(Type.Boolean()),
  /** replication: the database's `replication` once the operation is done (true: replicas are added, false: removed). */
  replication: Type.Optional(Type.Boolean()),
  created_time: Time,
});
export type ShardOpRecord = Static<typeof ShardOpRecord>;

/**
 * A rotation of every node's internode certificates, asked by
 * POST /v1/cluster/certificates/rotate (desired state): each listed node's
 * certificate reconciler renews `planes` and records a CertRotatedRecord; the
 * master's controller follows them in the action (control/controllers/cert-rotation-action.ts).
 */
export const CertRotationRequest = Type.Object({
  action_uid: Type.String(),
  planes: Type.Array(PlaneName),
  /** The nodes asked to rotate: every member with an address when it was asked. */
  nodes: Type.Array(Uid),
  requested_time: Time,
  /** Set when the action finished: nodes no longer act on it; the records go a while later. */
  finished_time: Type.Optional(Time),
  /** With finished_time: the nodes that did not renew, and why (none: the rotation completed). */
  failed: Type.Optional(Type.Array(Type.Object({ node_uid: Uid, error: Type.String() }))),
});
export type CertRotationRequest = Static<typeof CertRotationRequest>;

/** What one node did for one rotation request (observed state). */
export const CertRotatedRecord = Type.Object({
  node_uid: Uid,
  action_uid: Type.String(),
  /** The certificates it renewed (an operator-provided one is not). */
  renewed: Type.Array(Type.Object({ plane: PlaneName, serial: Type.String(), not_after: Time })),
  /** Why it could not renew them all. */
  error: Type.Optional(Type.String()),
  time: Time,
});
export type CertRotatedRecord = Static<typeof CertRotatedRecord>;

/** Redis Enterprise's cert_rotation_job_settings, in days (fractions allowed so tests run in seconds). */
export const CertRotationSettings = Type.Object({
  enabled: Type.Boolean(),
  validity_days: Type.Number(),
  expiry_days_before_rotation: Type.Number(),
  /**
   * When the rotation job runs (5-field cron, node local time): a due renewal
   * starts only in a matching minute (a failed one keeps retrying). Absent:
   * the job checks every second.
   */
  cron_expression: Type.Optional(Type.String()),
});
export type CertRotationSettings = Static<typeof CertRotationSettings>;

export const JobSchedulerRecord = Type.Object({
  cert_rotation_job_settings: CertRotationSettings,
});
export type JobSchedulerRecord = Static<typeof JobSchedulerRecord>;

export const DEFAULT_JOB_SCHEDULER: JobSchedulerRecord = {
  cert_rotation_job_settings: { enabled: true, validity_days: 90, expiry_days_before_rotation: 60 },
};

/**
 * The job scheduler settings as stored (and as a change to them is given):
 * any setting may be missing; read them through `jobSchedulerWithDefaults`.
 */
export const StoredJobScheduler = Type.Object({
  cert_rotation_job_settings: Type.Optional(Type.Partial(CertRotationSettings)),
});
export type StoredJobScheduler = Static<typeof StoredJobScheduler>;

/** The job scheduler settings: the defaults, overlaid setting by setting by each given layer in turn. */
export function jobSchedulerWithDefaults(...layers: (StoredJobScheduler | null | undefined)[]): JobSchedulerRecord {
  return mergeOneLevel(DEFAULT_JOB_SCHEDULER, layers);
}

export const AlertSetting = Type.Object({
  enabled: Type.Boolean(),
  /** Days. */
  threshold: Type.Number(),
});
export type AlertSetting = Static<typeof AlertSetting>;

export const AlertSettingsRecord = Type.Object({
  node_internal_certs_about_to_expire: AlertSetting,
  /** Threshold: percent of the data directory's file system used (0.2). */
  node_persistent_storage: AlertSetting,
  /** No threshold (0): raised while a shard of the node cannot write its AOF or snapshot, or rewrite its AOF (0.2). */
  node_insufficient_disk_aofrw: AlertSetting,
});
export type AlertSettingsRecord = Static<typeof AlertSettingsRecord>;

export const DEFAULT_ALERT_SETTINGS: AlertSettingsRecord = {
  node_internal_certs_about_to_expire: { enabled: true, threshold: 45 },
  node_persistent_storage: { enabled: true, threshold: 90 },
  node_insufficient_disk_aofrw: { enabled: true, threshold: 0 },
};

/**
 * The alert settings as stored (and as a change to them is given): any
 * setting may be missing; read them through `alertSettingsWithDefaults`.
 */
export const StoredAlertSettings = Type.Object({
  node_internal_certs_about_to_expire: Type.Optional(Type.Partial(AlertSetting)),
  node_persistent_storage: Type.Optional(Type.Partial(AlertSetting)),
  node_insufficient_disk_aofrw: Type.Optional(Type.Partial(AlertSetting)),
});
export type StoredAlertSettings = Static<typeof StoredAlertSettings>;

/** The alert settings: the defaults, overlaid setting by setting by each given layer in turn. */
export function alertSettingsWithDefaults(...layers: (StoredAlertSettings | null | undefined)[]): AlertSettingsRecord {
  return mergeOneLevel(DEFAULT_ALERT_SETTINGS, layers);
}

/** Settings records are groups of settings: each group of the defaults is overlaid field by field; groups the defaults lack are dropped. */
function mergeOneLevel<T extends Record<string, object>>(
  defaults: T,
  layers: ({ [K in keyof T]?: Partial<T[K]> } | null | undefined)[],
): T {
  const out: Record<string, object> = {};
  for (const k of Object.keys(defaults) as (keyof T & string)[]) {
    out[k] = Object.assign({ ...defaults[k] }, ...layers.map((l) => l?.[k] ?? {}));
  }
  return out as T;
}

/** One alert of one node (Redis Enterprise's alert object). */
export const AlertState = Type.Object({
  enabled: Type.Boolean(),
  state: Type.Boolean(),
  severity: OneOf('WARNING', 'ERROR', 'INFO'),
  threshold: Type.Number(),
  change_time: Time,
  change_value: Type.Object({
    certificate: Type.Optional(Type.String()),
    days_left: Type.Optional(Type.Number()),
    seconds_left: Type.Optional(Type.Number()),
    /** node_persistent_storage: percent of the data directory's file system used, and its free bytes (0.2). */
    used_percent: Type.Optional(Type.Number()),
    free_bytes: Type.Optional(Type.Number()),
    /** node_insufficient_disk_aofrw: the shards that cannot write to disk, with why (0.2). */
    shards: Type.Optional(Type.Array(Type.Object({ uid: Uid, bdb_uid: Uid, role: Role, reason: Type.String() }))),
    state: Type.Boolean(),
  }),
});
export type AlertState = Static<typeof AlertState>;

export const NodeAlertsRecord = Type.Object({
  node_internal_certs_about_to_expire: Type.Optional(AlertState),
  node_persistent_storage: Type.Optional(AlertState),
  node_insufficient_disk_aofrw: Type.Optional(AlertState),
});
export type NodeAlertsRecord = Static<typeof NodeAlertsRecord>;

/** Trust anchors an operator added with customer certificates. */
export const TrustRecord = Type.Object({
  anchors: Type.Array(Type.String()),
});
export type TrustRecord = Static<typeof TrustRecord>;

export const CertIdentityRecord = Type.Object({
  serial: Type.String(),
  uid: Uid,
  plane: PlaneName,
});
export type CertIdentityRecord = Static<typeof CertIdentityRecord>;

/** What is kept of an operator-provided certificate for one node, whichever it is. */
const OperatorCertFields = {
  uid: Uid,
  chain: Type.String(),
  key: Type.String(),
  serial: Type.String(),
  not_after: Time,
  /** Earliest expiry anywhere in the chain: the cluster replaces the certificate 5 days before it. */
  chain_not_after: Time,
  applied_time: Time,
};

/** An operator-provided certificate for one node and plane, to be applied by that node. */
export const CustomerCertRecord = Type.Object({ ...OperatorCertFields, plane: PlaneName });
export type CustomerCertRecord = Static<typeof CustomerCertRecord>;

/** An operator-provided client-facing certificate (api, cm, proxy, metrics_exporter) for one node. */
export const ServiceCertRecord = Type.Object({ ...OperatorCertFields, name: OneOf('api', 'cm', 'proxy', 'metrics_exporter') });
export type ServiceCertRecord = Static<typeof ServiceCertRecord>;
