// Creating a database (POST /v1/bdbs), as a service the REST handler calls
// once its input is validated: the cluster's defaults, the capability and
// memory checks, the port (asked or chosen, through one `ports_free` fan-out
// per batch of candidates: control/reconcilers/ports.ts, given here as
// `portsInUse`), the shards' placement, and the compare-and-swap that writes
// the record, its action and the uids it takes. Synchronous on purpose: the
// creation answers with its port and the created database, as Redis
// Enterprise does; the reconcilers then start its shards.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ActionRecord, BdbRecord, NodeRecord, PolicyRecord } from '../../coord/schema.js';
import type { ClusterStore, SeqName } from '../../coord/store.js';
import { OperatorError, conflict, invalid, unacceptable } from '../../util/errors.js';
import { newSecret, placeShards } from '../model/placement.js';
import { type NodeStateHost, nodeIsUp } from '../model/node-state.js';
import { placeableNodes } from '../model/maintenance.js';

export const DATA_INE_CAPABILITY = 'data_internode_encryption';
export const MIN_MEMORY = 1024 * 1024;
export const PORT_MIN = 10000;
export const PORT_MAX = 19999;
/** Where automatic port choice starts (as the reference). */
const PORT_FIRST_AUTO = 12000;
/** Concurrent creations retry their compare-and-swap this many times before answering busy. */
const CREATE_ATTEMPTS = 50;

/** What a creation takes from the request: the stored fields, checked for shape and value by the handler. */
export type BdbInput = Partial<Omit<BdbRecord, 'uid' | 'shards' | 'status' | 'generation' | 'link_generation' | 'internal_secret'>> & {
  name: string;
  memory_size: number;
  uid?: number;
};

/** What the creation reads of the cluster: the nodes, who is up, and their memory. */
export interface ClusterView extends NodeStateHost {
  readonly uid: number;
  readonly nodes: { values(): NodeRecord[] };
  readonly probes: ReadonlyMap<number, { readonly status?: { readonly total_memory: number } }>;
  statusReply(): { total_memory: number };
}

export interface BdbCreateDeps {
  store: Pick<ClusterStore, 'seqs' | 'bdbs' | 'cluster' | 'maintenanceMode'>;
  view: ClusterView;
  /** Tessera's own ports on this node (never a database's). */
  ownPorts: readonly number[];
  /** For each of `ports` some live node cannot bind, the first such node: one `ports_free` call per live node. */
  portsInUse(ports: number[]): Promise<ReadonlyMap<number, number>>;
  /** The most candidates one `portsInUse` call may take. */
  portsPerAsk: number;
  log: { info(o: object, msg: string): void };
}

/** Nodes (with an address) that lack data-plane encryption. */
export function lackingCapability(view: Pick<ClusterView, 'nodes'>): NodeRecord[] {
  return view.nodes.values().filter((n) => n.addr && !n.capabilities.includes(DATA_INE_CAPABILITY));
}

/** Enabling data-plane encryption needs every node to support it (406 capability_missing). */
export function checkCapability(view: Pick<ClusterView, 'nodes'>, enabling: boolean | undefined): void {
  if (!enabling) return;
  const lacking = lackingCapability(view);
  if (lacking.length) {
    throw new OperatorError(
      'not_acceptable',
      'capability_missing',
      `data_internode_encryption needs every node to support it; node(s) ${lacking.map((n) => n.uid).join(', ')} do not`,
    );
  }
}

/** The nodes that hold an address and are up. */
export const activeNodes = (view: ClusterView): NodeRecord[] => view.nodes.values().filter((n) => n.addr && nodeIsUp(view, n.uid));

/** The nodes that may take new shards: active, and not in maintenance mode (creation, resharding, blueprints). */
export const placeableActiveNodes = async (view: ClusterView, store: Pick<ClusterStore, 'maintenanceMode'>): Promise<NodeRecord[]> =>
  placeableNodes(activeNodes(view), await store.maintenanceMode.list());

/**
 * A database must fit in what its nodes have (RE's `insufficient_resources`):
 * each shard's memory within the largest node, and all its shards (replicas
 * too) within the active nodes' memory together. Memory is each node's total
 * as it reports it over the control plane (this node's own when a peer has not
 * answered yet).
 */
