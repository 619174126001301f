// Certificate lifecycle: GET/PUT /v1/job_scheduler (cert_rotation_job_settings),
// PUT /v1/cluster (alert_settings), POST /v1/cluster/certificates/rotate,
// GET /v1/nodes/alerts[/{uid}[/{alert}]], GET /v1/nodes/{uid}/alerts,
// GET /v1/cluster/alerts[/{alert}].
import type { FastifyPluginAsync } from 'fastify';
import type { ApiNode } from '../services.js';
import type { ApiMember } from '../services.js';
import { type NodeAlertsRecord, type StoredAlertSettings, type StoredJobScheduler, jobSchedulerWithDefaults } from '../../coord/schema.js';
import { OperatorError, invalid, notFound } from '../../util/errors.js';
import { CronError, parseCron } from '../../util/cron.js';
import { CERT_NAMES, PLANE_CERT_NAME, PLANES, type Plane, planeOfCertName } from '../../pki/pki.js';
import { type CertName, OPERATOR_CERT_NAMES, type OperatorCertName } from '../../pki/customer.js';
import { uidParams } from '../schemas.js';
import { requestRotation, waitRotation } from '../../control/controllers/cert-rotation-action.js';
import { applyCustomerCerts, certName, planCustomerCerts } from '../../control/services/customer-certs.js';
import { type CaAlert, caExpiryAlert, caViews } from './cas.js';

const days = { type: 'number', exclusiveMinimum: 0, maximum: 3650 } as const;

const jobSchedulerBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    cert_rotation_job_settings: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        enabled: { type: 'boolean' },
        validity_days: days,
        expiry_days_before_rotation: days,
        cron_expression: { type: 'string', maxLength: 200 },
      },
    },
  },
} as const;

const clusterBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    alert_settings: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        node_internal_certs_about_to_expire: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          // The reference sends the threshold as a string ("45"); a number is taken too.
          properties: { enabled: { type: 'boolean' }, threshold: { type: ['number', 'string'], maxLength: 32 } },
        },
        // Percent of the shards' file system used (0.2).
        node_persistent_storage: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: { enabled: { type: 'boolean' }, threshold: { type: ['number', 'string'], maxLength: 32 } },
        },
        // No threshold: raised while a shard cannot write to disk (0.2).
        node_insufficient_disk_aofrw: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: { enabled: { type: 'boolean' } },
        },
      },
    },
  },
} as const;

/** A threshold given as a number or as a string of one (RE sends strings), within (0, max]; else the refusal. */
function thresholdOf(alert: string, v: number | string, max: number, unit: string): number {
  const t = typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v;
  if (typeof t !== 'number' || !(t > 0 && t <= max))
    throw invalid(
      'invalid_threshold',
      `${alert}.threshold must be a number of ${unit} above 0 and at most ${max} (a number or a string such as "45"), not ${JSON.stringify(v)}`,
    );
  return t;
}

const rotateBody = {
  type: 'object',
  additionalProperties: false,
  properties: { name: { type: 'string' } },
} as const;

/** The node alerts Tessera evaluates. */
const NODE_ALERTS = ['node_internal_certs_about_to_expire', 'node_persistent_storage', 'node_insufficient_disk_aofrw'] as const;

const alertParams = {
  type: 'object',
  required: ['uid', 'alert'],
  properties: { uid: { type: 'string', pattern: '^[0-9]{1,9}$' }, alert: { type: 'string', pattern: '^[a-z_]{1,64}$' } },
} as const;

/** An alert of the cluster (the reference's alert object), folded over the nodes. */
export interface ClusterAlert {
  enabled: boolean;
  state: boolean;
  severity: string;
  threshold: string;
  change_time: string | null;
  change_value: { state: boolean; nodes: number[]; per_node?: ({ node_uid: number } & Record<string, unknown>)[] };
}

async function nodeAlerts(m: ApiMember): Promise<Record<string, NodeAlertsRecord>> {
  const all = await m.store.nodes.alerts();
  const out: Record<string, NodeAlertsRecord> = {};
  for (const n of m.nodes
    .values()
    .filter((x) => x.addr)
    .sort((a, b) => a.uid - b.uid))
    out[String(n.uid)] = all.get(n.uid) ?? {};
  return out;
}

