// A local, always-current copy of one key prefix: load at a revision, then
// watch from the next one, so no change is missed or applied out of order.
// When the store has compacted past the watch's revision (a watch that was
// away long enough: a partition, a paused process), etcd cancels it; the
// cache then lists again at a fresh revision, reports what changed meanwhile
// and watches from there.
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { TSchema } from '@sinclair/typebox';
import { parseRecord } from './records.js';

/** What a 'watchError' says besides the error: the cache lists the prefix again; the how-many-th failed attempt to. */
export interface WatchErrorInfo {
  relisting: boolean;
  attempt?: number;
}

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

/** Delays between attempts to list again after a cancelled watch; the last repeats. */
const RELIST_DELAYS_MS = [0, 200, 500, 1000, 2000];

/**
 * Emits 'change' (id) when an item is put or deleted, and 'malformed'
 * (MalformedRecordError) when a stored value is not JSON or does not match the
 * schema (an enum value a newer version added, say). Such a record is not
 * understood: it is listed in `notUnderstood` with its stored value and why,
 * until it is rewritten readably or deleted, while `items` keeps the last
 * value this node could read, if any (so what ran on it keeps running, and
 * nothing acts on what it cannot read); 'malformed' is emitted once per
 * record and problem, so its owner logs why once. Fields a schema does not
 * list are kept in the items as they are. Emits
 * 'watchError' (Error, { relisting: true }) when the watch breaks or etcd
 * cancels it (its revision compacted): the cache then lists the prefix again,
 * emits 'change' for every id that changed or vanished meanwhile, and watches
 * from the new revision; with no listener it is written to stderr.
 */
export class PrefixCache<T> extends EventEmitter {
  readonly items = new Map<string, T>();
  /** Records present in the store that this node cannot read, by id: their stored value (parsed when it is JSON) and why. */
  readonly notUnderstood = new Map<string, NotUnderstood>();
  private watcher?: Watcher;
  /** Item id → mod revision of the value held, to tell on a relist what changed. */
  private readonly modRevs = new Map<string, string>();
  private synced = false;
  private stopped = false;
  private relisting?: Promise<void>;

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

  /**
   * Load the prefix and watch it; rejects when the store cannot be listed. A
   * watch that cannot be set up after the list is retried in the background
   * (the cache is loaded, `hasSynced()` false until it is live).
   */
  async start(): Promise<void> {
    this.stopped = false;
    const rev = await this.list(false);
    try {
      await this.watchFrom(rev);
    } catch (err) {
      this.report(err as Error, { relisting: true });
      this.relisting ??= this.relist().finally(() => {
        this.relisting = undefined;
      });
    }
  }

  /** True once the prefix is loaded and its watch is live; false while the watch is cut or the cache lists again. */
  hasSynced(): boolean {
    return this.synced;
  }

  values(): T[] {
    return [...this.items.values()];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.synced = false;
    const w = this.watcher;
    this.watcher = undefined;
    // Best effort: a watch that cannot be cancelled ends with its etcd client, which the owner closes next.
    await w?.cancel().catch(() => undefined);
  }

  /** Take the items as stored now (with `report`, a 'change' for every id that differs from what the cache held); resolves with the revision to watch from. */
  private async list(report: boolean): Promise<string> {
    const res = await this.client.getAll().prefix(this.prefix).exec();
    const seen = new Set<string>();
    for (const kv of res.kvs) {
      const id = kv.key.toString().slice(this.prefix.length);
      seen.add(id);
      if (this.modRevs.get(id) === kv.mod_revision) continue;
      if (this.apply(kv) && report) this.emit('change', id);
    }
    for (const id of [...this.modRevs.keys()]) {
      if (seen.has(id)) continue;
      this.modRevs.delete(id);
      this.notUnderstood.delete(id);
      if (this.items.delete(id) && report) this.emit('change', id);
    }
    return (BigInt(res.header.revision) + 1n).toString();
  }

