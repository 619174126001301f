// The typed cluster store: the one place that knows the key layout
// (schema.ts KEYS). Each resource has its own small store with methods named
// for what they do (`bdbs.get(uid)`, `bdbs.update(uid, fn)`,
// `actions.create(...)`, `users.list()`); every read checks the record
// against its schema (records.ts), every write takes the record's type.
// `openStore(addr, port, paths)` opens the local member's store; it owns the
// etcd client (leases, etcd membership and `close()` are here too).
// `storeOf(client)` gives the store of a client (one per client) meanwhile.
// Sequences, certificates, leases and members have their own files.
//
// Code outside coord/ reaches etcd only through this: no `etcd3` import, no
// `KEYS`, no raw `client.get/put/delete`, no hand-built transactions.
import type { Etcd3, Lease } from 'etcd3';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  KEYS,
  ActionRecord,
  BdbRecord,
  ClusterRecord,
  DenyRecord,
  JoinRecord,
  MasterRecord,
  NodeAlertsRecord,
  NodeRecord,
  NodeStubRecord,
  ObservedRecord,
  LiveRecord,
  type PolicyRecord,
  ShardOpRecord,
  StoredAlertSettings,
  StoredJobScheduler,
  StoredPolicy,
  type UserRecord,
  alertSettingsWithDefaults,
  isFinished,
  jobSchedulerWithDefaults,
  policyWithDefaults,
  type AlertSettingsRecord,
  type JobSchedulerRecord,
} from './schema.js';
import { CaRecord } from './schema-ca.js';
import { parseRecord, readRecord, readRecords, requireRecord, updateRecord } from './records.js';
import { PrefixCache } from './watch.js';
import { Seqs, commitWithSeqs, nextSeqAt, type SeqName, type SeqSnapshot } from './seqs.js';
import { LeaseStore, type StoreLease, etcdLeaseOf } from './lease.js';
import { StoreMembers } from './members.js';
import { CaRolloverStore, CertRotationStore, OperatorCertStore } from './cert-stores.js';
import { Heartbeats } from './heartbeats.js';
import { etcdClient, type EtcdPaths, type LeaderStatus, memberLeaderStatus } from './etcd.js';
import { ClusterVersionStore } from './cluster-version.js';
import { MaintenanceStore } from './maintenance.js';
import { UiSessionStore, UserStore } from './users.js';

export { Seqs, type SeqName, type SeqSnapshot } from './seqs.js';
export { StoreLease, type LeaseOptions } from './lease.js';
export { StoreMembers, type MemberStatus } from './members.js';
export { CaRolloverStore, CertRotationStore, OperatorCertStore, type OperatorCerts } from './cert-stores.js';
export type { Heartbeats } from './heartbeats.js';
export { MaintenanceStore } from './maintenance.js';
export { UiSessionStore, UserStore } from './users.js';

const json = (v: unknown) => JSON.stringify(v);

/** A node record, or the first node's stub before it publishes the rest (`NodeStore.cache`). */
const NodeOrStub = Type.Union([NodeRecord, NodeStubRecord]);

/** The records under `prefix`, by the rest of their key. */
async function recordsById<S extends TSchema>(c: Etcd3, prefix: string, schema: S): Promise<Map<string, Static<S>>> {
  const all = await readRecords(c, prefix, schema);
  return new Map([...all].map(([k, v]) => [k.slice(prefix.length), v]));
}

// --- databases and what each node observes of them ---

export class BdbStore {
  constructor(private readonly c: Etcd3) {}

  get(uid: number): Promise<BdbRecord | null> {
    return readRecord(this.c, KEYS.bdb(uid), BdbRecord);
  }

  async list(): Promise<BdbRecord[]> {
    return [...(await readRecords(this.c, KEYS.bdbsPrefix, BdbRecord)).values()];
  }

  /** Change one database by a function of its current record, retried on conflict; undefined from `fn` leaves it (and an absent one) as it is. */
  update(uid: number, fn: (b: BdbRecord) => BdbRecord | undefined): Promise<BdbRecord | undefined> {
    return updateRecord(this.c, KEYS.bdb(uid), BdbRecord, (cur) => (cur ? fn(cur) : undefined));
  }

