// The coordination store's key layout and the records kept under it.
// Desired state is written by the REST API; observed state by each node.

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
}

export const DEFAULT_POLICY: PolicyRecord = {
  data_internode_encryption: false,
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
