// Every node's database reconciler: watches the databases' desired state and
// converges this node's part of it — shard processes, the data-plane
// worker's endpoints, links and tunnels — then writes what it observed back.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { NodeConfig } from '../membership/config.js';
import type { DataplaneHost } from '../../dataplane/host.js';
import type { AlertSettingsRecord, LiveRecord, NodeRecord } from '../../coord/schema.js';
import type { BdbRecord, ObservedRecord } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore, StoreHost } from '../../coord/store.js';
import { RedisShard, type ShardSpec, shardDir, shardSocket, stoppedCleanly } from '../../shards/redis-shard.js';
import { endpointNodes } from '../model/placement.js';
import { bumped, isGone, promote } from '../model/shard-plans.js';
import { rangesOf } from '../model/reshard-plan.js';
import type { DataplaneConfig } from '../../dataplane/messages.js';
import { type WriteHealth, isDiskRefusal, writeHealth } from '../../shards/shard-health.js';
import { DiskAlerts, type DiskTrouble } from './disk-alerts.js';

const SETTLE_MS = 20;
const REFRESH_MS = 2000;

/** A replica's link to its master and, while it copies the master's data, how far it is (INFO replication). */
function replicaSync(info: string): { master_link_status?: string; sync_progress?: number } {
  const link = /master_link_status:(\w+)/.exec(info)?.[1];
  if (!link) return {};
  const syncing = /master_sync_in_progress:1/.test(info);
  const perc = Number(/master_sync_perc:([\d.]+)/.exec(info)?.[1] ?? 0);
  return { master_link_status: link, ...(syncing ? { sync_progress: Math.floor(perc) } : {}) };
}

/** Does the shard refuse writes (INFO persistence and memory)? Undefined when it did not answer: not judged. */
function shardWriteHealth(p: RedisShard, info: string): WriteHealth | undefined {
  if (!info) return undefined;
  const h = writeHealth(info, p.spec.persistence === 'snapshot');
  // The errno redis logged (e.g. "No space left on device") is what an operator needs; it is in INFO nowhere.
  const errno = isDiskRefusal(h.refused?.reason)
    ? /(No space left on device|Input\/output error|Read-only file system|Disk quota exceeded)/.exec(p.logTail())?.[1]
    : undefined;
  if (h.refused && errno) h.refused.message += `: ${errno}`;
  return h;
}

function shardSpec(b: BdbRecord, shardUid: number, addr: string): ShardSpec {
  return {
    bdbUid: b.uid,
    shardUid,
    maxmemory: Math.floor(b.memory_size / b.shards_count),
    persistence: b.data_persistence,
    evictionPolicy: b.eviction_policy,
    // Without replication there is no replica to wait for: the guard would refuse every write.
    minReplicasToWrite: b.replication ? (b.min_replicas_to_write ?? 0) : 0,
    minReplicasMaxLag: b.min_replicas_max_lag ?? 10,
    secret: b.internal_secret,
    sourceAddr: addr,
  };
}

/** What the reconciler needs of its node's membership (src/node/loops.ts builds it from the membership parts). */
export interface ReconcilerHost {
  readonly uid: number;
  readonly cfg: NodeConfig;
  readonly nodes: PrefixCache<NodeRecord>;
  readonly live: PrefixCache<LiveRecord>;
  /** The databases' desired state, watched: the node's one cache of it (its owner starts and stops it). */
  readonly bdbs: PrefixCache<BdbRecord>;
  /** This node's data-plane worker: its endpoints, links and tunnels (built before the reconciler, by src/node). */
  readonly dataplane: Pick<DataplaneHost, 'on' | 'tunnelPorts' | 'setConfig' | 'endpoints'>;
  failoverTimeoutSeconds(): number;
  /** The cluster's alert settings now (a watched record: the certificate rotator's), for the disk alerts. */
  alertSettings(): AlertSettingsRecord;
  /**
   * This run of the node: the `started_time` of its live record. Every observed record names it, so the
   * cluster master acts on a handover only from the process that asked for it, not from one before a restart.
   */
  readonly incarnation: string;
}

/** Beyond failover_timeout: the master's next tick, the promotion and the new map reaching every node. */
const FAILOVER_MARGIN_MS = 5_000;
/** Clients time out too: with a long failover_timeout, commands fail (CLUSTERDOWN) rather than hang. */
const MAX_HOLD_MS = 12_000;
/** How long a crashed master waits for the cluster master to promote its replica before restarting in place. */
const HANDOVER_WAIT_MS = 5_000;
export interface ShardMemory {
  shardUid: number;
  bdbUid: number;
  role: 'master' | 'slave';
  used_memory: number;
}

