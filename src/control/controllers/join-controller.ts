// A node's join, as an action (`join_node`, GET /v1/actions/{uid}):
//   1. the member the joining node asks admits it (control/bootstrap/admission.ts):
//      adds its store member as an etcd learner, signs its certificates, and
//      writes the join record and the action in one transaction;
//   2. the joining node starts its store member and asks that member to
//      promote it (`/v1/cluster/join_node/<uid>/promote`), then runs;
//   3. the JoinController on the cluster master finishes the action: completed
//      once the store member is a voter and the node holds its liveness lease;
//      failed at the join's deadline (or at once, when its store member is
//      gone), after removing the store member and any record of the node.
// Nothing is kept outside the store, so a master elected in the middle, or
// the death of the admitting member, leaves no learner behind: before, the
// admitting member's in-memory watchdog was the only one to undo a join, and
// a learner it left blocked every later join (issue 19).
// A join record without an action (written by a 0.1.0 member, or while the
// master is one) is the admitting member's own; the controller undoes it only
// long after that member's watchdog would have.
import type { Logger } from 'pino';
import { ConstantBackoff, handleWhen, retry } from 'cockatiel';
import { isFinished, type JoinRecord } from '../../coord/schema.js';
import type { ClusterStore } from '../../coord/store.js';
import type { PrefixCache } from '../../coord/watch.js';
import { MasterLoop, type MasterLoopHost } from './master-loop.js';

export const JOIN_ACTION = 'join_node';
/** How long a join may take, from admission to the node running (the 0.1.0 watchdog's bound). */
export const DEFAULT_JOIN_TIMEOUT_MS = 60_000;
/** A join record with no action belongs to its admitting member's watchdog (60 s in 0.1.0); after this long, that member is gone. */
export const LEGACY_JOIN_ABANDONED_MS = 2 * DEFAULT_JOIN_TIMEOUT_MS;

/** A join followed by an action whose store member is gone is undone at once, but not in its first seconds. */
const EARLY_UNDO_AFTER_MS = 5000;

/** What the controller needs of its node's membership (ClusterMember provides it). */
export interface JoinHost extends MasterLoopHost {
  readonly store: ClusterStore;
  /** Who holds a liveness lease, by node uid. */
  readonly live: { readonly items: ReadonlyMap<string, unknown> };
}

/**
 * etcd refuses membership changes until every member has been connected for a
 * few seconds (strict reconfig check); right after a join that is expected.
 * Retried every 500 ms for 15 s, and only while etcd says "unhealthy cluster".
 */
const whileUnhealthy = retry(
  handleWhen((e) => /unhealthy cluster/i.test(e.message)),
  { maxAttempts: 30, backoff: new ConstantBackoff(500) },
);
export function retryWhileUnhealthy<T>(fn: () => Promise<T>): Promise<T> {
  return whileUnhealthy.execute(fn);
}

/**
 * Undo a join: remove its store member (learner or voter: a member that never
 * runs would count against the quorum), the node's record, then fail its
 * action with `reason` and drop the join record. Throws, leaving the join
 * record, when the store member cannot be removed: an orphan learner blocks
 * every later join (etcd admits one learner at a time), so the join stays
 * "in progress" until it is really undone.
 */
export async function undoJoin(store: ClusterStore, join: JoinRecord, reason: string, log: Logger): Promise<void> {
  // The node may have published its full record, or not yet: read only what every node record has.
  const node = await store.nodes.getStub(join.uid);
  const memberId = join.etcd_member_id || node?.etcd_member_id;
  if (memberId) {
    try {
      await retryWhileUnhealthy(() => store.members.remove(memberId));
    } catch (e) {
      if (!/member not found/i.test((e as Error).message)) throw e;
    }
  }
  await store.nodes.delete(join.uid);
  if (join.action_uid) await store.actions.update(join.action_uid, { status: 'failed', error: reason, description: reason });
  await store.joins.delete(join.uid);
  log.warn({ uid: join.uid, member: memberId, action: join.action_uid, reason }, 'join undone; the cluster is as it was');
}

/** The join's deadline (ms since the epoch): its own, or the default from its start. */
export function joinDeadline(join: JoinRecord): number {
  if (join.deadline) return Date.parse(join.deadline);
  return Date.parse(join.started_time) + (join.action_uid ? DEFAULT_JOIN_TIMEOUT_MS : LEGACY_JOIN_ABANDONED_MS);
}

