// GET /v1/cluster, GET/PUT /v1/cluster/policy, GET /v1/cluster/certificates.
import type { FastifyPluginAsync } from 'fastify';
import type { ApiNode } from '../services.js';
import type { PolicyRecord } from '../../coord/schema.js';
import { SOFTWARE_VERSION } from '../../control/membership/config.js';
import { admits, clusterVersionOf, nodeTooOld } from '../../control/model/version-gates.js';
import fs from 'node:fs';
import { certInfo, PLANE_CERT_NAME, PLANES } from '../../pki/pki.js';
import { certPath } from '../../pki/node-files.js';
import { KEY_EXCHANGES, keyExchangeGroups } from '../../tls/policy.js';
import { invalid, notFound } from '../../util/errors.js';
import { joinPems, trustedPems } from '../../pki/ca-list.js';
import { caViews } from './cas.js';

const policyBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    data_internode_encryption: { type: 'boolean' },
    internode_key_exchange: { type: 'string', enum: [...KEY_EXCHANGES] },
    failover_timeout: { type: 'integer', minimum: 1, maximum: 3600 },
    slave_ha: { type: 'boolean' },
    slave_ha_grace_period: { type: 'integer', minimum: 0, maximum: 86400 },
    // Redis Enterprise's database defaults, used when a database is created without the field.
    default_sharded_proxy_policy: { type: 'string', enum: ['single', 'all-master-shards', 'all-nodes'] },
    default_non_sharded_proxy_policy: { type: 'string', enum: ['single', 'all-master-shards', 'all-nodes'] },
    default_shards_placement: { type: 'string', enum: ['dense', 'sparse'] },
    default_oss_cluster: { type: 'boolean' },
    // CA rollover and expiry (api/routes/cas.ts).
    ca_expiry_alert_days: { type: 'integer', minimum: 1, maximum: 3650 },
    services_ca_overlap_seconds: { type: 'integer', minimum: 0, maximum: 31_536_000 },
  },
} as const;

