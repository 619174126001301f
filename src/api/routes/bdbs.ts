// Databases (Redis Enterprise `bdb` objects): POST/GET /v1/bdbs, GET/PUT/DELETE /v1/bdbs/{uid},
// and GET /v1/actions[/{uid}], /v1/actions/bdb/{uid}. A change is validated, written as desired
// state, converged by every node's reconciler, and reflected in `status`. As the reference:
// `?dry_run` on POST and PUT validates only; an invalid configuration is 406, a change or delete
// while another change is in progress 409; malformed JSON (unknown field, wrong type, unknown
// query parameter) stays 400 `invalid_schema`.
import type { FastifyPluginAsync } from 'fastify';
import { X509Certificate } from 'node:crypto';
import type { ApiMember, ApiNode, ApiReadView } from '../services.js';
import type { BdbRecord, ObservedShard, ProxyPolicy } from '../../coord/schema.js';
import { OperatorError, conflict, invalid, notFound, unacceptable } from '../../util/errors.js';
import { DEFAULT_SHARD_KEY_REGEX, isDefaultShardKeyRegex, shardKeyRegexProblem } from '../../proxy/slots.js';
import { endpointNodes } from '../../control/model/placement.js';
import { uidParams } from '../schemas.js';
import { isShapeChange, refuseWhileReshaping, shapeChange, shapeRoutes, shardsBlueprintField, withShapeStatus } from './bdb-shape.js';
import { isReshard, reshardBdb } from './bdb-reshard.js';
import { rangesText } from '../../control/model/reshard-plan.js';
import { shardSync, type ShardSync } from '../../control/controllers/bdb-controller.js';
import { MAX_PORTS_ASKED, portsInUse } from '../../control/reconcilers/ports.js';
import { nodeIsUp } from '../../control/model/node-state.js';
import { requireClusterFeature } from '../version-gate.js';
import {
  DATA_INE_CAPABILITY,
  MIN_MEMORY,
  PORT_MAX,
  PORT_MIN,
  activeNodes,
  checkCapability,
  checkMemoryFits,
  createBdb,
} from '../../control/services/bdb-create.js';

const EVICTION = [
  'volatile-lru',
  'volatile-ttl',
  'volatile-random',
  'allkeys-lru',
  'allkeys-random',
  'noeviction',
  'volatile-lfu',
  'allkeys-lfu',
];
const PROXY_POLICIES: ProxyPolicy[] = ['single', 'all-master-shards', 'all-nodes'];
const PERSISTENCE = ['disabled', 'aof', 'snapshot'];
export { DATA_INE_CAPABILITY };

// Types are checked by the schema (400 invalid_schema); values with a reference error code are checked in code.
const fields = {
  name: { type: 'string' },
  type: { type: 'string' },
  memory_size: { type: 'integer' },
  port: { type: 'integer' },
  shards_count: { type: 'integer' },
  sharding: { type: 'boolean' },
  replication: { type: 'boolean' },
  proxy_policy: { type: 'string' },
  shards_placement: { type: 'string' },
  data_internode_encryption: { type: 'boolean' },
  data_persistence: { type: 'string' },
  eviction_policy: { type: 'string' },
  min_replicas_to_write: { type: 'integer' },
  min_replicas_max_lag: { type: 'integer' },
  authentication_redis_pass: { type: 'string', maxLength: 512 },
  shard_key_regex: {
    type: 'array',
    items: { type: 'object', additionalProperties: false, required: ['regex'], properties: { regex: { type: 'string' } } },
  },
  oss_cluster: { type: 'boolean' },
  // Client TLS on the endpoint (RE's fields).
  tls_mode: { type: 'string' },
  enforce_client_authentication: { type: 'string' },
  authentication_ssl_client_certs: {
    type: 'array',
    maxItems: 256,
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['client_cert'],
      properties: { client_cert: { type: 'string', maxLength: 65536 } },
    },
  },
} as const;

// RE lets the creator choose the uid (409 uid_exists when it is taken).
const createBody = {
  type: 'object',
  additionalProperties: false,
  properties: { ...fields, uid: { type: 'integer', minimum: 1, maximum: 999_999_999 } },
} as const;
const updateBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { ...fields, ...shardsBlueprintField },
} as const;