export class BdbReconciler {
  readonly bdbs: PrefixCache<BdbRecord>;
  private readonly store: ClusterStore;
  private shards = new Map<number, RedisShard>();
  private timer?: NodeJS.Timeout;
  private refresh?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;
  private lastObserved = new Map<number, string>();
  /** Returning masters whose failover to their replica is under way. */
  private readonly fencing = new Set<number>();
  private staleDirsRemoved = false;
  /** Replicas promoted because a master shard of this node died or this node returned (for the metrics). */
  readonly promotions = new Map<number, number>();
  /**
   * Does the cluster master act on this node's handover reports? Then this
   * node only reports (observed `handover`); otherwise (a 0.1.0 master) it
   * writes the promotion itself, as 0.1.0 nodes do. Wired to the cluster version.
   */
  reportOnly: () => boolean = () => true;
  /** Master shards of this node that ask for their replica to take over (reported), and since when. */
  private readonly handover = new Map<number, { why: 'crashed' | 'returning'; since: number }>();
  /** node_insufficient_disk_aofrw and node_persistent_storage, evaluated after each report. */
  private readonly diskAlerts: DiskAlerts;

  constructor(
    private readonly m: ReconcilerHost & StoreHost,
    private readonly log: Logger,
  ) {
    this.store = m.store;
    this.bdbs = m.bdbs;
    this.diskAlerts = new DiskAlerts(m.store, () => m.alertSettings(), m.uid, m.cfg.dataDir, log);
    this.bdbs.on('malformed', (err: Error) =>
      this.log.error(
        { err: err.message },
        'database record not understood (written by a newer version?): not acting on it, and keeping its shards and their files',
      ),
    );
  }

  async start(): Promise<void> {
    await this.clearHandovers();
    this.bdbs.on('change', () => this.schedule());
    this.m.nodes.on('change', () => this.schedule());
    this.m.dataplane.on('tunnel', () => this.schedule());
    this.m.dataplane.on('endpoints', () => this.schedule());
    this.refresh = setInterval(() => this.schedule(), REFRESH_MS);
    this.refresh.unref();
    this.schedule();
  }

  /**
   * Handover reports of this node's previous run are stale: that process's shards are gone, and what this
   * one starts is decided afresh. The cluster master ignores them anyway (they name the old incarnation);
   * clearing them keeps the records honest. A failure is logged and left to that rule.
   */
  private async clearHandovers(): Promise<void> {
    try {
      const bdbs = await this.store.observed.dropHandovers(this.m.uid);
      if (bdbs.length) this.log.info({ bdbs }, 'cleared the handover reports of this node before its restart');
    } catch (err) {
      this.log.warn(
        { err: (err as Error).message },
        'cannot clear old handover reports; the cluster master ignores them (old incarnation)',
      );
    }
  }

