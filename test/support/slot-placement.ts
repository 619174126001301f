// Where a database's keys are, checked on its shards directly: every master
// holds only keys of its own slots (resharding, day-two tests).
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { type TestNode, type BdbJson, shardSecret, shardSocketPath } from './cluster.js';
import { keySlot } from '../../src/proxy/slots.js';

export function shardClient(node: TestNode, uid: number): Redis {
  return new Redis({ path: shardSocketPath(node, uid), password: shardSecret(node, uid), maxRetriesPerRequest: 1 });
}

export const rangesOf = (text: string) => text.split(',').map((r) => r.split('-').map(Number) as [number, number]);

/** Every master holds only keys of its own slots (and, `quiet`, DBSIZE says as many); returns the keys per master. */
export async function checkPlacement(b: BdbJson, quiet: boolean, nodeByUid: (uid: number) => TestNode): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const s of b.shards.filter((x) => x.role === 'master')) {
    const ranges = rangesOf(s.assigned_slots);
    const c = shardClient(nodeByUid(s.node_uid), s.uid);
    try {
      let cursor = '0';
      let n = 0;
      const strays: string[] = [];
      do {
        const [next, keys] = await c.scan(cursor, 'COUNT', 5000);
        cursor = next;
        for (const k of keys) {
          n++;
          const slot = keySlot(k);
          if (!ranges.some(([a, z]) => slot >= a && slot <= (z ?? a))) strays.push(`${k}@${slot}`);
        }
      } while (cursor !== '0');
      assert.deepEqual(strays.slice(0, 5), [], `shard ${s.uid} (${s.assigned_slots}) holds ${strays.length} keys of other slots`);
      // Under load keys come meanwhile: DBSIZE is compared once the writers stopped.
      if (quiet) assert.equal(await c.dbsize(), n, `shard ${s.uid}: DBSIZE is the keys of its slots`);
      out.set(s.uid, n);
    } finally {
      c.disconnect();
    }
  }
  return out;
}