/** Query parameters: `dry_run` (present, `true` or `1`: validate only) on changes, `fields` on reads; any other is refused. */
const changeQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { dry_run: { type: 'string', enum: ['', 'true', 'false', '1', '0'] } },
} as const;
const readQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { fields: { type: 'string', pattern: '^[a-z0-9_]+(,[a-z0-9_]+)*$' } },
} as const;
const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;
type ChangeQuery = { dry_run?: string };
const isDryRun = (q: ChangeQuery) => q.dry_run !== undefined && q.dry_run !== 'false' && q.dry_run !== '0';

/** `?fields=uid,name`: only those fields of each object, as the reference. */
function pick<T extends object>(o: T, fieldList: string | undefined): Partial<T> {
  if (fieldList === undefined) return o;
  const want = new Set(fieldList.split(','));
  return Object.fromEntries(Object.entries(o).filter(([k]) => want.has(k))) as Partial<T>;
}

type BdbInput = Partial<Omit<BdbRecord, 'uid' | 'shards' | 'status' | 'generation' | 'link_generation' | 'internal_secret'>> & {
  oss_cluster?: boolean;
  shards_blueprint?: unknown;
};

/**
 * Each shard of a database as its node last reported it: 'active', 'down'
 * (its node is down, or the process is), or 'starting' (not reported yet);
 * with the time of the report.
 */
type WriteRefused = NonNullable<ObservedShard['write_refused']>;

export function shardStates(
  m: ApiReadView,
  b: BdbRecord,
): Map<number, { status: string; reported?: string; sync?: ShardSync; error?: string; write_refused?: WriteRefused }> {
  // Keyed by shard and node: a shard moved away (failover, migration) may still
  // be listed by its old node's last report, which must not stand for it.
  const reported = new Map<string, { status: string; time: string; sync?: ShardSync; error?: string; write_refused?: WriteRefused }>();
  for (const o of m.observedOf(b.uid).values()) {
    for (const s of o.shards) {
      const sync = shardSync(s);
      reported.set(`${s.uid}@${o.node_uid}`, {
        status: s.status,
        time: o.time,
        sync,
        ...(s.error ? { error: s.error } : {}),
        ...(s.write_refused ? { write_refused: s.write_refused } : {}),
      });
    }
  }
  return new Map(
    b.shards.map((s) => {
      const r = reported.get(`${s.uid}@${s.node_uid}`);
      const status = nodeIsUp(m, s.node_uid) ? (r?.status ?? 'starting') : 'down';
      return [
        s.uid,
        {
          status,
          reported: r?.time,
          ...(s.role === 'slave' && r?.sync && status === 'active' ? { sync: r.sync } : {}),
          ...(r?.error && status !== 'active' ? { error: r.error } : {}),
          // A shard that runs but refuses writes (MISCONF, OOM): shards/shard-health.ts.
          ...(r?.write_refused && status === 'active' ? { write_refused: r.write_refused } : {}),
        },
      ];
    }),
  );
}

export function bdbView(m: ApiReadView, b: BdbRecord) {
  const allNodes = m.nodes
    .values()
    .filter((n) => n.addr)
    .map((n) => n.uid);
  const addrs = endpointNodes(b, allNodes)
    .map((u) => m.nodes.items.get(String(u))?.addr)
    .filter(Boolean) as string[];
  const states = shardStates(m, b);
  const { internal_secret: _secret, authentication_redis_pass: pass, generation: _g, link_generation: _l, shards, ...rest } = b;
  const shardErrors = shards.filter((s) => states.get(s.uid)!.error).map((s) => `shard ${s.uid}: ${states.get(s.uid)!.error}`);
  return {
    ...rest,
    shard_key_regex: b.shard_key_regex ?? DEFAULT_SHARD_KEY_REGEX.map((regex) => ({ regex })),
    oss_cluster: false,
    tls_mode: b.tls_mode ?? 'disabled',
    enforce_client_authentication: b.enforce_client_authentication ?? 'enabled',
    authentication_ssl_client_certs: b.authentication_ssl_client_certs ?? [],
    // A database whose shards cannot start says why (it stays pending, or shows its shards down).
    ...(!rest.error && shardErrors.length ? { error: shardErrors.join('; ') } : {}),
    authentication_redis_pass_set: !!pass,
    shard_list: shards.map((s) => s.uid),
    shards: shards.map((s) => ({
      uid: s.uid,
      role: s.role,
      node_uid: s.node_uid,
      assigned_slots: rangesText(s),
      ...(s.master_uid !== undefined ? { master_uid: s.master_uid } : {}),
      status: states.get(s.uid)!.status,
      ...(states.get(s.uid)!.sync ? { sync: states.get(s.uid)!.sync } : {}),
      ...(states.get(s.uid)!.error ? { error: states.get(s.uid)!.error } : {}),
      ...(states.get(s.uid)!.write_refused ? { write_refused: states.get(s.uid)!.write_refused } : {}),
    })),
    endpoints: [
      {
        uid: `${b.uid}:1`,
        dns_name: `redis-${b.port}.${m.cluster.name}`,
        port: b.port,
        addr: addrs,
        proxy_policy: b.proxy_policy,
        addr_type: 'internal',
      },
    ],
  };
}

