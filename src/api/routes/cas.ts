// The cluster's CAs as operators see them (GET /v1/cluster/certificates `cas`),
// their expiry alert `cluster_ca_expiring` (GET /v1/cluster/alerts), and the
// CA rollover routes. Keys never leave the store.
import type { CaRecord, PolicyRecord } from '../../coord/schema.js';
import { type CaState, caList } from '../../pki/ca-list.js';

export type CaName = 'internode' | 'services';
export const CA_NAMES: readonly CaName[] = ['internode', 'services'];

export interface CaViewOut {
  /** Which of the cluster's CAs: `internode` (cp, dp, etcd) or `services` (REST, UI, metrics, endpoints). */
  name: CaName;
  state: CaState;
  /** `sha256:<64 lower-case hex>`, as `--fingerprint` takes it. */
  fingerprint: string;
  subject: string;
  not_before: string;
  not_after: string;
  expires_in_seconds: number;
}

/** Every CA of both lists (no keys), internode first. */
export function caViews(recs: Partial<Record<CaName, CaRecord | null>>, now = Date.now()): CaViewOut[] {
  return CA_NAMES.flatMap((name) => {
    const rec = recs[name];
    if (!rec) return [];
    return caList(rec).map((c) => ({
      name,
      state: c.state,
      fingerprint: c.fingerprint,
      subject: c.subject,
      not_before: c.not_before,
      not_after: c.not_after,
      expires_in_seconds: Math.round((Date.parse(c.not_after) - now) / 1000),
    }));
  });
}

/** The cluster alert's shape (RE's alert object), as lifecycle.ts folds the node alerts. */
export interface CaAlert {
  enabled: boolean;
  state: boolean;
  severity: string;
  threshold: string;
  change_time: string | null;
  change_value: {
    state: boolean;
    nodes: number[];
    cas?: Array<Pick<CaViewOut, 'name' | 'state' | 'fingerprint' | 'not_after'> & { days_left: number }>;
  };
}

/**
 * `cluster_ca_expiring`: raised while a CA that nodes still need (active or
 * next; a retiring one is on its way out) has fewer than
 * `ca_expiry_alert_days` left. Its change time is when it crossed the
 * threshold, so every node answers the same.
 */
export function caExpiryAlert(views: readonly CaViewOut[], policy: Pick<PolicyRecord, 'ca_expiry_alert_days'>, now = Date.now()): CaAlert {
  const days = policy.ca_expiry_alert_days;
  const soon = views.filter((v) => v.state !== 'retiring' && Date.parse(v.not_after) - now < days * 86_400_000);
  const first = [...soon].sort((a, b) => Date.parse(a.not_after) - Date.parse(b.not_after))[0];
  return {
    enabled: true,
    state: soon.length > 0,
    severity: 'WARNING',
    threshold: String(days),
    change_time: first ? new Date(Date.parse(first.not_after) - days * 86_400_000).toISOString() : null,
    change_value: {
      state: soon.length > 0,
      nodes: [],
      ...(soon.length
        ? {
            cas: soon.map((v) => ({
              name: v.name,
              state: v.state,
              fingerprint: v.fingerprint,
              not_after: v.not_after,
              days_left: +((Date.parse(v.not_after) - now) / 86_400_000).toFixed(6),
            })),
          }
        : {}),
    },
  };
}
