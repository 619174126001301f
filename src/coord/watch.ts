// A local, always-current copy of one key prefix: load at a revision, then
// watch from the next one, so no change is missed or applied out of order.
import { EventEmitter } from 'node:events';
import type { Etcd3, Watcher } from 'etcd3';
import type { TSchema } from '@sinclair/typebox';
import { parseRecord } from './records.js';

/** A stored record this node could not read. */
export interface NotUnderstood {
  /** The stored value: parsed JSON, or the text when it is not JSON. */
  value: unknown;
  problem: string;
}

function jsonOrText(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw; // not JSON: kept as the text, and `problem` says so
  }
}

/**
 * Emits 'change' (id) when an item is put or deleted, and 'malformed'
 * (MalformedRecordError) when a stored value is not JSON or does not match the
 * schema (an enum value a newer version added, say). Such a record is not
 * understood: it is listed in `notUnderstood` with its stored value and why,
 * until it is rewritten readably or deleted, while `items` keeps the last
 * value this node could read, if any (so what ran on it keeps running, and
 * nothing acts on what it cannot read); 'malformed' is emitted once per
 * record and problem, so its owner logs why once. Fields a schema does not
 * list are kept in the items as they are.
 */
export class PrefixCache<T> extends EventEmitter {
  readonly items = new Map<string, T>();
  /** Records present in the store that this node cannot read, by id: their stored value (parsed when it is JSON) and why. */
  readonly notUnderstood = new Map<string, NotUnderstood>();
  private watcher?: Watcher;

  /**
   * With a schema (`new PrefixCache(client, KEYS.observedPrefix, ObservedRecord)`)
   * every value is checked against it and T is the schema's type. Without one
   * values are taken to be a `T` unchecked; that form is deprecated.
   */
  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly schema?: TSchema & { static: T },
  ) {
    super();
  }

  private decode(key: string, raw: string): T | undefined {
    const id = key.slice(this.prefix.length);
    try {
      const v = this.schema ? (parseRecord(key, raw, this.schema) as T) : (JSON.parse(raw) as T);
      this.notUnderstood.delete(id);
      return v;
    } catch (err) {
      const problem = (err as Error).message;
      const known = this.notUnderstood.get(id);
      this.notUnderstood.set(id, { value: jsonOrText(raw), problem });
      // Logged once: the same record with the same problem is not reported again on each rewrite.
      if (known?.problem !== problem) this.emit('malformed', err);
      return undefined;
    }
  }

  async start(): Promise<void> {
    const res = await this.client.getAll().prefix(this.prefix).exec();
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      const v = this.decode(key, kv.value.toString());
      if (v !== undefined) this.items.set(key.slice(this.prefix.length), v);
    }
    const rev = BigInt(res.header.revision) + 1n;
    this.watcher = await this.client.watch().prefix(this.prefix).startRevision(rev.toString()).create();
    this.watcher.on('put', (kv) => {
      const key = kv.key.toString();
      const v = this.decode(key, kv.value.toString());
      // Not understood: no 'change', since the item is as it was (an owner must not take it for gone).
      if (v === undefined) return;
      const id = key.slice(this.prefix.length);
      this.items.set(id, v);
      this.emit('change', id);
    });
    this.watcher.on('delete', (kv) => {
      const id = kv.key.toString().slice(this.prefix.length);
      this.items.delete(id);
      this.notUnderstood.delete(id);
      this.emit('change', id);
    });
    this.watcher.on('error', () => {
      /* the client reconnects the watch by itself */
    });
  }

  values(): T[] {
    return [...this.items.values()];
  }

  async stop(): Promise<void> {
    // Best effort: a watch that cannot be cancelled ends with its etcd client, which the owner closes next.
    await this.watcher?.cancel().catch(() => undefined);
  }
}