function checkValues(v: BdbInput): void {
  if (v.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(v.name))
    throw unacceptable('invalid_name', 'name must be 1-63 letters, digits, "-" or "_", starting with a letter or digit');
  if (v.type !== undefined && v.type !== 'redis') throw unacceptable('invalid_type', `type must be 'redis'`);
  if (v.memory_size !== undefined && v.memory_size < MIN_MEMORY)
    throw unacceptable('invalid_memory_size', `memory_size must be at least ${MIN_MEMORY} bytes`);
  if (v.port !== undefined && (v.port < PORT_MIN || v.port > PORT_MAX))
    throw unacceptable('invalid_port', `port must be in ${PORT_MIN}-${PORT_MAX}`);
  if (v.shards_count !== undefined && (v.shards_count < 1 || v.shards_count > 512))
    throw unacceptable('invalid_sharding', 'shards_count must be between 1 and 512');
  if (v.proxy_policy !== undefined && !PROXY_POLICIES.includes(v.proxy_policy))
    throw unacceptable('invalid_proxy_policy', `proxy_policy must be one of ${PROXY_POLICIES.join(', ')}`);
  if (v.shards_placement !== undefined && !['dense', 'sparse'].includes(v.shards_placement))
    throw unacceptable('invalid_shards_placement', 'shards_placement must be dense or sparse');
  if (v.data_persistence !== undefined && !PERSISTENCE.includes(v.data_persistence))
    throw unacceptable('invalid_data_persistence', `data_persistence must be one of ${PERSISTENCE.join(', ')}`);
  if (v.eviction_policy !== undefined && !EVICTION.includes(v.eviction_policy))
    throw unacceptable('invalid_eviction_policy', `eviction_policy must be one of ${EVICTION.join(', ')}`);
  // Each master has at most one replica: asking for two would refuse every write.
  if (v.min_replicas_to_write !== undefined && (v.min_replicas_to_write < 0 || v.min_replicas_to_write > 1))
    throw unacceptable('invalid_min_replicas_to_write', 'min_replicas_to_write must be 0 (off) or 1 (each master has one replica)');
  if (v.min_replicas_max_lag !== undefined && (v.min_replicas_max_lag < 1 || v.min_replicas_max_lag > 3600))
    throw unacceptable('invalid_min_replicas_max_lag', 'min_replicas_max_lag must be 1-3600 seconds');
  if (v.oss_cluster === true)
    throw unacceptable('invalid_oss_cluster_configuration', 'oss_cluster: the OSS Cluster API is not supported; only false is accepted');
  if (v.shard_key_regex !== undefined) {
    const why = shardKeyRegexProblem(v.shard_key_regex.map((r) => r.regex));
    if (why) throw unacceptable('invalid_shard_key_regex', why);
  }
  checkTls(v);
}