export const lifecycleRoutes: FastifyPluginAsync<{ daemon: ApiNode }> = async (app, { daemon }) => {
  app.get('/v1/job_scheduler', () => daemon.requireMember().store.settings.jobScheduler());

  // Settings are changed by compare-and-swap so two concurrent partial updates cannot undo each other.
  app.put<{ Body: StoredJobScheduler }>('/v1/job_scheduler', { schema: { body: jobSchedulerBody } }, async (req) => {
    const cron = req.body.cert_rotation_job_settings?.cron_expression;
    if (cron) {
      try {
        parseCron(cron);
      } catch (err) {
        if (err instanceof CronError) throw invalid('invalid_cron_expression', err.message);
        throw err;
      }
    }
    const next = await daemon.requireMember().store.settings.updateJobScheduler((cur) => {
      const next = jobSchedulerWithDefaults(cur, req.body);
      const s = next.cert_rotation_job_settings;
      if (s.expiry_days_before_rotation >= s.validity_days) {
        throw invalid(
          'invalid_schedule',
          `expiry_days_before_rotation (${s.expiry_days_before_rotation}) must be less than validity_days (${s.validity_days})`,
        );
      }
      return next;
    });
    req.log.info({ job_scheduler: next }, 'job scheduler updated');
    return next;
  });

  type ThresholdSetting = { enabled?: boolean; threshold?: number | string };
  app.put<{
    Body: {
      alert_settings?: {
        node_internal_certs_about_to_expire?: ThresholdSetting;
        node_persistent_storage?: ThresholdSetting;
        node_insufficient_disk_aofrw?: { enabled?: boolean };
      };
    };
  }>('/v1/cluster', { schema: { body: clusterBody } }, async (req) => {
    const m = daemon.requireMember();
    const a = req.body.alert_settings?.node_internal_certs_about_to_expire;
    if (a?.threshold !== undefined) a.threshold = thresholdOf('node_internal_certs_about_to_expire', a.threshold, 3650, 'days');
    const p = req.body.alert_settings?.node_persistent_storage;
    if (p?.threshold !== undefined) p.threshold = thresholdOf('node_persistent_storage', p.threshold, 100, 'percent');
    const alertSettings = await m.store.settings.updateAlertSettings(req.body.alert_settings as StoredAlertSettings);
    return { name: m.cluster.name, alert_settings: alertSettings };
  });

  app.get('/v1/cluster/alert_settings', () => daemon.requireMember().store.settings.alertSettings());

  // The reference's own call has no body at all: rotate both planes.
  const noBodyIsEmpty = async (req: { body: unknown }) => {
    if (req.body === undefined || req.body === null) req.body = {};
  };
  app.post<{ Body: { name?: string } | undefined }>(
    '/v1/cluster/certificates/rotate',
    { preValidation: noBodyIsEmpty, schema: { body: rotateBody } },
    async (req, reply) => {
      const m = daemon.requireMember();
      const name = req.body?.name;
      // As the reference: an unknown certificate name is 403, not 400.
      if (name !== undefined && !(CERT_NAMES as readonly string[]).includes(name)) {
        throw new OperatorError(
          'forbidden',
          'unknown_certificate',
          `no internode certificate is named ${JSON.stringify(name)}; rotatable: ${CERT_NAMES.join(', ')}`,
        );
      }
      const planes: Plane[] = name ? [planeOfCertName(name as CertName)] : [...PLANES];
      const operatorPlanes = planes.filter((p) => m.certs.isCustomer(p));
      if (name !== undefined && operatorPlanes.length) {
        throw new OperatorError(
          'forbidden',
          'operator_certificate',
          `${name} is an operator-provided certificate on this cluster: replace it with PUT /v1/cluster/certificates; it is not rotated`,
        );
      }
      // Desired state and an action; each node's certificate reconciler renews its own, the
      // master's controller follows them (control/controllers/cert-rotation-action.ts); this call waits on the action.
      const nodes = m.nodes
        .values()
        .filter((n) => n.addr)
        .map((n) => n.uid)
        .sort((a, b) => a - b);
      const action = await requestRotation(m.store, planes, nodes);
      req.log.info({ action: action.action_uid, planes, nodes }, 'certificate rotation requested');
      const out = await waitRotation(m.store, action.action_uid);
      if (out.action.status !== 'completed' && out.action.status !== 'failed') {
        // Not finished in time (no cluster master to follow it, say): it goes on; the caller can follow it.
        reply.status(202);
        return {
          action_uid: action.action_uid,
          description: `the rotation is still running (${out.action.progress}%: ${out.action.description ?? out.action.status}); follow it with GET /v1/actions/${action.action_uid}`,
        };
      }
      if (out.action.status === 'failed') {
        reply.status(400);
        return {
          error_code: 'rotation_incomplete',
          description: out.action.error ?? `certificate rotation (action ${action.action_uid}) failed`,
          failed_nodes: (out.request?.failed ?? []).map((f) => ({ node_uid: f.node_uid, ok: false, error: f.error })),
          action_uid: action.action_uid,
        };
      }
      const rotated = planes.filter((p) => !operatorPlanes.includes(p));
      return {
        rotated: rotated.map((p) => PLANE_CERT_NAME[p]),
        // Operator-provided certificates are the operator's to replace (PUT /v1/cluster/certificates).
        ...(operatorPlanes.length ? { not_rotated_operator_certificates: operatorPlanes.map((p) => PLANE_CERT_NAME[p]) } : {}),
        nodes: nodes.map((uid) => ({ node_uid: uid, ok: true, result: { uid, renewed: out.reports.get(uid)?.renewed ?? [] } })),
        action_uid: action.action_uid,
      };
    },
  );

  app.get('/v1/nodes/alerts', async () => nodeAlerts(daemon.requireMember()));

  const oneNode = async (uidText: string) => {
    const a = (await nodeAlerts(daemon.requireMember()))[String(Number(uidText))];
    if (!a) throw notFound('node_not_found', `node ${uidText} does not exist`);
    return a;
  };
  // The reference's paths, and the older `/v1/nodes/{uid}/alerts`.
  app.get<{ Params: { uid: string } }>('/v1/nodes/alerts/:uid', { schema: { params: uidParams } }, async (req) => oneNode(req.params.uid));
  app.get<{ Params: { uid: string } }>('/v1/nodes/:uid/alerts', { schema: { params: uidParams } }, async (req) => oneNode(req.params.uid));
  app.get<{ Params: { uid: string; alert: string } }>('/v1/nodes/alerts/:uid/:alert', { schema: { params: alertParams } }, async (req) => {
    const all = await oneNode(req.params.uid);
    if (!(NODE_ALERTS as readonly string[]).includes(req.params.alert))
      throw notFound('alert_not_found', `no node alert is named ${req.params.alert}; known: ${NODE_ALERTS.join(', ')}`);
    const a = all[req.params.alert as keyof NodeAlertsRecord];
    if (!a) throw notFound('alert_not_found', `node ${req.params.uid} has not evaluated ${req.params.alert} yet`);
    return a;
  });

  // Cluster-wide, keyed by alert name as the reference: each node alert folded over
  // the nodes (raised while any node raises it; `change_value.nodes` names them).
  const clusterAlerts = async (): Promise<Record<string, ClusterAlert | CaAlert>> => {
    const m = daemon.requireMember();
    const all = await nodeAlerts(m);
    const setting = await m.store.settings.alertSettings();
    const out: Record<string, ClusterAlert | CaAlert> = {};
    for (const name of NODE_ALERTS) {
      const per = Object.entries(all).flatMap(([uid, a]) => (a[name] ? [{ uid: Number(uid), a: a[name]! }] : []));
      const raised = per.filter((p) => p.a.state);
      const latest = [...(raised.length ? raised : per)].sort((x, y) => Date.parse(y.a.change_time) - Date.parse(x.a.change_time))[0];
      out[name] = {
        enabled: setting[name].enabled,
        state: raised.length > 0,
        severity: latest?.a.severity ?? 'WARNING',
        threshold: String(setting[name].threshold),
        change_time: latest?.a.change_time ?? null,
        change_value: {
          state: raised.length > 0,
          nodes: raised.map((r) => r.uid),
          ...(raised.length ? { per_node: raised.map((r) => ({ node_uid: r.uid, ...r.a.change_value })) } : {}),
        },
      };
    }
    // The cluster's own alert: its CAs, the same on every node.
    const [ca, servicesCa] = await Promise.all([m.store.cluster.ca(), m.store.cluster.servicesCa()]);
    out.cluster_ca_expiring = caExpiryAlert(caViews({ internode: ca, services: servicesCa }), m.policy());
    return out;
  };
  app.get('/v1/cluster/alerts', clusterAlerts);
  app.get<{ Params: { alert: string } }>(
    '/v1/cluster/alerts/:alert',
    { schema: { params: { type: 'object', required: ['alert'], properties: { alert: { type: 'string', pattern: '^[a-z_]{1,64}$' } } } } },
    async (req) => {
      const a = (await clusterAlerts())[req.params.alert];
      if (!a)
        throw notFound(
          'alert_not_found',
          `no cluster alert is named ${req.params.alert}; known: ${[...NODE_ALERTS, 'cluster_ca_expiring'].join(', ')}`,
        );
      return a;
    },
  );
};

