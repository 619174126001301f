// A local, always-current copy of one key prefix: load at a revision, then
// watch from the next one, so no change is missed or applied out of order.
import { EventEmitter } from 'node:events';
import type { Etcd3, Watcher } from 'etcd3';
import type { TSchema } from '@sinclair/typebox';
import { parseRecord } from './records.js';

/**
 * Emits 'change' (id) when an item is put or deleted, and 'malformed'
 * (MalformedRecordError) when a stored value is not JSON or does not match the
 * schema: such a value is left out (the item keeps its previous value) rather
 * than crashing the daemon, and its owner can log the event.
 */
export class PrefixCache<T> extends EventEmitter {
  readonly items = new Map<string, T>();
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
    try {
      return this.schema ? (parseRecord(key, raw, this.schema) as T) : (JSON.parse(raw) as T);
    } catch (err) {
      this.emit('malformed', err);
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
      if (v === undefined) return;
      const id = key.slice(this.prefix.length);
      this.items.set(id, v);
      this.emit('change', id);
    });
    this.watcher.on('delete', (kv) => {
      const id = kv.key.toString().slice(this.prefix.length);
      this.items.delete(id);
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
