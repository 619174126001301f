/**
 * A session's commands that reach more than one shard: fan-outs to every
 * shard (DBSIZE, KEYS, FLUSHALL, INFO, SCRIPT KILL, …), multi-key commands
 * split into one sub-command per shard (MGET, MSET, DEL, …), and SCAN, which
 * walks the shards one after another with the shard index in the cursor.
 * The replies are merged by the sinks of fanout.ts.
 *
 * Handlers take the session as a SessionCore (session-core.ts); session.ts
 * and session-pubsub.ts call them.
 */

import { encodeCommand, encodeError, encodeInteger } from './resp-encode.js';
import type { RespCommand } from './resp-request.js';
import type { CommandSpec } from './commands.js';
import { E_CLUSTERDOWN, E_INVALID_CURSOR, E_NOT_INTEGER, E_TIMEOUT_NEGATIVE } from './replies.js';
import { F_ALLOK, F_MGET, F_MIN, F_SUM, Fanout, SCAN_MAX_SHARDS, SCAN_SHIFT, ScanSink, type FanoutExtra } from './fanout.js';
import { DROP, EMPTY_SCAN } from './session-tables.js';
import { K_DED, K_SHARED, M_DEDOUT, type SessionCore } from './session-core.js';

export function fanout(s: SessionCore, cmd: RespCommand, kind: number, extra?: FanoutExtra): boolean {
  const n = s.ep.shardCount;
  if (n === 0) return s.reject(E_CLUSTERDOWN);
  if (s.dedOut > 0) return false;
  const slot = s.enqueue(K_SHARED);
  s.pendingShared++;
  const f = new Fanout(slot, kind, n, s.proto, extra);
  for (let i = 0; i < n; i++) s.ep.sharedLink(i, s.proto).send(cmd.raw, cmd.rawLength, f.sink(i));
  return true;
}

/**
 * A write no client can see (clients live in db 0; SELECT is emulated) that
 * redis always replicates, FLUSHDB even of an empty database: after it, the
 * dedicated link's replication offset covers everything the shard did before.
 */
const WAIT_MARK = Buffer.concat([encodeCommand(['SELECT', '15']), encodeCommand(['FLUSHDB']), encodeCommand(['SELECT', '0'])]);

