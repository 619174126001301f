// Refused shard links on 3343 are logged at most `burst` times per window, and
// the next logged line says how many were left out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Writable } from 'node:stream';
import { RefusalLog } from '../../src/dataplane/shard-links.js';

test('at most 10 lines per 10 s; the first after says how many were suppressed', () => {
  const lines: Record<string, unknown>[] = [];
  const log = pino({}, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }));
  let now = 0;
  const r = new RefusalLog(10, 10_000, () => now);
  for (let i = 0; i < 1000; i++) r.refused(log, { reason: 'no such shard here' });
  assert.equal(lines.length, 10);
  now += 10_000;
  assert.equal(r.refused(log, { reason: 'bad database secret' }), true);
  assert.equal(lines.length, 11);
  assert.equal(lines[10].suppressed_before, 990);
  assert.equal(lines[10].reason, 'bad database secret');
});