export const clusterRoutes: FastifyPluginAsync<{ daemon: ApiNode }> = async (app, { daemon }) => {
  app.get('/v1/cluster', async () => {
    const m = daemon.requireMember();
    const alertSettings = await m.store.settings.alertSettings();
    return {
      name: m.cluster.name,
      alert_settings: alertSettings,
      cluster_id: m.cluster.cluster_id,
      created_time: m.cluster.created_time,
      // The answering node's own build, as in 0.1.0; what the cluster as a whole can do is cluster_version.
      software_version: SOFTWARE_VERSION,
      cluster_version: clusterVersionOf({ cluster_version: (await m.store.clusterVersion.get())?.version, members: [] }),
      master_node_uid: m.masterUid ?? null,
      nodes_count: m.nodes.items.size,
      control_plane_encryption: true,
    };
  });

  const readPolicy = async (): Promise<PolicyRecord> => {
    const m = daemon.requireMember();
    return m.store.cluster.policy();
  };

  app.get('/v1/cluster/policy', readPolicy);

  app.put<{ Body: Partial<PolicyRecord> }>('/v1/cluster/policy', { schema: { body: policyBody } }, async (req) => {
    const m = daemon.requireMember();
    if (req.body.default_oss_cluster === true)
      throw invalid(
        'invalid_oss_cluster_configuration',
        'default_oss_cluster: the OSS Cluster API is not supported; only false is accepted',
      );
    // Compare-and-swap so two concurrent partial updates cannot undo each other.
    const next = await m.store.cluster.updatePolicy(req.body);
    req.log.info({ policy: next }, 'cluster policy updated');
    return next;
  });

  // RE's cluster actions: change_master ({"node_uid": "2"}) makes a live node the cluster master.
  app.post<{ Params: { action: string }; Body: { node_uid?: string | number } }>(
    '/v1/cluster/actions/:action',
    {
      schema: {
        params: { type: 'object', properties: { action: { type: 'string' } }, required: ['action'] },
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            node_uid: {
              anyOf: [
                { type: 'string', pattern: '^[0-9]{1,9}$' },
                { type: 'integer', minimum: 1 },
              ],
            },
          },
        },
      },
    },
    async (req) => {
      const m = daemon.requireMember();
      if (req.params.action !== 'change_master')
        throw notFound('action_not_supported', `cluster action '${req.params.action}' is not supported (supported: change_master)`);
      if (req.body?.node_uid === undefined)
        throw invalid('node_uid_required', 'change_master needs the node_uid of the node to make the master');
      const uid = Number(req.body.node_uid);
      const n = m.nodes.items.get(String(uid));
      if (!n?.addr) throw notFound('node_not_found', `node ${uid} does not exist`);
      // A node older than the cluster version would act on records it cannot read (and every 0.2 member takes the role back).
      const cv = (await m.store.clusterVersion.get())?.version;
      if (!admits(cv, n.software_version)) throw nodeTooOld(`node ${uid}`, n.software_version, cv!);
      if (m.masterUid !== uid) await m.changeMaster(uid);
      return { action: 'change_master', node_uid: String(uid), status: 'completed' };
    },
  );

  app.get('/v1/cluster/certificates', async (req) => {
    const m = daemon.requireMember();
    const ca = await m.store.cluster.ca();
    const caInfo = certInfo(ca.cert);
    const now = Date.now();
    const certificates = m.nodes
      .values()
      .sort((a, b) => a.uid - b.uid)
      .flatMap((n) =>
        PLANES.flatMap((plane) => {
          const c = n.certificates?.[plane];
          if (!c) return [];
          return [{ node_uid: n.uid, plane, ...c, expires_in_seconds: Math.round((Date.parse(c.not_after) - now) / 1000) }];
        }),
      );
    const policy = m.policy();
    // The reference's shape: `<name>_cert` (PEM) per certificate name. Its `<name>_key`
    // fields are never returned: private keys do not leave their node. Internode
    // certificates are per node here; these are the answering node's own.
    let apiCert: string | undefined;
    try {
      apiCert = fs.readFileSync(certPath(m.cfg.dataDir, 'api'), 'utf8');
    } catch (err) {
      req.log.warn({ err: (err as Error).message }, 'cannot read the REST certificate file; api_cert left out');
    }
    // The client-facing certificates (api, cm, proxy, metrics_exporter) and the services CA that signs them.
    const servicesCa = await m.store.cluster.servicesCa();
    const sInfo = servicesCa ? certInfo(servicesCa.cert) : undefined;
    // Every CA of both lists with its state (a rollover has two), and the bundle clients should trust.
    const cas = caViews({ internode: ca, services: servicesCa }, now);
    const service_certificates = m.nodes
      .values()
      .sort((a, b) => a.uid - b.uid)
      .flatMap((n) =>
        Object.values(n.service_certificates ?? {}).map((c) => ({
          node_uid: n.uid,
          ...c,
          expires_in_seconds: Math.round((Date.parse(c.not_after) - now) / 1000),
        })),
      );
    return {
      ...(apiCert ? { api_cert: apiCert } : {}),
      ...Object.fromEntries(PLANES.map((p) => [`${PLANE_CERT_NAME[p]}_cert`, m.certs.bundle(p).certPem])),
      ...(sInfo && servicesCa
        ? {
            services_ca: {
              subject: sInfo.subject,
              serial: sInfo.serial,
              not_before: sInfo.not_before,
              not_after: sInfo.not_after,
              fingerprint256: sInfo.fingerprint256,
              certificate: servicesCa.cert,
              bundle: joinPems(trustedPems(servicesCa)),
            },
          }
        : {}),
      service_certificates,
      ca: {
        subject: caInfo.subject,
        serial: caInfo.serial,
        not_before: caInfo.not_before,
        not_after: caInfo.not_after,
        fingerprint256: caInfo.fingerprint256,
        certificate: ca.cert,
      },
      certificates,
      cas,
      // What every internode handshake offers: the hybrid group first (docs/security.md, TLS policy).
      key_exchange: { internode_key_exchange: policy.internode_key_exchange, groups: keyExchangeGroups(policy.internode_key_exchange) },
    };
  });
};
