// The uid sequences of the cluster store (coord/store.ts `store.seqs`): the
// last uid handed out of each kind, taken atomically, or read to create a
// record against without burning a uid when it is refused.
import type { Etcd3 } from 'etcd3';
import { KEYS, SeqValue } from './schema.js';
import { readRecord, updateRecord } from './records.js';

/** The uid sequences: the last uid handed out of each kind. */
const SEQS = {
  node: KEYS.nodeSeq,
  user: KEYS.userSeq,
  bdb: KEYS.bdbSeq,
  shard: KEYS.shardSeq,
  action: KEYS.actionSeq,
} as const;
export type SeqName = keyof typeof SEQS;

/** What a sequence read returned, to commit against (`Seqs.read`, `BdbStore.createWithAction`). */
export type SeqSnapshot = ReadonlyMap<SeqName, number>;

/** Take the next `count` uids of a sequence key atomically; resolves with the first. */
export async function nextSeqAt(c: Etcd3, key: string, count: number): Promise<number> {
  const last = (await updateRecord(c, key, SeqValue, (cur) => (cur ?? 0) + count))!;
  return last - count + 1;
}

/**
 * Several uid sequences read at once (by key), and a transaction that takes
 * the next uids of each only if none moved since, and creates the given keys
 * only if they are absent: the way to create a record that must not burn a
 * uid when it is refused (`Seqs.read`, `BdbStore.createWithAction`).
 */
async function readSeqsAt(c: Etcd3, keys: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const k of keys) out.set(k, (await readRecord(c, k, SeqValue)) ?? 0);
  return out;
}

/** See `readSeqsAt`. False: a sequence moved or a key exists; validate again. */
async function commitWithSeqsAt(
  c: Etcd3,
  seen: ReadonlyMap<string, number>,
  bump: ReadonlyMap<string, number>,
  puts: [string, string][],
): Promise<boolean> {
  let txn: ReturnType<Etcd3['if']> | undefined;
  for (const [k, v] of seen) {
    const [col, cmp, val] = v === 0 ? (['Create', '==', 0] as const) : (['Value', '==', JSON.stringify(v)] as const);
    txn = txn ? txn.and(k, col, cmp, val) : c.if(k, col, cmp, val);
  }
  for (const [k] of puts) txn = txn!.and(k, 'Create', '==', 0);
  const ops = [...[...bump].map(([k, n]) => c.put(k).value(JSON.stringify(seen.get(k)! + n))), ...puts.map(([k, v]) => c.put(k).value(v))];
  const r = await txn!.then(...ops).commit();
  return r.succeeded;
}

export class Seqs {
  constructor(private readonly c: Etcd3) {}

  /** Take the next `count` uids of a sequence; resolves with the first. */
  next(name: SeqName, count = 1): Promise<number> {
    return nextSeqAt(this.c, SEQS[name], count);
  }

  /** The last uid handed out of each sequence (0: none yet), to create against without burning uids. */
  async read(...names: SeqName[]): Promise<SeqSnapshot> {
    const byKey = await readSeqsAt(
      this.c,
      names.map((n) => SEQS[n]),
    );
    return new Map(names.map((n) => [n, byKey.get(SEQS[n])!]));
  }
}

const keyedSeqs = (m: ReadonlyMap<SeqName, number>) => new Map([...m].map(([n, v]) => [SEQS[n] as string, v]));

/**
 * Take `bump` uids of each sequence and create the given keys (absent ones
 * only), if no sequence moved since `seen` was read (`Seqs.read`). False:
 * something moved or exists; validate again.
 */
export function commitWithSeqs(
  c: Etcd3,
  seen: SeqSnapshot,
  bump: ReadonlyMap<SeqName, number>,
  puts: [string, string][],
): Promise<boolean> {
  return commitWithSeqsAt(c, keyedSeqs(seen), keyedSeqs(bump), puts);
}
