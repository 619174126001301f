/**
 * Sinks for commands whose reply is not a single shard reply forwarded as is:
 * fan-out merges (DBSIZE, KEYS, INFO, MGET split…), transactions sent as one
 * MULTI…EXEC block, SCAN's cursor rewrite and PUBLISH's receiver count.
 * Replies are decoded only here, off the single-key hot path.
 */

import { encodeBulk, encodeError, encodeInteger } from './resp-encode.js';
import { decodeReply, type RespReply, type RespValue } from './resp-reply.js';
import { E_LINK_LOST, encodeValue, header, nullBulk, verbatim, type Proto } from './replies.js';
import type { Sink } from './shard-link.js';

/** Where a merged reply goes (a client's reply slot). */
export interface ReplyTarget {
  fill(data: Buffer | Buffer[], isErr: boolean): void;
}

export const F_SUM = 0; // integers added (DBSIZE, DEL/EXISTS/UNLINK/TOUCH split)
export const F_ALLOK = 1; // first error, else the first shard's reply (FLUSHDB, SCRIPT LOAD, MSET split)
export const F_ONEOK = 2; // any success wins (SCRIPT KILL)
export const F_MIN = 3; // WAIT
export const F_AND = 4; // SCRIPT EXISTS: element-wise
export const F_CONCAT = 5; // KEYS
export const F_MGET = 6; // MGET split: values back in key order
export const F_RANDOM = 7; // RANDOMKEY: any non-empty shard
export const F_INFO = 8; // first shard's INFO, keyspace summed
export const F_UNION = 9; // PUBSUB CHANNELS: de-duplicated union
export const F_NUMSUB = 10; // PUBSUB NUMSUB: per-channel sums, then corrected
export const F_MAX = 11; // PUBSUB NUMPAT

export interface FanoutExtra {
  /** F_MGET: for each part, the positions of its keys in the client's command. */
  positions?: number[][];
  total?: number;
  /** F_INFO: this endpoint's client count. */
  clients?: number;
  /** F_NUMSUB: turns a shard-side count into what one redis-server would say. */
  correct?: (name: Buffer, n: number) => number;
}

export class Fanout {
  private readonly parts: (RespReply | null)[];
  private left: number;

  constructor(
    private readonly target: ReplyTarget,
    private readonly kind: number,
    n: number,
    private readonly proto: Proto,
    private readonly extra: FanoutExtra = {},
  ) {
    this.parts = new Array<RespReply | null>(n).fill(null);
    this.left = n;
  }

  /** The sink for part `i` (one per shard or per sub-command). */
  sink(i: number): Sink {
    return new Part(this, i);
  }

  part(i: number, r: RespReply | null): void {
    this.parts[i] = r;
    if (--this.left === 0) this.finish();
  }

  private finish(): void {
    let out: Buffer | Buffer[];
    let isErr = false;
    try {
      const res = this.merge();
      out = res;
      isErr = res.length > 0 && (res[0] === 0x2d || res[0] === 0x21);
    } catch (e) {
      out = encodeError(`ERR proxy could not merge shard replies: ${(e as Error).message}`);
      isErr = true;
    }
    this.target.fill(out, isErr);
  }

