// The cluster's CAs as operators see them (GET /v1/cluster/certificates `cas`),
// their expiry alert `cluster_ca_expiring` (GET /v1/cluster/alerts), and the
// CA rollover routes. Keys never leave the store.
import type { FastifyPluginAsync } from 'fastify';
import type { ApiNode } from '../services.js';
import type { PolicyRecord } from '../../coord/schema.js';
import type { CaRecord } from '../../coord/schema-ca.js';
import { type CaState, caList } from '../../pki/ca-list.js';
import { conflict, invalid } from '../../util/errors.js';
import { requireFeature } from '../../control/model/version-gates.js';
import { requestCaRollover } from '../../control/controllers/ca-rollover.js';

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

const rotateCaBody = {
  type: 'object',
  additionalProperties: false,
  required: ['ca'],
  properties: { ca: { type: 'string', maxLength: 32 } },
} as const;

/** POST /v1/cluster/certificates/ca/rotate: a CA rollover as an action (answers at once with its `action_uid`). */
export const caRoutes: FastifyPluginAsync<{ daemon: ApiNode }> = async (app, { daemon }) => {
  app.post<{ Body: { ca: string } }>('/v1/cluster/certificates/ca/rotate', { schema: { body: rotateCaBody } }, async (req, reply) => {
    const m = daemon.requireMember();
    const ca = req.body.ca;
    if (!(CA_NAMES as readonly string[]).includes(ca))
      throw invalid('invalid_ca', `ca must be one of ${CA_NAMES.join(', ')}, not ${JSON.stringify(ca)}`);
    // 0.1.0 members neither follow a CA list nor report their trust: the whole cluster must run 0.2.
    const cv = (await m.store.clusterVersion.get())?.version;
    requireFeature(
      {
        cluster_version: cv,
        members: m.nodes
          .values()
          .filter((n) => n.addr)
          .map((n) => ({ uid: n.uid, software_version: n.software_version })),
      },
      'ca_rollover',
    );
    const running = (await m.store.caRollovers.list()).find((r) => !r.finished_time);
    if (running)
      throw conflict('ca_rollover_in_progress', `a CA rollover is in progress (action ${running.action_uid}, phase ${running.phase})`);
    const action = await requestCaRollover(m.store, ca as CaName);
    if (!action) throw conflict('ca_rollover_in_progress', 'a CA rollover was started meanwhile');
    req.log.info({ action: action.action_uid, ca }, 'CA rollover requested');
    reply.code(200);
    return { action_uid: action.action_uid, ca, status: action.status, description: action.description };
  });

  // The servers move to the next services CA now, not at the end of the overlap (clients have fetched the bundle).
  app.post<{ Body: { ca: string } }>('/v1/cluster/certificates/ca/activate', { schema: { body: rotateCaBody } }, async (req) => {
    const m = daemon.requireMember();
    if (req.body.ca !== 'services')
      throw invalid(
        'invalid_ca',
        `only the services CA is activated by hand (the internode CA moves on its own), not ${JSON.stringify(req.body.ca)}`,
      );
    const running = (await m.store.caRollovers.list()).find((r) => !r.finished_time && r.ca === 'services');
    if (!running)
      throw conflict('no_ca_rollover', 'no services CA rollover is in progress (POST /v1/cluster/certificates/ca/rotate starts one)');
    if (running.phase !== 'make_next' && running.phase !== 'trust_both')
      throw conflict('ca_already_active', `the next services CA is active already (action ${running.action_uid}, phase ${running.phase})`);
    const now = new Date().toISOString();
    const rec = await m.store.caRollovers.update(running.action_uid, (cur) =>
      cur && !cur.finished_time && (cur.phase === 'make_next' || cur.phase === 'trust_both') ? { ...cur, activate_after: now } : undefined,
    );
    req.log.info({ action: running.action_uid }, 'services CA activation requested');
    return { action_uid: running.action_uid, ca: 'services', activate_after: rec?.activate_after ?? now };
  });
};
