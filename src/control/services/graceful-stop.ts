// A graceful stop (SIGTERM, SIGINT): before anything of the node stops, every
// master shard it holds is handed over to its replica on another node by the
// planned failover (the `failover` shard operation: writes paused, the replica
// caught up, roles switched, no acknowledged write lost, no command failed),
// so that endpoints on the other nodes never see a slot without a master. The
// node only requests and waits: the cluster master's ShardOpsController
// writes each promotion, as for `POST /v1/shards/actions/failover`.
//
// The cluster master role goes first, when this node holds it: the
// controllers that carry the failovers out must outlive this node, and one
// role change by compare-and-swap (RE's change_master) leaves no election gap,
// where running them here and resigning at the end would leave the role to an
// election while the node is going.
//
// The node marks its liveness record `stopping` first, so that nodes stopping
// at the same time (a whole cluster shut down) hand nothing to each other: a
// master whose replicas are all on stopping, down or absent nodes is not
// waited for (logged), nor is one of a database without replication.
// Everything is bounded by a deadline and can be cut short (a second signal);
// the node then stops as it always did.
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ActionRecord, BdbRecord, LiveRecord, NodeRecord, ShardPlacement } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { StoreHost } from '../../coord/store.js';
import { OperatorError } from '../../util/errors.js';
import { HEARTBEAT_FRESH_MS, nodeIsUp, type NodeStateHost } from '../model/node-state.js';
import { masterRoleTarget, placeableNodes } from '../model/maintenance.js';
import { isGone } from '../model/shard-plans.js';
import type { OpLog } from '../model/shard-protocol.js';
import { etcdRestartPending } from '../model/ca-rollover.js';

/** How often the state is looked at again while handing over. */
const POLL_MS = 200;
/** After marking itself stopping, how long the node lets the others' marks arrive before it picks targets (a whole cluster stopping at once). */
const SETTLE_MS = 300;
/** A replica that is not in sync (a failover refused with replica_not_in_sync) is waited for this long, then given up on. */
const NOT_IN_SYNC_MS = 3000;

export interface GracefulStopHost extends NodeStateHost, StoreHost {
  readonly uid: number;
  readonly live: PrefixCache<LiveRecord>;
  readonly nodes: PrefixCache<NodeRecord>;
  isMaster(): boolean;
  /** Hand the cluster master role to node `uid` (RE's change_master). */
  changeMaster(uid: number): Promise<void>;
  /** Queue a planned failover of these master shards of one database (the REST request's validation included). */
  requestFailover(log: OpLog, uids: number[]): Promise<ActionRecord>;
}

export interface HandOverResult {
  /** Master shards handed over (now replicas on this node). */
  handedOver: number[];
  /** Master shards left here, each with why. */
  left: { shard: number; bdb: number; why: string }[];
  /** Whether this node gave the cluster master role away. */
  masterRoleTo?: number;
  ms: number;
  /** How long the node waited at the end for another etcd member to be back (ms): see waitForOtherMembers. */
  waitedForStore?: number;
  /** Stopped by the deadline or a second signal rather than by having nothing left to hand over. */
  cutShort?: 'deadline' | 'aborted';
}

/** The masters node `uid` holds, with their databases. */
export function mastersOn(bdbs: readonly BdbRecord[], uid: number): { b: BdbRecord; s: ShardPlacement }[] {
  return bdbs
    .filter((b) => !isGone(b))
    .flatMap((b) => b.shards.filter((s) => s.role === 'master' && s.node_uid === uid).map((s) => ({ b, s })));
}

/**
 * Node `uid`'s masters split: per database, those whose replica is on a node
 * that can take them (`targets`: up and not stopping), to ask a failover of;
 * and the others, each with why it is not waited for.
 */
