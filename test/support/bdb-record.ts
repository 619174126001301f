// A database record as the store holds it, for unit tests that put one in a
// scratch etcd or hand one to a planner: the counts follow the shard list
// (masters, whether any replica), everything else a plain default that a test
// overrides where it matters.
import type { BdbRecord, ShardPlacement } from '../../src/coord/schema.js';

export function bdbRecord(uid: number, shards: ShardPlacement[], over: Partial<BdbRecord> = {}): BdbRecord {
  const now = new Date().toISOString();
  return {
    uid,
    name: `db${uid}`,
    type: 'redis',
    port: 12000 + uid,
    memory_size: 100 * 1024 * 1024,
    shards_count: shards.filter((s) => s.role === 'master').length,
    sharding: true,
    replication: shards.some((s) => s.role === 'slave'),
    proxy_policy: 'all-master-shards',
    shards_placement: 'sparse',
    data_internode_encryption: false,
    data_persistence: 'disabled',
    eviction_policy: 'volatile-lru',
    internal_secret: 'x'.repeat(32),
    shards,
    status: 'active',
    generation: 1,
    link_generation: 1,
    created_time: now,
    last_changed_time: now,
    ...over,
  };
}
