// Databases (Redis Enterprise `bdb` objects): POST/GET /v1/bdbs, GET/PUT/DELETE /v1/bdbs/{uid},
// and GET /v1/actions[/{uid}]. A change is validated, written as desired state,
// converged by every node's reconciler, and reflected in `status`.
import type { FastifyPluginAsync } from 'fastify';
import type { NodeDaemon } from '../../control/daemon.js';
import type { ClusterMember } from '../../control/member.js';
import { KEYS, ActionRecord, BdbRecord, ProxyPolicy, StoredPolicy, policyWithDefaults } from '../../coord/schema.js';
import { readRecord, readRecords } from '../../coord/records.js';
import { OperatorError, conflict, invalid, notFound } from '../../util/errors.js';
import { commitWithSeqs, createAction, endpointNodes, newSecret, placeShards, readSeqs, updateBdb } from '../../control/bdb-store.js';
import { uidParams } from '../schemas.js';

const EVICTION = ['volatile-lru', 'volatile-ttl', 'volatile-random', 'allkeys-lru', 'allkeys-random', 'noeviction', 'volatile-lfu', 'allkeys-lfu'];
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
} as const;

const createBody = { type: 'object', additionalProperties: false, properties: fields } as const;
const updateBody = { type: 'object', additionalProperties: false, minProperties: 1, properties: fields } as const;

type BdbInput = Partial<Omit<BdbRecord, 'uid' | 'shards' | 'status' | 'generation' | 'link_generation' | 'internal_secret'>>;

/**
 * Each shard of a database as its node last reported it: 'active', 'down'
 * (its node is down, or the process is), or 'starting' (not reported yet);
 * with the time of the report.
 */
/** A replica's copy of its master: `in_progress` (a full sync, with its progress), `finished` (streaming), `link_down`. */
export interface ShardSync {
  status: 'in_progress' | 'finished' | 'link_down';
  progress: number;
}

export function shardStates(m: ClusterMember, b: BdbRecord): Map<number, { status: string; reported?: string; sync?: ShardSync; error?: string }> {
  // Keyed by shard and node: a shard moved away (failover, migration) may still
  // be listed by its old node's last report, which must not stand for it.
  const reported = new Map<string, { status: string; time: string; sync?: ShardSync; error?: string }>();
  for (const o of m.controller?.observedOf(b.uid).values() ?? []) {
    for (const s of o.shards) {
      const sync: ShardSync | undefined =
        s.master_link_status === undefined
          ? undefined
          : s.sync_progress !== undefined
            ? { status: 'in_progress', progress: s.sync_progress }
            : s.master_link_status === 'up'
              ? { status: 'finished', progress: 100 }
              : { status: 'link_down', progress: 0 };
      reported.set(`${s.uid}@${o.node_uid}`, { status: s.status, time: o.time, sync, ...(s.error ? { error: s.error } : {}) });
    }
  }
  return new Map(
    b.shards.map((s) => {
      const r = reported.get(`${s.uid}@${s.node_uid}`);
      const status = m.live.items.has(String(s.node_uid)) ? (r?.status ?? 'starting') : 'down';
      return [s.uid, { status, reported: r?.time, ...(s.role === 'slave' && r?.sync && status === 'active' ? { sync: r.sync } : {}), ...(r?.error && status !== 'active' ? { error: r.error } : {}) }];
    }),
  );
}

export function bdbView(m: ClusterMember, b: BdbRecord) {
  const allNodes = m.nodes.values().filter((n) => n.addr).map((n) => n.uid);
  const addrs = endpointNodes(b, allNodes).map((u) => m.nodes.items.get(String(u))?.addr).filter(Boolean) as string[];
  const states = shardStates(m, b);
  const { internal_secret: _secret, authentication_redis_pass: pass, generation: _g, link_generation: _l, shards, ...rest } = b;
  const shardErrors = shards.filter((s) => states.get(s.uid)!.error).map((s) => `shard ${s.uid}: ${states.get(s.uid)!.error}`);
  return {
    ...rest,
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
    endpoints: [{ uid: `${b.uid}:1`, dns_name: `redis-${b.port}.${m.cluster.name}`, port: b.port, addr: addrs, proxy_policy: b.proxy_policy, addr_type: 'internal' }],
  };
}

