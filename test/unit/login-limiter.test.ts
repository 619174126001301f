// The failed-login limiter (api/login-limiter.ts) and the password check's
// timing rule for unknown users (control/bootstrap/passwords.ts), in-process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginLimiter } from '../../src/api/login-limiter.js';
import { hashPassword, verifyNobody, verifyPassword } from '../../src/control/bootstrap/passwords.js';

test('ten failures within a minute block that address only, with the seconds to wait; the window slides', () => {
  const t0 = 1_000_000;
  let now = t0;
  const l = new LoginLimiter(10, 60_000, () => now);
  for (let i = 0; i < 9; i++) {
    l.failed('10.0.0.1');
    now += 1000;
  }
  assert.equal(l.retryAfterSeconds('10.0.0.1'), 0, 'nine failures: still allowed');
  l.failed('10.0.0.1');
  const wait = l.retryAfterSeconds('10.0.0.1');
  assert.ok(wait > 0 && wait <= 60, `blocked for ${wait} s`);
  assert.equal(l.retryAfterSeconds('10.0.0.2'), 0, 'another address is not affected');
  now = t0 + 60_001; // the first failure leaves the window
  assert.equal(l.retryAfterSeconds('10.0.0.1'), 0);
  l.failed('10.0.0.1');
  assert.ok(l.retryAfterSeconds('10.0.0.1') > 0);
  now += 61_000;
  assert.equal(l.retryAfterSeconds('10.0.0.1'), 0, 'a minute later the address may try again');
  assert.equal(l.size, 0, 'and it is forgotten');
});

test('a success clears the count of its address', () => {
  const l = new LoginLimiter(3, 60_000);
  l.failed('a');
  l.failed('a');
  l.succeeded('a');
  l.failed('a');
  l.failed('a');
  assert.equal(l.retryAfterSeconds('a'), 0);
});

test('the number of addresses tracked is bounded', () => {
  const l = new LoginLimiter(10, 60_000);
  for (let i = 0; i < 20_000; i++) l.failed(`addr-${i}`);
  assert.ok(l.size <= 10_000, `${l.size} addresses kept`);
});

test('an unknown user costs a full scrypt, like a wrong password for a known one', async () => {
  const stored = await hashPassword('right');
  assert.equal(await verifyPassword('right', stored), true);
  await verifyNobody('warm-up'); // the dummy hash is made once
  const time = async (fn: () => Promise<boolean>) => {
    const t = process.hrtime.bigint();
    assert.equal(await fn(), false);
    return Number(process.hrtime.bigint() - t) / 1e6;
  };
  const known: number[] = [];
  const unknown: number[] = [];
  for (let i = 0; i < 5; i++) {
    known.push(await time(() => verifyPassword('wrong', stored)));
    unknown.push(await time(() => verifyNobody('wrong')));
  }
  const median = (a: number[]) => a.sort((x, y) => x - y)[2];
  // Both are one scrypt (tens of ms); without the dummy an unknown user answered in well under a millisecond.
  assert.ok(median(unknown) > median(known) / 4, `unknown ${median(unknown)} ms vs known ${median(known)} ms`);
});

test('roles: admin may do anything; db_viewer reads everything but the users, and changes nothing', async () => {
  const { permitted } = await import('../../src/api/auth.js');
  for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    for (const u of ['/v1/bdbs/:uid', '/v1/bdbs', '/v1/cluster/policy', '/v1/users/:uid']) {
      assert.equal(permitted('db_viewer', m, u), false, `${m} ${u}`);
      assert.equal(permitted('admin', m, u), true);
    }
  }
  assert.equal(permitted('db_viewer', 'GET', '/v1/bdbs/:uid'), true);
  assert.equal(permitted('db_viewer', 'GET', '/v1/users'), false);
});
