// The internode CA rollover, decided one step at a time (pure; the cluster
// master's CaRolloverController carries each decision out and asks again).
//
//   make_next  → a next CA is made and listed beside the active one
//   trust_both → every node trusts both (3342 at once; etcd at its restart:
//                members restarted one at a time, only while every member is
//                up, so a restart never costs the quorum)
//   reissue    → the next CA becomes the issuer, the old one `retiring`;
//                every node renews cp and dp (and etcd's pair, which is cp)
//   drop_old   → the old CA leaves the list; every node drops it (3342 at
//                once; etcd at a restart, one at a time again)
//   done
//
// A node that is down holds the rollover where it is (the decision says
// which node it waits for); a node removed from the cluster is no longer a
// member and no longer waited for.

export type RolloverPhase = 'make_next' | 'trust_both' | 'reissue' | 'drop_old' | 'done';
export const ROLLOVER_PHASES: readonly RolloverPhase[] = ['make_next', 'trust_both', 'reissue', 'drop_old', 'done'];

/** What a member reports of its trust (the node record's `ca_trust`), and whether it is up. */
export interface RolloverMember {
  uid: number;
  up: boolean;
  /**
   * Its heartbeat came within the last moments (false: it may have just
   * stopped, before its lease says so). No etcd member is restarted while
   * any member is not fresh.
   */
  fresh?: boolean;
  /** It is stopping (SIGTERM): its etcd member goes soon, so no other member restarts meanwhile. */
  stopping?: boolean;
  /** Fingerprints the node trusts on 3342. */
  internode?: readonly string[];
  /** Fingerprints its etcd member loaded when it last started. */
  etcd?: readonly string[];
  /** The CA (fingerprint) that issued its cp and dp certificates. */
  issuedBy?: { cp?: string; dp?: string };
}

export interface RolloverState {
  phase: RolloverPhase;
  /** Fingerprints of the CA being replaced and of its successor (known once made). */
  old: string;
  next?: string;
  /** The member whose etcd restart was asked and not yet seen. */
  etcdRestart?: number;
  members: readonly RolloverMember[];
}

export type RolloverDecision =
  | { kind: 'make_next' }
  /** Every node trusts both: the next CA becomes the issuer, the old one retiring. */
  | { kind: 'promote_next' }
  /** Every node presents certificates of the next CA: the old one leaves the list. */
  | { kind: 'drop_old' }
  | { kind: 'restart_etcd'; node: number }
  | { kind: 'wait'; node?: number; why: string }
  | { kind: 'done' };

const has = (list: readonly string[] | undefined, fp: string) => !!list?.includes(fp);

/** The one thing to do now. */
export function planRollover(s: RolloverState): RolloverDecision {
  if (s.phase === 'done') return { kind: 'done' };
  if (s.phase === 'make_next' || !s.next) return { kind: 'make_next' };
  const next = s.next;
  const members = [...s.members].sort((a, b) => a.uid - b.uid);
  const down = members.find((m) => !m.up);
  if (s.phase === 'trust_both') {
    if (down) return { kind: 'wait', node: down.uid, why: `node ${down.uid} is down; it must trust the next CA first` };
    const behind = members.find((m) => !has(m.internode, next));
    if (behind) return { kind: 'wait', node: behind.uid, why: `node ${behind.uid} does not trust the next CA yet` };
    const etcd = etcdStep(members, s.etcdRestart, (m) => etcdConverged(s, m.etcd), 'to trust the next CA');
    if (etcd) return etcd;
    return { kind: 'promote_next' };
  }
  if (s.phase === 'reissue') {
    // A node that went down after reporting its new certificates has done this step: step 4 waits for it.
    const old = members.find((m) => m.issuedBy?.cp !== next || m.issuedBy?.dp !== next);
    if (old && !old.up) return { kind: 'wait', node: old.uid, why: `node ${old.uid} is down; its certificates must be reissued first` };
    if (old) return { kind: 'wait', node: old.uid, why: `node ${old.uid} does not present certificates of the next CA yet` };
    return { kind: 'drop_old' };
  }
  // drop_old: the list is the next CA alone; every node (and its etcd) must follow.
  if (down) return { kind: 'wait', node: down.uid, why: `node ${down.uid} is down; waiting for it to return and drop the old CA` };
  const stale = members.find((m) => m.issuedBy?.cp !== next || m.issuedBy?.dp !== next);
  if (stale) return { kind: 'wait', node: stale.uid, why: `node ${stale.uid} does not present certificates of the next CA yet` };
  const trusting = members.find((m) => has(m.internode, s.old) || !has(m.internode, next));
  if (trusting) return { kind: 'wait', node: trusting.uid, why: `node ${trusting.uid} still trusts the old CA on 3342` };
  const etcd = etcdStep(members, s.etcdRestart, (m) => etcdConverged(s, m.etcd), 'to drop the old CA');
  if (etcd) return etcd;
  return { kind: 'done' };
}