  /**
   * Create a database and its action, taking `bump` uids of each sequence, only
   * if no sequence moved since `seen` was read and neither record exists.
   * False: someone created something meanwhile; validate again.
   */
  createWithAction(seen: SeqSnapshot, bump: ReadonlyMap<SeqName, number>, bdb: BdbRecord, action: ActionRecord): Promise<boolean> {
    return commitWithSeqs(this.c, seen, bump, [
      [KEYS.bdb(bdb.uid), json(bdb)],
      [KEYS.action(Number(action.action_uid)), json(action)],
    ]);
  }

  async delete(uid: number): Promise<void> {
    await this.c.delete().key(KEYS.bdb(uid));
  }

  /** A watched copy of every database record, by uid (start it). */
  cache(): PrefixCache<BdbRecord> {
    return new PrefixCache(this.c, KEYS.bdbsPrefix, BdbRecord);
  }
}

export class ObservedStore {
  constructor(private readonly c: Etcd3) {}

  /** What node `node` reports of database `bdb`. */
  async put(bdb: number, node: number, rec: ObservedRecord): Promise<void> {
    await this.c.put(KEYS.observed(bdb, node)).value(json(rec));
  }

  /**
   * Node `node`'s reports that still ask for a shard handover, rewritten
   * without it (compare-and-swap each): a node clears them at start, since the
   * process that asked is gone. Resolves with the databases whose report changed.
   */
  async dropHandovers(node: number): Promise<number[]> {
    const changed: number[] = [];
    for (const [key, rec] of await readRecords(this.c, KEYS.observedPrefix, ObservedRecord)) {
      if (rec.node_uid !== node || !rec.shards.some((s) => s.handover)) continue;
      let dropped = false;
      await updateRecord(this.c, key, ObservedRecord, (cur) => {
        dropped = !!cur?.shards.some((s) => s.handover);
        return dropped && cur ? { ...cur, shards: cur.shards.map(({ handover: _, ...s }) => s) } : undefined;
      });
      if (dropped) changed.push(Number(key.slice(KEYS.observedPrefix.length).split('/')[0]));
    }
    return changed;
  }

  /** Every node's report of one database (it was deleted). */
  async deleteOf(bdb: number): Promise<void> {
    await this.c.delete().prefix(`${KEYS.observedPrefix}${bdb}/`);
  }

  /** A watched copy of every report, by `<bdb>/<node>` (start it). */
  cache(): PrefixCache<ObservedRecord> {
    return new PrefixCache(this.c, KEYS.observedPrefix, ObservedRecord);
  }
}

// --- actions and the shard operations run as actions ---

/** Steps an action keeps. */
const MAX_STEPS = 200;

export class ActionStore {
  constructor(private readonly c: Etcd3) {}

  /** A new pending action (its uid from the action sequence). */
  async create(name: string, objectName: string, extra: Partial<ActionRecord> = {}): Promise<ActionRecord> {
    const uid = await nextSeqAt(this.c, KEYS.actionSeq, 1);
    const a: ActionRecord = {
      action_uid: String(uid),
      name,
      object_name: objectName,
      progress: 0,
      status: 'pending',
      creation_time: new Date().toISOString(),
      ...extra,
    };
    // Create-only: a uid fresh from the sequence names no action, unless someone wrote one by hand.
    const r = await this.c
      .if(KEYS.action(uid), 'Create', '==', 0)
      .then(this.c.put(KEYS.action(uid)).value(json(a)))
      .commit();
    if (!r.succeeded) throw new Error(`action ${uid} exists already; the action sequence is behind`);
    return a;
  }

  get(uid: string | number): Promise<ActionRecord | null> {
    return readRecord(this.c, KEYS.action(Number(uid)), ActionRecord);
  }

  async list(): Promise<ActionRecord[]> {
    return [...(await readRecords(this.c, KEYS.actionsPrefix, ActionRecord)).values()];
  }