const certsBody = {
  type: 'object',
  additionalProperties: false,
  required: ['certificates'],
  properties: {
    certificates: {
      type: 'array',
      minItems: 1,
      maxItems: 256,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'certificate', 'key'],
        properties: {
          name: { type: 'string', enum: [...OPERATOR_CERT_NAMES] },
          certificate: { type: 'string', minLength: 64, maxLength: 262144 },
          key: { type: 'string', minLength: 64, maxLength: 65536 },
          node_uid: { type: 'integer', minimum: 1 },
        },
      },
    },
  },
} as const;

interface CertsBody {
  certificates: { name: OperatorCertName; certificate: string; key: string; node_uid?: number }[];
}

/**
 * PUT /v1/cluster/certificates: operator-provided internode certificates
 * (ccs_internode_encryption, data_internode_encryption) and client-facing ones
 * (api, cm, proxy, metrics_exporter), per node (node_uid) or one for all nodes. Everything is validated before
 * anything is written; then one transaction records the certificates, their
 * owners and the new trust anchors, and each node applies its own. Answers
 * 200 once every node presents the new certificates, 409 naming the nodes
 * that did not. The REST API is never restarted.
 */
export const customerCertRoutes: FastifyPluginAsync<{ daemon: ApiNode }> = async (app, { daemon }) => {
  app.put<{ Body: CertsBody }>('/v1/cluster/certificates', { schema: { body: certsBody } }, async (req, reply) => {
    const m = daemon.requireMember();
    const nodes = m.nodes
      .values()
      .filter((n) => n.addr)
      .map((n) => n.uid);
    const existing = (await m.store.operatorCerts.trust())?.anchors ?? [];
    const plan = planCustomerCerts(req.body.certificates, nodes, existing);
    const pending = await applyCustomerCerts(m.store, m.nodes, plan);
    req.log.info(
      { certificates: plan.targets.map((t) => `${t.uid}/${t.name}`), pending: pending.map((t) => t.uid) },
      'operator-provided certificates recorded',
    );
    if (pending.length) {
      reply.status(409);
      return {
        error_code: 'not_all_nodes_updated',
        description: `node(s) ${[...new Set(pending.map((p) => p.uid))].join(', ')} have not applied the new certificates yet; they will when reachable`,
      };
    }
    return {
      certificates: plan.targets.map((t) => ({
        node_uid: t.uid,
        name: certName(t),
        serial: t.v.serial,
        subject: t.v.subject,
        issuer: t.v.issuer,
        not_after: t.v.not_after,
      })),
    };
  });
};
