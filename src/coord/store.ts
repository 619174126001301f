// The typed cluster store: the one place that knows the key layout
// (schema.ts KEYS). Each resource has its own small store with methods named
// for what they do (`bdbs.get(uid)`, `bdbs.update(uid, fn)`,
// `actions.create(...)`, `users.list()`); every read checks the record
// against its schema (records.ts), every write takes the record's type.
// `storeOf(client)` gives the store of an etcd client (one per client).
//
// Code outside coord/ reaches etcd only through this: no `KEYS`, no raw
// `client.get/put/delete`, no hand-built transactions.
import type { Etcd3, Lease } from 'etcd3';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  KEYS,
  ActionRecord,
  BdbRecord,
  CaRecord,
  CertRotatedRecord,
  CertRotationRequest,
  CertIdentityRecord,
  ClusterRecord,
  CustomerCertRecord,
  DenyRecord,
  JoinRecord,
  MasterRecord,
  NodeAlertsRecord,
  NodeRecord,
  NodeStubRecord,
  ObservedRecord,
  LiveRecord,
  type PolicyRecord,
  SeqValue,
  ServiceCertRecord,
  ShardOpRecord,
  StoredAlertSettings,
  StoredJobScheduler,
  StoredPolicy,
  TrustRecord,
  UiSessionRecord,
  UserRecord,
  alertSettingsWithDefaults,
  isFinished,
  jobSchedulerWithDefaults,
  policyWithDefaults,
  type AlertSettingsRecord,
  type JobSchedulerRecord,
} from './schema.js';
import { parseRecord, readRecord, readRecords, requireRecord, updateRecord } from './records.js';
import { PrefixCache } from './watch.js';
import { ClusterVersionStore } from './cluster-version.js';

/** The uid sequences: the last uid handed out of each kind. */
const SEQS = {
  node: KEYS.nodeSeq,
  user: KEYS.userSeq,
  bdb: KEYS.bdbSeq,
  shard: KEYS.shardSeq,
  action: KEYS.actionSeq,
} as const;
export type SeqName = keyof typeof SEQS;

/** What a sequence read returned, to commit against (`Seqs.read`, `BdbStore.createWithAction`). */
export type SeqSnapshot = ReadonlyMap<SeqName, number>;

const json = (v: unknown) => JSON.stringify(v);

/** A node record, or the first node's stub before it publishes the rest (`NodeStore.cache`). */
const NodeOrStub = Type.Union([NodeRecord, NodeStubRecord]);

/** The records under `prefix`, by the rest of their key. */
async function recordsById<S extends TSchema>(c: Etcd3, prefix: string, schema: S): Promise<Map<string, Static<S>>> {
  const all = await readRecords(c, prefix, schema);
  return new Map([...all].map(([k, v]) => [k.slice(prefix.length), v]));
}

// --- sequences ---

/** Take the next `count` uids of a sequence key atomically; resolves with the first. */
async function nextSeqAt(c: Etcd3, key: string, count: number): Promise<number> {
  const last = (await updateRecord(c, key, SeqValue, (cur) => (cur ?? 0) + count))!;
  return last - count + 1;
}

/**
 * Several uid sequences read at once (by key), and a transaction that takes
 * the next uids of each only if none moved since, and creates the given keys
 * only if they are absent: the way to create a record that must not burn a
 * uid when it is refused (`Seqs.read`, `BdbStore.createWithAction`).
 */
async function readSeqsAt(c: Etcd3, keys: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const k of keys) out.set(k, (await readRecord(c, k, SeqValue)) ?? 0);
  return out;
}

/** See `readSeqsAt`. False: a sequence moved or a key exists; validate again. */
async function commitWithSeqsAt(
  c: Etcd3,
  seen: ReadonlyMap<string, number>,
  bump: ReadonlyMap<string, number>,
  puts: [string, string][],
): Promise<boolean> {
  let txn: ReturnType<Etcd3['if']> | undefined;
  for (const [k, v] of seen) {
    const [col, cmp, val] = v === 0 ? (['Create', '==', 0] as const) : (['Value', '==', JSON.stringify(v)] as const);
    txn = txn ? txn.and(k, col, cmp, val) : c.if(k, col, cmp, val);
  }
  for (const [k] of puts) txn = txn!.and(k, 'Create', '==', 0);
  const ops = [...[...bump].map(([k, n]) => c.put(k).value(JSON.stringify(seen.get(k)! + n))), ...puts.map(([k, v]) => c.put(k).value(v))];
  const r = await txn!.then(...ops).commit();
  return r.succeeded;
}

export class Seqs {
  constructor(private readonly c: Etcd3) {}

  /** Take the next `count` uids of a sequence; resolves with the first. */
  next(name: SeqName, count = 1): Promise<number> {
    return nextSeqAt(this.c, SEQS[name], count);
  }

  /** The last uid handed out of each sequence (0: none yet), to create against without burning uids. */
  async read(...names: SeqName[]): Promise<SeqSnapshot> {
    const byKey = await readSeqsAt(
      this.c,
      names.map((n) => SEQS[n]),
    );
    return new Map(names.map((n) => [n, byKey.get(SEQS[n])!]));
  }
}

