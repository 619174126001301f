// The web UI's sessions without a browser: idle expiry (30 min, background
// refreshes do not count), CSRF comparison, the cookie's flags and parsing.
// The store's logic runs over a map here; over etcd, shared by several nodes,
// in test/integration/ui-metrics.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { UiSessionRecord } from '../../src/coord/schema.js';
import {
  IDLE_TIMEOUT_MS,
  SESSION_COOKIE,
  type SessionBackend,
  SessionStore,
  TOUCH_EVERY_MS,
  clearedSessionCookie,
  csrfMatches,
  readCookie,
  sessionCookie,
} from '../../src/ui/sessions.js';

function mapBackend(): SessionBackend & { data: Map<string, UiSessionRecord> } {
  const data = new Map<string, UiSessionRecord>();
  return {
    data,
    get: async (id) => (data.has(id) ? { ...data.get(id)! } : null),
    put: async (id, rec) => void data.set(id, { ...rec }),
    delete: async (id) => void data.delete(id),
    list: async () => new Map(data),
  };
}

test('a session lapses after 30 idle minutes; calls of the user restart the clock, background refreshes do not', async () => {
  let now = 1_000_000;
  const backend = mapBackend();
  const store = new SessionStore(backend, IDLE_TIMEOUT_MS, () => now);
  assert.equal(IDLE_TIMEOUT_MS, 30 * 60_000);
  const { token, session } = await store.create('admin@example.com');
  assert.deepEqual(await store.find(token, true), session);
  assert.ok(![...backend.data.keys()].some((k) => k.includes(token)), 'the token itself is not stored');
  now += IDLE_TIMEOUT_MS - 1000;
  assert.deepEqual(await store.find(token, false), session, 'a background refresh is served...');
  now += 2000;
  assert.equal(await store.find(token, false), undefined, '...but did not keep the session alive');
  assert.equal(backend.data.size, 0);

  const b = await store.create('admin@example.com');
  for (let i = 0; i < 5; i++) {
    now += IDLE_TIMEOUT_MS - 1000;
    assert.ok(await store.find(b.token, true), `still alive after ${i + 1} active calls`);
  }
  // Activity is written back at most once a minute: a call within it leaves the record as it was.
  const before = [...backend.data.values()][0].last_active;
  now += TOUCH_EVERY_MS - 1;
  await store.find(b.token, true);
  assert.equal([...backend.data.values()][0].last_active, before);
  await store.end(b.token);
  assert.equal(await store.find(b.token, true), undefined, 'signed out');
});

test('tokens are random, unknown ones find nothing, and each session has its own CSRF token', async () => {
  const store = new SessionStore(mapBackend());
  const a = await store.create('u');
  const b = await store.create('u');
  assert.notEqual(a.token, b.token);
  assert.notEqual(a.session.csrfToken, b.session.csrfToken);
  assert.ok(a.token.length >= 43);
  assert.equal(await store.find(undefined, true), undefined);
  assert.equal(await store.find('x'.repeat(43), true), undefined);
  assert.ok(csrfMatches(a.session, a.session.csrfToken));
  assert.ok(!csrfMatches(a.session, b.session.csrfToken));
  assert.ok(!csrfMatches(a.session, undefined));
  assert.ok(!csrfMatches(a.session, ''));
  assert.ok(!csrfMatches(a.session, [a.session.csrfToken]));
});

test('the cookie: __Host- prefix, HttpOnly, Secure, SameSite=Strict, lapsing with the idle timeout; parsing and clearing', () => {
  const c = sessionCookie('tok', IDLE_TIMEOUT_MS);
  assert.equal(c, `${SESSION_COOKIE}=tok; Path=/; Max-Age=1800; Secure; HttpOnly; SameSite=Strict`);
  assert.match(SESSION_COOKIE, /^__Host-/);
  assert.match(clearedSessionCookie(), /Max-Age=0; Secure; HttpOnly; SameSite=Strict$/);
  assert.equal(readCookie(`a=1; ${SESSION_COOKIE}=abc; b=2`, SESSION_COOKIE), 'abc');
  assert.equal(readCookie('a=1', SESSION_COOKIE), undefined);
  assert.equal(readCookie(undefined, SESSION_COOKIE), undefined);
});
