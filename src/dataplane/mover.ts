// The resharding's key mover, run by the data-plane worker of the node that
// holds the source shard. One migration moves the keys of some slot ranges
// from a master shard to another, in steps the cluster master's controller
// asks for (control/controllers/reshard.ts):
//   start   subscribe to the source's key events (every write names its key),
//           then copy every key of the ranges (SCAN, DUMP + PEXPIRETIME →
//           RESTORE … REPLACE ABSTTL), the source still taking writes;
//   catchup copy again the keys written meanwhile ("dirty"), until few are;
//   final   (every endpoint holds the slots) a marker published on the
//           source comes back after every earlier key event, so the dirty
//           set is complete: copy it; the controller then flips ownership;
//   cleanup (after the flip) UNLINK the ranges' keys from the source, in batches.
// Keys reach a target on another node over the internode channel (TLS on 3342
// when the database's data_internode_encryption is on, 3343 otherwise), as a
// `migration` link that verify encryption lists.
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ReplyParser, decodeReply, ReplyError, type RespValue } from '../proxy/resp-reply.js';
import { encodeCommand } from '../proxy/resp-encode.js';
import { STANDARD_HASHING, regexHashing, type KeyHasher } from '../proxy/slots.js';

/** A pipelined RESP2 connection: commands answered in order; pushes (pub/sub) go to `onPush`. */
class RespConn {
  private parser = new ReplyParser();
  private waiting: { resolve: (v: RespValue) => void; reject: (e: Error) => void }[] = [];
  onPush?: (v: RespValue) => void;
  private closedWith?: Error;

  constructor(private readonly s: Duplex) {
    s.on('data', (d: Buffer) => {
      this.parser.push(d);
      for (let r = this.parser.next(); r !== null; r = this.parser.next()) {
        const v = decodeReply(r.raw);
        const w = this.onPush && Array.isArray(v) && isPush(v) ? undefined : this.waiting.shift();
        if (w) w.resolve(v);
        else this.onPush?.(v);
      }
      if (this.parser.error) s.destroy(new Error(`bad reply stream: ${this.parser.error}`));
    });
    const fail = (e?: Error) => {
      this.closedWith ??= e ?? new Error('connection closed');
      for (const w of this.waiting.splice(0)) w.reject(this.closedWith);
    };
    s.on('error', fail);
    s.on('close', () => fail());
    s.resume();
  }

  /** Send every command at once; the replies in order (errors as ReplyError values). */
  pipeline(cmds: (string | Buffer)[][]): Promise<RespValue[]> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (!cmds.length) return Promise.resolve([]);
    const out = cmds.map(() => new Promise<RespValue>((resolve, reject) => this.waiting.push({ resolve, reject })));
    this.s.write(Buffer.concat(cmds.map((c) => encodeCommand(c))));
    return Promise.all(out);
  }

  async call(...cmd: (string | Buffer)[]): Promise<RespValue> {
    const [v] = await this.pipeline([cmd]);
    if (v instanceof ReplyError) throw v;
    return v;
  }

  close(): void {
    this.s.destroy();
  }
}

const isPush = (v: RespValue[]) => {
  const k = Buffer.isBuffer(v[0]) ? v[0].toString() : v[0];
  return k === 'message' || k === 'pmessage';
};

export interface MoveSpec {
  bdbUid: number;
  source: number;
  target: number;
  ranges: [number, number][];
  shardKeyRegex?: string[];
}

export type MoveStep = 'start' | 'catchup' | 'final' | 'cleanup' | 'abort';

export interface MoveResult {
  /** Keys copied (or deleted on the target) by this step. */
  copied: number;
  /** Keys written since, still to copy. */
  dirty: number;
  /** cleanup: keys removed from the source. */
  removed?: number;
  ms: number;
}

/** Opens authenticated streams: the local source shard, and the target (a `migration` link when remote). */
export interface MoverLinks {
  open(shardUid: number, migrationFrom?: number): Promise<Duplex>;
}

const SCAN_COUNT = 1000;
/** Values above this (MEMORY USAGE, sampled) are copied in pieces. */
const BIG_KEY_BYTES = 4 * 1024 * 1024;
/** A piece: bytes of a string, or elements of a collection. */
const PIECE_BYTES = 1024 * 1024;
const PIECE_ITEMS = 5000;
const BATCH = 200;
/** Keys events are published on this channel too; the marker makes the final dirty set complete. */
const MARKER = '__tessera_reshard_marker__';

class Migration {
  src!: RespConn;
  dst!: RespConn;
  sub!: RespConn;
  dirty = new Map<string, Buffer>();
  private markers = new Map<string, () => void>();
  readonly hash: KeyHasher;

  constructor(
    readonly spec: MoveSpec,
    private readonly log: Logger,
  ) {
    this.hash = spec.shardKeyRegex ? regexHashing(spec.shardKeyRegex) : STANDARD_HASHING;
  }

  inRanges(key: Buffer): boolean {
    const slot = this.hash.keySlot(key);
    return this.spec.ranges.some(([a, b]) => slot >= a && slot <= b);
  }