  /**
   * Change a running action; a new description is also appended to its steps
   * (`<progress>% <description>`). A finished action is left as it is.
   */
  async update(uid: string, patch: Partial<ActionRecord>): Promise<void> {
    await updateRecord(this.c, KEYS.action(Number(uid)), ActionRecord, (cur) => {
      if (!cur || isFinished(cur)) return undefined;
      const next = { ...cur, ...patch, progress: Math.max(cur.progress, patch.progress ?? 0) };
      if (patch.description !== undefined) next.steps = [...(cur.steps ?? []), `${next.progress}% ${patch.description}`].slice(-MAX_STEPS);
      return next;
    });
  }

  /**
   * Mark an action finished (no uid: nothing to do; finished already: left as
   * it is). Compare-and-swap, so an update racing it is neither lost nor able
   * to bring the action back to running.
   */
  async finish(uid: string | undefined, status: 'completed' | 'failed', error?: string): Promise<void> {
    if (!uid) return;
    await updateRecord(this.c, KEYS.action(Number(uid)), ActionRecord, (cur) => {
      if (!cur || isFinished(cur)) return undefined;
      return { ...cur, status, progress: status === 'completed' ? 100 : cur.progress, ...(error ? { error } : {}) };
    });
  }

  async delete(uid: string | number): Promise<void> {
    await this.c.delete().key(KEYS.action(Number(uid)));
  }
}

export class ShardOpStore {
  constructor(private readonly c: Etcd3) {}

  async list(): Promise<ShardOpRecord[]> {
    return [...(await readRecords(this.c, KEYS.shardOpsPrefix, ShardOpRecord)).values()];
  }

  async put(rec: ShardOpRecord): Promise<void> {
    await this.c.put(KEYS.shardOp(rec.action_uid)).value(json(rec));
  }

  async delete(actionUid: string): Promise<void> {
    await this.c.delete().key(KEYS.shardOp(actionUid));
  }

  /** A watched copy of the queued operations, by action uid (start it). */
  cache(): PrefixCache<ShardOpRecord> {
    return new PrefixCache(this.c, KEYS.shardOpsPrefix, ShardOpRecord);
  }
}

// --- nodes, joins, the master, the store's own membership ---

export class NodeStore {
  constructor(private readonly c: Etcd3) {}

  get(uid: number): Promise<NodeRecord | null> {
    return readRecord(this.c, KEYS.node(uid), NodeRecord);
  }

  /** What every node record has, also the first node's before it published the rest. */
  getStub(uid: number): Promise<NodeStubRecord | null> {
    return readRecord(this.c, KEYS.node(uid), NodeStubRecord);
  }

  /** Publish a node's full record (the node itself, when it starts). */
  async put(rec: NodeRecord): Promise<void> {
    await this.c.put(KEYS.node(rec.uid)).value(json(rec));
  }

  /** A node's liveness record, held under its lease: present while the node renews it. */
  async putLive(lease: StoreLease | Lease, rec: LiveRecord): Promise<void> {
    await etcdLeaseOf(lease).put(KEYS.live(rec.uid)).value(json(rec));
  }

  /**
   * Mark a node's liveness record as stopping (a graceful stop hands its
   * masters over first), kept under the lease it holds; false when it holds none
   * or the record changed meanwhile.
   */
  async markStopping(uid: number, since: string): Promise<boolean> {
    const kv = (await this.c.get(KEYS.live(uid)).exec()).kvs[0];
    if (!kv || kv.lease === '0') return false;
    const rec: LiveRecord = { ...parseRecord(KEYS.live(uid), kv.value.toString(), LiveRecord), stopping: since };
    const r = await this.c
      .if(KEYS.live(uid), 'Mod', '==', kv.mod_revision)
      .then(this.c.put(KEYS.live(uid)).value(json(rec)).lease(kv.lease))
      .commit();
    return r.succeeded;
  }

  /** Change a node's full record (compare-and-swap); an absent one stays absent. */
  update(uid: number, fn: (n: NodeRecord) => NodeRecord | undefined): Promise<NodeRecord | undefined> {
    return updateRecord(this.c, KEYS.node(uid), NodeRecord, (cur) => (cur ? fn(cur) : undefined));
  }

  async delete(uid: number): Promise<void> {
    await this.c.delete().key(KEYS.node(uid));
  }

