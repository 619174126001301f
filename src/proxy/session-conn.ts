/**
 * A session's connection commands, answered by the proxy itself: PING,
 * AUTH, HELLO, SELECT, RESET, CLIENT, and the CLIENT LIST / CLIENT INFO line.
 *
 * Handlers take the session as a SessionCore (session-core.ts); session.ts
 * dispatches to them.
 */

import { createHash, timingSafeEqual } from 'node:crypto';
import { encodeBulk, encodeError, encodeInteger } from './resp-encode.js';
import type { RespCommand } from './resp-request.js';
import type { CommandSpec } from './commands.js';
import {
  E_BAD_NAME,
  E_DB_RANGE,
  E_HELLO_NOAUTH,
  E_NOPASS,
  E_NOPROTO,
  E_NOT_INTEGER,
  E_PROTOVER,
  E_SYNTAX,
  E_WRONGPASS,
  K_PONG,
  R_OK,
  R_PONG,
  R_RESET,
  encodeMap,
  header,
  nullBulk,
  verbatim,
  type Proto,
} from './replies.js';
import { EMPTY_ARRAY, validName } from './session-tables.js';
import { M_MULTI, M_SUB2, type SessionCore } from './session-core.js';
import { subCount, unsubscribeAll, updateSubMode } from './session-pubsub.js';

export function ping(s: SessionCore, args: Buffer[]): boolean {
  if ((s.mode & M_SUB2) !== 0) {
    return s.local(Buffer.concat([header('*', 2), K_PONG, encodeBulk(args.length > 1 ? args[1] : '')]));
  }
  return s.local(args.length > 1 ? encodeBulk(args[1]) : R_PONG);
}

function checkUser(s: SessionCore, user: Buffer, pass: Buffer): boolean {
  if (user.toString('latin1') !== 'default') return false;
  const pw = s.ep.password;
  if (pw === undefined) return true; // "nopass" default user
  const a = createHash('sha256').update(pass).digest();
  const b = createHash('sha256').update(pw).digest();
  return timingSafeEqual(a, b);
}

export function auth(s: SessionCore, args: Buffer[]): boolean {
  if (args.length > 3) return s.reject(E_SYNTAX);
  let ok: boolean;
  if (args.length === 2) {
    if (s.ep.password === undefined) return s.reject(E_NOPASS);
    ok = checkUser(s, Buffer.from('default'), args[1]);
  } else {
    ok = checkUser(s, args[1], args[2]);
  }
  if (!ok) return s.reject(E_WRONGPASS);
  s.setAuthed(true);
  return s.local(R_OK);
}

export function hello(s: SessionCore, args: Buffer[]): boolean {
  let ver: number = s.proto;
  if (args.length >= 2) {
    const v = args[1].toString('latin1');
    if (!/^-?(0|[1-9][0-9]{0,18})$/.test(v)) return s.reject(E_PROTOVER);
    ver = Number(v);
    if (ver < 2 || ver > 3) return s.reject(E_NOPROTO);
  }
  let user: Buffer | undefined;
  let pass: Buffer | undefined;
  let setname: Buffer | undefined;
  for (let j = 2; j < args.length; j++) {
    const more = args.length - 1 - j;
    const opt = args[j].toString('latin1').toLowerCase();
    if (opt === 'auth' && more >= 2) {
      user = args[j + 1];
      pass = args[j + 2];
      j += 2;
    } else if (opt === 'setname' && more >= 1) {
      setname = args[j + 1];
      if (!validName(setname)) return s.reject(E_BAD_NAME);
      j++;
    } else {
      return s.reject(encodeError(`ERR Syntax error in HELLO option '${args[j].toString('latin1')}'`));
    }
  }
  // Replies after a protocol switch come from other links: let earlier
  // commands finish first so none is overtaken.
  if (ver !== s.proto && (s.pendingShared > 0 || s.dedOut > 0)) return false;
  if (user !== undefined) {
    if (!checkUser(s, user, pass!)) return s.reject(E_WRONGPASS);
    s.setAuthed(true);
  }
  if (!s.authed) return s.reject(E_HELLO_NOAUTH);
  if (setname !== undefined) s.name = setname.length > 0 ? setname : null;
  if (ver !== s.proto && s.pin !== null) {
    // The WATCH lives on a connection of the old protocol; give it up and
    // let EXEC report an abort (always a safe answer) rather than reply in
    // the wrong protocol.
    s.dropDedicated(s.pin);
    s.watchBroken = true;
  }
  s.proto = ver as Proto;
  updateSubMode(s);
  return s.local(
    encodeMap(s.proto, [
      ['server', encodeBulk('redis')],
      ['version', encodeBulk(s.ep.serverVersion)],
      ['proto', encodeInteger(s.proto)],
      ['id', encodeInteger(s.id)],
      ['mode', encodeBulk('standalone')],
      ['role', encodeBulk('master')],
      ['modules', EMPTY_ARRAY],
    ]),
  );
}

