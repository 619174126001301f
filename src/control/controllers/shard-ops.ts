// Operator shard operations (issue 8): a planned failover of a master shard
// to its replica, and the migration of a shard to another node. The REST API
// validates a request (`requestFailover`, `requestMigrate`) and writes an
// action and a shard-operation record; the ShardOpsController on the cluster
// master runs the operations one at a time, reporting each step in the action
// (`GET /v1/actions/{uid}`: status, progress, description) and in its log.
//
// Planned failover (switchover) of master M to its replica R, with no
// acknowledged write lost:
//   1. on M's node: CLIENT PAUSE WRITE (shard-rpc.ts); the offset M's writes
//      stopped at;
//   2. wait until R has processed that offset (unless `immediate`);
//   3. one compare-and-swap of the database record: R master of M's slots,
//      M a replica of R, M's other replicas replicas of R; generation + 1.
//      Endpoints on every node then route the slots to R, holding commands
//      until R answers as master;
//   4. once M is a replica (and the nodes have applied the new map), end the
//      pause; should M still be a master then, its writes are fenced
//      (-NOREPLICAS) until it is a replica. Writes that were held in the pause
//      fail (-READONLY): they were never acknowledged.
//
// Removal of node N (`tessera node N remove`, POST /v1/nodes/N/actions/remove):
// every shard on N is migrated as above, each to the live node with the
// fewest shards that holds no shard of the same slots (chosen when asked, so
// an impossible placement is refused before anything moves); then N's
// certificates are denied and its records and etcd member removed. When N is
// the cluster master it gives the role up after the migrations, and the next
// master finishes the removal.
//
// Migration of shard S to node N: a new replica T of S's master (of S itself
// when S is the master) is added on N and waited for until in sync; a master
// S then hands over to T by the switchover above; S is removed from the
// record and its node stops it and removes its files. Works for replicas and
// for masters of replicated and non-replicated databases.
import type { Logger } from 'pino';
import type { ActionRecord, BdbRecord, ShardOpRecord, ShardPlacement } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore, StoreHost } from '../../coord/store.js';
import { SHARD_PAUSE_RPC, SHARD_UNPAUSE_RPC } from '../model/shard-protocol.js';
import { removeNodeRecords } from './node-removal.js';
import { MasterLoop } from './master-loop.js';
import { bumped, isGone, planAddReplica, planEvacuation, planRemove, planSwitch, type Evacuation } from '../model/shard-plans.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long writes are paused at most (the pause is lifted as soon as the switch is done). */
const PAUSE_MS = 10_000;
/** How long a paused master waits for its replica to catch up before the switch is given up. */
const CATCHUP_MS = 3_000;
/** After the switch: how long to wait for the old master to be a replica and every node to apply the map before lifting the pause. */
const DEMOTE_MS = 6_000;
/** How long a new replica may take to sync. */
const SYNC_MS = 300_000;
/** How long every node may take to apply the final placement. */
const CONVERGE_MS = 60_000;

export {
  type ShardOpsHost,
  shardCall,
  requestFailover,
  requestMigrate,
  requestNodeRemoval,
} from './shard-op-requests.js';
import { type ShardOpsHost, family, familyMaster, isLive, replication, shardCall, slotText } from './shard-op-requests.js';

// The pure placement changes live in model/shard-plans.ts; re-exported for this module's callers.
export { planAddReplica, planEvacuation, planRemove, planSwitch, type Evacuation };

class Handover extends Error {}

export class ShardOpsController {
  private readonly ops: PrefixCache<ShardOpRecord>;
  private readonly store: ClusterStore;
  private readonly loop: MasterLoop;

  constructor(
    private readonly h: ShardOpsHost & StoreHost,
    private readonly log: Logger,
  ) {
    this.store = h.store;
    this.ops = this.store.shardOps.cache();
    this.ops.on('malformed', (err: Error) => this.log.error({ err: err.message }, 'ignoring a malformed shard operation record'));
    this.loop = new MasterLoop(h, 500, log, 'shard operation bookkeeping', () => this.tick());
  }

  async start(): Promise<void> {
    await this.ops.start();
    this.ops.on('change', this.loop.kick);
    this.loop.start();
  }

  async close(): Promise<void> {
    this.loop.stop();
    await this.ops.stop();
  }

  /** The oldest queued operation, run to its end (or to a hand-over). */
  private async tick(): Promise<void> {
    const next = this.ops.values().sort((a, b) => Number(a.action_uid) - Number(b.action_uid))[0];
    if (next) await this.run(next);
  }

