/**
 * Replies the proxy builds itself, in the client's protocol (RESP2 or RESP3).
 * Shard replies are normally forwarded untouched; these are for local
 * commands (PING, HELLO, CLIENT …), errors, pub/sub pushes and fan-out merges.
 */

import { encodeBulk, encodeError, encodeInteger } from './resp-encode.js';
import { ReplyError, type RespValue } from './resp-reply.js';

export type Proto = 2 | 3;

export const R_OK = Buffer.from('+OK\r\n');
export const R_QUEUED = Buffer.from('+QUEUED\r\n');
export const R_PONG = Buffer.from('+PONG\r\n');
export const R_RESET = Buffer.from('+RESET\r\n');
export const R_NULL3 = Buffer.from('_\r\n');
export const R_NULL_BULK2 = Buffer.from('$-1\r\n');
export const R_NULL_ARRAY2 = Buffer.from('*-1\r\n');

// Error texts, byte for byte what redis 7.0 / Redis Cluster send.
export const E_CROSSSLOT = encodeError("CROSSSLOT Keys in request don't hash to the same slot");
export const E_CLUSTERDOWN = encodeError('CLUSTERDOWN Hash slot not served');
/** A key that none of the database's shard_key_regex rules matches (as Redis Enterprise refuses it). */
export const E_NO_SHARD_KEY_RULE = encodeError("ERR key does not match any of the database's shard_key_regex rules");
export const E_NOAUTH = encodeError('NOAUTH Authentication required.');
export const E_WRONGPASS = encodeError('WRONGPASS invalid username-password pair or user is disabled.');
export const E_NOPASS = encodeError(
  'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
);
export const E_HELLO_NOAUTH = encodeError(
  'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
);
export const E_NOPROTO = encodeError('NOPROTO unsupported protocol version');
export const E_PROTOVER = encodeError('ERR Protocol version is not an integer or out of range');
export const E_SYNTAX = encodeError('ERR syntax error');
export const E_NOT_INTEGER = encodeError('ERR value is not an integer or out of range');
export const E_DB_RANGE = encodeError('ERR DB index is out of range');
export const E_NO_CLUSTER = encodeError('ERR This instance has cluster support disabled');
export const E_EXECABORT = encodeError('EXECABORT Transaction discarded because of previous errors.');
export const E_EXEC_NO_MULTI = encodeError('ERR EXEC without MULTI');
export const E_DISCARD_NO_MULTI = encodeError('ERR DISCARD without MULTI');
export const E_MULTI_NESTED = encodeError('ERR MULTI calls can not be nested');
export const E_WATCH_IN_MULTI = encodeError('ERR WATCH inside MULTI is not allowed');
export const E_NOT_IN_MULTI = encodeError('ERR Command not allowed inside a transaction');
export const E_BAD_NAME = encodeError('ERR Client names cannot contain spaces, newlines or special characters.');
export const E_INVALID_CURSOR = encodeError('ERR invalid cursor');
/** What a command gets when the link it was sent on died before it answered. */
export const E_LINK_LOST = encodeError('ERR shard connection lost');
/** This node may have been failed over (cut off from the cluster store): writes wait for the current map. */
export const E_FENCED = encodeError(
  'CLUSTERDOWN This node lost contact with the cluster; writes are refused until it has the current shard map',
);
/** WAIT's arguments, as redis checks them. */
export const E_TIMEOUT_NEGATIVE = encodeError('ERR timeout is negative');
/** A slot's master stayed unreachable for the whole hold (node down, no failover yet). */
export const E_MASTER_UNREACHABLE = encodeError('CLUSTERDOWN The master shard of this slot is unreachable');

export function noPermError(fullName: string): Buffer {
  return encodeError(`NOPERM this user has no permissions to run the '${fullName}' command`);
}

export function pubsubContextError(fullName: string): Buffer {
  return encodeError(
    `ERR Can't execute '${fullName}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`,
  );
}

export function nullBulk(proto: Proto): Buffer {
  return proto === 3 ? R_NULL3 : R_NULL_BULK2;
}

export function nullArray(proto: Proto): Buffer {
  return proto === 3 ? R_NULL3 : R_NULL_ARRAY2;
}

export function header(prefix: string, n: number): Buffer {
  return Buffer.from(`${prefix}${n}\r\n`, 'latin1');
}

/** Out-of-band data: a RESP3 push, or the array RESP2 uses for the same thing. */
export function pushHeader(proto: Proto, n: number): Buffer {
  return header(proto === 3 ? '>' : '*', n);
}

/** A RESP3 verbatim string (`=…txt:`), or a bulk string for RESP2. */
export function verbatim(proto: Proto, text: string): Buffer {
  if (proto === 2) return encodeBulk(text);
  const body = Buffer.from(text, 'utf8');
  return Buffer.concat([header('=', body.length + 4), Buffer.from('txt:'), body, Buffer.from('\r\n')]);
}