/** What the master does with one join now. */
export type JoinDecision =
  | { kind: 'wait'; step?: string }
  | { kind: 'complete'; text: string }
  | { kind: 'forget' } // the action finished already: only the record is left
  | { kind: 'undo'; reason: string };

/**
 * Decide, from the join record, its action's status, its store member (as etcd
 * lists it, or absent) and whether the node holds its liveness lease.
 */
export function decideJoin(
  join: JoinRecord,
  actionStatus: 'active' | 'finished' | 'missing' | 'none',
  member: { isLearner: boolean } | undefined,
  nodeLive: boolean,
  now: number,
): JoinDecision {
  const n = join.uid;
  if (actionStatus === 'finished') return { kind: 'forget' };
  if (member && !member.isLearner && nodeLive) return { kind: 'complete', text: `node ${n} (${join.addr}) joined the cluster` };
  const deadline = joinDeadline(join);
  if (now < deadline) {
    // Only a join followed by an action is undone early (a 0.1.0 member may still be adding the learner of its own),
    // and not in its first seconds: etcd's member list is this node's view, which may be a moment behind.
    if (!member && actionStatus === 'active' && now - Date.parse(join.started_time) >= EARLY_UNDO_AFTER_MS)
      return { kind: 'undo', reason: `the store member of node ${n} was removed; join abandoned` };
    if (member && !member.isLearner) return { kind: 'wait', step: `store member of node ${n} promoted; waiting for the node to come up` };
    return { kind: 'wait' };
  }
  const secs = Math.round((deadline - Date.parse(join.started_time)) / 1000);
  if (!member) return { kind: 'undo', reason: `node ${n} (${join.addr}) did not come up within ${secs} s, and its store member is gone` };
  if (member.isLearner)
    return {
      kind: 'undo',
      reason: `node ${n} (${join.addr}) did not come up within ${secs} s: its store member never caught up (the joining node stopped, or cannot reach the cluster); the learner was removed`,
    };
  return {
    kind: 'undo',
    reason: `node ${n} (${join.addr}) did not come up within ${secs} s after its store member was promoted; the member was removed`,
  };
}

export class JoinController {
  private readonly joins: PrefixCache<JoinRecord>;
  private readonly loop: MasterLoop;

  constructor(
    private readonly h: JoinHost,
    private readonly log: Logger,
    everyMs = 500,
  ) {
    this.joins = h.store.joins.cache();
    this.joins.on('malformed', (err: Error) => this.log.error({ err: err.message }, 'ignoring a malformed join record'));
    this.loop = new MasterLoop(h, everyMs, log, 'join bookkeeping', () => this.tick());
  }

  async start(): Promise<void> {
    await this.joins.start();
    this.joins.on('change', this.loop.kick);
    this.loop.start();
  }

  async close(): Promise<void> {
    this.loop.stop();
    await this.joins.stop();
  }

  /** Run a tick now (tests; the loop also runs on its timer and on changes of the join records). */
  kick(): void {
    this.loop.kick();
  }

  private async tick(): Promise<void> {
    const joins = this.joins.values();
    if (!joins.length) return;
    const store = this.h.store;
    const members = (await store.members.list()).members;
    for (const join of joins) {
      if (this.loop.isStopped || !this.h.isMaster()) return;
      const m = members.find((x) => String(x.ID) === join.etcd_member_id);
      const action = join.action_uid ? await store.actions.get(join.action_uid) : undefined;
      const status = !join.action_uid ? 'none' : !action ? 'missing' : isFinished(action) ? 'finished' : 'active';
      const d = decideJoin(join, status, m && { isLearner: !!m.isLearner }, this.h.live.items.has(String(join.uid)), Date.now());
      if (d.kind === 'wait') {
        if (d.step && action && !(action.steps ?? []).some((s) => s.endsWith(`% ${d.step}`)))
          await store.actions.update(action.action_uid, { status: 'active', progress: 50, description: d.step });
      } else if (d.kind === 'complete') {
        if (join.action_uid) await store.actions.update(join.action_uid, { status: 'completed', progress: 100, description: d.text });
        await store.joins.delete(join.uid);
        this.log.info({ uid: join.uid, action: join.action_uid }, d.text);
      } else if (d.kind === 'forget') {
        await store.joins.delete(join.uid);
      } else {
        // A failure is logged by MasterLoop; the next tick retries (the record stays until the member is gone).
        await undoJoin(this.h.store, join, d.reason, this.log);
      }
    }
  }
}
