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

import { encodeCommand, encodeError } from './resp-encode.js';
import type { RespCommand } from './resp-request.js';
import type { CommandSpec } from './commands.js';
import { keySlot } from './slots.js';
import { E_CLUSTERDOWN, E_INVALID_CURSOR } from './replies.js';
import { F_ALLOK, F_MGET, F_SUM, Fanout, SCAN_MAX_SHARDS, SCAN_SHIFT, ScanSink, type FanoutExtra } from './fanout.js';
import { EMPTY_SCAN } from './session-tables.js';
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
    const shard = s.ep.slotShard[keySlot(args[k])];
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
