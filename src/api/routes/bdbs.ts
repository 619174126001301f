// Databases (Redis Enterprise `bdb` objects): POST/GET /v1/bdbs, GET/PUT/DELETE /v1/bdbs/{uid},
// and GET /v1/actions[/{uid}], /v1/actions/bdb/{uid}. A change is validated, written as desired
// state, converged by every node's reconciler, and reflected in `status`. As the reference:
// `?dry_run` on POST and PUT validates only; an invalid configuration is 406, a change or delete
// while another change is in progress 409; malformed JSON (unknown field, wrong type, unknown
// query parameter) stays 400 `invalid_schema`.
import type { FastifyPluginAsync } from 'fastify';
import { X509Certificate } from 'node:crypto';
import type { ApiNode } from '../services.js';
import type { ApiMember } from '../services.js';
import type { ActionRecord, BdbRecord, ProxyPolicy } from '../../coord/schema.js';
import { storeOf, type SeqName } from '../../coord/store.js';
import { OperatorError, conflict, invalid, notFound, unacceptable } from '../../util/errors.js';
import { DEFAULT_SHARD_KEY_REGEX, isDefaultShardKeyRegex, shardKeyRegexProblem } from '../../proxy/slots.js';
import { endpointNodes, newSecret, placeShards } from '../../control/model/placement.js';
import { uidParams } from '../schemas.js';
import { shardSync, type ShardSync } from '../../control/controllers/bdb-controller.js';
import { MAX_PORTS_ASKED, portsInUse } from '../../control/reconcilers/ports.js';
import { nodeIsUp } from '../../control/model/node-state.js';

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
const MIN_MEMORY = 1024 * 1024;
const CREATE_ATTEMPTS = 50;
const PORT_MIN = 10000;
const PORT_MAX = 19999;
export const DATA_INE_CAPABILITY = 'data_internode_encryption';

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
const updateBody = { type: 'object', additionalProperties: false, minProperties: 1, properties: fields } as const;

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
};

/**
 * Each shard of a database as its node last reported it: 'active', 'down'
 * (its node is down, or the process is), or 'starting' (not reported yet);
 * with the time of the report.
 */
export function shardStates(
  m: ApiMember,
  b: BdbRecord,
): Map<number, { status: string; reported?: string; sync?: ShardSync; error?: string }> {
  // Keyed by shard and node: a shard moved away (failover, migration) may still
  // be listed by its old node's last report, which must not stand for it.
  const reported = new Map<string, { status: string; time: string; sync?: ShardSync; error?: string }>();
  for (const o of m.controller?.observedOf(b.uid).values() ?? []) {
    for (const s of o.shards) {
      const sync = shardSync(s);
      reported.set(`${s.uid}@${o.node_uid}`, { status: s.status, time: o.time, sync, ...(s.error ? { error: s.error } : {}) });
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
        },
      ];
    }),
  );
}