/**
 * etcd members one at a time: while a restart is outstanding, wait for it;
 * else restart the lowest member not yet converged. Only called with every
 * member up, so the others keep the quorum.
 */
function etcdStep(
  members: readonly RolloverMember[],
  asked: number | undefined,
  ok: (m: RolloverMember) => boolean,
  what: string,
): RolloverDecision | undefined {
  const pending = asked === undefined ? undefined : members.find((m) => m.uid === asked);
  if (pending && !ok(pending)) return { kind: 'wait', node: pending.uid, why: `node ${pending.uid}'s etcd member is restarting ${what}` };
  const todo = members.find((m) => !ok(m));
  if (!todo) return undefined;
  const stopping = members.find((m) => m.stopping && m.up);
  if (stopping)
    return {
      kind: 'wait',
      node: stopping.uid,
      why: `node ${stopping.uid} is stopping; no etcd member restarts until it is down or back`,
    };
  const late = members.find((m) => m.fresh === false);
  if (late)
    return {
      kind: 'wait',
      node: late.uid,
      why: `node ${late.uid}'s heartbeat is late; no etcd member restarts until every member answers`,
    };
  return { kind: 'restart_etcd', node: todo.uid };
}

/**
 * A member's etcd has loaded what the phase needs: the next CA (trust_both),
 * and no longer the old one (drop_old). What an etcd restart is for.
 */
function etcdConverged(s: Pick<RolloverState, 'phase' | 'old' | 'next'>, etcd: readonly string[] | undefined): boolean {
  if (!s.next || !has(etcd, s.next)) return false;
  return s.phase !== 'drop_old' || !has(etcd, s.old);
}

/**
 * Node `uid`'s etcd member restarts for a running rollover right now: the
 * restart was asked of it and its member has not loaded what the phase needs
 * yet (the same test the planner waits on; the node reports its member's
 * trust once it serves again). A node about to stop its own member waits for
 * this (graceful-stop.ts): two members away at once cost a 3- or 4-member
 * store its quorum.
 */
export function etcdRestartPending(
  r: Pick<RolloverState, 'phase' | 'old' | 'next'> & { finished_time?: string; etcd_restart?: number },
  node: { uid: number; ca_trust?: { etcd?: readonly string[] } },
): boolean {
  if (r.finished_time || r.etcd_restart !== node.uid || (r.phase !== 'trust_both' && r.phase !== 'drop_old')) return false;
  return !etcdConverged(r, node.ca_trust?.etcd);
}

