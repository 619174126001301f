// Slots checked from the outside (resharding, day-two tests): every master
// holds only keys of its own slots, and a prober that reads one key of every
// slot through an endpoint, round after round.
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

/** One key of every slot, read again and again; per slot, the longest time between two answers. */
export class Prober {
  rounds = 0;
  failed = 0;
  readonly errors = new Set<string>();
  private readonly lastOk = new Float64Array(16384);
  private readonly maxGap = new Float64Array(16384);
  private running = true;
  private readonly done: Promise<void>;
  private readonly r: Redis;

  constructor(node: TestNode, port: number) {
    const perSlot: string[] = new Array(16384);
    let left = 16384;
    for (let i = 0; left > 0; i++) {
      const k = `probe:${i}`;
      const s = keySlot(k);
      if (perSlot[s] === undefined) {
        perSlot[s] = k;
        left--;
      }
    }
    const r = new Redis({ host: node.addr, port, maxRetriesPerRequest: 0 });
    r.on('error', () => undefined); // counted below, per command
    this.r = r;
    this.lastOk.fill(performance.now());
    this.done = (async () => {
      while (this.running) {
        for (let i = 0; i < perSlot.length && this.running; i += 1024) {
          try {
            await r.mget(...perSlot.slice(i, i + 1024));
            const now = performance.now();
            for (let s = i; s < i + 1024; s++) {
              this.maxGap[s] = Math.max(this.maxGap[s], now - this.lastOk[s]);
              this.lastOk[s] = now;
            }
          } catch (e) {
            this.failed++;
            this.errors.add((e as Error).message);
          }
        }
        this.rounds++;
      }
    })();
  }

  /** The longest gap between two answers for any slot since the last reset, and that slot. */
  takeGap(): { ms: number; slot: number } {
    let slot = 0;
    for (let s = 1; s < 16384; s++) if (this.maxGap[s] > this.maxGap[slot]) slot = s;
    const out = { ms: Math.round(this.maxGap[slot]), slot };
    this.maxGap.fill(0);
    return out;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    this.r.disconnect();
  }
}