  /**
   * What a node reports of its alerts: the alerts given replace theirs, the others are kept (each is
   * evaluated by its own loop: certificates by the cert rotator, disk by the database reconciler).
   */
  async putAlerts(uid: number, rec: NodeAlertsRecord): Promise<void> {
    await updateRecord(this.c, KEYS.alerts(uid), NodeAlertsRecord, (cur) => ({ ...cur, ...rec }));
  }

  /** Every node's alerts, by node uid. */
  async alerts(): Promise<Map<number, NodeAlertsRecord>> {
    const all = await recordsById(this.c, KEYS.alertsPrefix, NodeAlertsRecord);
    return new Map([...all].map(([k, v]) => [Number(k), v]));
  }

  /**
   * A watched copy of the node records, by node uid (start it). Each is
   * checked as a full NodeRecord or as the stub (NodeStubRecord) that cluster
   * creation writes for the first node until that node publishes the rest
   * when it starts (`put`); a cache checked against NodeRecord alone would
   * leave the stub out, and that node would not count as a member of its own
   * cluster meanwhile. The element type says NodeRecord, the stub being the
   * short-lived exception: readers that need more than the stub's fields
   * filter on `addr` (`values().filter((n) => n.addr)`).
   */
  cache(): PrefixCache<NodeRecord> {
    return new PrefixCache(this.c, KEYS.nodesPrefix, NodeOrStub) as unknown as PrefixCache<NodeRecord>;
  }

  /** A watched copy of the liveness records, by node uid (start it). */
  liveCache(): PrefixCache<LiveRecord> {
    return new PrefixCache(this.c, KEYS.livePrefix, LiveRecord);
  }

  /** A watched copy of the deny list, by certificate serial (start it). */
  denyCache(): PrefixCache<DenyRecord> {
    return new PrefixCache(this.c, KEYS.denyPrefix, DenyRecord);
  }

  /**
   * Take a node out of the cluster in one transaction: deny its certificates,
   * delete its record, liveness, alerts and maintenance mode. False when it has no record.
   */
  async removeAndDeny(uid: number, deny: DenyRecord[]): Promise<boolean> {
    const c = this.c;
    const ops = [
      ...deny.map((d) => c.put(KEYS.deny(d.serial)).value(json(d))),
      ...[KEYS.node(uid), KEYS.live(uid), KEYS.alerts(uid), KEYS.maintenance(uid)].map((k) => c.delete().key(k)),
    ];
    const r = await c
      .if(KEYS.node(uid), 'Create', '>', 0)
      .then(...ops)
      .commit();
    return r.succeeded;
  }
}

/** Nodes being admitted: the join record lives from admission to promotion of the node's store member. */
export class JoinStore {
  constructor(private readonly c: Etcd3) {}

  /**
   * Admit a join: its record and its `join_node` action in one transaction, so
   * that there is never a join that no one follows. False if either exists already.
   */
  async createWithAction(join: JoinRecord, action: ActionRecord): Promise<boolean> {
    const actionKey = KEYS.action(Number(action.action_uid));
    const r = await this.c
      .if(actionKey, 'Create', '==', 0)
      .and(KEYS.join(join.uid), 'Create', '==', 0)
      .then(this.c.put(KEYS.join(join.uid)).value(json(join)), this.c.put(actionKey).value(json(action)))
      .commit();
    return r.succeeded;
  }

  /** The pending joins, watched, by node uid (start it). */
  cache(): PrefixCache<JoinRecord> {
    return new PrefixCache(this.c, KEYS.joinsPrefix, JoinRecord);
  }

  get(uid: number): Promise<JoinRecord | null> {
    return readRecord(this.c, KEYS.join(uid), JoinRecord);
  }

  async list(): Promise<JoinRecord[]> {
    return [...(await readRecords(this.c, KEYS.joinsPrefix, JoinRecord)).values()];
  }

  async put(rec: JoinRecord): Promise<void> {
    await this.c.put(KEYS.join(rec.uid)).value(json(rec));
  }

  async delete(uid: number): Promise<void> {
    await this.c.delete().key(KEYS.join(uid));
  }
}

export class MasterStore {
  constructor(private readonly c: Etcd3) {}