export function select(s: SessionCore, args: Buffer[]): boolean {
  const v = args[1].toString('latin1');
  if (!/^-?(0|[1-9][0-9]{0,9})$/.test(v) || Math.abs(Number(v)) > 2147483647) return s.reject(E_NOT_INTEGER);
  return Number(v) === 0 ? s.local(R_OK) : s.reject(E_DB_RANGE);
}

export function reset(s: SessionCore): boolean {
  if (s.pendingShared > 0 || s.dedOut > 0) return false;
  s.multi = null;
  s.mode &= ~M_MULTI;
  s.watchBroken = false;
  if (s.pin !== null) s.dropDedicated(s.pin); // closing it drops the WATCH
  unsubscribeAll(s);
  s.name = null;
  s.proto = 2;
  s.setAuthed(s.ep.password === undefined);
  updateSubMode(s);
  return s.local(R_RESET);
}

export function client(s: SessionCore, cmd: RespCommand, spec: CommandSpec, args: Buffer[]): boolean {
  switch (spec.name) {
    case 'client|setname':
      if (!validName(args[2])) return s.reject(E_BAD_NAME);
      s.name = args[2].length > 0 ? args[2] : null;
      return s.local(R_OK);
    case 'client|getname':
      return s.local(s.name === null ? nullBulk(s.proto) : encodeBulk(s.name));
    case 'client|id':
      return s.local(encodeInteger(s.id));
    case 'client|info':
      return s.local(verbatim(s.proto, infoLine(s)));
    case 'client|list': {
      let list = [...s.ep.sessions];
      for (let i = 2; i < args.length; i++) {
        const opt = args[i].toString('latin1').toLowerCase();
        if (opt === 'type' && i + 1 < args.length) {
          const t = args[++i].toString('latin1').toLowerCase();
          if (t === 'normal') list = list.filter((c) => subCount(c) === 0);
          else if (t === 'pubsub') list = list.filter((c) => subCount(c) > 0);
          else if (t === 'master' || t === 'replica' || t === 'slave') list = [];
          else return s.reject(encodeError(`ERR Unknown client type '${args[i].toString('latin1')}'`));
        } else if (opt === 'id' && i + 1 < args.length) {
          const ids = new Set(args.slice(i + 1).map((a) => Number(a.toString('latin1'))));
          list = list.filter((c) => ids.has(c.id));
          break;
        } else {
          return s.reject(E_SYNTAX);
        }
      }
      return s.local(verbatim(s.proto, list.map((c) => infoLine(c)).join('')));
    }
    case 'client|no-evict':
      return s.local(R_OK);
    default:
      // HELP, GETREDIR, TRACKINGINFO: harmless on any shard.
      return s.sendShared(0, cmd);
  }
}

/** One CLIENT LIST / CLIENT INFO line, with redis 7.0's fields. */
function infoLine(s: SessionCore): string {
  const sk = s.socket;
  const now = Date.now();
  let flags = '';
  if (subCount(s) > 0) flags += 'P';
  if (s.multi !== null) flags += 'x';
  if (s.dedOut > 0) flags += 'b';
  if (flags === '') flags = 'N';
  const name = s.name === null ? '' : s.name.toString('latin1');
  return (
    `id=${s.id} addr=${sk.remoteAddress}:${sk.remotePort} laddr=${sk.localAddress}:${sk.localPort} fd=-1 name=${name} ` +
    `age=${Math.floor((now - s.created) / 1000)} idle=${Math.floor((now - s.lastActive) / 1000)} flags=${flags} db=0 ` +
    `sub=${s.subs[0].size} psub=${s.subs[1].size} ssub=${s.subs[2].size} multi=${s.multi === null ? -1 : s.multi.count} ` +
    `qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=${s.lastCmd} ` +
    `user=default redir=-1 resp=${s.proto}\n`
  );
}