  async open(links: MoverLinks): Promise<void> {
    this.src = new RespConn(await links.open(this.spec.source));
    this.sub = new RespConn(await links.open(this.spec.source));
    this.dst = new RespConn(await links.open(this.spec.target, this.spec.source));
    this.sub.onPush = (v) => {
      if (!Array.isArray(v) || v.length < 3) return;
      const kind = String(v[0]);
      if (kind === 'message' && String(v[1]) === MARKER) {
        const id = String(v[2]);
        this.markers.get(id)?.();
        this.markers.delete(id);
      } else if (kind === 'pmessage' && Buffer.isBuffer(v[3])) {
        const key = v[3];
        if (this.inRanges(key)) this.dirty.set(key.toString('latin1'), key);
      }
    };
    // Key events (E) for every kind of change (A): written, deleted, expired, evicted.
    await this.src.call('CONFIG', 'SET', 'notify-keyspace-events', 'EA');
    await this.sub.pipeline([
      ['PSUBSCRIBE', '__keyevent@0__:*'],
      ['SUBSCRIBE', MARKER],
    ]);
  }

  /** Copy `keys` from the source to the target: a key gone from the source is deleted there. */
  async copy(keys: Buffer[]): Promise<number> {
    for (let i = 0; i < keys.length; i += BATCH) {
      const part = keys.slice(i, i + BATCH);
      // The size first: a big value is copied in pieces, never DUMPed whole (that would block both shards).
      const sizes = await this.src.pipeline(part.map((k) => ['MEMORY', 'USAGE', k, 'SAMPLES', '5']));
      const small = part.filter((_, j) => !(typeof sizes[j] === 'number' && (sizes[j] as number) > BIG_KEY_BYTES));
      for (const [j, k] of part.entries()) if (!small.includes(k)) await this.copyInPieces(k, sizes[j] as number);
      const got = await this.src.pipeline(small.flatMap((k) => [['PEXPIRETIME', k] as (string | Buffer)[], ['DUMP', k]]));
      const cmds: (string | Buffer)[][] = [];
      small.forEach((k, j) => {
        const at = got[2 * j];
        const dump = got[2 * j + 1];
        if (at instanceof ReplyError) throw at;
        if (dump instanceof ReplyError) throw dump;
        if (dump === null) cmds.push(['UNLINK', k]);
        else cmds.push(['RESTORE', k, String(typeof at === 'number' && at > 0 ? at : 0), dump as Buffer, 'REPLACE', 'ABSTTL']);
      });
      const res = await this.dst.pipeline(cmds);
      const bad = res.find((r) => r instanceof ReplyError);
      if (bad) throw bad as ReplyError;
    }
    return keys.length;
  }

  /**
   * A big value, a piece at a time into a temporary key on the target, renamed
   * over the key at the end (the old copy, if any, freed in the background):
   * neither shard runs one long command. A write to the key meanwhile marks
   * it dirty, so it is copied again.
   */
  private async copyInPieces(k: Buffer, bytes: number): Promise<void> {
    const t0 = performance.now();
    const tmp = Buffer.concat([Buffer.from('__tessera_reshard_tmp__:'), k]);
    await this.dst.call('UNLINK', tmp);
    const type = String(await this.src.call('TYPE', k));
    const scan = async (cmd: string, put: (items: Buffer[]) => (string | Buffer)[]) => {
      let cursor = '0';
      do {
        const [next, items] = (await this.src.call(cmd, k, cursor, 'COUNT', String(PIECE_ITEMS))) as [Buffer, Buffer[]];
        cursor = next.toString();
        if (items.length) await this.dst.call(...put(items));
      } while (cursor !== '0');
    };
    if (type === 'string') {
      const len = (await this.src.call('STRLEN', k)) as number;
      for (let off = 0; off < len; off += PIECE_BYTES)
        await this.dst.call('APPEND', tmp, (await this.src.call('GETRANGE', k, String(off), String(off + PIECE_BYTES - 1))) as Buffer);
    } else if (type === 'hash') await scan('HSCAN', (items) => ['HSET', tmp, ...items]);
    else if (type === 'set') await scan('SSCAN', (items) => ['SADD', tmp, ...items]);
    else if (type === 'zset')
      await scan('ZSCAN', (items) => {
        const args: Buffer[] = [];
        for (let i = 0; i < items.length; i += 2) args.push(items[i + 1], items[i]);
        return ['ZADD', tmp, ...args];
      });
    else if (type === 'list') {
      const len = (await this.src.call('LLEN', k)) as number;
      for (let i = 0; i < len; i += PIECE_ITEMS)
        await this.dst.call('RPUSH', tmp, ...((await this.src.call('LRANGE', k, String(i), String(i + PIECE_ITEMS - 1))) as Buffer[]));
    } else if (type === 'none') {
      await this.dst.call('UNLINK', k);
      return;
    } else {
      // A stream or a module type: no piecewise copy; DUMP it (it blocks for as long as it takes).
      const [at, dump] = await this.src.pipeline([
        ['PEXPIRETIME', k],
        ['DUMP', k],
      ]);
      if (dump !== null)
        await this.dst.call('RESTORE', k, String(typeof at === 'number' && at > 0 ? at : 0), dump as Buffer, 'REPLACE', 'ABSTTL');
      return;
    }
    const at = await this.src.call('PEXPIRETIME', k);
    await this.dst.pipeline([
      ['UNLINK', k],
      ['RENAME', tmp, k],
      ...(typeof at === 'number' && at > 0 ? [['PEXPIREAT', k, String(at)]] : []),
    ]);
    this.log.info({ key: k.subarray(0, 64).toString(), type, bytes, ms: Math.round(performance.now() - t0) }, 'big key copied in pieces');
  }

