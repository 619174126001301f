// Read-modify-write of one key with compare-and-swap on its mod revision,
// retried on conflict: the one way records are changed in place. Records are
// changed through `updateRecord` (coord/records.ts), which checks the current
// value against the record's schema.
import type { Etcd3 } from 'etcd3';

/**
 * Apply `fn` to the key's current value (decoded from its stored text by
 * `decode`; undefined when absent) and store what it returns as JSON;
 * returning undefined leaves the key as it is. Resolves with the stored
 * value, or with the current one when `fn` declined.
 */
export async function casUpdateWith<T>(
  c: Etcd3,
  key: string,
  decode: (raw: string) => T,
  fn: (cur: T | undefined) => T | undefined,
  attempts = 50,
): Promise<T | undefined> {
  for (let i = 0; i < attempts; i++) {
    const res = await c.get(key).exec();
    const kv = res.kvs[0];
    const cur = kv ? decode(kv.value.toString()) : undefined;
    const next = fn(cur);
    if (next === undefined) return cur;
    const txn = kv ? c.if(key, 'Mod', '==', kv.mod_revision) : c.if(key, 'Create', '==', 0);
    const r = await txn.then(c.put(key).value(JSON.stringify(next))).commit();
    if (r.succeeded) return next;
  }
  throw new Error(`${key} kept changing under this update; try again`);
}
