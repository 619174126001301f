/**
 * A session's transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH and the
 * commands queued in between.
 *
 * Without WATCH, the queued commands go to the shard of their keys as one
 * MULTI…EXEC block on the shared link, so no other client's command lands
 * in the middle. WATCH needs a connection of the client's own: it "pins" a
 * dedicated link to the watched keys' shard, and EXEC runs on that link.
 *
 * Handlers take the session as a SessionCore (session-core.ts); session.ts
 * dispatches to them.
 */

import type { RespCommand } from './resp-request.js';
import { P_CONNECTION, P_FANOUT, keyIndexes, type CommandSpec } from './commands.js';
import { keySlot } from './slots.js';
import {
  E_CLUSTERDOWN,
  E_CROSSSLOT,
  E_DISCARD_NO_MULTI,
  E_EXECABORT,
  E_EXEC_NO_MULTI,
  E_MULTI_NESTED,
  E_NOT_IN_MULTI,
  E_WATCH_IN_MULTI,
  R_OK,
  R_QUEUED,
  nullArray,
} from './replies.js';
import { TxSink } from './fanout.js';
import { DROP, EMPTY_ARRAY, EXEC_RAW, MULTI_RAW, SUBSCRIBE_FAMILY, UNWATCH_RAW } from './session-tables.js';
import { K_DED, K_SHARED, M_DEDOUT, M_MULTI, M_PIN, type SessionCore } from './session-core.js';

export function startMulti(s: SessionCore): boolean {
  if (s.multi !== null) return s.local(E_MULTI_NESTED, true);
  s.multi = { parts: [], count: 0, slot: -1, dirty: false };
  s.mode |= M_MULTI;
  return s.local(R_OK);
}

export function queueTx(s: SessionCore, cmd: RespCommand, spec: CommandSpec, args: Buffer[]): boolean {
  const tx = s.multi!;
  const name = cmd.name;
  // Connection state and fan-outs cannot run inside one shard's transaction.
  if (
    (spec.proxy & P_CONNECTION) !== 0 ||
    SUBSCRIBE_FAMILY.has(name) ||
    name === 'scan' ||
    name === 'keys' ||
    name === 'dbsize' ||
    name === 'randomkey' ||
    name === 'info'
  ) {
    return s.reject(E_NOT_IN_MULTI);
  }
  const idx = name === 'publish' ? [1] : keyIndexes(spec, args);
  if (idx.length === 0 && (spec.proxy & P_FANOUT) !== 0) return s.reject(E_NOT_IN_MULTI);
  if (idx.length > 0) {
    // A channel lives on the shard of its standard slot (pubsub.ts); keys follow the database's hashing.
    const ks = name === 'publish' ? keySlot : (k: Buffer) => s.ep.keySlot(k);
    const slot = ks(args[idx[0]]);
    for (let i = 1; i < idx.length; i++) if (ks(args[idx[i]]) !== slot) return s.reject(E_CROSSSLOT);
    if (tx.slot >= 0 && tx.slot !== slot) return s.reject(E_CROSSSLOT);
    const shard = s.ep.slotShard[slot];
    if (shard < 0) return s.reject(E_CLUSTERDOWN);
    if (s.pin !== null && s.pin.shardUid !== s.ep.shardUids[shard]) return s.reject(E_CROSSSLOT);
    tx.slot = slot;
  }
  for (const b of cmd.raw) tx.parts.push(b);
  tx.count++;
  return s.local(R_QUEUED);
}

export function exec(s: SessionCore): boolean {
  const tx = s.multi;
  if (tx === null) return s.local(E_EXEC_NO_MULTI, true);
  const runs = !tx.dirty && !s.watchBroken;
  if (runs && (s.pin !== null ? s.pendingShared > 0 : s.dedOut > 0)) return false;
  s.multi = null;
  s.mode &= ~M_MULTI;
  if (tx.dirty) {
    unwatchQuietly(s);
    return s.local(E_EXECABORT, true);
  }
  if (s.watchBroken) {
    // The connection holding the WATCH died: report an aborted EXEC, the
    // answer redis gives when a watched key changed.
    s.watchBroken = false;
    unwatchQuietly(s);
    return s.local(nullArray(s.proto));
  }
  if (tx.count === 0 && s.pin === null) return s.local(EMPTY_ARRAY);
  const block = Buffer.concat([MULTI_RAW, ...tx.parts, EXEC_RAW]);
  const n = tx.count + 2;
  if (s.pin !== null) {
    const link = s.pin;
    const slot = s.enqueue(K_DED);
    if (s.dedOut++ === 0) s.mode |= M_DEDOUT;
    link.sendBuf(block, new TxSink(slot, n), n);
    unpin(s);
    return true;
  }
  let shard = 0;
  if (tx.slot >= 0) shard = s.ep.slotShard[tx.slot];
  if (shard < 0 || s.ep.shardCount === 0) return s.local(E_CLUSTERDOWN, true);
  const slot = s.enqueue(K_SHARED);
  s.pendingShared++;
  s.ep.sharedLink(shard, s.proto).sendBuf(block, new TxSink(slot, n), n);
  return true;
}

export function discard(s: SessionCore): boolean {
  if (s.multi === null) return s.local(E_DISCARD_NO_MULTI, true);
  s.multi = null;
  s.mode &= ~M_MULTI;
  s.watchBroken = false;
  unwatchQuietly(s);
  return s.local(R_OK);
}

export function watch(s: SessionCore, cmd: RespCommand, spec: CommandSpec, args: Buffer[]): boolean {
  if (s.multi !== null) return s.local(E_WATCH_IN_MULTI, true);
  const idx = keyIndexes(spec, args);
  const slot = s.ep.keySlot(args[idx[0]]);
  for (let i = 1; i < idx.length; i++) if (s.ep.keySlot(args[idx[i]]) !== slot) return s.reject(E_CROSSSLOT);
  const shard = s.ep.slotShard[slot];
  if (shard < 0) return s.reject(E_CLUSTERDOWN);
  const uid = s.ep.shardUids[shard];
  // All watched keys must live on one shard: the one EXEC will run on.
  if (s.pin !== null && s.pin.shardUid !== uid) return s.reject(E_CROSSSLOT);
  if (s.watchBroken) return s.local(R_OK);
  if (s.pendingShared > 0) return false;
  const link = s.pin ?? s.dedicatedLink(shard);
  link.pinned = true;
  s.pin = link;
  s.mode |= M_PIN;
  return s.sendOn(link, cmd.raw, cmd.rawLength);
}

export function unwatch(s: SessionCore, cmd: RespCommand): boolean {
  s.watchBroken = false;
  if (s.pin === null) return s.local(R_OK);
  if (s.pendingShared > 0) return false;
  s.sendOn(s.pin, cmd.raw, cmd.rawLength);
  unpin(s);
  return true;
}

/** Drops WATCH state without a reply of its own (EXECABORT, DISCARD). */
function unwatchQuietly(s: SessionCore): void {
  if (s.pin === null) return;
  s.pin.sendBuf(UNWATCH_RAW, DROP);
  unpin(s);
}

function unpin(s: SessionCore): void {
  const l = s.pin;
  if (l === null) return;
  s.pin = null;
  s.mode &= ~M_PIN;
  l.pinned = false;
  if (l.idle) s.onLinkIdle(l);
}