/** The action's step text and progress for a phase (4 steps, as the issue numbers them). */
export function phaseStep(phase: RolloverPhase, ca: 'internode' | 'services' = 'internode'): { n: number; text: string; progress: number } {
  if (ca === 'services') {
    switch (phase) {
      case 'make_next':
        return { n: 1, text: 'making the next services CA', progress: 0 };
      case 'trust_both':
        return {
          n: 2,
          text: 'both services CAs published (GET /v1/bootstrap, /v1/cluster/certificates) before any server uses the next',
          progress: 25,
        };
      case 'reissue':
        return { n: 3, text: 'REST, UI, metrics and endpoint certificates move to the next services CA', progress: 50 };
      case 'drop_old':
        return { n: 4, text: 'the old services CA leaves the bundle', progress: 75 };
      case 'done':
        return { n: 4, text: 'the services CA was replaced', progress: 100 };
    }
  }
  switch (phase) {
    case 'make_next':
      return { n: 1, text: 'making the next CA', progress: 0 };
    case 'trust_both':
      return { n: 2, text: 'every node trusts both CAs (etcd members restarted one at a time)', progress: 25 };
    case 'reissue':
      return { n: 3, text: "every node's cp, dp and etcd certificates reissued from the next CA", progress: 50 };
    case 'drop_old':
      return { n: 4, text: "the old CA removed from every node's trust", progress: 75 };
    case 'done':
      return { n: 4, text: 'the internode CA was replaced', progress: 100 };
  }
}

/** A member's client-facing side during a services CA rollover. */
export interface ServicesMember {
  uid: number;
  up: boolean;
  /** Fingerprints of the bundle it hands clients (`services-ca.pem`). */
  services?: readonly string[];
  /** Every cluster-issued client-facing certificate it presents is from the next CA. */
  onNext: boolean;
}

export interface ServicesRolloverState {
  phase: RolloverPhase;
  old: string;
  next?: string;
  now: number;
  /** When the servers may switch to the next CA (publication + overlap, or an explicit activation). */
  activateAfter?: number;
  /** When the old CA may leave the bundle (activation + overlap). */
  retireAfter?: number;
  members: readonly ServicesMember[];
}

/**
 * The services CA rollover: clients learn the next CA before any server uses it.
 *   make_next  → the next CA is made and published in the bundle (phase trust_both)
 *   trust_both → every node hands out both; at `activateAfter` the next CA issues (phase reissue)
 *   reissue    → every node's REST, UI, metrics and endpoint certificates move to it; at `retireAfter`
 *                the old CA leaves the bundle (phase drop_old)
 *   drop_old   → every node hands out the next CA alone: done
 * Nodes that are down are not waited for here (they serve no client); they catch up on return.
 */
export function planServicesRollover(s: ServicesRolloverState): RolloverDecision {
  if (s.phase === 'done') return { kind: 'done' };
  if (s.phase === 'make_next' || !s.next) return { kind: 'make_next' };
  const next = s.next;
  const up = [...s.members].filter((m) => m.up).sort((a, b) => a.uid - b.uid);
  if (s.phase === 'trust_both') {
    const behind = up.find((m) => !has(m.services, next));
    if (behind) return { kind: 'wait', node: behind.uid, why: `node ${behind.uid} does not publish the next CA yet` };
    if (s.activateAfter !== undefined && s.now < s.activateAfter)
      return { kind: 'wait', why: `both CAs published; the servers switch at ${new Date(s.activateAfter).toISOString()} (or on activate)` };
    return { kind: 'promote_next' };
  }
  if (s.phase === 'reissue') {
    const old = up.find((m) => !m.onNext);
    if (old) return { kind: 'wait', node: old.uid, why: `node ${old.uid} does not present certificates of the next CA yet` };
    if (s.retireAfter !== undefined && s.now < s.retireAfter)
      return { kind: 'wait', why: `the old CA stays in the bundle until ${new Date(s.retireAfter).toISOString()}` };
    return { kind: 'drop_old' };
  }
  const stale = up.find((m) => has(m.services, s.old));
  if (stale) return { kind: 'wait', node: stale.uid, why: `node ${stale.uid} still publishes the old CA` };
  return { kind: 'done' };
}
