// When this node's write fence closes: the rule, pure (unit-tested in
// test/unit/fence-rule.test.ts). Liveness (liveness.ts) applies it.
//
// Safety: the others fail this node over only after deadAfterMs (at least the
// liveness TTL) without seeing a heartbeat, counted on their clocks from when
// they saw it; the fence counts from when the last landed heartbeat was SENT.
// So any fence up to `maxMs` (80% of the TTL) closes before anyone can commit
// this node's failover. Within that bound the fence is short (`baseMs`, about
// 2 s: fewer plain-acknowledged writes lost on a cut-off master) and reaches
// further only while this node can see that an etcd leader election, not a
// cut, is why its heartbeats are not landing: its own etcd member has no
// leader or just changed term, AND it hears a majority of the nodes over its
// control links. An isolated node hears nobody; in an asymmetric cut its
// requests leave but no reply comes back: either way it fences at `baseMs`.

export interface FenceTimes {
  /** The fence after the last landed heartbeat was sent, normally. */
  baseMs: number;
  /** The fence's safe bound (below the time others wait before failing this node over). */
  maxMs: number;
  /** An extension reaches at most this far ahead of now: once the evidence goes, the fence closes within it. */
  stepMs: number;
}

/** What this node sees while its heartbeats are not landing. */
export interface QuorumSense {
  /** Its local etcd member reports no leader, or a term that changed lately. */
  electionInProgress: boolean;
  /** Nodes it hears from (recent control-link replies), itself included. */
  heardNodes: number;
  /** The cluster's nodes, itself included. */
  clusterNodes: number;
}

/** The fence may reach past `baseMs` only during an election this node sees, heard by a strict majority. */
export function mayExtendFence(q: QuorumSense): boolean {
  return q.electionInProgress && q.clusterNodes > 0 && q.heardNodes * 2 > q.clusterNodes;
}

/**
 * When writes stop being allowed (ms since the epoch), given when the last
 * landed heartbeat was sent and what this node sees now (undefined: it
 * cannot tell, so no extension). Never beyond lastSentAt + maxMs.
 */
export function fenceDeadline(lastSentAt: number, now: number, t: FenceTimes, q?: QuorumSense): number {
  const base = lastSentAt + Math.min(t.baseMs, t.maxMs);
  if (!q || !mayExtendFence(q)) return base;
  return Math.max(base, Math.min(lastSentAt + t.maxMs, now + t.stepMs));
}

/** An etcd member's view of its leader: `leader` '0' while it has none. */
export interface LeaderStatus {
  leader: string;
  raftTerm: string;
  /** The node the leader member runs on, when known. */
  leaderUid?: number;
}

/**
 * Follows the local member's status: an election is in progress while it has
 * no leader, or for `settleMs` after its term changed (a new leader may not
 * have caught everyone up yet), or is due: the leader it names is another
 * node this one does not hear (its member sees the leader gone only after the
 * election timeout, 1.5-3 s, about when the short fence would close).
 */
export class ElectionWatch {
  private term?: string;
  private changedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly settleMs: number) {}

  observe(s: LeaderStatus | undefined, now: number, leaderGone: (uid: number) => boolean = () => false): boolean {
    if (!s) return false; // the member did not answer: nothing seen, so no election to tolerate
    if (this.term !== undefined && s.raftTerm !== this.term) this.changedAt = now;
    this.term = s.raftTerm;
    if (s.leader === '0' || s.leader === '' || now - this.changedAt < this.settleMs) return true;
    return s.leaderUid !== undefined && leaderGone(s.leaderUid);
  }
}