  get(): Promise<MasterRecord | null> {
    return readRecord(this.c, KEYS.master, MasterRecord);
  }

  /** Drop the master key (the master was removed): the next master is elected. */
  async delete(): Promise<void> {
    await this.c.delete().key(KEYS.master);
  }

  /**
   * Election: become the master if there is none (a create-only transaction,
   * so one claimant wins), the key bound to the claimant's liveness lease so
   * that it goes when the claimant stops renewing. True: this one won.
   */
  async claim(rec: MasterRecord, leaseId: string): Promise<boolean> {
    const r = await this.c
      .if(KEYS.master, 'Create', '==', 0)
      .then(this.c.put(KEYS.master).value(json(rec)).lease(leaseId))
      .commit();
    return r.succeeded;
  }

  /**
   * Make node `rec.uid` the master (RE's change_master): the key is rewritten
   * bound to that node's own liveness lease, as if it had won the election.
   * 'down': the node has no liveness lease; 'went_down': it lost it meanwhile.
   */
  async handTo(rec: MasterRecord): Promise<'done' | 'down' | 'went_down'> {
    const live = (await this.c.get(KEYS.live(rec.uid)).exec()).kvs[0];
    if (!live || live.lease === '0') return 'down';
    const r = await this.c
      .if(KEYS.live(rec.uid), 'Lease', '==', live.lease)
      .then(this.c.put(KEYS.master).value(json(rec)).lease(live.lease))
      .commit();
    return r.succeeded ? 'done' : 'went_down';
  }

  /**
   * Take the role over from node `holder` (silent as long as a dead node): one
   * compare-and-swap on the key, so one claimant wins. False: the key is gone
   * (claim it) or held by another node now.
   */
  async takeOver(holder: number, rec: MasterRecord, leaseId: string): Promise<boolean> {
    const kv = (await this.c.get(KEYS.master).exec()).kvs[0];
    if (!kv || parseRecord(KEYS.master, kv.value.toString(), MasterRecord).uid !== holder) return false;
    const r = await this.c
      .if(KEYS.master, 'Mod', '==', kv.mod_revision)
      .then(this.c.put(KEYS.master).value(json(rec)).lease(leaseId))
      .commit();
    return r.succeeded;
  }

  /** Give the role up: the master key goes, only if node `uid` still holds it. True: it did, and the key is gone. */
  async resign(uid: number): Promise<boolean> {
    const kv = (await this.c.get(KEYS.master).exec()).kvs[0];
    if (!kv) return false;
    // Only its uid is compared: a record this code cannot fully read still goes if it is ours.
    if ((JSON.parse(kv.value.toString()) as { uid?: unknown }).uid !== uid) return false;
    const r = await this.c.if(KEYS.master, 'Mod', '==', kv.mod_revision).then(this.c.delete().key(KEYS.master)).commit();
    return r.succeeded;
  }

  /** A watched copy of the master key (one item, '' while there is a master; start it). */
  cache(): PrefixCache<MasterRecord> {
    return new PrefixCache(this.c, KEYS.master, MasterRecord);
  }
}

// --- cluster-wide records: the cluster, its CAs, policy, alert settings ---

/** What cluster creation writes, in one transaction. */
export interface NewCluster {
  cluster: ClusterRecord;
  ca: CaRecord;
  servicesCa: CaRecord;
  /** The first admin: uid 1 of the user sequence. */
  admin: UserRecord;
  policy: PolicyRecord;
  /** The first node: the node sequence starts at its uid. */
  node: NodeStubRecord;
}

export class ClusterRecords {
  constructor(private readonly c: Etcd3) {}

  /** Write a new cluster's records, unless there is a cluster already. */
  async create(n: NewCluster): Promise<boolean> {
    const c = this.c;
    const r = await c
      .if(KEYS.cluster, 'Create', '==', 0)
      .then(
        c.put(KEYS.cluster).value(json(n.cluster)),
        c.put(KEYS.ca).value(json(n.ca)),
        c.put(KEYS.servicesCa).value(json(n.servicesCa)),
        c.put(KEYS.user(n.admin.username)).value(json(n.admin)),
        c.put(KEYS.userSeq).value('1'),
        c.put(KEYS.policy).value(json(n.policy)),
        c.put(KEYS.nodeSeq).value(String(n.node.uid)),
        c.put(KEYS.node(n.node.uid)).value(json(n.node)),
      )
      .commit();
    return r.succeeded;
  }

