// The web UI's sessions without a browser: idle expiry (30 min, background
// refreshes do not count), CSRF comparison, the cookie's flags and parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IDLE_TIMEOUT_MS, SESSION_COOKIE, SessionStore, clearedSessionCookie, csrfMatches, readCookie, sessionCookie } from '../../src/ui/sessions.js';

test('a session lapses after 30 idle minutes; calls of the user restart the clock, background refreshes do not', () => {
  let now = 1_000_000;
  const store = new SessionStore(IDLE_TIMEOUT_MS, () => now);
  assert.equal(IDLE_TIMEOUT_MS, 30 * 60_000);
  const { token, session } = store.create('admin@example.com');
  assert.equal(store.find(token, true), session);
  now += IDLE_TIMEOUT_MS - 1000;
  assert.equal(store.find(token, false), session, 'a background refresh is served...');
  now += 2000;
  assert.equal(store.find(token, false), undefined, '...but did not keep the session alive');
  assert.equal(store.size, 0);

  const b = store.create('admin@example.com');
  for (let i = 0; i < 5; i++) {
    now += IDLE_TIMEOUT_MS - 1000;
    assert.ok(store.find(b.token, true), `still alive after ${i + 1} active calls`);
  }
  store.end(b.token);
  assert.equal(store.find(b.token, true), undefined, 'signed out');
});

test('tokens are random, unknown ones find nothing, and each session has its own CSRF token', () => {
  const store = new SessionStore();
  const a = store.create('u');
  const b = store.create('u');
  assert.notEqual(a.token, b.token);
  assert.notEqual(a.session.csrfToken, b.session.csrfToken);
  assert.ok(a.token.length >= 43);
  assert.equal(store.find(undefined, true), undefined);
  assert.equal(store.find('x'.repeat(43), true), undefined);
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
