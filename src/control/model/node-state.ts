// When a node counts as up: the one rule that everything showing or using
// node state follows (REST, status, metrics, placement, shard operations,
// the rotation action), the same the failover controller decides by.
//
// Up means it holds its liveness lease and has not been silent (no heartbeat,
// coord/heartbeats.ts) as long as a dead node. The lease alone would show a
// node killed together with the etcd leader as up for seconds after its
// shards were failed over: a new etcd leader extends every lease.

export interface NodeStateHost {
  readonly live: { readonly items: ReadonlyMap<string, unknown> };
  /** How long node `uid` has sent no heartbeat, in ms; undefined while this node cannot judge (its own view is not current). */
  silentMs(uid: number): number | undefined;
  /** The silence after which a node is dead. */
  deadAfterMs(): number;
}

/**
 * A node whose heartbeat (twice a second) is at most this old is there now,
 * its etcd member included; an older one may be away for a moment (its member
 * restarting, an election) though not yet down. The CA rollover restarts no
 * etcd member, and a stopping node stops none, while one is not.
 */
export const HEARTBEAT_FRESH_MS = 1500;

/** While this node cannot judge silence (cut off itself), the lease alone decides. */
export function nodeIsUp(h: NodeStateHost, uid: number): boolean {
  if (!h.live.items.has(String(uid))) return false;
  const silent = h.silentMs(uid);
  return silent === undefined || silent < h.deadAfterMs();
}
