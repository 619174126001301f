// The internode CA rollover's step planner (control/model/ca-rollover.ts), pure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  etcdRestartPending,
  planRollover,
  planServicesRollover,
  type RolloverMember,
  type RolloverState,
  type ServicesMember,
  type ServicesRolloverState,
} from '../../src/control/model/ca-rollover.js';

const OLD = 'sha256:old';
const NEXT = 'sha256:next';
const m = (uid: number, over: Partial<RolloverMember> = {}): RolloverMember => ({
  uid,
  up: true,
  internode: [OLD],
  etcd: [OLD],
  issuedBy: { cp: OLD, dp: OLD },
  ...over,
});
const s = (phase: RolloverState['phase'], members: RolloverMember[], over: Partial<RolloverState> = {}): RolloverState => ({
  phase,
  old: OLD,
  next: NEXT,
  members,
  ...over,
});
const both = [OLD, NEXT];

test('make_next first; a state without a next CA makes one', () => {
  assert.deepEqual(planRollover(s('make_next', [m(1)])), { kind: 'make_next' });
  assert.deepEqual(planRollover(s('trust_both', [m(1)], { next: undefined })), { kind: 'make_next' });
});

test('trust_both: waits for 3342 trust on every node, then restarts etcd members one at a time, then promotes', () => {
  // Node 2 has not picked the list up yet.
  let d = planRollover(s('trust_both', [m(1, { internode: both }), m(2), m(3, { internode: both })]));
  assert.deepEqual(d, { kind: 'wait', node: 2, why: 'node 2 does not trust the next CA yet' });
  // Everyone trusts both on 3342: etcd of node 1 first.
  const ms = [m(1, { internode: both }), m(2, { internode: both }), m(3, { internode: both })];
  assert.deepEqual(planRollover(s('trust_both', ms)), { kind: 'restart_etcd', node: 1 });
  // While node 1's restart is outstanding: nothing else is restarted.
  d = planRollover(s('trust_both', ms, { etcdRestart: 1 }));
  assert.equal(d.kind, 'wait');
  assert.equal((d as { node: number }).node, 1);
  // Node 1 came back trusting both: node 2 next.
  ms[0] = { ...ms[0], etcd: both };
  assert.deepEqual(planRollover(s('trust_both', ms, { etcdRestart: 1 })), { kind: 'restart_etcd', node: 2 });
  ms[1] = { ...ms[1], etcd: both };
  ms[2] = { ...ms[2], etcd: both };
  assert.deepEqual(planRollover(s('trust_both', ms, { etcdRestart: 3 })), { kind: 'promote_next' });
});

test('no etcd member is restarted while any member is down (the quorum would be at stake)', () => {
  const ms = [m(1, { internode: both }), m(2, { internode: both }), m(3, { up: false })];
  const d = planRollover(s('trust_both', ms));
  assert.deepEqual(d, { kind: 'wait', node: 3, why: 'node 3 is down; it must trust the next CA first' });
  const dropping = [
    m(1, { internode: [NEXT], etcd: both, issuedBy: { cp: NEXT, dp: NEXT } }),
    m(2, { internode: [NEXT], etcd: both, issuedBy: { cp: NEXT, dp: NEXT } }),
    m(3, { up: false, internode: both, etcd: both, issuedBy: { cp: NEXT, dp: NEXT } }),
  ];
  const w = planRollover(s('drop_old', dropping));
  assert.equal(w.kind, 'wait');
  assert.equal((w as { node: number }).node, 3);
  assert.match((w as { why: string }).why, /node 3 is down/);
});

test('a member whose heartbeat is late (it may have just stopped) holds every etcd restart', () => {
  const ms = [m(1, { internode: both }), m(2, { internode: both }), m(3, { internode: both, fresh: false })];
  assert.deepEqual(planRollover(s('trust_both', ms)), {
    kind: 'wait',
    node: 3,
    why: "node 3's heartbeat is late; no etcd member restarts until every member answers",
  });
  ms[2] = { ...ms[2], fresh: true };
  assert.deepEqual(planRollover(s('trust_both', ms)), { kind: 'restart_etcd', node: 1 });
});