export function bdbView(m: ApiMember, b: BdbRecord) {
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
      assigned_slots: `${s.slots[0]}-${s.slots[1]}`,
      ...(s.master_uid !== undefined ? { master_uid: s.master_uid } : {}),
      status: states.get(s.uid)!.status,
      ...(states.get(s.uid)!.sync ? { sync: states.get(s.uid)!.sync } : {}),
      ...(states.get(s.uid)!.error ? { error: states.get(s.uid)!.error } : {}),
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

const lackingCapability = (m: ApiMember) => m.nodes.values().filter((n) => n.addr && !n.capabilities.includes(DATA_INE_CAPABILITY));

/** Enabling data-plane encryption needs every node to support it. */
function checkCapability(m: ApiMember, enabling: boolean | undefined): void {
  if (!enabling) return;
  const lacking = lackingCapability(m);
  if (lacking.length) {
    throw new OperatorError(
      'not_acceptable',
      'capability_missing',
      `data_internode_encryption needs every node to support it; node(s) ${lacking.map((n) => n.uid).join(', ')} do not`,
    );
  }
}

/**
 * A database must fit in what its nodes have (RE's `insufficient_resources`):
 * each shard's memory within the largest node, and all its shards (replicas
 * too) within the active nodes' memory together. Memory is each node's total
 * as it reports it over the control plane (this node's own when a peer has not
 * answered yet).
 */
function checkMemoryFits(m: ApiMember, nodeUids: number[], memorySize: number, shardsCount: number, replication: boolean): void {
  const own = m.statusReply().total_memory;
  const mem = nodeUids.map((u) => (u === m.uid ? own : (m.probes.get(u)?.status?.total_memory ?? own)));
  const total = mem.reduce((a, b) => a + b, 0);
  const perShard = memorySize / shardsCount;
  const needed = memorySize * (replication ? 2 : 1);
  if (!Number.isSafeInteger(memorySize) || perShard > Math.max(...mem) || needed > total) {
    throw invalid(
      'insufficient_resources',
      `memory_size ${memorySize} does not fit: the active nodes have ${total} bytes together (${Math.max(...mem)} at most on one node)${replication ? ', and replication doubles what is needed' : ''}`,
    );
  }
}

type Log = { warn(o: object, msg: string): void };

/**
 * Why `port`, asked for explicitly, cannot be a database's port: Tessera's
 * own, or in use on a live node (control/reconcilers/ports.ts: one `ports_free` call per
 * node). A query, not an action: the creation answers with its port at once.
 */
async function portRefusal(m: ApiMember, port: number, log: Log): Promise<string | undefined> {
  if (Object.values(m.cfg.ports).includes(port)) return `port ${port} is used by Tessera itself`;
  const node = (await portsInUse(m, [port], log)).get(port);
  return node === undefined ? undefined : `port ${port} is in use on node ${node}`;
}

/**
 * The lowest port from 12000 up that no database and nothing on any live node
 * uses. The candidates go to every node at once (one round per node, in
 * batches of MAX_PORTS_ASKED: one batch unless hundreds of ports are taken).
 */
async function firstFreePort(m: ApiMember, taken: ReadonlySet<number>, log: Log): Promise<number | undefined> {
  const own = new Set<number | undefined>(Object.values(m.cfg.ports));
  for (let p = 12000; p <= PORT_MAX; ) {
    const batch: number[] = [];
    for (; p <= PORT_MAX && batch.length < MAX_PORTS_ASKED; p++) if (!taken.has(p) && !own.has(p)) batch.push(p);
    const inUse = batch.length ? await portsInUse(m, batch, log) : new Map<number, number>();
    const free = batch.find((x) => !inUse.has(x));
    if (free !== undefined) return free;
  }
  return undefined;
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
    return m
      .reconciler!.bdbs.values()
      .sort((a, b) => a.uid - b.uid)
      .map((b) => pick(bdbView(m, b), req.query.fields));
  });

  app.get<{ Params: { uid: string }; Querystring: { fields?: string } }>(
    '/v1/bdbs/:uid',
    { schema: { params: uidParams, querystring: readQuery } },
    async (req) => {
      const m = daemon.requireMember();
      const b = await storeOf(m.client).bdbs.get(Number(req.params.uid));
      if (!b) throw notFound('db_not_exist', `database ${req.params.uid} does not exist`);
      return pick(bdbView(m, b), req.query.fields);
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
      const shardsCount = v.shards_count ?? 1;
      const sharding = v.sharding ?? shardsCount > 1;
      if (shardsCount > 1 && !sharding) throw unacceptable('invalid_sharding', 'shards_count above 1 needs sharding: true');
      if (v.memory_size / shardsCount < MIN_MEMORY)
        throw unacceptable('invalid_memory_size', `memory_size gives each shard less than ${MIN_MEMORY} bytes`);
      if (v.uid !== undefined && (await storeOf(m.client).bdbs.get(v.uid))) throw conflict('uid_exists', `database uid ${v.uid} is in use`);
      const policy = await storeOf(m.client).cluster.policy();
      // As the reference: asked for explicitly, encryption needs every node to support it (406);
      // taken from the cluster default, a node without it makes the database unencrypted.
      let encrypted = v.data_internode_encryption ?? policy.data_internode_encryption;
      if (v.data_internode_encryption === undefined && encrypted && lackingCapability(m).length) {
        req.log.info(
          { lacking: lackingCapability(m).map((n) => n.uid) },
          'a node lacks data_internode_encryption: the new database is created without it',
        );
        encrypted = false;
      }
      checkCapability(m, v.data_internode_encryption);

      const activeNodes = m.nodes.values().filter((n) => n.addr && nodeIsUp(m, n.uid));
      const replication = v.replication ?? false;
      if (activeNodes.length === 0 || (replication && activeNodes.length < 2)) {
        throw unacceptable('insufficient_resources', replication ? 'replication needs at least two active nodes' : 'no active node');
      }
      checkMemoryFits(
        m,
        activeNodes.map((n) => n.uid),
        v.memory_size,
        shardsCount,
        replication,
      );
      const shardCount = shardsCount * (replication ? 2 : 1);
      const placement = v.shards_placement ?? policy.default_shards_placement;
      const record = (
        uid: number,
        port: number,
        load: Map<number, number>,
        firstShard: number,
        actionUid: string | undefined,
        now: string,
      ): BdbRecord => ({
        uid,
        name: v.name!,
        type: 'redis',
        port,
        memory_size: v.memory_size!,
        shards_count: shardsCount,
        sharding,
        replication,
        proxy_policy: v.proxy_policy ?? (sharding ? policy.default_sharded_proxy_policy : policy.default_non_sharded_proxy_policy),
        shards_placement: placement,
        data_internode_encryption: encrypted,
        data_persistence: v.data_persistence ?? 'disabled',
        eviction_policy: v.eviction_policy ?? 'volatile-lru',
        ...(v.authentication_redis_pass ? { authentication_redis_pass: v.authentication_redis_pass } : {}),
        ...storedRegex(v),
        ...(v.tls_mode !== undefined ? { tls_mode: v.tls_mode } : {}),
        ...(v.enforce_client_authentication !== undefined ? { enforce_client_authentication: v.enforce_client_authentication } : {}),
        ...(v.authentication_ssl_client_certs !== undefined ? { authentication_ssl_client_certs: v.authentication_ssl_client_certs } : {}),
        internal_secret: newSecret(),
        shards: placeShards(activeNodes, load, shardsCount, replication, firstShard, placement),
        status: 'pending',
        generation: 1,
        link_generation: 1,
        created_time: now,
        last_changed_time: now,
        ...(actionUid ? { action_uid: actionUid } : {}),
      });
      // Every creation takes the next database, shard and action uids in one transaction that
      // holds only if no other creation committed since this one read them: concurrent
      // creations are serialized (so two cannot take one port), and a refused one (its name,
      // uid or port just taken) burns no uid. A dry run stops before, having used none.
      for (let attempt = 1; ; attempt++) {
        const seqs = await storeOf(m.client).seqs.read('bdb', 'shard', 'action');
        const all = await storeOf(m.client).bdbs.list();
        if (all.some((b) => b.name === v.name)) throw unacceptable('db_name_exists', `a database named ${v.name} exists`);
        if (v.uid !== undefined && all.some((b) => b.uid === v.uid)) throw conflict('uid_exists', `database uid ${v.uid} is in use`);
        const taken = new Set(all.map((b) => b.port));
        let port = v.port;
        if (port !== undefined) {
          if (taken.has(port)) throw unacceptable('port_unavailable', `port ${port} is used by another database`);
          const why = await portRefusal(m, port, req.log);
          if (why) throw unacceptable('port_unavailable', why);
        } else {
          port = await firstFreePort(m, taken, req.log);
          if (port === undefined) throw unacceptable('port_unavailable', 'no free port left');
        }
        const load = new Map<number, number>();
        for (const b of all) for (const s of b.shards) load.set(s.node_uid, (load.get(s.node_uid) ?? 0) + 1);
        const now = new Date().toISOString();
        if (dryRun) return dryRunAnswer(bdbView(m, record(v.uid ?? 0, port, load, 1, undefined, now)), v.uid !== undefined);

        // An automatic uid skips those operators chose for earlier databases.
        let bdbStep = 0;
        let uid = v.uid;
        if (uid === undefined) {
          const used = new Set(all.map((b) => b.uid));
          do bdbStep++;
          while (used.has(seqs.get('bdb')! + bdbStep));
          uid = seqs.get('bdb')! + bdbStep;
        }
        const firstShard = seqs.get('shard')! + 1;
        const actionUid = seqs.get('action')! + 1;
        const action: ActionRecord = {
          action_uid: String(actionUid),
          name: 'create_bdb',
          object_name: `bdb:${uid}`,
          progress: 0,
          status: 'pending',
          creation_time: now,
        };
        const rec = record(uid, port, load, firstShard, action.action_uid, now);
        const bump = new Map<SeqName, number>([
          ['bdb', bdbStep],
          ['shard', shardCount],
          ['action', 1],
        ]);
        if (await storeOf(m.client).bdbs.createWithAction(seqs, bump, rec, action)) {
          req.log.info({ bdb: uid, name: rec.name, port, shards: rec.shards.length, encrypted }, 'database created');
          reply.status(200);
          return bdbView(m, rec);
        }
        if (attempt >= CREATE_ATTEMPTS) throw conflict('busy', 'too many concurrent changes; try again');
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt)); // spread the retries of concurrent creations
      }
    },
  );

  app.put<{ Params: { uid: string }; Body: BdbInput; Querystring: ChangeQuery }>(
    '/v1/bdbs/:uid',
    { schema: { params: uidParams, body: updateBody, querystring: changeQuery } },
    async (req) => {
      const m = daemon.requireMember();
      const uid = Number(req.params.uid);
      const v = req.body;
      checkValues(v);
      for (const k of ['port', 'shards_count', 'sharding', 'replication', 'type', 'shards_placement', 'shard_key_regex'] as const) {
        if (v[k] !== undefined) throw unacceptable('unsupported_change', `${k} cannot be changed on an existing database`);
      }
      checkCapability(m, v.data_internode_encryption);
      // The action goes into the same write as the change, so the controller never
      // sees the change without it (it would finish the change and leave the action
      // pending); checked first, so a refused change leaves no action behind.
      const before = await storeOf(m.client).bdbs.get(uid);
      if (!before) throw notFound('db_not_exist', `database ${uid} does not exist`);
      const busyNow = busy(before, 'change');
      if (busyNow) throw busyNow;
      if (v.memory_size !== undefined) {
        const active = m.nodes
          .values()
          .filter((n) => n.addr && nodeIsUp(m, n.uid))
          .map((n) => n.uid);
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
      const action = await storeOf(m.client).actions.create('update_bdb', `bdb:${uid}`);
      let problem: OperatorError | undefined;
      const next = await storeOf(m.client).bdbs.update(uid, (cur) => {
        const n = change(cur, action.action_uid);
        if (n instanceof OperatorError) {
          problem = n;
          return undefined;
        }
        return n;
      });
      if (problem || !next) {
        await storeOf(m.client).actions.delete(action.action_uid);
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
    const before = await storeOf(m.client).bdbs.get(uid);
    if (!before) throw notFound('db_not_exist', `database ${uid} does not exist`);
    if (before.status === 'delete-pending') throw conflict('db_delete_pending', `database ${uid} is already being deleted`);
    const stuck = (b: BdbRecord) => [...shardStates(m, b).values()].some((s) => s.error !== undefined);
    const busyNow = stuck(before) ? undefined : busy(before, 'delete');
    if (busyNow) throw busyNow;
    const action = await storeOf(m.client).actions.create('delete_bdb', `bdb:${uid}`);
    let problem: OperatorError | undefined;
    const next = await storeOf(m.client).bdbs.update(uid, (cur) => {
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
      await storeOf(m.client).actions.delete(action.action_uid);
      throw problem ?? conflict('db_delete_pending', `database ${uid} was deleted or is being deleted meanwhile`);
    }
    req.log.info({ bdb: uid }, 'database deletion requested');
    return { uid, status: next.status, action_uid: next.action_uid };
  });

  // As the reference: `{"actions": [...]}`, and a database's own actions as an array.
  const allActions = async (m: ApiMember) =>
    (await storeOf(m.client).actions.list()).sort((a, b) => Number(a.action_uid) - Number(b.action_uid));

  app.get('/v1/actions', { schema: { querystring: noQuery } }, async () => ({ actions: await allActions(daemon.requireMember()) }));

  app.get<{ Params: { uid: string } }>('/v1/actions/bdb/:uid', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const uid = Number(req.params.uid);
    const actions = (await allActions(m)).filter((a) => a.object_name === `bdb:${uid}`);
    if (!actions.length && !(await storeOf(m.client).bdbs.get(uid))) throw notFound('db_not_exist', `database ${uid} does not exist`);
    return actions;
  });

  app.get<{ Params: { uid: string } }>('/v1/actions/:uid', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const a = await storeOf(m.client).actions.get(req.params.uid);
    if (!a) throw notFound('action_not_exist', `action ${req.params.uid} does not exist`);
    return a;
  });
};
