// A shard that refuses writes, told from its INFO text (shards/shard-health.ts),
// shown in /v1/shards detailed_status (api/routes/shards.ts), and the cluster
// master's pure choice of a replica to take over (control/model/write-refusal.ts):
// only for a disk reason, only to a replica on another node that is up, in sync,
// and able to write. The running system (a real full disk) is
// test/integration/disk-full.test.ts. No address: nothing listens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDiskRefusal, writeHealth } from '../../src/shards/shard-health.js';
import { writeRefusalHandovers } from '../../src/control/model/write-refusal.js';
import { detailedStatus } from '../../src/api/routes/shards.js';
import type { ObservedRecord, ObservedShard } from '../../src/coord/schema.js';
import { bdbRecord } from '../support/bdb-record.js';

/** INFO persistence memory as redis-server 7 prints it (the fields read; the rest as redis has them). */
function info(o: {
  aof?: '0' | '1';
  aofWrite?: string;
  bgsave?: string;
  rewrite?: string;
  used?: number;
  max?: number;
  policy?: string;
  notCounted?: number;
}) {
  return [
    '# Memory',
    `used_memory:${o.used ?? 914976}`,
    'used_memory_human:893.53K',
    `maxmemory:${o.max ?? 0}`,
    `maxmemory_policy:${o.policy ?? 'noeviction'}`,
    `mem_not_counted_for_evict:${o.notCounted ?? 8}`,
    '',
    '# Persistence',
    'loading:0',
    `rdb_last_bgsave_status:${o.bgsave ?? 'ok'}`,
    `aof_enabled:${o.aof ?? '1'}`,
    'aof_rewrite_in_progress:0',
    `aof_last_bgrewrite_status:${o.rewrite ?? 'ok'}`,
    `aof_last_write_status:${o.aofWrite ?? 'ok'}`,
    '',
  ].join('\r\n');
}

test('a healthy shard refuses nothing', () => {
  assert.deepEqual(writeHealth(info({}), false), { aofRewriteFailed: false });
  assert.deepEqual(writeHealth(info({ max: 1 << 30, used: 1000 }), true), { aofRewriteFailed: false });
});

test('an AOF that cannot be written refuses writes (MISCONF), only while the AOF is on', () => {
  const h = writeHealth(info({ aofWrite: 'err' }), false);
  assert.equal(h.refused?.reason, 'aof_write');
  assert.match(h.refused!.message, /^MISCONF/);
  assert.ok(isDiskRefusal(h.refused!.reason));
  // With appendonly off the status is stale and redis ignores it.
  assert.equal(writeHealth(info({ aof: '0', aofWrite: 'err' }), false).refused, undefined);
});

test('a failed snapshot refuses writes only with save points and stop-writes-on-bgsave-error', () => {
  assert.equal(writeHealth(info({ aof: '0', bgsave: 'err' }), true).refused?.reason, 'bgsave');
  assert.equal(writeHealth(info({ aof: '0', bgsave: 'err' }), false).refused, undefined);
  // redis checks the snapshot before the AOF.
  assert.equal(writeHealth(info({ aofWrite: 'err', bgsave: 'err' }), true).refused?.reason, 'bgsave');
});

test('a failed AOF rewrite is reported, but writes still go on', () => {
  const h = writeHealth(info({ rewrite: 'err' }), false);
  assert.equal(h.aofRewriteFailed, true);
  assert.equal(h.refused, undefined);
  assert.equal(writeHealth(info({ aof: '0', rewrite: 'err' }), false).aofRewriteFailed, false);
});

test('OOM: over maxmemory (buffers not counted) with noeviction; not with an evicting policy, nor without a limit', () => {
  const oom = writeHealth(info({ used: 2_000_100, max: 2_000_000, notCounted: 50 }), false);
  assert.equal(oom.refused?.reason, 'oom');
  assert.equal(isDiskRefusal('oom'), false);
  // Equal to the limit is still within it (redis refuses above it); replication buffers are not counted.
  assert.equal(writeHealth(info({ used: 2_000_000, max: 2_000_000, notCounted: 0 }), false).refused, undefined);
  assert.equal(writeHealth(info({ used: 2_000_100, max: 2_000_000, notCounted: 500 }), false).refused, undefined);
  assert.equal(writeHealth(info({ used: 3_000_000, max: 2_000_000, policy: 'allkeys-lru' }), false).refused, undefined);
  assert.equal(writeHealth(info({ used: 3_000_000, max: 0 }), false).refused, undefined);
});