export function checkMemoryFits(
  view: ClusterView,
  nodeUids: number[],
  memorySize: number,
  shardsCount: number,
  replication: boolean,
): void {
  const own = view.statusReply().total_memory;
  const mem = nodeUids.map((u) => (u === view.uid ? own : (view.probes.get(u)?.status?.total_memory ?? own)));
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

/** Why `port`, asked for explicitly, cannot be a database's port: Tessera's own, or in use on a live node. */
async function portRefusal(d: BdbCreateDeps, port: number): Promise<string | undefined> {
  if (d.ownPorts.includes(port)) return `port ${port} is used by Tessera itself`;
  const node = (await d.portsInUse([port])).get(port);
  return node === undefined ? undefined : `port ${port} is in use on node ${node}`;
}

/** The lowest port from 12000 up that no database and nothing on any live node uses (one batch unless hundreds are taken). */
async function firstFreePort(d: BdbCreateDeps, taken: ReadonlySet<number>): Promise<number | undefined> {
  for (let p = PORT_FIRST_AUTO; p <= PORT_MAX; ) {
    const batch: number[] = [];
    for (; p <= PORT_MAX && batch.length < d.portsPerAsk; p++) if (!taken.has(p) && !d.ownPorts.includes(p)) batch.push(p);
    const inUse = batch.length ? await d.portsInUse(batch) : new Map<number, number>();
    const free = batch.find((x) => !inUse.has(x));
    if (free !== undefined) return free;
  }
  return undefined;
}

/** The record a creation writes (shards placed by `load`, from shard uid `firstShard`). */
function newRecord(
  v: BdbInput,
  policy: PolicyRecord,
  encrypted: boolean,
  nodes: NodeRecord[],
  at: { uid: number; port: number; load: Map<number, number>; firstShard: number; actionUid?: string; now: string },
): BdbRecord {
  const shardsCount = v.shards_count ?? 1;
  const sharding = v.sharding ?? shardsCount > 1;
  const replication = v.replication ?? false;
  const placement = v.shards_placement ?? policy.default_shards_placement;
  return {
    uid: at.uid,
    name: v.name,
    type: 'redis',
    port: at.port,
    memory_size: v.memory_size,
    shards_count: shardsCount,
    sharding,
    replication,
    proxy_policy: v.proxy_policy ?? (sharding ? policy.default_sharded_proxy_policy : policy.default_non_sharded_proxy_policy),
    shards_placement: placement,
    data_internode_encryption: encrypted,
    data_persistence: v.data_persistence ?? 'disabled',
    eviction_policy: v.eviction_policy ?? 'volatile-lru',
    ...(v.min_replicas_to_write !== undefined ? { min_replicas_to_write: v.min_replicas_to_write } : {}),
    ...(v.min_replicas_max_lag !== undefined ? { min_replicas_max_lag: v.min_replicas_max_lag } : {}),
    ...(v.authentication_redis_pass ? { authentication_redis_pass: v.authentication_redis_pass } : {}),
    ...(v.shard_key_regex !== undefined ? { shard_key_regex: v.shard_key_regex } : {}),
    ...(v.tls_mode !== undefined ? { tls_mode: v.tls_mode } : {}),
    ...(v.enforce_client_authentication !== undefined ? { enforce_client_authentication: v.enforce_client_authentication } : {}),
    ...(v.authentication_ssl_client_certs !== undefined ? { authentication_ssl_client_certs: v.authentication_ssl_client_certs } : {}),
    internal_secret: newSecret(),
    shards: placeShards(nodes, at.load, shardsCount, replication, at.firstShard, placement),
    status: 'pending',
    generation: 1,
    link_generation: 1,
    created_time: at.now,
    last_changed_time: at.now,
    ...(at.actionUid ? { action_uid: at.actionUid } : {}),
  };
}

/**
 * Create database `v` (or, `dryRun`, build the record it would be and write
 * nothing). `v.shard_key_regex` is what the record keeps (nothing for the
 * standard hashing). Refusals: uid_exists (409), db_name_exists,
 * port_unavailable, insufficient_resources, capability_missing (406), busy (409).
 */
export async function createBdb(d: BdbCreateDeps, v: BdbInput, dryRun: boolean): Promise<BdbRecord> {
  const shardsCount = v.shards_count ?? 1;
  const replication = v.replication ?? false;
  if (v.uid !== undefined && (await d.store.bdbs.get(v.uid))) throw conflict('uid_exists', `database uid ${v.uid} is in use`);
  const policy = await d.store.cluster.policy();
  // As the reference: asked for explicitly, encryption needs every node to support it (406);
  // taken from the cluster default, a node without it makes the database unencrypted.
  let encrypted = v.data_internode_encryption ?? policy.data_internode_encryption;
  if (v.data_internode_encryption === undefined && encrypted && lackingCapability(d.view).length) {
    d.log.info(
      { lacking: lackingCapability(d.view).map((n) => n.uid) },
      'a node lacks data_internode_encryption: the new database is created without it',
    );
    encrypted = false;
  }
  checkCapability(d.view, v.data_internode_encryption);
  const nodes = await placeableActiveNodes(d.view, d.store);
  if (nodes.length === 0 || (replication && nodes.length < 2)) {
    throw unacceptable('insufficient_resources', replication ? 'replication needs at least two active nodes' : 'no active node');
  }
  checkMemoryFits(
    d.view,
    nodes.map((n) => n.uid),
    v.memory_size,
    shardsCount,
    replication,
  );
  // Every creation takes the next database, shard and action uids in one transaction that
  // holds only if no other creation committed since this one read them: concurrent
  // creations are serialized (so two cannot take one port), and a refused one (its name,
  // uid or port just taken) burns no uid. A dry run stops before, having used none.
  for (let attempt = 1; ; attempt++) {
    const seqs = await d.store.seqs.read('bdb', 'shard', 'action');
    const all = await d.store.bdbs.list();
    if (all.some((b) => b.name === v.name)) throw unacceptable('db_name_exists', `a database named ${v.name} exists`);
    if (v.uid !== undefined && all.some((b) => b.uid === v.uid)) throw conflict('uid_exists', `database uid ${v.uid} is in use`);
    const taken = new Set(all.map((b) => b.port));
    let port = v.port;
    if (port !== undefined) {
      if (taken.has(port)) throw unacceptable('port_unavailable', `port ${port} is used by another database`);
      const why = await portRefusal(d, port);
      if (why) throw unacceptable('port_unavailable', why);
    } else {
      port = await firstFreePort(d, taken);
      if (port === undefined) throw unacceptable('port_unavailable', 'no free port left');
    }
    const load = new Map<number, number>();
    for (const b of all) for (const s of b.shards) load.set(s.node_uid, (load.get(s.node_uid) ?? 0) + 1);
    const now = new Date().toISOString();
    if (dryRun) return newRecord(v, policy, encrypted, nodes, { uid: v.uid ?? 0, port, load, firstShard: 1, now });

    // An automatic uid skips those operators chose for earlier databases.
    let bdbStep = 0;
    let uid = v.uid;
    if (uid === undefined) {
      const used = new Set(all.map((b) => b.uid));
      do bdbStep++;
      while (used.has(seqs.get('bdb')! + bdbStep));
      uid = seqs.get('bdb')! + bdbStep;
    }
    const action: ActionRecord = {
      action_uid: String(seqs.get('action')! + 1),
      name: 'create_bdb',
      object_name: `bdb:${uid}`,
      progress: 0,
      status: 'pending',
      creation_time: now,
    };
    const rec = newRecord(v, policy, encrypted, nodes, {
      uid,
      port,
      load,
      firstShard: seqs.get('shard')! + 1,
      actionUid: action.action_uid,
      now,
    });
    const bump = new Map<SeqName, number>([
      ['bdb', bdbStep],
      ['shard', shardsCount * (replication ? 2 : 1)],
      ['action', 1],
    ]);
    if (await d.store.bdbs.createWithAction(seqs, bump, rec, action)) {
      d.log.info({ bdb: uid, name: rec.name, port, shards: rec.shards.length, encrypted }, 'database created');
      return rec;
    }
    if (attempt >= CREATE_ATTEMPTS) throw conflict('busy', 'too many concurrent changes; try again');
    await sleep(Math.random() * 20 * attempt); // spread the retries of concurrent creations
  }
}