/** tls_mode, enforce_client_authentication, and each listed client certificate: one PEM certificate, currently valid (400 naming the entry, as issue 11 asks). */
function checkTls(v: BdbInput): void {
  if (v.tls_mode !== undefined && !['enabled', 'disabled'].includes(v.tls_mode)) {
    throw invalid(
      'invalid_tls_mode',
      `tls_mode must be enabled or disabled${(v.tls_mode as string) === 'replica_ssl' ? ' (replica_ssl is not supported: replication between nodes is encrypted by data_internode_encryption)' : ''}`,
    );
  }
  if (v.enforce_client_authentication !== undefined && !['enabled', 'disabled'].includes(v.enforce_client_authentication)) {
    throw invalid('invalid_enforce_client_authentication', 'enforce_client_authentication must be enabled or disabled');
  }
  (v.authentication_ssl_client_certs ?? []).forEach(({ client_cert }, i) => {
    const where = `authentication_ssl_client_certs[${i}].client_cert`;
    const blocks = client_cert.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length !== 1)
      throw invalid(
        'invalid_client_cert',
        `${where}: expected one PEM certificate ("-----BEGIN CERTIFICATE-----"), found ${blocks.length}`,
      );
    let c: X509Certificate;
    try {
      c = new X509Certificate(blocks[0]);
    } catch (e) {
      throw invalid('invalid_client_cert', `${where}: not a certificate (${(e as Error).message})`);
    }
    if (Date.now() > Date.parse(c.validTo))
      throw invalid('invalid_client_cert', `${where}: the certificate expired on ${new Date(c.validTo).toISOString()}`);
  });
}

/** What a database record keeps of the given rules: nothing for RE's default list (the standard hashing). */
function storedRegex(v: BdbInput): Pick<BdbRecord, 'shard_key_regex'> {
  const rules = v.shard_key_regex?.map((r) => r.regex);
  return rules === undefined || isDefaultShardKeyRegex(rules) ? {} : { shard_key_regex: rules.map((regex) => ({ regex })) };
}

/**
 * A dry run answers 200 with the database as it would be created or changed:
 * the bdb object without the parts only a real change makes (the uid when it
 * was not given, shard uids, the action), and `dry_run: true`.
 */
function dryRunAnswer(view: ReturnType<typeof bdbView>, keepUid: boolean) {
  const { uid, shards: _s, shard_list: _l, action_uid: _a, status: _st, created_time: _c, last_changed_time: _t, ...rest } = view;
  return {
    ...(keepUid ? { uid } : {}),
    ...rest,
    shards_nodes: view.shards.map((s) => ({ role: s.role, node_uid: s.node_uid, assigned_slots: s.assigned_slots })),
    dry_run: true,
  };
}

/** A database in the middle of a change (its creation included) is busy, as in the reference: 409. */
function busy(b: BdbRecord, what: string): OperatorError | undefined {
  if (b.status === 'delete-pending') return conflict('db_busy', `database ${b.uid} is being deleted`);
  if (b.status === 'pending' || b.status === 'active-change-pending') {
    return conflict(
      'db_busy',
      `database ${b.uid} is busy with another change (status ${b.status}${b.action_uid ? `, action ${b.action_uid}` : ''}); ${what} it once it is active`,
    );
  }
  return undefined;
}