  /** Take a put; false when its value is malformed (the item keeps its previous value). */
  private apply(kv: IKeyValue): boolean {
    const key = kv.key.toString();
    const id = key.slice(this.prefix.length);
    this.modRevs.set(id, kv.mod_revision);
    const v = this.decode(key, kv.value.toString());
    if (v === undefined) return false;
    this.items.set(id, v);
    return true;
  }

  private async watchFrom(rev: string): Promise<void> {
    // Handlers go on before the watch is sent, so nothing it delivers is missed.
    const w = this.client.watch().prefix(this.prefix).startRevision(rev).watcher();
    this.watcher = w;
    w.on('put', (kv) => {
      if (this.watcher === w && this.apply(kv)) this.emit('change', kv.key.toString().slice(this.prefix.length));
    });
    w.on('delete', (kv) => {
      if (this.watcher !== w) return;
      const id = kv.key.toString().slice(this.prefix.length);
      this.modRevs.delete(id);
      this.items.delete(id);
      this.notUnderstood.delete(id);
      this.emit('change', id);
    });
    let live = false;
    await new Promise<void>((resolve, reject) => {
      w.once('connected', () => {
        live = true;
        if (this.watcher === w && !this.stopped) this.synced = true;
        resolve();
      });
      // 'disconnected': the stream broke (etcd3 would re-create the watch from
      // the revision of its creation reply, skipping what it had not delivered
      // yet); 'error': etcd cancelled it (its revision compacted). Either way
      // the watch is dropped and the prefix listed again.
      const lost = (err: Error, broken: boolean) => {
        releaseAttachQueue(w);
        // A cancelled watch is off the client already; a broken one is detached (no request is sent on a broken stream).
        if (broken) void w.cancel().catch(() => undefined);
        if (live) return this.lost(w, err);
        // Refused or cut as it was created: the caller (start, relist) reports it.
        if (this.watcher === w) this.watcher = undefined;
        reject(err);
      };
      w.on('disconnected', (err: Error) => lost(err, true));
      w.on('error', (err: Error) => lost(err, false));
    });
    // Stopped while the watch was being created: stop() saw no watcher to cancel.
    if (this.stopped) await this.stop();
  }

  /** The live watch broke or was cancelled: drop it, list the prefix again at a fresh revision and watch from there. */
  private lost(w: Watcher, err: Error): void {
    if (this.watcher !== w || this.stopped) return;
    this.watcher = undefined;
    this.synced = false;
    this.report(err, { relisting: true });
    this.relisting ??= this.relist().finally(() => {
      this.relisting = undefined;
    });
  }

  /** To the owner ('watchError'), or to stderr when it listens for none: never dropped. */
  private report(err: Error, info: WatchErrorInfo): void {
    if (this.listenerCount('watchError') > 0) this.emit('watchError', err, info);
    else
      process.emitWarning(`watch of ${this.prefix}: ${err.message}; listing it again${info.attempt ? ` (attempt ${info.attempt})` : ''}`);
  }

  private async relist(): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      await sleep(RELIST_DELAYS_MS[Math.min(i, RELIST_DELAYS_MS.length - 1)]);
      if (this.stopped) return;
      try {
        const rev = await this.list(true);
        if (this.stopped) return;
        await this.watchFrom(rev);
        return;
      } catch (err) {
        // Store away, or the fresh watch refused: tried again after a delay; reported on the first failure and every 20th.
        if (i % 20 === 0) this.report(err as Error, { relisting: true, attempt: i + 1 });
      }
    }
  }
}

/**
 * etcd3 1.1.2: a watch that etcd cancels as it creates it (its start revision
 * compacted) stays at the head of the client's attach queue, and every watch
 * queued after it on the same client (all of them, after a reconnect) waits
 * forever. Take it off and send the next.
 */
function releaseAttachQueue(w: Watcher): void {
  type Queue = { queue: Watcher[]; readQueue(): void };
  const q = (w as unknown as { manager?: { queue?: Queue } }).manager?.queue;
  if (q?.queue[0] !== w) return;
  q.queue.shift();
  q.readQueue();
}