test('a shard that does not say (no INFO fields) is not judged', () => {
  assert.deepEqual(writeHealth('', true), { aofRewriteFailed: false });
});

test('detailed_status: RE values where one fits, misconf and oom for a running shard that refuses writes', () => {
  assert.equal(detailedStatus({ status: 'active' }), 'ok');
  assert.equal(detailedStatus({ status: 'down' }), 'down');
  assert.equal(detailedStatus({ status: 'starting' }), 'loading');
  assert.equal(detailedStatus({ status: 'active', write_refused: { reason: 'aof_write' } }), 'misconf');
  assert.equal(detailedStatus({ status: 'active', write_refused: { reason: 'bgsave' } }), 'misconf');
  assert.equal(detailedStatus({ status: 'active', write_refused: { reason: 'oom' } }), 'oom');
  assert.equal(detailedStatus({ status: 'down', write_refused: { reason: 'oom' } }), 'down');
});

// Database 1: master 11 on node 2, its replica 12 on node 1.
const bdb = bdbRecord(
  1,
  [
    { uid: 11, role: 'master', node_uid: 2, slots: [0, 16383] },
    { uid: 12, role: 'slave', node_uid: 1, master_uid: 11, slots: [0, 16383] },
  ],
  { generation: 7, data_persistence: 'aof' },
);
const misconf = { reason: 'aof_write' as const, message: 'MISCONF: errors writing to the AOF file: No space left on device' };
function report(node: number, shard: ObservedShard, generation = 7): ObservedRecord {
  return { node_uid: node, generation, converged: true, incarnation: 'x', shards: [shard], time: new Date().toISOString() };
}
const inSync: ObservedShard = { uid: 12, role: 'slave', status: 'active', master_link_status: 'up' };
const up = () => true;

test('a master refusing writes for its disk hands over to an in-sync replica on another node', () => {
  const reports = [report(2, { uid: 11, role: 'master', status: 'active', write_refused: misconf }), report(1, inSync)];
  assert.deepEqual(writeRefusalHandovers(bdb, reports, up), [
    { bdbUid: 1, masterUid: 11, masterNode: 2, replicaUid: 12, reason: misconf.message },
  ]);
});

test('no handover: OOM, a healthy master, an old generation, or a replica unfit to take over', () => {
  const master = (w?: ObservedShard['write_refused'], generation = 7) =>
    report(2, { uid: 11, role: 'master', status: 'active', ...(w ? { write_refused: w } : {}) }, generation);
  const none = (reports: ObservedRecord[], isUp: (n: number) => boolean = up) =>
    assert.deepEqual(writeRefusalHandovers(bdb, reports, isUp), []);
  none([master({ reason: 'oom', message: 'OOM' }), report(1, inSync)]);
  none([master(), report(1, inSync)]);
  none([master(misconf, 6), report(1, inSync)]);
  none([master(misconf), report(1, inSync, 6)]);
  none([master(misconf)]); // the replica has not reported
  none([master(misconf), report(1, inSync)], (n) => n !== 1); // its node is down
  none([master(misconf), report(1, { ...inSync, master_link_status: 'down' })]);
  none([master(misconf), report(1, { ...inSync, sync_progress: 40 })]);
  none([master(misconf), report(1, { ...inSync, status: 'down' })]);
  none([master(misconf), report(1, { ...inSync, write_refused: misconf })]); // its own disk is full too
  // A replica on the master's own node shares its disk.
  const sameNode = { ...bdb, shards: [bdb.shards[0], { ...bdb.shards[1], node_uid: 2 }] };
  assert.deepEqual(
    writeRefusalHandovers(sameNode, [report(2, { uid: 11, role: 'master', status: 'active', write_refused: misconf })], up),
    [],
  );
});