  schedule(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, SETTLE_MS);
  }

  /**
   * After this node was cut off from the store: wait until the watched
   * databases have caught up with the store (no record older than a fresh
   * read), then converge on them now. Throws if that cannot be done yet.
   */
  async resync(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const fresh = await this.store.bdbs.list();
      const cached = this.bdbs.items;
      const current = fresh.length === cached.size && fresh.every((b) => (cached.get(String(b.uid))?.generation ?? -1) >= b.generation);
      if (current) break;
      if (Date.now() > deadline) throw new Error('the watched databases have not caught up with the store');
      await new Promise((r) => setTimeout(r, 50));
    }
    while (this.running) await new Promise((r) => setTimeout(r, 20));
    this.running = true;
    try {
      await this.reconcile();
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  private async run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      await this.reconcile();
    } catch (err) {
      this.log.error({ err: (err as Error).message, stack: (err as Error).stack }, 'reconcile failed');
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  /**
   * A master shard of a replicated database died: its replica takes over and
   * the old master comes back as a replica of it, so nothing is lost. A
   * master restarted in place would come back empty (without persistence)
   * and its replica would then copy the emptiness.
   */
  private crashPolicy(shardUid: number): 'restart' | 'hold' {
    const b = this.bdbs.values().find((x) => x.shards.some((s) => s.uid === shardUid));
    const me = b?.shards.find((s) => s.uid === shardUid);
    const replica = b?.shards.find((s) => s.master_uid === shardUid);
    if (!b || !me || me.role !== 'master' || !replica || !this.m.live.items.has(String(replica.node_uid))) return 'restart';
    if (this.reportOnly()) {
      this.log.warn(
        { bdb: b.uid, shard: shardUid, replica: replica.uid },
        'master shard crashed; asking the cluster master to promote its replica',
      );
      this.handover.set(shardUid, { why: 'crashed', since: Date.now() });
      this.schedule();
      return 'hold';
    }
    void this.failover(b.uid, shardUid, replica.uid).catch((err) => {
      this.log.error({ bdb: b.uid, shard: shardUid, err: (err as Error).message }, 'failover failed; restarting the shard in place');
      const s = this.shards.get(shardUid);
      if (s?.held)
        void s.start().catch((e) => this.log.error({ shard: shardUid, err: (e as Error).message }, 'shard restart in place failed'));
    });
    return 'hold';
  }

  private async failover(bdbUid: number, masterUid: number, replicaUid: number): Promise<void> {
    // The same promotion the cluster master's failover makes (siblings follow the new master).
    const next = await this.store.bdbs.update(bdbUid, (cur) => {
      const shards = promote(cur.shards, masterUid, replicaUid);
      return shards ? bumped(cur, shards) : undefined;
    });
    this.log.warn(
      { bdb: bdbUid, failed: masterUid, promoted: replicaUid, generation: next?.generation },
      'master shard failed; its replica takes over',
    );
    if (next) this.promotions.set(bdbUid, (this.promotions.get(bdbUid) ?? 0) + 1);
  }

  /**
   * A master shard this node ran before (its directory is here) but has not
   * started since this process began: the node is coming back. While it was
   * away its live replica kept the newer data, so the replica becomes master
   * and this one returns as its replica; starting it as master would make the
   * replica copy whatever this one holds (nothing, without persistence).
   */
  private fenceReturningMaster(b: BdbRecord, shardUid: number): boolean {
    if (!fs.existsSync(shardDir(this.m.cfg.dataDir, shardUid))) return false; // a new shard
    // Until a failover, a replica is never newer than its master. A master whose
    // files hold every write it acknowledged (aof; or a snapshot saved at a
    // clean stop) comes back as master: handing over to the replica would make
    // it copy the replica's older data and lose the newer.
    if (b.data_persistence === 'aof') return false;
    if (b.data_persistence === 'snapshot' && stoppedCleanly(this.m.cfg.dataDir, shardUid)) return false;
    const replica = b.shards.find(
      (s) => s.master_uid === shardUid && s.role === 'slave' && s.node_uid !== this.m.uid && this.m.live.items.has(String(s.node_uid)),
    );
    if (!replica) {
      this.handover.delete(shardUid);
      return false; // nothing better to serve from: start with what is on disk
    }
    if (this.reportOnly()) {
      if (this.handover.get(shardUid)?.why !== 'returning') {
        this.log.warn(
          { bdb: b.uid, shard: shardUid, replica: replica.uid },
          'fencing: this node returns; asking the cluster master to promote its replica (this shard comes back as its replica)',
        );
        this.handover.set(shardUid, { why: 'returning', since: Date.now() });
      }
      return true;
    }
    if (this.fencing.has(shardUid)) return true;
    this.fencing.add(shardUid);
    this.log.warn(
      { bdb: b.uid, shard: shardUid, replica: replica.uid },
      'fencing: this node returns; its replica takes over and this shard comes back as its replica',
    );
    void this.failover(b.uid, shardUid, replica.uid)
      .catch((err) => this.log.error({ bdb: b.uid, shard: shardUid, err: (err as Error).message }, 'fencing failover failed; retrying'))
      .finally(() => {
        this.fencing.delete(shardUid);
        this.schedule();
      });
    return true;
  }

  /**
   * The databases this node cannot read (a record a newer version wrote): by
   * uid, with the shard uids their stored value names when it can tell. Their
   * shards are neither stopped nor removed: files go only for a database known
   * to be deleted or a shard known to be placed elsewhere.
   */
  private unreadable(): { bdbs: Set<number>; shards: Set<number> } {
    const bdbs = new Set<number>();
    const shards = new Set<number>();
    for (const [id, { value }] of this.bdbs.notUnderstood) {
      bdbs.add(Number(id));
      const listed = (value as { shards?: unknown } | null)?.shards;
      if (Array.isArray(listed)) for (const s of listed) if (Number.isInteger(s?.uid)) shards.add(s.uid);
    }
    return { bdbs, shards };
  }

  /**
   * A crashed master waits (held) for the cluster master to promote its
   * replica; if that has not happened within HANDOVER_WAIT_MS it restarts in
   * place, as when 0.1.0's own promotion write fails.
   */
  private awaitingHandover(uid: number): boolean {
    const h = this.handover.get(uid);
    if (h?.why !== 'crashed') return false;
    if (Date.now() - h.since < HANDOVER_WAIT_MS) return true;
    this.log.error({ shard: uid }, 'no promotion of the replica came; restarting the crashed master shard in place');
    this.handover.delete(uid);
    return false;
  }

  /** Directories of shards no longer placed here (moved away while this node was down). */
  private removeStaleShardDirs(wanted: Map<number, unknown>): void {
    const root = path.dirname(shardDir(this.m.cfg.dataDir, 0));
    let entries: string[];
    try {
      entries = fs.readdirSync(root);
    } catch {
      return; // no shard has ever run here
    }
    for (const e of entries) {
      const uid = Number(e);
      if (!Number.isInteger(uid) || wanted.has(uid) || this.shards.has(uid)) continue;
      this.log.info({ shard: uid }, 'removing the files of a shard no longer placed here');
      fs.rmSync(shardDir(this.m.cfg.dataDir, uid), { recursive: true, force: true });
    }
  }

  shardProcess(uid: number): RedisShard | undefined {
    return this.shards.get(uid);
  }

  private async reconcile(): Promise<void> {
    const me = this.m.uid;
    const addr = this.m.cfg.addr;
    const all = this.bdbs.values();
    const live = all.filter((b) => !isGone(b));
    const errors = new Map<number, { error: string; fatal: boolean }>();

    // Shards this node should run.
    const wanted = new Map<number, { b: BdbRecord; spec: ShardSpec; role: 'master' | 'slave'; masterUid?: number }>();
    for (const b of live) {
      for (const s of b.shards)
        if (s.node_uid === me) wanted.set(s.uid, { b, spec: shardSpec(b, s.uid, addr), role: s.role, masterUid: s.master_uid });
    }
    const unreadable = this.unreadable();
    for (const [uid, shard] of this.shards) {
      if (wanted.has(uid)) continue;
      // Not known to be placed elsewhere: its database's record is one this node cannot read. Left as it runs.
      if (unreadable.bdbs.has(shard.spec.bdbUid) || unreadable.shards.has(uid)) continue;
      this.log.info({ shard: uid }, 'stopping shard no longer placed here');
      await shard.stop();
      this.shards.delete(uid);
      fs.rmSync(shardDir(this.m.cfg.dataDir, uid), { recursive: true, force: true });
    }
    // Shards moved away while this node was down left their files; later moves stop the shard first and remove them.
    // Not while a database record is unreadable: a directory not wanted by the records read might be that database's.
    if (!this.staleDirsRemoved && unreadable.bdbs.size === 0) {
      this.removeStaleShardDirs(wanted);
      this.staleDirsRemoved = true;
    }
    // A handover ends once the shard is no longer a master here.
    for (const uid of [...this.handover.keys()]) if (wanted.get(uid)?.role !== 'master') this.handover.delete(uid);
    for (const [uid, w] of wanted) {
      let shard = this.shards.get(uid);
      if (shard?.held && this.awaitingHandover(uid)) continue;
      if (!shard && w.role === 'master' && this.fenceReturningMaster(w.b, uid)) continue;
      // A replica starts as one, through its tunnel; until the data plane has opened it, wait.
      const tunnel = w.role === 'slave' ? this.m.dataplane.tunnelPorts.get(uid) : undefined;
      if (w.role === 'slave' && !tunnel && (!shard || shard.held)) continue;
      if (!shard || shard.held) {
        if (!shard) {
          shard = new RedisShard(w.spec, this.m.cfg.dataDir, this.log.child({ bdb: w.b.uid }));
          shard.onRestart = () => this.schedule();
          shard.onCrash = () => this.crashPolicy(uid);
          this.shards.set(uid, shard);
        }
        shard.replicaOf = tunnel;
        try {
          await shard.start();
        } catch (err) {
          errors.set(w.b.uid, { error: `shard ${uid}: ${(err as Error).message}`, fatal: false });
          continue;
        }
      } else if (
        shard.spec.maxmemory !== w.spec.maxmemory ||
        shard.spec.evictionPolicy !== w.spec.evictionPolicy ||
        shard.spec.minReplicasToWrite !== w.spec.minReplicasToWrite ||
        shard.spec.minReplicasMaxLag !== w.spec.minReplicasMaxLag
      ) {
        // Live changes that redis takes without a restart; recorded once taken, so a failure is retried next pass.
        const ok = await shard
          .command([
            'CONFIG',
            'SET',
            'maxmemory',
            String(w.spec.maxmemory),
            'maxmemory-policy',
            w.spec.evictionPolicy,
            'min-replicas-to-write',
            String(w.spec.minReplicasToWrite ?? 0),
            'min-replicas-max-lag',
            String(w.spec.minReplicasMaxLag ?? 10),
          ])
          .then((r) => r.startsWith('+OK'))
          .catch((e) => {
            this.log.warn({ shard: uid, err: (e as Error).message }, 'cannot apply maxmemory settings to the shard; retrying');
            return false;
          });
        if (ok) {
          shard.spec.maxmemory = w.spec.maxmemory;
          shard.spec.evictionPolicy = w.spec.evictionPolicy;
          shard.spec.minReplicasToWrite = w.spec.minReplicasToWrite;
          shard.spec.minReplicasMaxLag = w.spec.minReplicasMaxLag;
        }
      }
      if (w.role === 'slave') {
        const t = this.m.dataplane.tunnelPorts.get(uid);
        if (t && (shard.replicaOf?.host !== t.host || shard.replicaOf?.port !== t.port)) {
          await shard
            .setReplicaOf(t)
            .catch((err) => errors.set(w.b.uid, { error: `replica ${uid}: ${(err as Error).message}`, fatal: false }));
        }
      } else if (shard.replicaOf) {
        await shard
          .setReplicaOf(undefined)
          .catch((e) => this.log.warn({ shard: uid, err: (e as Error).message }, 'cannot promote the shard to master'));
      }
    }

    // The data plane's part.
    const allNodes = this.m.nodes
      .values()
      .filter((n) => n.addr)
      .map((n) => n.uid);
    const cfg: DataplaneConfig = { localShards: [], bdbs: [], shardLocations: [], endpoints: [], tunnels: [] };
    for (const b of live) {
      cfg.bdbs.push({ uid: b.uid, encrypted: b.data_internode_encryption, linkGeneration: b.link_generation, secret: b.internal_secret });
      for (const s of b.shards) {
        cfg.shardLocations.push({ shardUid: s.uid, bdbUid: b.uid, nodeUid: s.node_uid });
        if (s.node_uid === me) {
          cfg.localShards.push({ shardUid: s.uid, bdbUid: b.uid, socketPath: shardSocket(this.m.cfg.dataDir, s.uid) });
          if (s.role === 'slave' && s.master_uid !== undefined)
            cfg.tunnels.push({ replicaShardUid: s.uid, bdbUid: b.uid, masterShardUid: s.master_uid });
        }
      }
      if (endpointNodes(b, allNodes).includes(me)) {
        cfg.endpoints.push({
          bdbUid: b.uid,
          port: b.port,
          password: b.authentication_redis_pass || undefined,
          ...(b.shard_key_regex ? { shardKeyRegex: b.shard_key_regex.map((r) => r.regex) } : {}),
          ...endpointTls(b),
          holdMs: Math.min(MAX_HOLD_MS, this.m.failoverTimeoutSeconds() * 1000 + FAILOVER_MARGIN_MS),
          shards: b.shards.filter((s) => s.role === 'master').map((s) => ({ shardUid: s.uid, slots: rangesOf(s) })),
        });
      }
    }
    this.m.dataplane.setConfig(cfg);

    // Report.
    const endpointState = new Map(this.m.dataplane.endpoints.map((e) => [e.bdbUid, e]));
    const diskTrouble: DiskTrouble[] = [];
    for (const b of all) {
      const gone = isGone(b);
      const mine = gone ? [] : b.shards.filter((s) => s.node_uid === me);
      const shards: ObservedRecord['shards'] = [];
      let converged = true;
      for (const s of mine) {
        const p = this.shards.get(s.uid);
        const up = !!p?.running;
        if (!up) converged = false;
        if (s.role === 'slave' && !p?.replicaOf) converged = false;
        // One INFO for the replica's sync and the shard's write health; busy or down: judged at the next pass.
        const info = up ? await p!.command(['INFO', 'replication', 'persistence', 'memory'], 1000).catch(() => '') : '';
        const sync = up && s.role === 'slave' ? replicaSync(info) : {};
        const health = up ? shardWriteHealth(p!, info) : undefined;
        if (isDiskRefusal(health?.refused?.reason) || health?.aofRewriteFailed)
          diskTrouble.push({ uid: s.uid, bdb_uid: b.uid, role: s.role, reason: health?.refused?.message ?? 'the last AOF rewrite failed' });
        shards.push({
          uid: s.uid,
          role: s.role,
          status: up ? 'active' : 'down',
          pid: p?.pid,
          ...sync,
          ...(!up && p?.lastError ? { error: p.lastError.slice(0, 500) } : {}),
          ...(s.role === 'master' && this.handover.has(s.uid) ? { handover: this.handover.get(s.uid)!.why } : {}),
          ...(health?.refused ? { write_refused: health.refused } : {}),
          ...(health?.aofRewriteFailed ? { aof_rewrite_failed: true } : {}),
        });
      }
      if (gone && [...this.shards.values()].some((p) => p.spec.bdbUid === b.uid)) converged = false;
      const wantsEndpoint = !gone && endpointNodes(b, allNodes).includes(me);
      const ep = endpointState.get(b.uid);
      let endpoint: ObservedRecord['endpoint'];
      if (wantsEndpoint) {
        endpoint = { port: b.port, listening: !!ep?.listening && ep.port === b.port, ...(ep?.error ? { error: ep.error } : {}) };
        if (!endpoint.listening) converged = false;
        if (ep?.error) errors.set(b.uid, { error: ep.error, fatal: /already in use/.test(ep.error) });
      } else if (ep) converged = false; // still listening for a database that moved or went
      const err = errors.get(b.uid);
      const obs: ObservedRecord = {
        node_uid: me,
        generation: b.generation,
        incarnation: this.m.incarnation,
        converged: converged && !err,
        ...(err ? { error: err.error, fatal: err.fatal } : {}),
        ...(endpoint ? { endpoint } : {}),
        shards,
        time: '',
      };
      const key = JSON.stringify(obs);
      if (this.lastObserved.get(b.uid) === key) continue;
      obs.time = new Date().toISOString();
      await this.store.observed.put(b.uid, me, obs);
      this.lastObserved.set(b.uid, key);
    }
    for (const uid of [...this.lastObserved.keys()]) if (!this.bdbs.items.has(String(uid))) this.lastObserved.delete(uid);
    await this.diskAlerts
      .evaluate(diskTrouble)
      .catch((err) => this.log.warn({ err: (err as Error).message }, 'cannot write the disk alerts; trying again at the next pass'));
  }

  /** Memory used by each running shard of this node (INFO memory), for the metrics; a shard that does not answer is left out. */
  async shardMemory(timeoutMs = 1000): Promise<ShardMemory[]> {
    const out: ShardMemory[] = [];
    await Promise.all(
      [...this.shards.values()]
        .filter((p) => p.running)
        .map(async (p) => {
          const info = await p.command(['INFO', 'memory'], timeoutMs).catch(() => ''); // down or busy: no figure this time
          const used = /used_memory:(\d+)/.exec(info)?.[1];
          if (used !== undefined)
            out.push({
              shardUid: p.spec.shardUid,
              bdbUid: p.spec.bdbUid,
              role: p.replicaOf ? 'slave' : 'master',
              used_memory: Number(used),
            });
        }),
    );
    return out.sort((a, b) => a.shardUid - b.shardUid);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.refresh);
    await Promise.all([...this.shards.values()].map((s) => s.stop()));
  }
}

/** tls_mode and client certificates as the data plane takes them (client certificates only when enforced and listed). */
function endpointTls(b: BdbRecord): { tls?: { clientCerts?: string[] } } {
  if (b.tls_mode !== 'enabled') return {};
  const certs = (b.authentication_ssl_client_certs ?? []).map((c) => c.client_cert);
  const enforced = b.enforce_client_authentication !== 'disabled' && certs.length > 0;
  return { tls: enforced ? { clientCerts: certs } : {} };
}
