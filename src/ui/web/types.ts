// The REST resources' shapes, taken from the REST layer itself where it has
// them (type-only imports: nothing of the server is bundled into the page).
import type { bdbView } from '../../api/routes/bdbs.js';
import type { nodeView } from '../../api/routes/nodes.js';
import type { CertName } from '../../pki/pki.js';
import type {
  ActionRecord,
  AlertSettingsRecord,
  AlertState,
  CertMeta,
  JobSchedulerRecord,
  NodeAlertsRecord,
  PolicyRecord,
} from '../../coord/schema.js';

export type Bdb = ReturnType<typeof bdbView>;
export type NodeInfo = ReturnType<typeof nodeView>;
export type { ActionRecord, AlertSettingsRecord, AlertState, JobSchedulerRecord, NodeAlertsRecord, PolicyRecord };

/** GET /v1/cluster */
export interface ClusterInfo {
  name: string;
  alert_settings: AlertSettingsRecord;
  cluster_id: string;
  created_time: string;
  /** The answering node's build. */
  software_version: string;
  /** What the cluster as a whole runs at (major.minor): the lowest member version, decided by the master. */
  cluster_version: string;
  master_node_uid: number | null;
  nodes_count: number;
  control_plane_encryption: boolean;
}

/** GET /v1/cluster/certificates */
export interface CertificatesInfo {
  ca: { subject: string; serial: string; not_before: string; not_after: string; fingerprint256: string };
  certificates: (CertMeta & { node_uid: number; plane: string; expires_in_seconds: number })[];
  key_exchange: { internode_key_exchange: string; groups: string[] };
  /** Every CA of the cluster (0.2): two of one name during a rollover. */
  cas?: CaInfo[];
}

/** One of the cluster's CAs (GET /v1/cluster/certificates `cas`). */
export interface CaInfo {
  name: 'internode' | 'services';
  state: 'active' | 'next' | 'retiring';
  fingerprint: string;
  subject: string;
  not_before: string;
  not_after: string;
  expires_in_seconds: number;
}

/** POST /v1/cluster/certificates/rotate, and its refusal. */
export interface RotateResult {
  rotated: string[];
  nodes: { node_uid: number; ok: boolean; error?: string }[];
  /** The rotate_certificates action the rotation ran as (GET /v1/actions/{uid}). */
  action_uid: string;
}

/** GET/POST/DELETE /ui/session */
export interface SessionInfo {
  username: string;
  csrf_token: string;
  idle_timeout_seconds: number;
}

/** The internode certificates an operator can replace (PUT /v1/cluster/certificates). */
export const CERT_NAMES: readonly CertName[] = ['ccs_internode_encryption', 'data_internode_encryption'];
