// Read-modify-write of one key with compare-and-swap on its mod revision,
// retried on conflict: the one way records are changed in place.
import { Etcd3 } from 'etcd3';

/**
 * Apply `fn` to the key's current JSON value (undefined when absent) and
 * store what it returns; returning undefined leaves the key as it is. Resolves
 * with the stored value, or with the current one when `fn` declined.
 */
export async function casUpdate<T>(c: Etcd3, key: string, fn: (cur: T | undefined) => T | undefined, attempts = 50): Promise<T | undefined> {
  for (let i = 0; i < attempts; i++) {
    const res = await c.get(key).exec();
    const kv = res.kvs[0];
    const cur = kv ? (JSON.parse(kv.value.toString()) as T) : undefined;
    const next = fn(cur);
    if (next === undefined) return cur;
    const txn = kv ? c.if(key, 'Mod', '==', kv.mod_revision) : c.if(key, 'Create', '==', 0);
    const r = await txn.then(c.put(key).value(JSON.stringify(next))).commit();
    if (r.succeeded) return next;
  }
  throw new Error(`${key} kept changing under this update; try again`);
}