test('a member stopping (SIGTERM) holds every etcd restart until it is down: its own member goes soon, and two away lose a quorum', () => {
  const ms = [m(1, { internode: both }), m(2, { internode: both, stopping: true }), m(3, { internode: both })];
  assert.deepEqual(planRollover(s('trust_both', ms)), {
    kind: 'wait',
    node: 2,
    why: 'node 2 is stopping; no etcd member restarts until it is down or back',
  });
  // Once down, the rule for a down member holds instead (trust_both waits for it to return).
  ms[1] = { ...ms[1], up: false };
  assert.match((planRollover(s('trust_both', ms)) as { why: string }).why, /node 2 is down/);
  ms[1] = { ...ms[1], up: true, stopping: false };
  assert.deepEqual(planRollover(s('trust_both', ms)), { kind: 'restart_etcd', node: 1 });
});

test("etcdRestartPending: asked of the node, and its member has not loaded what the phase needs yet (the planner's own test)", () => {
  const node = (etcd?: string[]) => ({ uid: 2, ca_trust: { ...(etcd ? { etcd } : {}) } });
  const trusting = { phase: 'trust_both' as const, old: OLD, next: NEXT, etcd_restart: 2 };
  const dropping = { ...trusting, phase: 'drop_old' as const };
  assert.equal(etcdRestartPending(trusting, node([OLD])), true);
  assert.equal(etcdRestartPending(trusting, node([NEXT, OLD])), false, 'both loaded, in any order');
  assert.equal(etcdRestartPending(dropping, node(both)), true, 'drop_old: the old CA still loaded');
  assert.equal(etcdRestartPending(dropping, node([NEXT])), false);
  assert.equal(etcdRestartPending(trusting, node()), true, 'no report of the member yet');
  assert.equal(etcdRestartPending({ ...trusting, etcd_restart: 3 }, node([OLD])), false, 'asked of another node');
  assert.equal(etcdRestartPending({ ...trusting, finished_time: 'x' }, node([OLD])), false, 'the rollover is over');
  // The planner agrees: it waits on the same restart while the member has not converged.
  const ms = [m(1, { internode: both, etcd: both }), m(2, { internode: both, etcd: [OLD] })];
  assert.deepEqual(planRollover(s('trust_both', ms, { etcdRestart: 2 })), {
    kind: 'wait',
    node: 2,
    why: "node 2's etcd member is restarting to trust the next CA",
  });
});

test('reissue: waits for cp and dp of the next CA on every node, then drops the old CA', () => {
  const ms = [
    m(1, { internode: both, etcd: both, issuedBy: { cp: NEXT, dp: NEXT } }),
    m(2, { internode: both, etcd: both, issuedBy: { cp: NEXT, dp: OLD } }),
  ];
  assert.deepEqual(planRollover(s('reissue', ms)), {
    kind: 'wait',
    node: 2,
    why: 'node 2 does not present certificates of the next CA yet',
  });
  ms[1] = { ...ms[1], issuedBy: { cp: NEXT, dp: NEXT } };
  assert.deepEqual(planRollover(s('reissue', ms)), { kind: 'drop_old' });
  // A node down before it reported its new certificates holds step 3; one down after it does not (step 4 waits for it).
  const down = [...ms, m(3, { up: false, internode: both, etcd: both })];
  assert.deepEqual(planRollover(s('reissue', down)), {
    kind: 'wait',
    node: 3,
    why: 'node 3 is down; its certificates must be reissued first',
  });
  down[2] = { ...down[2], issuedBy: { cp: NEXT, dp: NEXT } };
  assert.deepEqual(planRollover(s('reissue', down)), { kind: 'drop_old' });
});