const keyedSeqs = (m: ReadonlyMap<SeqName, number>) => new Map([...m].map(([n, v]) => [SEQS[n] as string, v]));

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
    return commitWithSeqsAt(this.c, keyedSeqs(seen), keyedSeqs(bump), [
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
    await this.c.put(KEYS.action(uid)).value(json(a));
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

  /** Mark an action finished (no uid: nothing to do; finished already: left as it is). */
  async finish(uid: string | undefined, status: 'completed' | 'failed', error?: string): Promise<void> {
    if (!uid) return;
    const cur = await this.get(uid);
    if (!cur || isFinished(cur)) return;
    await this.c
      .put(KEYS.action(Number(uid)))
      .value(json({ ...cur, status, progress: status === 'completed' ? 100 : cur.progress, ...(error ? { error } : {}) }));
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

// --- users and web UI sessions ---

export class UserStore {
  constructor(private readonly c: Etcd3) {}

  get(username: string): Promise<UserRecord | null> {
    return readRecord(this.c, KEYS.user(username), UserRecord);
  }

  async list(): Promise<UserRecord[]> {
    return [...(await readRecords(this.c, KEYS.usersPrefix, UserRecord)).values()];
  }

  /** Store a new user; false when one with its name exists. */
  async create(rec: UserRecord): Promise<boolean> {
    const key = KEYS.user(rec.username);
    const r = await this.c
      .if(key, 'Create', '==', 0)
      .then(this.c.put(key).value(json(rec)))
      .commit();
    return r.succeeded;
  }

  /** Read-modify-write of one user (compare-and-swap); `fn` gets undefined when there is none. */
  update(username: string, fn: (u: UserRecord | undefined) => UserRecord | undefined): Promise<UserRecord | undefined> {
    return updateRecord(this.c, KEYS.user(username), UserRecord, fn);
  }

  async delete(username: string): Promise<void> {
    await this.c.delete().key(KEYS.user(username));
  }
}

/** Web UI sessions, by a digest of their token (ui/sessions.ts's SessionBackend). */
export class UiSessionStore {
  constructor(private readonly c: Etcd3) {}

  get(id: string): Promise<UiSessionRecord | null> {
    return readRecord(this.c, KEYS.uiSession(id), UiSessionRecord);
  }

  async put(id: string, rec: UiSessionRecord): Promise<void> {
    await this.c.put(KEYS.uiSession(id)).value(json(rec));
  }

  async delete(id: string): Promise<void> {
    await this.c.delete().key(KEYS.uiSession(id));
  }

  list(): Promise<Map<string, UiSessionRecord>> {
    return recordsById(this.c, KEYS.uiSessionsPrefix, UiSessionRecord);
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
  async putLive(lease: Lease, rec: LiveRecord): Promise<void> {
    await lease.put(KEYS.live(rec.uid)).value(json(rec));
  }

  /** Change a node's full record (compare-and-swap); an absent one stays absent. */
  update(uid: number, fn: (n: NodeRecord) => NodeRecord | undefined): Promise<NodeRecord | undefined> {
    return updateRecord(this.c, KEYS.node(uid), NodeRecord, (cur) => (cur ? fn(cur) : undefined));
  }

  async delete(uid: number): Promise<void> {
    await this.c.delete().key(KEYS.node(uid));
  }

  /** What a node reports of its alerts. */
  async putAlerts(uid: number, rec: NodeAlertsRecord): Promise<void> {
    await this.c.put(KEYS.alerts(uid)).value(json(rec));
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
   * delete its record, liveness and alerts. False when it has no record.
   */
  async removeAndDeny(uid: number, deny: DenyRecord[]): Promise<boolean> {
    const c = this.c;
    const ops = [
      ...deny.map((d) => c.put(KEYS.deny(d.serial)).value(json(d))),
      ...[KEYS.node(uid), KEYS.live(uid), KEYS.alerts(uid)].map((k) => c.delete().key(k)),
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

/** etcd's own membership (members are the nodes' store replicas, not keys). */
export class StoreMembers {
  constructor(private readonly c: Etcd3) {}

  list() {
    return this.c.cluster.memberList({});
  }

  /** Add a learner with this peer URL. */
  addLearner(peerUrl: string) {
    return this.c.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: true });
  }

  async promote(id: string): Promise<void> {
    await this.c.cluster.memberPromote({ ID: id });
  }

  async remove(id: string): Promise<void> {
    await this.c.cluster.memberRemove({ ID: id });
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

/** What operators give: trust anchors, and certificates for nodes' planes and client-facing services. */
export interface OperatorCerts {
  /** Every trust anchor, the new ones added. */
  anchors: string[];
  customer: CustomerCertRecord[];
  identities: CertIdentityRecord[];
  service: ServiceCertRecord[];
}

export class OperatorCertStore {
  constructor(private readonly c: Etcd3) {}

  trust(): Promise<TrustRecord | null> {
    return readRecord(this.c, KEYS.trust, TrustRecord);
  }

  /**
   * Record operator certificates with the trust anchors and identities they
   * need, in one transaction, so no node presents a certificate its peers
   * cannot place. False when there is no cluster.
   */
  async apply(o: OperatorCerts): Promise<boolean> {
    const c = this.c;
    const ops = [
      c.put(KEYS.trust).value(json({ anchors: o.anchors } satisfies TrustRecord)),
      ...o.customer.map((r) => c.put(KEYS.customerCert(r.uid, r.plane)).value(json(r))),
      ...o.identities.map((r) => c.put(KEYS.certIdentity(r.serial)).value(json(r))),
      ...o.service.map((r) => c.put(KEYS.serviceCert(r.uid, r.name)).value(json(r))),
    ];
    const r = await c
      .if(KEYS.cluster, 'Create', '>', 0)
      .then(...ops)
      .commit();
    return r.succeeded;
  }

  /** A node's operator certificate for a plane is given up (the cluster issues its own again). */
  async deleteCustomerCert(uid: number, plane: CustomerCertRecord['plane']): Promise<void> {
    await this.c.delete().key(KEYS.customerCert(uid, plane));
  }

  async deleteServiceCert(uid: number, name: ServiceCertRecord['name']): Promise<void> {
    await this.c.delete().key(KEYS.serviceCert(uid, name));
  }

  /** Watched copies (start them): the trust anchors (one item, ''), identities by serial, one node's certificates by plane or by name. */
  trustCache(): PrefixCache<TrustRecord> {
    return new PrefixCache(this.c, KEYS.trust, TrustRecord);
  }
  identitiesCache(): PrefixCache<CertIdentityRecord> {
    return new PrefixCache(this.c, KEYS.certIdentitiesPrefix, CertIdentityRecord);
  }
  customerCertsCache(uid: number): PrefixCache<CustomerCertRecord> {
    return new PrefixCache(this.c, `${KEYS.customerCertsPrefix}${uid}/`, CustomerCertRecord);
  }
  serviceCertsCache(uid: number): PrefixCache<ServiceCertRecord> {
    return new PrefixCache(this.c, `${KEYS.serviceCertsPrefix}${uid}/`, ServiceCertRecord);
  }
}

// --- rotation of every node's certificates (control/controllers/cert-rotation-action.ts) ---

export class CertRotationStore {
  constructor(private readonly c: Etcd3) {}

  /** The action and the request that asks the nodes for it, in one transaction; false when the action exists. */
  async create(action: ActionRecord, request: CertRotationRequest): Promise<boolean> {
    const r = await this.c
      .if(KEYS.action(Number(action.action_uid)), 'Create', '==', 0)
      .then(
        this.c.put(KEYS.action(Number(action.action_uid))).value(json(action)),
        this.c.put(KEYS.certRotation(request.action_uid)).value(json(request)),
      )
      .commit();
    return r.succeeded;
  }

  request(actionUid: string): Promise<CertRotationRequest | null> {
    return readRecord(this.c, KEYS.certRotation(actionUid), CertRotationRequest);
  }

  async putRequest(rec: CertRotationRequest): Promise<void> {
    await this.c.put(KEYS.certRotation(rec.action_uid)).value(json(rec));
  }

  /** What node `node` reported for the rotation, if it did. */
  report(actionUid: string, node: number): Promise<CertRotatedRecord | null> {
    return readRecord(this.c, KEYS.certRotated(actionUid, node), CertRotatedRecord);
  }

  async reports(actionUid: string): Promise<CertRotatedRecord[]> {
    return [...(await readRecords(this.c, `${KEYS.certRotatedPrefix}${actionUid}/`, CertRotatedRecord)).values()];
  }

  async putReport(rec: CertRotatedRecord): Promise<void> {
    await this.c.put(KEYS.certRotated(rec.action_uid, rec.node_uid)).value(json(rec));
  }

  /** Remove a finished rotation's request and reports. */
  async forget(actionUid: string): Promise<void> {
    await this.c.delete().key(KEYS.certRotation(actionUid));
    await this.c.delete().prefix(`${KEYS.certRotatedPrefix}${actionUid}/`);
  }

  /** Watched copies (start them): the requests by action uid, the reports by `<action uid>/<node uid>`. */
  requestsCache(): PrefixCache<CertRotationRequest> {
    return new PrefixCache(this.c, KEYS.certRotationsPrefix, CertRotationRequest);
  }
  reportsCache(): PrefixCache<CertRotatedRecord> {
    return new PrefixCache(this.c, KEYS.certRotatedPrefix, CertRotatedRecord);
  }
}

/** The cluster store of one etcd client: every resource, typed. */
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

  constructor(client: Etcd3) {
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
  }
}

const stores = new WeakMap<Etcd3, ClusterStore>();

/** The cluster store of this etcd client (one per client). */
export function storeOf(client: Etcd3): ClusterStore {
  let s = stores.get(client);
  if (!s) stores.set(client, (s = new ClusterStore(client)));
  return s;
}