  private guard(): void {
    if (this.loop.isStopped || !this.h.isMaster()) throw new Handover('this node is no longer the cluster master');
  }

  /** Change the action; a new description is also appended to its steps. */
  private setAction(uid: string, patch: Partial<ActionRecord>): Promise<void> {
    return this.store.actions.update(uid, patch);
  }

  private async run(op: ShardOpRecord): Promise<void> {
    const a = await this.store.actions.get(op.action_uid);
    if (a && a.status !== 'completed' && a.status !== 'failed') {
      const log = this.log.child({ action: op.action_uid, op: op.kind });
      log.info(
        { items: op.items, target: op.target_node_uid, immediate: op.immediate, resumed: a.status === 'active' },
        'shard operation starts',
      );
      const generations = new Map<number, number>();
      try {
        await this.setAction(op.action_uid, { status: 'active' });
        for (let i = 0; i < op.items.length; i++) {
          const step = (frac: number, text: string) => this.step(op, log, i, frac, text);
          const gen =
            op.kind === 'failover'
              ? await this.failoverItem(op, op.items[i], step, log)
              : await this.migrateItem(op, op.items[i], step, log);
          if (op.kind === 'remove_node')
            log.info({ shard: op.items[i].shard_uid, done: i + 1, of: op.items.length }, 'node removal: shard moved');
          generations.set(op.items[i].bdb_uid, Math.max(gen, generations.get(op.items[i].bdb_uid) ?? 0));
        }
        for (const [bdb, gen] of generations) {
          await this.step(op, log, op.items.length - 1, 0.97, `waiting for every node to apply generation ${gen} of database ${bdb}`);
          await this.waitActive(bdb, gen, log);
        }
        if (op.kind === 'remove_node') await this.removeNode(op, log);
        const done = op.kind === 'failover' ? 'failover done' : op.kind === 'migrate' ? 'migration done' : `node ${op.node_uid} removed`;
        await this.setAction(op.action_uid, { status: 'completed', progress: 100, description: done });
        log.info('shard operation completed');
      } catch (err) {
        if (err instanceof Handover) {
          log.warn({ err: err.message }, 'shard operation left for the next cluster master');
          return;
        }
        log.error({ err: (err as Error).message }, 'shard operation failed');
        await this.setAction(op.action_uid, { status: 'failed', error: (err as Error).message });
      }
    }
    await this.store.shardOps.delete(op.action_uid);
  }

  /** The end of a node removal: the node holds no shard now; it leaves the cluster. */
  private async removeNode(op: ShardOpRecord, log: Logger): Promise<void> {
    const uid = op.node_uid;
    if (uid === undefined) throw new Error('malformed node removal: no node uid');
    const last = Math.max(0, op.items.length - 1);
    const bdbs = (await this.store.bdbs.list()).filter((b) => !isGone(b) && b.shards.some((s) => s.node_uid === uid));
    if (bdbs.length)
      throw new Error(
        `node ${uid} holds shards of database(s) ${bdbs.map((b) => b.uid).join(', ')} again (placed while it was being emptied); remove it again`,
      );
    const n = this.h.nodes.items.get(String(uid));
    if (!n?.addr) return; // removed already (a master that resumed this)
    if (uid === this.h.uid) {
      await this.step(
        op,
        log,
        last,
        0.98,
        `node ${uid} holds no shard; it is the cluster master, so it hands the role over and the next master removes it`,
      );
      await this.h.resignMaster(`node ${uid} is being removed`);
      throw new Handover(`node ${uid} resigned as master to be removed`);
    }
    await this.step(op, log, last, 0.98, `node ${uid} holds no shard; denying its certificates and removing it from the cluster`);
    await removeNodeRecords(this.store, n, log);
  }

  private async step(op: ShardOpRecord, log: Logger, i: number, frac: number, text: string): Promise<void> {
    this.guard();
    const progress = Math.min(99, Math.round(((i + frac) / op.items.length) * 100));
    log.info({ progress }, text);
    await this.setAction(op.action_uid, { progress, description: text });
  }

  private async bdb(uid: number): Promise<BdbRecord> {
    const b = await this.store.bdbs.get(uid);
    if (!b || isGone(b)) throw new Error(`database ${uid} no longer exists`);
    return b;
  }