/** A map of string keys to encoded values: `%n` in RESP3, a flat array in RESP2. */
export function encodeMap(proto: Proto, entries: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [header(proto === 3 ? '%' : '*', proto === 3 ? entries.length : entries.length * 2)];
  for (const [k, v] of entries) parts.push(encodeBulk(k), v);
  return Buffer.concat(parts);
}

/**
 * Re-encodes a decoded value (fan-out merges). Bulk strings stay bulk strings,
 * simple strings simple; maps are flattened for RESP2, as redis does.
 */
export function encodeValue(v: RespValue, proto: Proto): Buffer {
  if (v === null) return nullBulk(proto);
  if (Buffer.isBuffer(v)) return encodeBulk(v);
  if (typeof v === 'string') return Buffer.from(`+${v}\r\n`, 'utf8');
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return encodeInteger(v);
    return proto === 3 ? Buffer.from(`,${v}\r\n`) : encodeBulk(String(v));
  }
  if (typeof v === 'bigint') return proto === 3 ? Buffer.from(`(${v}\r\n`) : encodeInteger(v);
  if (typeof v === 'boolean') return proto === 3 ? Buffer.from(v ? '#t\r\n' : '#f\r\n') : encodeInteger(v ? 1 : 0);
  if (v instanceof ReplyError) return encodeError(v.message);
  if (Array.isArray(v)) {
    const parts = [header('*', v.length)];
    for (const x of v) parts.push(encodeValue(x, proto));
    return Buffer.concat(parts);
  }
  const parts = [header(proto === 3 ? '%' : '*', proto === 3 ? v.size : v.size * 2)];
  for (const [k, x] of v) parts.push(encodeValue(typeof k === 'string' ? Buffer.from(k) : k, proto), encodeValue(x, proto));
  return Buffer.concat(parts);
}

/** A pub/sub confirmation or message: [kind, name, count] or [kind, name, payload…]. */
export function encodePush(proto: Proto, kind: Buffer, items: (Buffer | number | null)[]): Buffer {
  const parts: Buffer[] = [pushHeader(proto, items.length + 1), kind];
  for (const it of items) {
    if (it === null) parts.push(nullBulk(proto));
    else if (typeof it === 'number') parts.push(encodeInteger(it));
    else parts.push(encodeBulk(it));
  }
  return Buffer.concat(parts);
}

export const K_SUBSCRIBE = encodeBulk('subscribe');
export const K_UNSUBSCRIBE = encodeBulk('unsubscribe');
export const K_PSUBSCRIBE = encodeBulk('psubscribe');
export const K_PUNSUBSCRIBE = encodeBulk('punsubscribe');
export const K_SSUBSCRIBE = encodeBulk('ssubscribe');
export const K_SUNSUBSCRIBE = encodeBulk('sunsubscribe');
export const K_MESSAGE = encodeBulk('message');
export const K_PMESSAGE = encodeBulk('pmessage');
export const K_SMESSAGE = encodeBulk('smessage');
export const K_PONG = encodeBulk('pong');

/**
 * redis's stringmatchlen() (glob-style: `*`, `?`, `[a-z]`, `[^x]`, `\x`),
 * case-sensitive, for counting which of our pattern subscriptions a PUBLISH
 * reached.
 */
export function globMatch(p: Buffer, s: Buffer): boolean {
  return match(p, 0, s, 0, 0);
}

function match(p: Buffer, pi: number, s: Buffer, si: number, depth: number): boolean {
  if (depth > 1000) return false;
  const pl = p.length;
  const sl = s.length;
  while (pi < pl && si < sl) {
    const c = p[pi];
    if (c === 0x2a) {
      while (pi + 1 < pl && p[pi + 1] === 0x2a) pi++;
      if (pi + 1 === pl) return true;
      for (let k = si; k < sl; k++) if (match(p, pi + 1, s, k, depth + 1)) return true;
      return false;
    } else if (c === 0x3f) {
      si++;
    } else if (c === 0x5b) {
      pi++;
      const not = p[pi] === 0x5e;
      if (not) pi++;
      let hit = false;
      for (;;) {
        if (pi >= pl) {
          pi--;
          break;
        }
        if (p[pi] === 0x5c && pi + 1 < pl) {
          pi++;
          if (p[pi] === s[si]) hit = true;
        } else if (p[pi] === 0x5d) {
          break;
        } else if (pi + 2 < pl && p[pi + 1] === 0x2d) {
          let a = p[pi];
          let b = p[pi + 2];
          if (a > b) [a, b] = [b, a];
          pi += 2;
          if (s[si] >= a && s[si] <= b) hit = true;
        } else if (p[pi] === s[si]) {
          hit = true;
        }
        pi++;
      }
      if (not) hit = !hit;
      if (!hit) return false;
      si++;
    } else {
      if (c === 0x5c && pi + 1 < pl) pi++;
      if (p[pi] !== s[si]) return false;
      si++;
    }
    pi++;
    if (si === sl) {
      while (pi < pl && p[pi] === 0x2a) pi++;
      break;
    }
  }
  return pi === pl && si === sl;
}
