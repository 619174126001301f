/**
 * The Session's dispatch tables and pure helpers: which commands a client may
 * not run (`REFUSED`), may run while subscribed (`SUB_ALLOWED`) or runs at
 * once inside MULTI (`TX_CONTROL`); how fan-out replies merge by response
 * policy (`POLICY_MERGE`); the hot-path table of plain single-key commands
 * (`SIMPLE`); the canned commands and replies the session writes itself; and
 * argument checks that need no session state.
 *
 * They live apart from session.ts so that file holds only the connection
 * state machine. This file must not import session.ts (no cycles).
 */

import { CMD_WRITE, COMMANDS, type CommandSpec } from './commands.js';
import { DropSink, F_ALLOK, F_AND, F_MIN, F_ONEOK, F_SUM } from './fanout.js';
import { K_PSUBSCRIBE, K_PUNSUBSCRIBE, K_SSUBSCRIBE, K_SUBSCRIBE, K_SUNSUBSCRIBE, K_UNSUBSCRIBE } from './replies.js';

export const MULTI_RAW = Buffer.from('*1\r\n$5\r\nMULTI\r\n');
export const EXEC_RAW = Buffer.from('*1\r\n$4\r\nEXEC\r\n');
export const UNWATCH_RAW = Buffer.from('*1\r\n$7\r\nUNWATCH\r\n');
export const EMPTY_ARRAY = Buffer.from('*0\r\n');
export const EMPTY_SCAN = Buffer.from('*2\r\n$1\r\n0\r\n*0\r\n');
export const DROP = new DropSink();

/** Admin and server-wide commands a client of a shared database may not run. */
export const REFUSED = new Set([
  'config',
  'shutdown',
  'debug',
  'monitor',
  'replicaof',
  'slaveof',
  'sync',
  'psync',
  'replconf',
  'acl',
  'module',
  'failover',
  'bgsave',
  'bgrewriteaof',
  'save',
  'swapdb',
  'move',
  'migrate',
  'restore-asking',
  'slowlog',
  'latency',
  'pfdebug',
  'pfselftest',
  'script|debug',
  'client|kill',
  'client|pause',
  'client|unpause',
  'client|tracking',
  'client|caching',
  'client|unblock',
  'client|reply',
]);
/** What a RESP2 client may send while subscribed. */
export const SUB_ALLOWED = new Set([
  'ping',
  'subscribe',
  'psubscribe',
  'ssubscribe',
  'unsubscribe',
  'punsubscribe',
  'sunsubscribe',
  'quit',
  'reset',
]);
/** Run at once even inside MULTI (everything else is queued). */
export const TX_CONTROL = new Set(['multi', 'exec', 'discard', 'watch', 'quit', 'reset']);
export const SUBSCRIBE_FAMILY = new Set(['subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe', 'pubsub']);
export const POLICY_MERGE: Record<string, number> = {
  agg_sum: F_SUM,
  all_succeeded: F_ALLOK,
  one_succeeded: F_ONEOK,
  agg_min: F_MIN,
  agg_logical_and: F_AND,
};
export const SUB_KIND = [K_SUBSCRIBE, K_PSUBSCRIBE, K_SSUBSCRIBE];
export const UNSUB_KIND = [K_UNSUBSCRIBE, K_PUNSUBSCRIBE, K_SUNSUBSCRIBE];

/**
 * The hot path: commands whose one key is argument `key` and that need no
 * other decision (GET, SET, INCR, LPUSH, HSET, …). keyFinder 0 is the plain
 * first/last/step key range in commands.ts.
 */
export const SIMPLE = new Map<string, { arity: number; key: number; write: boolean }>();
for (const [name, spec] of COMMANDS) {
  if (
    spec.proxy === 0 &&
    spec.subcommands === undefined &&
    spec.keyFinder === 0 &&
    spec.firstKey > 0 &&
    spec.lastKey === spec.firstKey &&
    !REFUSED.has(name)
  ) {
    SIMPLE.set(name, { arity: spec.arity, key: spec.firstKey, write: (spec.flags & CMD_WRITE) !== 0 });
  }
}

/** Scripts and functions may write (redis flags them may_replicate, not write). */
const SCRIPTS = new Set(['eval', 'evalsha', 'fcall']);
/** Does the command change data: fenced while the node may have been failed over, and covered by WAIT. */
export function writes(spec: CommandSpec): boolean {
  return (spec.flags & CMD_WRITE) !== 0 || SCRIPTS.has(spec.name);
}

/** XREAD/XREADGROUP block only with BLOCK; the others always may. */
export function blocks(name: string, args: Buffer[]): boolean {
  if (name !== 'xread' && name !== 'xreadgroup') return true;
  for (let i = 1; i < args.length; i++) {
    const a = args[i].toString('latin1').toLowerCase();
    if (a === 'block') return true;
    if (a === 'streams') return false;
  }
  return false;
}

export function copiesToOtherDb(args: Buffer[]): boolean {
  for (let i = 3; i < args.length - 1; i++) {
    if (args[i].toString('latin1').toLowerCase() === 'db' && args[i + 1].toString('latin1') !== '0') return true;
  }
  return false;
}

/** redis's validateClientName: printable ASCII without spaces. */
export function validName(b: Buffer): boolean {
  for (const c of b) if (c < 33 || c > 126) return false;
  return true;
}