export function planHandOver(
  bdbs: readonly BdbRecord[],
  uid: number,
  targets: readonly number[],
): { pending: Map<number, number[]>; left: { shard: number; bdb: number; why: string }[] } {
  const pending = new Map<number, number[]>();
  const left: { shard: number; bdb: number; why: string }[] = [];
  for (const { b, s } of mastersOn(bdbs, uid)) {
    const replicas = b.shards.filter((r) => r.master_uid === s.uid);
    if (!b.replication || !replicas.length)
      left.push({ shard: s.uid, bdb: b.uid, why: `database ${b.uid} is ${b.replication ? 'missing its replica' : 'not replicated'}` });
    else if (!replicas.some((r) => targets.includes(r.node_uid)))
      left.push({
        shard: s.uid,
        bdb: b.uid,
        why: `its replica (shard ${replicas.map((r) => `${r.uid} on node ${r.node_uid}`).join(', ')}) is on no node that stays up`,
      });
    else pending.set(b.uid, [...(pending.get(b.uid) ?? []), s.uid]);
  }
  return { pending, left };
}

/** Hand every master of node `h.uid` over to another node, within `deadlineMs` or until `signal` aborts. */
export async function handOverMasters(
  h: GracefulStopHost,
  log: Logger,
  o: { deadlineMs: number; signal?: AbortSignal },
): Promise<HandOverResult> {
  const t0 = Date.now();
  const deadline = t0 + o.deadlineMs;
  const res: HandOverResult = { handedOver: [], left: [], ms: 0 };
  const mine = (bdbs: BdbRecord[]) => mastersOn(bdbs, h.uid);
  const held0 = mine(await h.store.bdbs.list());
  const initial = new Set(held0.map((x) => x.s.uid));
  await h.store.nodes
    .markStopping(h.uid, new Date().toISOString())
    .catch((e) => log.warn({ err: (e as Error).message }, 'graceful stop: cannot mark this node stopping; the others may hand it shards'));
  log.info({ masters: [...initial], deadline_ms: o.deadlineMs }, "graceful stop: handing this node's masters over before its shards stop");
  await sleep(SETTLE_MS);

  const inFlight = new Map<number, string>(); // bdb uid -> action uid
  const notInSyncSince = new Map<number, number>();
  const given = new Map<number, { bdb: number; why: string }>(); // shard -> why it is not waited for
  const giveUp = (shard: number, bdb: number, why: string) => {
    if (given.has(shard)) return;
    given.set(shard, { bdb, why });
    log.warn({ shard, bdb, why }, 'graceful stop: not waiting for this master');
  };
  for (;;) {
    if (o.signal?.aborted) {
      res.cutShort = 'aborted';
      break;
    }
    if (Date.now() >= deadline) {
      res.cutShort = 'deadline';
      break;
    }
    // Who can take a master: up, not stopping, not this node.
    const targets = h.nodes
      .values()
      .filter((n) => n.addr && n.uid !== h.uid && nodeIsUp(h, n.uid) && !h.live.items.get(String(n.uid))?.stopping)
      .map((n) => n.uid)
      .sort((a, b) => a - b);
    if (h.isMaster() && targets.length) {
      const placeable = new Set(placeableNodes(targets, await h.store.maintenanceMode.list()));
      const to = masterRoleTarget(targets, placeable, (u) => h.nodes.items.get(String(u))?.software_version ?? '0.1.0')!;
      try {
        await h.changeMaster(to);
        res.masterRoleTo = to;
        log.warn({ to, ms: Date.now() - t0 }, 'graceful stop: cluster master role handed over');
        // Until this node's view has the new holder, it would hand the role over again.
        for (let i = 0; i < 20 && h.isMaster() && !o.signal?.aborted; i++) await sleep(100);
      } catch (err) {
        log.warn({ to, err: (err as Error).message }, 'graceful stop: cannot hand the cluster master role over; trying again');
      }
      await sleep(POLL_MS);
      continue;
    }
    const bdbs = await h.store.bdbs.list();
    const held = mine(bdbs);
    for (const uid of initial) if (!held.some((x) => x.s.uid === uid) && !res.handedOver.includes(uid)) res.handedOver.push(uid);
    const plan = planHandOver(bdbs, h.uid, targets);
    for (const l of plan.left) giveUp(l.shard, l.bdb, l.why);
    const pending = new Map<number, number[]>(); // bdb -> its masters here that a target can take, not given up on
    for (const [bdb, shards] of plan.pending) {
      const left = shards.filter((u) => !given.has(u));
      if (left.length) pending.set(bdb, left);
    }
    if (!pending.size && !inFlight.size) break;
    for (const [bdb, action] of inFlight) {
      const a = await h.store.actions.get(action);
      if (a && a.status !== 'completed' && a.status !== 'failed') continue;
      inFlight.delete(bdb);
      if (a?.status === 'failed') log.warn({ bdb, action, err: a.error }, 'graceful stop: a failover failed; asking again');
      else log.info({ bdb, action, ms: Date.now() - t0 }, 'graceful stop: failover done');
    }
    for (const [bdb, shards] of pending) {
      if (inFlight.has(bdb)) continue;
      try {
        const a = await h.requestFailover(log, shards);
        inFlight.set(bdb, a.action_uid);
        notInSyncSince.delete(bdb);
      } catch (err) {
        const code = err instanceof OperatorError ? err.code : undefined;
        if (code === 'db_busy') continue; // another operation runs on it: asked again once it is done
        if (code === 'replica_not_in_sync') {
          const since = notInSyncSince.get(bdb) ?? Date.now();
          notInSyncSince.set(bdb, since);
          if (Date.now() - since < NOT_IN_SYNC_MS) continue;
        }
        for (const s of shards) giveUp(s, bdb, (err as Error).message);
      }
    }
    await sleep(POLL_MS);
  }
  let last: BdbRecord[] | undefined;
  try {
    last = await h.store.bdbs.list();
  } catch (err) {
    // Only the closing report is at stake: without the store, what was not seen handed over is reported left.
    log.warn({ err: (err as Error).message }, 'graceful stop: cannot read the databases for the closing report');
  }
  if (last) {
    const still = mine(last);
    for (const uid of initial) if (!still.some((x) => x.s.uid === uid) && !res.handedOver.includes(uid)) res.handedOver.push(uid);
    res.left = still.map(({ b, s }) => ({ shard: s.uid, bdb: b.uid, why: given.get(s.uid)?.why ?? res.cutShort ?? 'not handed over' }));
  } else {
    res.left = held0
      .filter(({ s }) => !res.handedOver.includes(s.uid))
      .map(({ b, s }) => ({ shard: s.uid, bdb: b.uid, why: 'the store did not answer' }));
  }
  if (!res.cutShort) res.waitedForStore = await waitForOtherMembers(h, log, deadline, o.signal);
  res.ms = Date.now() - t0;
  return res;
}