  private merge(): Buffer {
    const parts = this.parts;
    if (this.kind === F_ONEOK) {
      let firstErr: Buffer | null = null;
      for (const p of parts) {
        if (p !== null && !p.isError) return p.rawBuffer();
        if (firstErr === null) firstErr = p === null ? E_LINK_LOST : p.rawBuffer();
      }
      return firstErr ?? E_LINK_LOST;
    }
    for (const p of parts) {
      if (p === null) return E_LINK_LOST;
      if (p.isError) return p.rawBuffer();
    }
    const rs = parts as RespReply[];
    switch (this.kind) {
      case F_ALLOK:
        return rs[0].rawBuffer();
      case F_SUM: {
        let sum = 0;
        for (const r of rs) sum += Number(decodeReply(r.raw));
        return encodeInteger(sum);
      }
      case F_MIN:
      case F_MAX: {
        let v = this.kind === F_MIN ? Infinity : -Infinity;
        for (const r of rs) {
          const n = Number(decodeReply(r.raw));
          v = this.kind === F_MIN ? Math.min(v, n) : Math.max(v, n);
        }
        return encodeInteger(Number.isFinite(v) ? v : 0);
      }
      case F_AND: {
        let acc: number[] | null = null;
        for (const r of rs) {
          const a = decodeReply(r.raw) as number[];
          acc = acc === null ? a.map(Number) : acc.map((x, i) => Math.min(x, Number(a[i])));
        }
        return Buffer.concat([header('*', acc!.length), ...acc!.map((x) => encodeInteger(x))]);
      }
      case F_CONCAT: {
        // Keep each shard's elements as sent; only the count changes.
        let n = 0;
        const bodies: Buffer[] = [];
        for (const r of rs) {
          const b = r.rawBuffer();
          const eol = b.indexOf(10);
          n += Number(b.toString('latin1', 1, eol - 1));
          bodies.push(b.subarray(eol + 1));
        }
        return Buffer.concat([header('*', n), ...bodies]);
      }
      case F_MGET: {
        const out = new Array<Buffer>(this.extra.total!);
        const pos = this.extra.positions!;
        for (let i = 0; i < rs.length; i++) {
          const vals = decodeReply(rs[i].raw) as (Buffer | null)[];
          for (let j = 0; j < pos[i].length; j++) out[pos[i][j]] = encodeValue(vals[j] ?? null, this.proto);
        }
        return Buffer.concat([header('*', out.length), ...out]);
      }
      case F_RANDOM: {
        const keys: Buffer[] = [];
        for (const r of rs) {
          const v = decodeReply(r.raw);
          if (Buffer.isBuffer(v)) keys.push(v);
        }
        if (keys.length === 0) return nullBulk(this.proto);
        return encodeBulk(keys[Math.floor(Math.random() * keys.length)]);
      }
      case F_INFO: {
        const texts = rs.map((r) => decodeReply(r.raw, { strings: true }) as string);
        const merged = mergeInfo(texts, this.extra.clients);
        return rs[0].type === 0x3d ? verbatim(3, merged) : encodeBulk(merged);
      }
      case F_UNION: {
        const seen = new Map<string, Buffer>();
        for (const r of rs) for (const v of decodeReply(r.raw) as Buffer[]) seen.set(v.toString('latin1'), v);
        return Buffer.concat([header('*', seen.size), ...[...seen.values()].map((v) => encodeBulk(v))]);
      }
      case F_NUMSUB: {
        const first = decodeReply(rs[0].raw) as RespValue[];
        const counts = new Array<number>(first.length / 2).fill(0);
        for (const r of rs) {
          const a = decodeReply(r.raw) as RespValue[];
          for (let i = 0; i < counts.length; i++) counts[i] += Number(a[2 * i + 1]);
        }
        const out: Buffer[] = [header('*', first.length)];
        for (let i = 0; i < counts.length; i++) {
          const name = first[2 * i] as Buffer;
          const n = this.extra.correct ? this.extra.correct(name, counts[i]) : counts[i];
          out.push(encodeBulk(name), encodeInteger(n));
        }
        return Buffer.concat(out);
      }
      default:
        throw new Error(`unknown merge ${this.kind}`);
    }
  }
}

class Part implements Sink {
  constructor(
    private readonly f: Fanout,
    private readonly i: number,
  ) {}
  onReply(r: RespReply | null): void {
    this.f.part(this.i, r);
  }
}

/**
 * A MULTI…EXEC block sent in one piece: the MULTI and QUEUED replies are
 * dropped (the client already got its own), EXEC's reply is forwarded.
 */