function checkValues(v: BdbInput): void {
  if (v.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(v.name)) throw invalid('invalid_name', 'name must be 1-63 letters, digits, "-" or "_", starting with a letter or digit');
  if (v.type !== undefined && v.type !== 'redis') throw invalid('invalid_type', `type must be 'redis'`);
  if (v.memory_size !== undefined && v.memory_size < MIN_MEMORY) throw invalid('invalid_memory_size', `memory_size must be at least ${MIN_MEMORY} bytes`);
  if (v.port !== undefined && (v.port < PORT_MIN || v.port > PORT_MAX)) throw invalid('invalid_port', `port must be in ${PORT_MIN}-${PORT_MAX}`);
  if (v.shards_count !== undefined && (v.shards_count < 1 || v.shards_count > 512)) throw invalid('invalid_sharding', 'shards_count must be between 1 and 512');
  if (v.proxy_policy !== undefined && !PROXY_POLICIES.includes(v.proxy_policy)) throw invalid('invalid_proxy_policy', `proxy_policy must be one of ${PROXY_POLICIES.join(', ')}`);
  if (v.shards_placement !== undefined && !['dense', 'sparse'].includes(v.shards_placement)) throw invalid('invalid_shards_placement', 'shards_placement must be dense or sparse');
  if (v.data_persistence !== undefined && !PERSISTENCE.includes(v.data_persistence)) throw invalid('invalid_data_persistence', `data_persistence must be one of ${PERSISTENCE.join(', ')}`);
  if (v.eviction_policy !== undefined && !EVICTION.includes(v.eviction_policy)) throw invalid('invalid_eviction_policy', `eviction_policy must be one of ${EVICTION.join(', ')}`);
}

/** Enabling data-plane encryption needs every node to support it. */
function checkCapability(m: ClusterMember, enabling: boolean | undefined): void {
  if (!enabling) return;
  const lacking = m.nodes.values().filter((n) => n.addr && !n.capabilities.includes(DATA_INE_CAPABILITY));
  if (lacking.length) {
    throw new OperatorError('invalid', 'capability_missing', `data_internode_encryption needs every node to support it; node(s) ${lacking.map((n) => n.uid).join(', ')} do not`);
  }
}

/**
 * A database must fit in what its nodes have (RE's `insufficient_resources`):
 * each shard's memory within the largest node, and all its shards (replicas
 * too) within the active nodes' memory together. Memory is each node's total
 * as it reports it over the control plane (this node's own when a peer has not
 * answered yet).
 */
function checkMemoryFits(m: ClusterMember, nodeUids: number[], memorySize: number, shardsCount: number, replication: boolean): void {
  const own = m.statusReply().total_memory;
  const mem = nodeUids.map((u) => (u === m.uid ? own : (m.probes.get(u)?.status?.total_memory ?? own)));
  const total = mem.reduce((a, b) => a + b, 0);
  const perShard = memorySize / shardsCount;
  const needed = memorySize * (replication ? 2 : 1);
  if (!Number.isSafeInteger(memorySize) || perShard > Math.max(...mem) || needed > total) {
    throw invalid('insufficient_resources', `memory_size ${memorySize} does not fit: the active nodes have ${total} bytes together (${Math.max(...mem)} at most on one node)${replication ? ', and replication doubles what is needed' : ''}`);
  }
}

/** A port is free if no database has it and nothing on any node listens on it (asked over the control plane). */
async function portFreeEverywhere(m: ClusterMember, port: number): Promise<string | undefined> {
  const reserved = Object.values(m.cfg.ports);
  if (reserved.includes(port)) return `port ${port} is used by Tessera itself`;
  const answers = await Promise.all(
    m.nodes.values().filter((n) => n.addr && m.live.items.has(String(n.uid))).map(async (n) => {
      try {
        const r = n.uid === m.uid ? await m.portFree(port) : await m.rpc(n.uid)!.call<{ free: boolean }>('port_free', { port }, 3000);
        return r.free ? undefined : `port ${port} is in use on node ${n.uid}`;
      } catch {
        return undefined; // an unreachable node is not a reason to refuse; its reconciler reports a failure
      }
    }),
  );
  return answers.find(Boolean);
}

