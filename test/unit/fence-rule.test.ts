// The fence rule (control/membership/fence-rule.ts), pure: base fence, the
// extension only during a seen election heard by a majority, never past the
// safe bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ElectionWatch, fenceDeadline, mayExtendFence } from '../../src/control/membership/fence-rule.js';

const T = { baseMs: 2000, maxMs: 4000, stepMs: 500 };
const SENT = 1_000_000;

test('without evidence the fence is the base, counted from when the last landed heartbeat was sent', () => {
  assert.equal(fenceDeadline(SENT, SENT + 1500, T), SENT + 2000);
  assert.equal(fenceDeadline(SENT, SENT + 1500, T, { electionInProgress: false, heardNodes: 3, clusterNodes: 3 }), SENT + 2000);
});

test('an isolated node (hears only itself) or an asymmetric cut (no replies) fences at the base, election or not', () => {
  assert.equal(fenceDeadline(SENT, SENT + 1800, T, { electionInProgress: true, heardNodes: 1, clusterNodes: 3 }), SENT + 2000);
  assert.equal(fenceDeadline(SENT, SENT + 1800, T, { electionInProgress: true, heardNodes: 2, clusterNodes: 4 }), SENT + 2000);
  assert.equal(mayExtendFence({ electionInProgress: true, heardNodes: 2, clusterNodes: 4 }), false, 'half is no majority');
});

test('a majority node during an election keeps writing, a step at a time, up to the safe bound and never past it', () => {
  const q = { electionInProgress: true, heardNodes: 2, clusterNodes: 3 };
  assert.equal(fenceDeadline(SENT, SENT + 1800, T, q), SENT + 2300);
  assert.equal(fenceDeadline(SENT, SENT + 3000, T, q), SENT + 3500);
  assert.equal(fenceDeadline(SENT, SENT + 3800, T, q), SENT + 4000);
  assert.equal(fenceDeadline(SENT, SENT + 9000, T, q), SENT + 4000);
  // Early on, the step is shorter than the base: the base stands.
  assert.equal(fenceDeadline(SENT, SENT + 100, T, q), SENT + 2000);
});

test('a base set above the safe bound is held to it', () => {
  assert.equal(fenceDeadline(SENT, SENT, { baseMs: 6000, maxMs: 4000, stepMs: 500 }), SENT + 4000);
});

test('an election is seen while the member has no leader, and for a while after its term changed', () => {
  const w = new ElectionWatch(3000);
  assert.equal(w.observe({ leader: '7', raftTerm: '5' }, 0), false, 'first look: a leader, no change seen');
  assert.equal(w.observe({ leader: '0', raftTerm: '6' }, 1000), true, 'no leader');
  assert.equal(w.observe({ leader: '9', raftTerm: '6' }, 2000), true, 'term changed 1 s ago');
  assert.equal(w.observe({ leader: '9', raftTerm: '6' }, 4100), false, 'settled');
  assert.equal(w.observe(undefined, 5000), false, 'a member that does not answer shows nothing');
  // The member still names its old leader, whose node is not heard: the election is due.
  const gone = (uid: number) => uid === 3;
  assert.equal(w.observe({ leader: '9', raftTerm: '6', leaderUid: 3 }, 6000, gone), true, 'leader on a node not heard');
  assert.equal(w.observe({ leader: '9', raftTerm: '6', leaderUid: 2 }, 6000, gone), false, 'leader on a node heard');
});