export const bdbsRoutes: FastifyPluginAsync<{ daemon: ApiNode }> = async (app, { daemon }) => {
  app.get<{ Querystring: { fields?: string } }>('/v1/bdbs', { schema: { querystring: readQuery } }, async (req) => {
    const m = daemon.requireMember();
    const views = await withShapeStatus(
      m,
      [...m.databases()].sort((a, b) => a.uid - b.uid).map((b) => bdbView(m, b)),
    );
    return views.map((v) => pick(v, req.query.fields));
  });
  shapeRoutes(app, daemon);

  app.get<{ Params: { uid: string }; Querystring: { fields?: string } }>(
    '/v1/bdbs/:uid',
    { schema: { params: uidParams, querystring: readQuery } },
    async (req) => {
      const m = daemon.requireMember();
      const b = await m.store.bdbs.get(Number(req.params.uid));
      if (!b) throw notFound('db_not_exist', `database ${req.params.uid} does not exist`);
      const [view] = await withShapeStatus(m, [bdbView(m, b)]);
      return pick(view, req.query.fields);
    },
  );

  app.post<{ Body: BdbInput & { uid?: number }; Querystring: ChangeQuery }>(
    '/v1/bdbs',
    { schema: { body: createBody, querystring: changeQuery } },
    async (req, reply) => {
      const m = daemon.requireMember();
      const v = req.body;
      const dryRun = isDryRun(req.query);
      if (v.name === undefined) throw unacceptable('missing_db_name', 'name is required');
      if (v.memory_size === undefined) throw unacceptable('missing_memory_size', 'memory_size is required');
      checkValues(v);
      if (v.min_replicas_to_write) await requireClusterFeature(m, 'min_replicas');
      const shardsCount = v.shards_count ?? 1;
      const sharding = v.sharding ?? shardsCount > 1;
      if (shardsCount > 1 && !sharding) throw unacceptable('invalid_sharding', 'shards_count above 1 needs sharding: true');
      if (v.memory_size / shardsCount < MIN_MEMORY)
        throw unacceptable('invalid_memory_size', `memory_size gives each shard less than ${MIN_MEMORY} bytes`);
      const { oss_cluster: _oss, shard_key_regex: _regex, ...wanted } = v;
      const rec = await createBdb(
        {
          store: m.store,
          view: m,
          ownPorts: Object.values(m.cfg.ports).filter((p): p is number => p !== undefined),
          portsInUse: (ports) => portsInUse(m, ports, req.log),
          portsPerAsk: MAX_PORTS_ASKED,
          log: req.log,
        },
        { ...wanted, name: v.name, memory_size: v.memory_size, sharding, ...storedRegex(v) },
        dryRun,
      );
      if (dryRun) return dryRunAnswer(bdbView(m, rec), v.uid !== undefined);
      reply.status(200);
      return bdbView(m, rec);
    },
  );

  app.put<{ Params: { uid: string }; Body: BdbInput; Querystring: ChangeQuery }>(
    '/v1/bdbs/:uid',
    { schema: { params: uidParams, body: updateBody, querystring: changeQuery } },
    async (req) => {
      const m = daemon.requireMember();
      const uid = Number(req.params.uid);
      const v = req.body;
      if (isReshard(v)) {
        await refuseWhileReshaping(m, uid); // a replication change or blueprint still moving shards
        const next = await reshardBdb(m, uid, v, isDryRun(req.query), req.log);
        return isDryRun(req.query) ? dryRunAnswer(bdbView(m, next), true) : bdbView(m, next);
      }
      checkValues(v);
      if (isShapeChange(v)) {
        if ((await m.store.bdbs.get(uid))?.reshard)
          throw conflict('db_busy', `database ${uid} is being resharded; change its replication or placement once it is active`);
        // Replication on/off and a shards blueprint: an action the cluster master carries out (bdb-shape.ts).
        const r = await shapeChange(m, req, uid, v, isDryRun(req.query));
        if (isDryRun(req.query)) return dryRunAnswer(bdbView(m, r.bdb), true);
        const view = bdbView(m, r.bdb);
        return r.action ? { ...view, status: 'active-change-pending', action_uid: r.action.action_uid } : view;
      }
      for (const k of ['port', 'shards_count', 'sharding', 'type', 'shards_placement', 'shard_key_regex'] as const) {
        if (v[k] !== undefined) throw unacceptable('unsupported_change', `${k} cannot be changed on an existing database`);
      }
      checkCapability(m, v.data_internode_encryption);
      if (v.min_replicas_to_write) await requireClusterFeature(m, 'min_replicas');
      // The action goes into the same write as the change, so the controller never
      // sees the change without it (it would finish the change and leave the action
      // pending); checked first, so a refused change leaves no action behind.
      const before = await m.store.bdbs.get(uid);
      if (!before) throw notFound('db_not_exist', `database ${uid} does not exist`);
      const busyNow = busy(before, 'change');
      if (busyNow) throw busyNow;
      await refuseWhileReshaping(m, uid);
      if (v.memory_size !== undefined) {
        const active = activeNodes(m).map((n) => n.uid);
        checkMemoryFits(m, active, v.memory_size, before.shards_count, before.replication);
      }
      const change = (cur: BdbRecord, actionUid: string | undefined): BdbRecord | OperatorError => {
        const b = busy(cur, 'change');
        if (b) return b;
        if (v.memory_size !== undefined && v.memory_size / cur.shards_count < MIN_MEMORY) {
          return unacceptable('invalid_memory_size', `memory_size gives each shard less than ${MIN_MEMORY} bytes`);
        }
        const switched = v.data_internode_encryption !== undefined && v.data_internode_encryption !== cur.data_internode_encryption;
        const { authentication_redis_pass, oss_cluster: _oss, ...restV } = v;
        return {
          ...cur,
          ...restV,
          ...(authentication_redis_pass !== undefined ? { authentication_redis_pass } : {}),
          status: 'active-change-pending',
          generation: cur.generation + 1,
          link_generation: cur.link_generation + (switched ? 1 : 0),
          ...(actionUid ? { action_uid: actionUid } : {}),
          last_changed_time: new Date().toISOString(),
        };
      };
      if (isDryRun(req.query)) {
        const next = change(before, undefined);
        if (next instanceof OperatorError) throw next;
        return dryRunAnswer(bdbView(m, { ...next, status: before.status }), true);
      }
      const action = await m.store.actions.create('update_bdb', `bdb:${uid}`);
      let problem: OperatorError | undefined;
      const next = await m.store.bdbs.update(uid, (cur) => {
        const n = change(cur, action.action_uid);
        if (n instanceof OperatorError) {
          problem = n;
          return undefined;
        }
        return n;
      });
      if (problem || !next) {
        await m.store.actions.delete(action.action_uid);
        throw problem ?? notFound('db_not_exist', `database ${uid} does not exist`);
      }
      req.log.info({ bdb: uid, change: Object.keys(v) }, 'database updated');
      return bdbView(m, next);
    },
  );

  app.delete<{ Params: { uid: string } }>('/v1/bdbs/:uid', { schema: { params: uidParams, querystring: noQuery } }, async (req) => {
    const m = daemon.requireMember();
    const uid = Number(req.params.uid);
    // Checked before the action exists, so a refused delete leaves no action behind.
    // A database whose creation failed can be deleted, and so can one whose change is stuck
    // (a shard reports that it cannot start): nothing else would ever unblock it. One busy
    // with a change that is progressing cannot (409, as the reference).
    const before = await m.store.bdbs.get(uid);
    if (!before) throw notFound('db_not_exist', `database ${uid} does not exist`);
    if (before.status === 'delete-pending') throw conflict('db_delete_pending', `database ${uid} is already being deleted`);
    const stuck = (b: BdbRecord) => [...shardStates(m, b).values()].some((s) => s.error !== undefined);
    const busyNow = stuck(before) ? undefined : busy(before, 'delete');
    if (busyNow) throw busyNow;
    const action = await m.store.actions.create('delete_bdb', `bdb:${uid}`);
    let problem: OperatorError | undefined;
    const next = await m.store.bdbs.update(uid, (cur) => {
      problem =
        cur.status === 'delete-pending'
          ? conflict('db_delete_pending', `database ${uid} was deleted or is being deleted meanwhile`)
          : stuck(cur)
            ? undefined
            : busy(cur, 'delete');
      return problem
        ? undefined
        : {
            ...cur,
            status: 'delete-pending',
            generation: cur.generation + 1,
            action_uid: action.action_uid,
            last_changed_time: new Date().toISOString(),
          };
    });
    if (!next) {
      await m.store.actions.delete(action.action_uid);
      throw problem ?? conflict('db_delete_pending', `database ${uid} was deleted or is being deleted meanwhile`);
    }
    req.log.info({ bdb: uid }, 'database deletion requested');
    return { uid, status: next.status, action_uid: next.action_uid };
  });

  // As the reference: `{"actions": [...]}`, and a database's own actions as an array.
  const allActions = async (m: ApiMember) => (await m.store.actions.list()).sort((a, b) => Number(a.action_uid) - Number(b.action_uid));

  app.get('/v1/actions', { schema: { querystring: noQuery } }, async () => ({ actions: await allActions(daemon.requireMember()) }));

  app.get<{ Params: { uid: string } }>('/v1/actions/bdb/:uid', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const uid = Number(req.params.uid);
    const actions = (await allActions(m)).filter((a) => a.object_name === `bdb:${uid}`);
    if (!actions.length && !(await m.store.bdbs.get(uid))) throw notFound('db_not_exist', `database ${uid} does not exist`);
    return actions;
  });

  app.get<{ Params: { uid: string } }>('/v1/actions/:uid', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const a = await m.store.actions.get(req.params.uid);
    if (!a) throw notFound('action_not_exist', `action ${req.params.uid} does not exist`);
    return a;
  });
};