export const bdbsRoutes: FastifyPluginAsync<{ daemon: NodeDaemon }> = async (app, { daemon }) => {
  app.get('/v1/bdbs', async () => {
    const m = daemon.requireMember();
    return m.reconciler!.bdbs.values().sort((a, b) => a.uid - b.uid).map((b) => bdbView(m, b));
  });

  app.get<{ Params: { uid: string } }>('/v1/bdbs/:uid', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const b = await readRecord(m.client, KEYS.bdb(Number(req.params.uid)), BdbRecord);
    if (!b) throw notFound('db_not_exist', `database ${req.params.uid} does not exist`);
    return bdbView(m, b);
  });

  app.post<{ Body: BdbInput }>('/v1/bdbs', { schema: { body: createBody } }, async (req, reply) => {
    const m = daemon.requireMember();
    const v = req.body;
    if (v.name === undefined) throw invalid('missing_db_name', 'name is required');
    if (v.memory_size === undefined) throw invalid('missing_memory_size', 'memory_size is required');
    checkValues(v);
    const shardsCount = v.shards_count ?? 1;
    const sharding = v.sharding ?? shardsCount > 1;
    if (shardsCount > 1 && !sharding) throw invalid('invalid_sharding', 'shards_count above 1 needs sharding: true');
    if (v.memory_size / shardsCount < MIN_MEMORY) throw invalid('invalid_memory_size', `memory_size gives each shard less than ${MIN_MEMORY} bytes`);
    const policy = policyWithDefaults(await readRecord(m.client, KEYS.policy, StoredPolicy));
    const encrypted = v.data_internode_encryption ?? policy.data_internode_encryption;
    checkCapability(m, encrypted);
    const activeNodes = m.nodes.values().filter((n) => n.addr && m.live.items.has(String(n.uid)));
    const replication = v.replication ?? false;
    if (activeNodes.length === 0 || (replication && activeNodes.length < 2)) {
      throw invalid('insufficient_resources', replication ? 'replication needs at least two active nodes' : 'no active node');
    }
    checkMemoryFits(m, activeNodes.map((n) => n.uid), v.memory_size, shardsCount, replication);
    // Every creation takes the next database, shard and action uids in one transaction that
    // holds only if no other creation committed since this one read them: concurrent
    // creations are serialized, and a refused one (its name or port just taken) burns no uid.
    for (let attempt = 1; ; attempt++) {
      const seqs = await readSeqs(m.client, [KEYS.bdbSeq, KEYS.shardSeq, KEYS.actionSeq]);
      const all = [...(await readRecords(m.client, KEYS.bdbsPrefix, BdbRecord)).values()];
      if (all.some((b) => b.name === v.name)) throw invalid('db_name_exists', `a database named ${v.name} exists`);
      const taken = new Set(all.map((b) => b.port));
      let port = v.port;
      if (port !== undefined) {
        if (taken.has(port)) throw invalid('port_unavailable', `port ${port} is used by another database`);
        const why = await portFreeEverywhere(m, port);
        if (why) throw invalid('port_unavailable', why);
      } else {
        for (let p = 12000; p <= PORT_MAX && port === undefined; p++) if (!taken.has(p) && !(await portFreeEverywhere(m, p))) port = p;
        if (port === undefined) throw invalid('port_unavailable', 'no free port left');
      }
      const load = new Map<number, number>();
      for (const b of all) for (const s of b.shards) load.set(s.node_uid, (load.get(s.node_uid) ?? 0) + 1);
      const shardCount = shardsCount * (replication ? 2 : 1);
      const firstShard = seqs.get(KEYS.shardSeq)! + 1;
      const uid = seqs.get(KEYS.bdbSeq)! + 1;
      const actionUid = seqs.get(KEYS.actionSeq)! + 1;
      const now = new Date().toISOString();
      const action: ActionRecord = { action_uid: String(actionUid), name: 'create_bdb', object_name: `bdb:${uid}`, progress: 0, status: 'pending', creation_time: now };
      const rec: BdbRecord = {
        uid,
        name: v.name,
        type: 'redis',
        port,
        memory_size: v.memory_size,
        shards_count: shardsCount,
        sharding,
        replication,
        proxy_policy: v.proxy_policy ?? (sharding ? 'all-master-shards' : 'single'),
        shards_placement: v.shards_placement ?? 'sparse',
        data_internode_encryption: encrypted,
        data_persistence: v.data_persistence ?? 'disabled',
        eviction_policy: v.eviction_policy ?? 'volatile-lru',
        ...(v.authentication_redis_pass ? { authentication_redis_pass: v.authentication_redis_pass } : {}),
        internal_secret: newSecret(),
        shards: placeShards(activeNodes, load, shardsCount, replication, firstShard, v.shards_placement ?? 'sparse'),
        status: 'pending',
        generation: 1,
        link_generation: 1,
        created_time: now,
        last_changed_time: now,
        action_uid: action.action_uid,
      };
      const bump = new Map([
        [KEYS.bdbSeq, 1],
        [KEYS.shardSeq, shardCount],
        [KEYS.actionSeq, 1],
      ]);
      if (await commitWithSeqs(m.client, seqs, bump, [[KEYS.bdb(uid), JSON.stringify(rec)], [KEYS.action(actionUid), JSON.stringify(action)]])) {
        req.log.info({ bdb: uid, name: rec.name, port, shards: rec.shards.length, encrypted }, 'database created');
        reply.status(200);
        return bdbView(m, rec);
      }
      if (attempt >= CREATE_ATTEMPTS) throw conflict('busy', 'too many concurrent changes; try again');
      await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt)); // spread the retries of concurrent creations
    }
  });

  app.put<{ Params: { uid: string }; Body: BdbInput }>('/v1/bdbs/:uid', { schema: { params: uidParams, body: updateBody } }, async (req) => {
    const m = daemon.requireMember();
    const uid = Number(req.params.uid);
    const v = req.body;
    checkValues(v);
    for (const k of ['port', 'shards_count', 'sharding', 'replication', 'type', 'shards_placement'] as const) {
      if (v[k] !== undefined) throw invalid('unsupported_change', `${k} cannot be changed on an existing database`);
    }
    checkCapability(m, v.data_internode_encryption);
    // The action goes into the same write as the change, so the controller never
    // sees the change without it (it would finish the change and leave the action
    // pending); checked first, so a refused change leaves no action behind.
    const before = await readRecord(m.client, KEYS.bdb(uid), BdbRecord);
    if (!before) throw notFound('db_not_exist', `database ${uid} does not exist`);
    if (before.status === 'delete-pending') throw new OperatorError('conflict', 'db_busy', `database ${uid} is being deleted`);
    if (v.memory_size !== undefined) {
      const active = m.nodes.values().filter((n) => n.addr && m.live.items.has(String(n.uid))).map((n) => n.uid);
      checkMemoryFits(m, active, v.memory_size, before.shards_count, before.replication);
    }
    const action = await createAction(m.client, 'update_bdb', `bdb:${uid}`);
    let problem: OperatorError | undefined;
    const next = await updateBdb(m.client, uid, (cur) => {
      if (cur.status === 'delete-pending') {
        problem = new OperatorError('conflict', 'db_busy', `database ${uid} is being deleted`);
        return undefined;
      }
      if (v.memory_size !== undefined && v.memory_size / cur.shards_count < MIN_MEMORY) {
        problem = invalid('invalid_memory_size', `memory_size gives each shard less than ${MIN_MEMORY} bytes`);
        return undefined;
      }
      const switched = v.data_internode_encryption !== undefined && v.data_internode_encryption !== cur.data_internode_encryption;
      const { authentication_redis_pass, ...restV } = v;
      const merged: BdbRecord = {
        ...cur,
        ...restV,
        ...(authentication_redis_pass !== undefined ? { authentication_redis_pass } : {}),
        status: cur.status === 'pending' ? 'pending' : 'active-change-pending',
        generation: cur.generation + 1,
        link_generation: cur.link_generation + (switched ? 1 : 0),
        action_uid: action.action_uid,
        last_changed_time: new Date().toISOString(),
      };
      return merged;
    });
    if (problem || !next) {
      await m.client.delete().key(KEYS.action(Number(action.action_uid)));
      throw problem ?? notFound('db_not_exist', `database ${uid} does not exist`);
    }
    req.log.info({ bdb: uid, change: Object.keys(v) }, 'database updated');
    return bdbView(m, next);
  });

  app.delete<{ Params: { uid: string } }>('/v1/bdbs/:uid', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const uid = Number(req.params.uid);
    // Checked before the action exists, so a refused delete leaves no action behind.
    const before = await readRecord(m.client, KEYS.bdb(uid), BdbRecord);
    if (!before) throw notFound('db_not_exist', `database ${uid} does not exist`);
    if (before.status === 'delete-pending') throw conflict('db_delete_pending', `database ${uid} is already being deleted`);
    const action = await createAction(m.client, 'delete_bdb', `bdb:${uid}`);
    const next = await updateBdb(m.client, uid, (cur) =>
      cur.status === 'delete-pending' ? undefined : { ...cur, status: 'delete-pending', generation: cur.generation + 1, action_uid: action.action_uid, last_changed_time: new Date().toISOString() },
    );
    if (!next) {
      await m.client.delete().key(KEYS.action(Number(action.action_uid)));
      throw conflict('db_delete_pending', `database ${uid} was deleted or is being deleted meanwhile`);
    }
    req.log.info({ bdb: uid }, 'database deletion requested');
    return { uid, status: next.status, action_uid: next.action_uid };
  });

  app.get('/v1/actions', async () => {
    const m = daemon.requireMember();
    const all = await readRecords(m.client, KEYS.actionsPrefix, ActionRecord);
    return [...all.values()].sort((a, b) => Number(a.action_uid) - Number(b.action_uid));
  });

  app.get<{ Params: { uid: string } }>('/v1/actions/:uid', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const a = await readRecord(m.client, KEYS.action(Number(req.params.uid)), ActionRecord);
    if (!a) throw notFound('action_not_exist', `action ${req.params.uid} does not exist`);
    return a;
  });
};