test('drop_old: a returning node catches up (reissue, then trust), then etcd members restart one at a time, then done', () => {
  const ms = [
    m(1, { internode: [NEXT], etcd: both, issuedBy: { cp: NEXT, dp: NEXT } }),
    m(2, { internode: [NEXT], etcd: both, issuedBy: { cp: NEXT, dp: NEXT } }),
    // Back from a stop during the reissue: still old certificates, trusting both.
    m(3, { internode: both, etcd: both, issuedBy: { cp: OLD, dp: OLD } }),
  ];
  assert.match((planRollover(s('drop_old', ms)) as { why: string }).why, /node 3 does not present certificates of the next CA/);
  ms[2] = { ...ms[2], issuedBy: { cp: NEXT, dp: NEXT } };
  assert.match((planRollover(s('drop_old', ms)) as { why: string }).why, /node 3 still trusts the old CA on 3342/);
  ms[2] = { ...ms[2], internode: [NEXT] };
  assert.deepEqual(planRollover(s('drop_old', ms)), { kind: 'restart_etcd', node: 1 });
  for (const i of [0, 1, 2]) ms[i] = { ...ms[i], etcd: [NEXT] };
  assert.deepEqual(planRollover(s('drop_old', ms, { etcdRestart: 3 })), { kind: 'done' });
});

test('a removed node is no longer a member: the rollover does not wait for it', () => {
  const ms = [
    m(1, { internode: [NEXT], etcd: [NEXT], issuedBy: { cp: NEXT, dp: NEXT } }),
    m(2, { internode: [NEXT], etcd: [NEXT], issuedBy: { cp: NEXT, dp: NEXT } }),
  ];
  assert.deepEqual(planRollover(s('drop_old', [...ms, m(3, { up: false })])).kind, 'wait');
  assert.deepEqual(planRollover(s('drop_old', ms)), { kind: 'done' });
  assert.deepEqual(planRollover(s('done', ms)), { kind: 'done' });
});

test('services: the next CA is published first; servers switch only at activation; the old CA leaves after the overlap', () => {
  const now = Date.parse('2026-12-06T12:00:00Z');
  const sm = (uid: number, over: Partial<ServicesMember> = {}): ServicesMember => ({
    uid,
    up: true,
    services: [OLD],
    onNext: false,
    ...over,
  });
  const st = (
    phase: RolloverState['phase'],
    members: ServicesMember[],
    over: Partial<ServicesRolloverState> = {},
  ): ServicesRolloverState => ({
    phase,
    old: OLD,
    next: NEXT,
    now,
    members,
    ...over,
  });
  assert.deepEqual(planServicesRollover(st('make_next', [sm(1)])), { kind: 'make_next' });
  // Published: node 2 does not hand out the bundle yet.
  assert.deepEqual(planServicesRollover(st('trust_both', [sm(1, { services: both }), sm(2)], { activateAfter: now - 1 })), {
    kind: 'wait',
    node: 2,
    why: 'node 2 does not publish the next CA yet',
  });
  // Everyone publishes both, but the overlap has not run out: wait (no node named).
  const pub = [sm(1, { services: both }), sm(2, { services: both }), sm(3, { up: false })];
  const w = planServicesRollover(st('trust_both', pub, { activateAfter: now + 60_000 }));
  assert.equal(w.kind, 'wait');
  assert.equal((w as { node?: number }).node, undefined);
  assert.deepEqual(planServicesRollover(st('trust_both', pub, { activateAfter: now })), { kind: 'promote_next' });
  // Activated: servers move; then the old CA stays until retireAfter.
  assert.equal(planServicesRollover(st('reissue', pub, { retireAfter: now - 1 })).kind, 'wait');
  const moved = pub.map((x) => ({ ...x, onNext: true }));
  assert.equal(planServicesRollover(st('reissue', moved, { retireAfter: now + 1 })).kind, 'wait');
  assert.deepEqual(planServicesRollover(st('reissue', moved, { retireAfter: now })), { kind: 'drop_old' });
  assert.deepEqual(planServicesRollover(st('drop_old', moved)), { kind: 'wait', node: 1, why: 'node 1 still publishes the old CA' });
  assert.deepEqual(
    planServicesRollover(
      st(
        'drop_old',
        moved.map((x) => ({ ...x, services: [NEXT] })),
      ),
    ),
    { kind: 'done' },
  );
});