  private async poll<T>(fn: () => Promise<T | undefined>, timeoutMs: number, everyMs: number): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.guard();
      const v = await fn().catch(() => undefined); // a failed probe is a 'not yet': polled again until the deadline
      if (v !== undefined) return v;
      if (Date.now() >= deadline) return undefined;
      await sleep(everyMs);
    }
  }

  private async waitActive(bdbUid: number, gen: number, log: Logger): Promise<void> {
    const ok = await this.poll(
      async () => {
        const b = await this.store.bdbs.get(bdbUid);
        return !b || (b.status === 'active' && b.generation >= gen) || b.generation > gen ? true : undefined;
      },
      CONVERGE_MS,
      100,
    );
    if (!ok)
      log.warn(
        { bdb: bdbUid, generation: gen },
        'not every node has applied the new placement yet; it is in the record and they converge on it',
      );
  }

  private change(cur: BdbRecord, shards: ShardPlacement[]): BdbRecord {
    return bumped(cur, shards);
  }

  /** A failover item: the master's slots go to its best replica. Returns the database generation it produced. */
  private async failoverItem(
    op: ShardOpRecord,
    it: ShardOpRecord['items'][number],
    step: (f: number, t: string) => Promise<void>,
    log: Logger,
  ): Promise<number> {
    const b = await this.bdb(it.bdb_uid);
    const m = b.shards.find((s) => s.uid === it.shard_uid);
    if (!m) throw new Error(`shard ${it.shard_uid} no longer exists`);
    if (m.role !== 'master') {
      // Resumed after the switch, or a node failover got there first: the slots are served by the replica already.
      await step(0.9, `shard ${m.uid} is already a replica of shard ${m.master_uid}`);
      if (isLive(this.h, m.node_uid))
        await shardCall(this.h, log, m.node_uid, SHARD_UNPAUSE_RPC, { shard_uid: m.uid }).catch((e) =>
          log.warn({ err: (e as Error).message }, `shard ${m.uid}: unpause failed; its pause ends by itself`),
        );
      return b.generation;
    }
    // A named replica (maintenance mode's restore) or the best live one.
    return this.switchover(b.uid, m.uid, it.to_shard_uid, !!op.immediate, step, 0, 1, log);
  }

  /**
   * Planned switchover of master `masterUid` to `toUid` (or its best live
   * replica), reported between fractions f0 and f1 of the item. Returns the
   * generation of the record that made the switch.
   */
  private async switchover(
    bdbUid: number,
    masterUid: number,
    toUid: number | undefined,
    immediate: boolean,
    step: (f: number, t: string) => Promise<void>,
    f0: number,
    f1: number,
    log: Logger,
  ): Promise<number> {
    const at = (x: number) => f0 + (f1 - f0) * x;
    const b = await this.bdb(bdbUid);
    const m = b.shards.find((s) => s.uid === masterUid);
    if (m?.role !== 'master') throw new Error(`shard ${masterUid} is no longer a master`);
    if (!isLive(this.h, m.node_uid)) throw new Error(`shard ${m.uid} is on node ${m.node_uid}, which is down`);
    const replicas = b.shards.filter(
      (s) => s.role === 'slave' && s.master_uid === m.uid && (toUid === undefined || s.uid === toUid) && isLive(this.h, s.node_uid),
    );
    if (!replicas.length)
      throw new Error(
        toUid === undefined
          ? `shard ${m.uid} has no replica on a live node`
          : `shard ${toUid} is not a replica of shard ${m.uid} on a live node`,
      );
    // The replica to promote: in sync (link up), the furthest along.
    // A replica that cannot be asked ranks last (undefined), it is not a reason to give up.
    const states = await Promise.all(replicas.map((r) => replication(this.h, log, r).catch(() => undefined)));
    const ranked = replicas
      .map((r, i) => ({ r, info: states[i] }))
      .filter((x) => immediate || (x.info?.role === 'slave' && x.info.master_link_status === 'up'))
      .sort((x, y) => (y.info?.slave_repl_offset ?? -1) - (x.info?.slave_repl_offset ?? -1));
    if (!ranked.length)
      throw new Error(
        `no replica of shard ${m.uid} is in sync (${replicas.map((r, i) => `shard ${r.uid}: ${states[i] ? `link ${states[i]!.master_link_status ?? states[i]!.role}` : 'unreachable'}`).join('; ')}); nothing was switched`,
      );
    const r = ranked[0].r;

    await step(
      at(0.1),
      `shard ${m.uid}: pausing writes on node ${m.node_uid} to hand slots ${slotText(m)} to shard ${r.uid} on node ${r.node_uid}`,
    );
    const { offset } = await shardCall<{ offset: number }>(this.h, log, m.node_uid, SHARD_PAUSE_RPC, { shard_uid: m.uid, ms: PAUSE_MS });
    let generation = b.generation;
    let switched = false;
    try {
      if (immediate) {
        await step(
          at(0.3),
          `shard ${m.uid}: writes paused at offset ${offset}; switching at once (immediate), without waiting for shard ${r.uid}`,
        );
      } else {
        await step(at(0.3), `shard ${m.uid}: writes paused at offset ${offset}; waiting for shard ${r.uid} to reach it`);
        let last: number | undefined;
        const reached = await this.poll(
          async () => {
            last = (await replication(this.h, log, r)).slave_repl_offset;
            return last !== undefined && last >= offset ? last : undefined;
          },
          CATCHUP_MS,
          10,
        );
        if (reached === undefined)
          throw new Error(
            `shard ${r.uid} did not catch up with shard ${m.uid} within ${CATCHUP_MS} ms (at offset ${last ?? 'unknown'} of ${offset}); nothing was switched`,
          );
        await step(at(0.5), `shard ${r.uid} holds every write of shard ${m.uid} (offset ${reached} >= ${offset}); switching roles`);
      }
      this.guard();
      const next = await this.store.bdbs.update(b.uid, (cur) => {
        const shards = planSwitch(cur.shards, m.uid, r.uid);
        return shards && this.change(cur, shards);
      });
      const nr = next?.shards.find((s) => s.uid === r.uid);
      const nm = next?.shards.find((s) => s.uid === m.uid);
      if (!next || nr?.role !== 'master' || nm?.master_uid !== r.uid)
        throw new Error(`the placement of shard ${m.uid} changed during the failover (a node failover?); nothing was switched`);
      generation = next.generation;
      switched = true;
      log.warn(
        { bdb: b.uid, master: r.uid, node: r.node_uid, replica: m.uid, slots: slotText(m), generation, offset },
        'planned failover: roles switched',
      );
      await step(
        at(0.7),
        `shard ${r.uid} is the master of slots ${slotText(m)} (generation ${generation}); waiting for shard ${m.uid} to become its replica`,
      );
      const demoted = await this.poll(
        async () => {
          const [info, cur] = await Promise.all([replication(this.h, log, m), this.store.bdbs.get(b.uid)]);
          return info.role === 'slave' && (!cur || cur.generation > generation || cur.status === 'active') ? true : undefined;
        },
        DEMOTE_MS,
        20,
      );
      if (!demoted)
        log.warn(
          { shard: m.uid },
          'the old master is not a replica yet (or not every node has the new map); the pause ends with its writes fenced until it is',
        );
    } finally {
      // Once switched, a master that is not a replica yet is fenced rather than resumed.
      await shardCall(this.h, log, m.node_uid, SHARD_UNPAUSE_RPC, { shard_uid: m.uid, fence: switched }).catch((err) =>
        log.warn(
          { shard: m.uid, err: (err as Error).message },
          'cannot end the pause; the node ends it before it runs out, fenced if the switch was made',
        ),
      );
    }
    await step(at(1), `shard ${m.uid} is a replica of shard ${r.uid}; writes resumed`);
    return generation;
  }

  /** A migration item. Returns the database generation it produced. */
  private async migrateItem(
    op: ShardOpRecord,
    it: ShardOpRecord['items'][number],
    step: (f: number, t: string) => Promise<void>,
    log: Logger,
  ): Promise<number> {
    const target = it.target_node_uid ?? op.target_node_uid;
    const tUid = it.new_shard_uid;
    if (target === undefined || tUid === undefined) throw new Error('malformed migration: no target node or new shard uid');
    let b = await this.bdb(it.bdb_uid);
    const s = b.shards.find((x) => x.uid === it.shard_uid);
    const existing = b.shards.find((x) => x.uid === tUid);
    if (!s) {
      if (existing) return b.generation; // resumed after the old shard was removed: done
      throw new Error(`shard ${it.shard_uid} no longer exists`);
    }
    if (s.node_uid === target) throw new Error(`shard ${s.uid} is already on node ${target}`);
    if (!isLive(this.h, target)) throw new Error(`node ${target} is down`);
    const fm = familyMaster(b, s);
    if (!fm) throw new Error(`shard ${s.uid} is a replica of shard ${s.master_uid}, which is not placed`);

    if (!existing) {
      const related = family(b, fm).find((x) => x.node_uid === target && x.uid !== s.uid);
      if (related)
        throw new Error(
          `node ${target} now holds shard ${related.uid} of slots ${slotText(fm)}; a master and its replica are never on one node`,
        );
      await step(
        0.05,
        `shard ${s.uid} (${s.role} of slots ${slotText(fm)}, node ${s.node_uid}): adding shard ${tUid} on node ${target}, a replica of shard ${fm.uid}`,
      );
      const next = await this.store.bdbs.update(b.uid, (cur) => {
        const shards = planAddReplica(cur.shards, s.uid, tUid, target);
        return shards && this.change(cur, shards);
      });
      if (!next?.shards.some((x) => x.uid === tUid))
        throw new Error(`the placement of shard ${s.uid} changed before the new replica could be added (a node failover?)`);
      b = next;
      log.info(
        { bdb: b.uid, shard: s.uid, new_shard: tUid, target, master: fm.uid, generation: b.generation },
        'migration: new replica placed',
      );
    }

    await step(0.15, `shard ${tUid} on node ${target}: syncing from shard ${fm.uid}`);
    const synced = await this.waitInSync(b.uid, tUid, fm.uid, step, log);
    if (!synced.ok) {
      await this.store.bdbs
        .update(b.uid, (cur) =>
          cur.shards.some((x) => x.uid === tUid)
            ? this.change(
                cur,
                cur.shards.filter((x) => x.uid !== tUid),
              )
            : undefined,
        )
        .catch((e) =>
          log.warn(
            { err: (e as Error).message },
            `shard ${tUid}: could not be taken out of the record after the failed sync; the migration is reported failed anyway`,
          ),
        );
      throw new Error(
        `shard ${tUid} on node ${target} did not get in sync with shard ${fm.uid}: ${synced.why}; the migration of shard ${s.uid} was undone`,
      );
    }
    await step(0.5, `shard ${tUid} on node ${target} is in sync with shard ${fm.uid} (offset ${synced.offset})`);

    b = await this.bdb(b.uid);
    const cs = b.shards.find((x) => x.uid === s.uid);
    if (cs?.role === 'master') await this.switchover(b.uid, s.uid, tUid, false, step, 0.5, 0.85, log);

    await step(0.88, `removing shard ${s.uid} from node ${s.node_uid}`);
    const next = await this.store.bdbs.update(b.uid, (cur) => {
      const shards = planRemove(cur.shards, s.uid, tUid);
      return shards && this.change(cur, shards);
    });
    if (!next || next.shards.some((x) => x.uid === s.uid))
      throw new Error(`shard ${s.uid} could not be removed: the placement changed (it is a master again?)`);
    log.info(
      { bdb: b.uid, removed: s.uid, from: s.node_uid, now: tUid, target, generation: next.generation },
      'migration: old shard removed',
    );
    await step(0.95, `shard ${s.uid} removed from node ${s.node_uid}; shard ${tUid} on node ${target} serves in its place`);
    return next.generation;
  }

  /** Wait until a new replica is linked, fully synced and has caught up with its master's offset of after its sync. */
  private async waitInSync(
    bdbUid: number,
    tUid: number,
    masterUid: number,
    step: (f: number, t: string) => Promise<void>,
    log: Logger,
  ): Promise<{ ok: true; offset: number } | { ok: false; why: string }> {
    const deadline = Date.now() + SYNC_MS;
    let goal: number | undefined;
    let why = 'no answer yet';
    let reported = '';
    for (;;) {
      this.guard();
      const b = await this.bdb(bdbUid);
      const t = b.shards.find((x) => x.uid === tUid);
      const m = b.shards.find((x) => x.uid === masterUid);
      if (!t || !m || m.role !== 'master' || t.master_uid !== masterUid)
        return { ok: false, why: 'the placement changed (a node failover?)' };
      if (!isLive(this.h, t.node_uid)) return { ok: false, why: `node ${t.node_uid} is down` };
      try {
        const info = await replication(this.h, log, t);
        if (info.role !== 'slave') why = 'not a replica yet';
        else if (info.master_link_status !== 'up')
          why = info.master_sync_in_progress ? 'full sync in progress' : `link ${info.master_link_status}`;
        else {
          goal ??= (await replication(this.h, log, m)).master_repl_offset;
          const at = info.slave_repl_offset ?? 0;
          if (at >= goal) return { ok: true, offset: at };
          why = `at offset ${at} of ${goal}`;
        }
      } catch (err) {
        why = (err as Error).message;
      }
      if (why !== reported && /sync in progress|link/.test(why)) {
        reported = why;
        await step(0.2, `shard ${tUid}: ${why}`);
      }
      if (Date.now() > deadline) return { ok: false, why: `still ${why} after ${SYNC_MS / 1000} s` };
      await sleep(100);
    }
  }
}