/**
 * The last thing before this node's etcd member stops: the others must keep
 * the store's quorum without it. While another member is away for a moment (a
 * CA rollover restarts them one at a time; a heartbeat late), this node waits,
 * up to the deadline: two members away at once cost a 3- or 4-member store its
 * quorum, and every node's writes with it. A member that stays away (its node
 * down) or is going too (its node stopping) is not waited for. The rollover,
 * in turn, starts no restart while a node is marked stopping
 * (model/ca-rollover.ts). Returns how long it waited (ms).
 */
async function waitForOtherMembers(h: GracefulStopHost, log: Logger, deadline: number, signal?: AbortSignal): Promise<number> {
  const t0 = Date.now();
  let said = '';
  while (Date.now() < deadline && !signal?.aborted) {
    let why: string | undefined;
    try {
      const rollovers = await h.store.caRollovers.list();
      const others = h.nodes.values().filter((n) => n.addr && n.uid !== h.uid && nodeIsUp(h, n.uid));
      const restarting = others.find((n) => rollovers.some((r) => etcdRestartPending(r, n)));
      // A node stopping too (a whole cluster shut down) is going, not coming back: no use waiting for it.
      const late = others.find((n) => !h.live.items.get(String(n.uid))?.stopping && (h.silentMs(n.uid) ?? 0) >= HEARTBEAT_FRESH_MS);
      why = restarting
        ? `node ${restarting.uid}'s etcd member is restarting (CA rollover)`
        : late && `node ${late.uid}'s heartbeat is late (its etcd member may be away)`;
    } catch (err) {
      // The store does not answer: nothing to protect by waiting.
      log.warn({ err: (err as Error).message }, 'graceful stop: cannot read the store to check the other etcd members; stopping');
      break;
    }
    if (!why) break;
    if (why !== said) log.warn({ why }, 'graceful stop: waiting before stopping this etcd member, so that the store keeps its quorum');
    said = why;
    await sleep(POLL_MS);
  }
  return Date.now() - t0;
}