export class TxSink implements Sink {
  private left: number;
  constructor(
    private readonly target: ReplyTarget,
    private readonly replies: number,
  ) {
    this.left = replies;
  }
  /** The block is re-sent whole to the slots' new master (see ShardLink): start counting again. */
  rewind(): void {
    this.left = this.replies;
  }
  onReply(r: RespReply | null): void {
    if (--this.left > 0) return;
    if (r === null) this.target.fill(E_LINK_LOST, true);
    else this.target.fill(r.raw.length === 1 ? r.raw[0] : r.raw, r.isError);
  }
}

/** Swallows the reply of a command the proxy sends on its own (UNWATCH after DISCARD). */
export class DropSink implements Sink {
  onReply(): void {}
}

/**
 * SCAN: the client's cursor is `shardCursor << 10 | shardIndex`; when a shard
 * is finished the cursor moves to the next shard, and 0 means all are done.
 */
export class ScanSink implements Sink {
  constructor(
    private readonly target: ReplyTarget,
    private readonly proto: Proto,
    private readonly index: number,
    private readonly shards: number,
  ) {}
  onReply(r: RespReply | null): void {
    if (r === null) return this.target.fill(E_LINK_LOST, true);
    if (r.isError) return this.target.fill(r.rawBuffer(), true);
    const [cur, keys] = decodeReply(r.raw) as [Buffer, RespValue[]];
    const c = BigInt(cur.toString('latin1'));
    const next = c === 0n ? (this.index + 1 < this.shards ? BigInt(this.index + 1) : 0n) : (c << SCAN_SHIFT) | BigInt(this.index);
    this.target.fill(Buffer.concat([header('*', 2), encodeBulk(next.toString()), encodeValue(keys, this.proto)]), false);
  }
}

export const SCAN_SHIFT = 10n;
export const SCAN_MAX_SHARDS = 1 << 10;

/** PUBLISH / SPUBLISH: the shard counts our shared subscription link once; clients count each. */
export class PublishSink implements Sink {
  constructor(
    private readonly target: ReplyTarget,
    private readonly correct: (n: number) => number,
  ) {}
  onReply(r: RespReply | null): void {
    if (r === null) return this.target.fill(E_LINK_LOST, true);
    if (r.isError) return this.target.fill(r.rawBuffer(), true);
    const n = Number(decodeReply(r.raw));
    this.target.fill(encodeInteger(this.correct(n)), false);
  }
}

/**
 * INFO from several shards: the first shard's text, with the keyspace lines
 * summed over all shards and connected_clients counting this endpoint's
 * clients (the shards only see the proxy's links).
 */
export function mergeInfo(texts: string[], clients?: number): string {
  const sums = new Map<number, { keys: number; expires: number; ttl: number }>();
  for (const t of texts) {
    for (const line of t.split('\r\n')) {
      const m = /^db(\d+):keys=(\d+),expires=(\d+),avg_ttl=(\d+)/.exec(line);
      if (m === null) continue;
      const db = Number(m[1]);
      const s = sums.get(db) ?? { keys: 0, expires: 0, ttl: 0 };
      s.keys += Number(m[2]);
      s.expires += Number(m[3]);
      s.ttl = Math.max(s.ttl, Number(m[4]));
      sums.set(db, s);
    }
  }
  const out: string[] = [];
  let inKeyspace = false;
  for (const line of texts[0].split('\r\n')) {
    if (line.startsWith('# ')) {
      inKeyspace = line === '# Keyspace';
      out.push(line);
      if (inKeyspace) {
        for (const db of [...sums.keys()].sort((a, b) => a - b)) {
          const s = sums.get(db)!;
          out.push(`db${db}:keys=${s.keys},expires=${s.expires},avg_ttl=${s.ttl}`);
        }
      }
      continue;
    }
    if (inKeyspace && /^db\d+:/.test(line)) continue;
    if (clients !== undefined && line.startsWith('connected_clients:')) {
      out.push(`connected_clients:${clients}`);
      continue;
    }
    out.push(line);
  }
  return out.join('\r\n');
}
