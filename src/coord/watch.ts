// A local, always-current copy of one key prefix: load at a revision, then
// watch from the next one, so no change is missed or applied out of order.
import { EventEmitter } from 'node:events';
import { Etcd3, Watcher } from 'etcd3';

export class PrefixCache<T> extends EventEmitter {
  readonly items = new Map<string, T>();
  private watcher?: Watcher;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
  ) {
    super();
  }

  async start(): Promise<void> {
    const res = await this.client.getAll().prefix(this.prefix).exec();
    for (const kv of res.kvs) this.items.set(kv.key.toString().slice(this.prefix.length), JSON.parse(kv.value.toString()) as T);
    const rev = BigInt(res.header.revision) + 1n;
    this.watcher = await this.client.watch().prefix(this.prefix).startRevision(rev.toString()).create();
    this.watcher.on('put', (kv) => {
      const id = kv.key.toString().slice(this.prefix.length);
      try {
        this.items.set(id, JSON.parse(kv.value.toString()) as T);
        this.emit('change', id);
      } catch {
        /* a malformed value is ignored rather than crashing the daemon */
      }
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