/** A redis long long as getLongLongFromObject reads it, or undefined. */
function longLong(b: Buffer): number | undefined {
  const v = b.toString('latin1');
  if (!/^-?(0|[1-9][0-9]{0,18})$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * WAIT numreplicas timeout: the smallest number of replicas that acknowledged,
 * over the shards this connection wrote to since its last WAIT (all shards
 * when it wrote nothing).
 *
 * It runs once every earlier command of the client has its reply, so its
 * writes are in each shard's replication stream. It cannot run on a shared
 * link (it would block every client of the shard until the timeout), and on
 * the client's dedicated link redis would wait for that link's own writes
 * only: so the link first makes a write of its own (WAIT_MARK), whose offset
 * is at least that of every write the shard acknowledged before, then WAITs.
 * A shard written to that is no longer in the map (failed over) answers 0:
 * whether its replicas had those writes cannot be known.
 */
export function wait(s: SessionCore, args: Buffer[]): boolean {
  const want = longLong(args[1]);
  const timeout = longLong(args[2]);
  if (want === undefined || timeout === undefined) return s.reject(E_NOT_INTEGER);
  if (timeout < 0) return s.reject(E_TIMEOUT_NEGATIVE);
  if (s.pendingShared > 0 || s.dedOut > 0) return false;
  const ep = s.ep;
  if (ep.shardCount === 0) return s.reject(E_CLUSTERDOWN);
  let targets: number[] = [];
  let gone = false;
  for (const uid of s.wrote) {
    const i = ep.shardUids.indexOf(uid);
    if (i >= 0) targets.push(i);
    else gone = true;
  }
  s.wrote.clear();
  if (gone) return s.local(encodeInteger(0));
  const marked = targets.length > 0;
  if (!marked) targets = ep.shardUids.map((_, i) => i);
  const slot = s.enqueue(K_DED);
  if (s.dedOut++ === 0) s.mode |= M_DEDOUT;
  const f = new Fanout(slot, F_MIN, targets.length, s.proto);
  const cmd = encodeCommand(['WAIT', String(want), String(timeout)]);
  targets.forEach((idx, i) => {
    const link = s.dedicatedLink(idx);
    if (marked) link.sendBuf(WAIT_MARK, DROP, 3);
    link.sendBuf(cmd, f.sink(i));
  });
  return true;
}

/** A fan-out over this client's dedicated links. */
export function fanoutDedicated(s: SessionCore, cmd: RespCommand, kind: number): boolean {
  const n = s.ep.shardCount;
  if (n === 0) return s.reject(E_CLUSTERDOWN);
  if (s.pendingShared > 0) return false;
  const slot = s.enqueue(K_DED);
  if (s.dedOut++ === 0) s.mode |= M_DEDOUT;
  const f = new Fanout(slot, kind, n, s.proto);
  for (let i = 0; i < n; i++) s.dedicatedLink(i).send(cmd.raw, cmd.rawLength, f.sink(i));
  return true;
}

/** MGET/MSET/DEL/EXISTS/UNLINK/TOUCH over several shards: one sub-command per shard. */
export function split(s: SessionCore, cmd: RespCommand, spec: CommandSpec, args: Buffer[], idx: number[]): boolean {
  if (spec.name === 'mset' && args.length % 2 === 0) return s.reject(encodeError("ERR wrong number of arguments for 'mset' command"));
  const step = spec.step;
  const groups = new Map<number, { args: Buffer[]; pos: number[] }>();
  for (let j = 0; j < idx.length; j++) {
    const k = idx[j];
    const shard = s.ep.slotShard[s.ep.keySlot(args[k])];
    if (shard < 0) return s.reject(E_CLUSTERDOWN);
    let g = groups.get(shard);
    if (g === undefined) {
      g = { args: [args[0]], pos: [] };
      groups.set(shard, g);
    }
    for (let i = 0; i < step; i++) g.args.push(args[k + i]);
    g.pos.push(j);
  }
  // All on one shard (different slots): the shard runs it whole, atomically.
  if (groups.size === 1) return s.sendShared(groups.keys().next().value!, cmd);
  if (s.dedOut > 0) return false;
  const kind = spec.name === 'mget' ? F_MGET : spec.name === 'mset' ? F_ALLOK : F_SUM;
  const positions: number[][] = [];
  const slot = s.enqueue(K_SHARED);
  s.pendingShared++;
  const f = new Fanout(slot, kind, groups.size, s.proto, { positions, total: idx.length });
  let i = 0;
  for (const [shard, g] of groups) {
    positions.push(g.pos);
    s.ep.sharedLink(shard, s.proto).sendBuf(encodeCommand(g.args), f.sink(i++));
  }
  return true;
}

export function scan(s: SessionCore, args: Buffer[]): boolean {
  const c = args[1].toString('latin1');
  if (!/^\+?[0-9]{1,20}$/.test(c)) return s.reject(E_INVALID_CURSOR);
  const cursor = BigInt(c.replace('+', ''));
  if (cursor >= 1n << 64n) return s.reject(E_INVALID_CURSOR);
  const n = s.ep.shardCount;
  if (n === 0) return s.reject(E_CLUSTERDOWN);
  if (n > SCAN_MAX_SHARDS) return s.reject(encodeError('ERR too many shards for SCAN'));
  const shard = Number(cursor & BigInt(SCAN_MAX_SHARDS - 1));
  if (shard >= n) return s.local(EMPTY_SCAN);
  if (s.dedOut > 0) return false;
  const sub = encodeCommand([args[0], (cursor >> SCAN_SHIFT).toString(), ...args.slice(2)]);
  const slot = s.enqueue(K_SHARED);
  s.pendingShared++;
  s.ep.sharedLink(shard, s.proto).sendBuf(sub, new ScanSink(slot, s.proto, shard, n));
  return true;
}