  /** Every key of the ranges on the source, a SCAN page at a time. */
  async scanEach(fn: (keys: Buffer[]) => Promise<void>): Promise<void> {
    let cursor = '0';
    do {
      const r = (await this.src.call('SCAN', cursor, 'COUNT', String(SCAN_COUNT))) as [Buffer, Buffer[]];
      cursor = r[0].toString();
      const keys = r[1].filter((k) => this.inRanges(k));
      if (keys.length) await fn(keys);
    } while (cursor !== '0');
  }

  async copyDirty(): Promise<number> {
    const keys = [...this.dirty.values()];
    this.dirty.clear();
    return this.copy(keys);
  }

  /** Every key event of a write the source ran before now has been seen. */
  async drainEvents(): Promise<void> {
    const id = `${process.hrtime.bigint()}`;
    const seen = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('key events did not come back within 2 s')), 2000);
      this.markers.set(id, () => {
        clearTimeout(t);
        resolve();
      });
    });
    await this.src.call('PUBLISH', MARKER, id);
    await seen;
  }

  close(): void {
    this.src?.close();
    this.dst?.close();
    this.sub?.close();
  }
}

/** The migrations this node's worker runs, by source, target and ranges. */
export class Mover {
  private migrations = new Map<string, Migration>();

  constructor(
    private readonly links: MoverLinks,
    private readonly log: Logger,
  ) {}

  private keyOf(s: MoveSpec): string {
    return `${s.bdbUid}:${s.source}>${s.target}:${JSON.stringify(s.ranges)}`;
  }

  async step(spec: MoveSpec, step: MoveStep): Promise<MoveResult> {
    const t0 = performance.now();
    const key = this.keyOf(spec);
    const done = (copied: number, dirty: number, extra: Partial<MoveResult> = {}): MoveResult => ({
      copied,
      dirty,
      ms: Math.round(performance.now() - t0),
      ...extra,
    });
    if (step === 'cleanup') return done(0, 0, { removed: await this.cleanup(spec) });
    let m = this.migrations.get(key);
    if (step === 'abort') {
      m?.close();
      this.migrations.delete(key);
      return done(0, 0);
    }
    if (step === 'start') {
      // A new master starts the chunk over (the copy is idempotent).
      m?.close();
      m = new Migration(spec, this.log);
      this.migrations.set(key, m);
      try {
        await m.open(this.links);
        let copied = 0;
        await m.scanEach(async (keys) => {
          copied += await m!.copy(keys);
        });
        return done(copied, m.dirty.size);
      } catch (e) {
        m.close();
        this.migrations.delete(key);
        throw e;
      }
    }
    if (!m) throw new Error(`no migration of slots ${JSON.stringify(spec.ranges)} from shard ${spec.source} is under way here`);
    if (step === 'catchup') {
      const copied = await m.copyDirty();
      return done(copied, m.dirty.size);
    }
    // final: the endpoints hold the slots; nothing more will be written to them here.
    try {
      await m.drainEvents();
      const copied = await m.copyDirty();
      return done(copied, 0);
    } finally {
      m.close();
      this.migrations.delete(key);
      // The last migration from this source turns key events off again.
      if (![...this.migrations.values()].some((x) => x.spec.source === spec.source)) {
        // Left on, it only costs the source a little per write: logged, not failed.
        await this.links
          .open(spec.source)
          .then(async (s) => {
            const c = new RespConn(s);
            await c.call('CONFIG', 'SET', 'notify-keyspace-events', '').finally(() => c.close());
          })
          .catch((e) => this.log.warn({ shard: spec.source, err: (e as Error).message }, 'cannot turn key events off'));
      }
    }
  }

  /** Remove the ranges' keys from the source (they live on the target now), a batch at a time. */
  private async cleanup(spec: MoveSpec): Promise<number> {
    const m = new Migration(spec, this.log);
    m.src = new RespConn(await this.links.open(spec.source));
    let removed = 0;
    try {
      await m.scanEach(async (keys) => {
        for (let i = 0; i < keys.length; i += BATCH) {
          await m.src.call('UNLINK', ...keys.slice(i, i + BATCH));
          removed += Math.min(BATCH, keys.length - i);
        }
      });
    } finally {
      m.src.close();
    }
    return removed;
  }

  close(): void {
    for (const m of this.migrations.values()) m.close();
    this.migrations.clear();
  }
}