  get(): Promise<ClusterRecord> {
    return requireRecord(this.c, KEYS.cluster, ClusterRecord);
  }

  /** The internode CA (cp/dp certificates); every cluster has one. */
  ca(): Promise<CaRecord> {
    return requireRecord(this.c, KEYS.ca, CaRecord);
  }

  /** The services CA (client-facing certificates): null on a cluster created before it existed, until a node creates it. */
  servicesCa(): Promise<CaRecord | null> {
    return readRecord(this.c, KEYS.servicesCa, CaRecord);
  }

  /** Store a services CA unless there is one (a cluster created before it existed); false: there was one. */
  async createServicesCa(rec: CaRecord): Promise<boolean> {
    const r = await this.c
      .if(KEYS.servicesCa, 'Create', '==', 0)
      .then(this.c.put(KEYS.servicesCa).value(json(rec)))
      .commit();
    return r.succeeded;
  }

  /** The services CA, which must exist. */
  requireServicesCa(): Promise<CaRecord> {
    return requireRecord(this.c, KEYS.servicesCa, CaRecord);
  }

  /** Watched copies of a CA record (one item, ''; start them): what each node trusts follows them (pki/ca-list.ts). */
  caCache(which: 'internode' | 'services'): PrefixCache<CaRecord> {
    return new PrefixCache(this.c, which === 'internode' ? KEYS.ca : KEYS.servicesCa, CaRecord);
  }

  /** Change a CA record (compare-and-swap; `fn` returns undefined to leave it); resolves with the stored record. */
  updateCa(which: 'internode' | 'services', fn: (cur: CaRecord | undefined) => CaRecord | undefined): Promise<CaRecord | undefined> {
    return updateRecord(this.c, which === 'internode' ? KEYS.ca : KEYS.servicesCa, CaRecord, fn);
  }

  /** The cluster policy with defaults for what the stored record lacks. */
  async policy(): Promise<PolicyRecord> {
    return policyWithDefaults(await readRecord(this.c, KEYS.policy, StoredPolicy));
  }

  /** Apply a change to the policy (compare-and-swap); resolves with the whole new policy. */
  async updatePolicy(change: StoredPolicy): Promise<PolicyRecord> {
    return policyWithDefaults(await updateRecord(this.c, KEYS.policy, StoredPolicy, (cur) => policyWithDefaults(cur, change)));
  }

  /** A watched copy of the stored policy (one item, ''; start it): read it through `policyWithDefaults`. */
  policyCache(): PrefixCache<StoredPolicy> {
    return new PrefixCache(this.c, KEYS.policy, StoredPolicy);
  }
}

/** Cluster-wide settings: the job scheduler (certificate rotation) and alert thresholds. */
export class SettingsStore {
  constructor(private readonly c: Etcd3) {}

  /** The job scheduler settings with defaults for what the stored record lacks. */
  async jobScheduler(): Promise<JobSchedulerRecord> {
    return jobSchedulerWithDefaults(await readRecord(this.c, KEYS.jobScheduler, StoredJobScheduler));
  }

  /** Read-modify-write of the stored job scheduler settings (`fn` may throw to refuse); resolves with them, with defaults. */
  async updateJobScheduler(fn: (cur: StoredJobScheduler | undefined) => StoredJobScheduler | undefined): Promise<JobSchedulerRecord> {
    return jobSchedulerWithDefaults(await updateRecord(this.c, KEYS.jobScheduler, StoredJobScheduler, fn));
  }

  /** A watched copy of the stored job scheduler settings (one item, ''; start it). */
  jobSchedulerCache(): PrefixCache<StoredJobScheduler> {
    return new PrefixCache(this.c, KEYS.jobScheduler, StoredJobScheduler);
  }

  /** The alert settings with defaults for what the stored record lacks. */
  async alertSettings(): Promise<AlertSettingsRecord> {
    return alertSettingsWithDefaults(await readRecord(this.c, KEYS.alertSettings, StoredAlertSettings));
  }

  /** Apply a change to the alert settings (compare-and-swap); resolves with all of them. */
  async updateAlertSettings(change: StoredAlertSettings): Promise<AlertSettingsRecord> {
    return alertSettingsWithDefaults(
      await updateRecord(this.c, KEYS.alertSettings, StoredAlertSettings, (cur) => alertSettingsWithDefaults(cur, change)),
    );
  }

  /** A watched copy of the stored alert settings (one item, ''; start it). */
  alertSettingsCache(): PrefixCache<StoredAlertSettings> {
    return new PrefixCache(this.c, KEYS.alertSettings, StoredAlertSettings);
  }
}

/** The cluster store of one etcd client: every resource, typed; the only holder of the client. */
export class ClusterStore {
  readonly seqs: Seqs;
  readonly bdbs: BdbStore;
  readonly observed: ObservedStore;
  readonly actions: ActionStore;
  readonly shardOps: ShardOpStore;
  readonly users: UserStore;
  readonly uiSessions: UiSessionStore;
  readonly nodes: NodeStore;
  readonly joins: JoinStore;
  readonly master: MasterStore;
  readonly members: StoreMembers;
  readonly cluster: ClusterRecords;
  readonly clusterVersion: ClusterVersionStore;
  readonly settings: SettingsStore;
  readonly operatorCerts: OperatorCertStore;
  readonly certRotations: CertRotationStore;
  readonly caRollovers: CaRolloverStore;
  /** Nodes in maintenance mode (coord/maintenance.ts). */
  readonly maintenanceMode: MaintenanceStore;
  /** Liveness leases (`leases.create(ttl)`). */
  readonly leases: LeaseStore;

  constructor(private readonly client: Etcd3) {
    this.seqs = new Seqs(client);
    this.bdbs = new BdbStore(client);
    this.observed = new ObservedStore(client);
    this.actions = new ActionStore(client);
    this.shardOps = new ShardOpStore(client);
    this.users = new UserStore(client);
    this.uiSessions = new UiSessionStore(client);
    this.nodes = new NodeStore(client);
    this.joins = new JoinStore(client);
    this.master = new MasterStore(client);
    this.members = new StoreMembers(client);
    this.cluster = new ClusterRecords(client);
    this.clusterVersion = new ClusterVersionStore(client);
    this.settings = new SettingsStore(client);
    this.operatorCerts = new OperatorCertStore(client);
    this.certRotations = new CertRotationStore(client);
    this.caRollovers = new CaRolloverStore(client);
    this.maintenanceMode = new MaintenanceStore(client);
    this.leases = new LeaseStore(client);
  }

  /** Node `self`'s heartbeats: its own beats written, everyone's watched (start them). */
  heartbeats(self: number): Heartbeats {
    return new Heartbeats(this.client, self);
  }

  /** Resolves once the local member answers a linearizable read (a learner does not until promoted). */
  async ping(): Promise<void> {
    await this.client.get('/tessera/ping').exec();
  }

  /** The local member's leader and term (no quorum needed); undefined when it does not answer within a moment. */
  leaderStatus(): Promise<LeaderStatus | undefined> {
    return memberLeaderStatus(this.client);
  }

  /** Close the connection; every cache and lease of this store ends with it. */
  close(): void {
    this.client.close();
  }
}

const stores = new WeakMap<Etcd3, ClusterStore>();

/** The cluster store of this etcd client (one per client). */
export function storeOf(client: Etcd3): ClusterStore {
  let s = stores.get(client);
  if (!s) stores.set(client, (s = new ClusterStore(client)));
  return s;
}

/** The cluster store of the local member at `addr:clientPort`, over the daemon's mTLS client (coord/etcd.ts). */
export function openStore(addr: string, clientPort: number, paths: EtcdPaths): ClusterStore {
  return storeOf(etcdClient(addr, clientPort, paths));
}

/** How a loop is handed the store: `{ store }` (nothing outside coord/ holds the etcd client). */
export type StoreHost = { readonly store: ClusterStore };
