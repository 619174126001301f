/**
 * The Redis 7.0 command table, as the proxy needs it to route: arity, key
 * positions and flags exactly as `COMMAND INFO` of redis 7.0 reports them,
 * plus Tessera's routing classes (P_*) and redis's own argument scanners for
 * the commands whose keys move (numkeys forms, SORT … STORE, XREAD … STREAMS,
 * GEORADIUS … STORE, MIGRATE … KEYS).
 *
 *   const err = checkCommand(cmd.args, cmd.name);      // unknown / arity → reply err
 *   const keys = commandKeys(cmd.name, cmd.args);      // → slots → shard
 *
 * `args` is always the whole argv, the command name at index 0, so positions
 * read as in `COMMAND INFO`. For maintainers: COMMAND_TABLE (command-table.ts) was generated from
 * `redis-cli --json COMMAND` of redis-server 7.0.15 (subcommands as
 * `container|sub`); test/proxy-commands.test.ts compares it with a live
 * server's `COMMAND INFO` and `COMMAND GETKEYS` when one is installed, so a
 * drift shows up as a failing test rather than a misrouted command.
 */

import { internName } from './resp-inline.js';
import { COMMAND_TABLE } from './command-table.js';

// redis command flags (COMMAND INFO's third field), as bits.
const REDIS_FLAG_NAMES = [
  'write',
  'readonly',
  'denyoom',
  'admin',
  'pubsub',
  'noscript',
  'blocking',
  'loading',
  'stale',
  'skip_monitor',
  'skip_slowlog',
  'asking',
  'fast',
  'no_auth',
  'no_mandatory_keys',
  'no_async_loading',
  'no_multi',
  'movablekeys',
  'allow_busy',
] as const;
export type RedisFlag = (typeof REDIS_FLAG_NAMES)[number];

export const CMD_WRITE = 1 << 0;
export const CMD_READONLY = 1 << 1;
export const CMD_PUBSUB = 1 << 4;
export const CMD_BLOCKING = 1 << 6;
export const CMD_NO_AUTH = 1 << 13;

// Tessera routing classes. A command may be in several (BLMPOP is numkeys
// and blocking; WATCH is a transaction command with keys).
/** No key and nothing special: any shard can answer, or the proxy itself (PING, ECHO, TIME). */
export const P_KEYLESS = 1 << 0;
/** Sent to every shard and the replies merged (DBSIZE, KEYS, SCAN, FLUSHDB, INFO…). */
export const P_FANOUT = 1 << 1;
/** Keys may span slots: split per shard and reassemble (MGET, MSET, DEL, EXISTS, UNLINK, TOUCH). */
export const P_MULTIKEY_SPLIT = 1 << 2;
/** Keys are counted by a numkeys argument (EVAL, ZUNIONSTORE, LMPOP, SINTERCARD…). */
export const P_NUMKEYS = 1 << 3;
/** Can block the connection (BLPOP, BLMOVE, XREAD…). */
export const P_BLOCKING = 1 << 4;
/** Pub/sub (SUBSCRIBE, PUBLISH, SSUBSCRIBE, PUBSUB …). */
export const P_PUBSUB = 1 << 5;
/** MULTI, EXEC, DISCARD, WATCH, UNWATCH. */
export const P_TRANSACTION = 1 << 6;
/** Connection state the proxy owns (AUTH, HELLO, SELECT, CLIENT, QUIT, RESET, READONLY…). */
export const P_CONNECTION = 1 << 7;
/** Has subcommands (CLIENT, OBJECT, XINFO…); resolve with `resolveCommand`. */
export const P_CONTAINER = 1 << 8;
/** The "keys" are sharded pub/sub channels (SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE). */
export const P_SHARD_CHANNEL = 1 << 9;
/** POST / HOST: — an HTTP request on the RESP port; redis closes the connection silently. */
export const P_SECURITY = 1 << 10;

// How keys are found.
const K_RANGE = 0; // first/last/step
const K_NUMKEYS = 1; // genericGetKeys(store, count, first, 1)
const K_SORT = 2;
const K_MIGRATE = 3;
const K_GEORADIUS = 4;
const K_XREAD = 5;

export interface CommandSpec {
  /** Lower-case name; `container|sub` for a subcommand, as redis 7 calls it. */
  readonly name: string;
  /** redis arity: exact argc if positive, minimum argc if negative (name included). */
  readonly arity: number;
  /** Legacy key range of COMMAND INFO: first key, last key (negative counts from the end), step. */
  readonly firstKey: number;
  readonly lastKey: number;
  readonly step: number;
  /** redis flags (CMD_* bits); see `redisFlags`. */
  readonly flags: number;
  /** Tessera routing classes (P_* bits). */
  readonly proxy: number;
  /** redis 7 command tips, e.g. `request_policy:all_shards`. */
  readonly tips: readonly string[];
  /** From the tips: `all_shards`, `all_nodes`, `multi_shard` or `special`. */
  readonly requestPolicy: string | undefined;
  /** From the tips: `agg_sum`, `agg_min`, `agg_logical_and`, `all_succeeded`, `one_succeeded` or `special`. */
  readonly responsePolicy: string | undefined;
  readonly subcommands: ReadonlyMap<string, CommandSpec> | undefined;
  readonly container: CommandSpec | undefined;
  /** @internal key finder */
  readonly keyFinder: number;
  /** @internal numkeys finder: [store key index or 0, numkeys index, first key index] */
  readonly numkeys: readonly [number, number, number] | undefined;
}

/** The redis flag names of a command, in COMMAND INFO order. */
export function redisFlags(spec: CommandSpec): RedisFlag[] {
  return REDIS_FLAG_NAMES.filter((_, i) => (spec.flags & (1 << i)) !== 0);
}

// Keys counted by numkeys: [store key index or 0, numkeys index, first key index],
// the arguments redis 7.0 passes to genericGetKeys() for each.
const NUMKEYS: Record<string, [number, number, number]> = {
  eval: [0, 2, 3],
  evalsha: [0, 2, 3],
  eval_ro: [0, 2, 3],
  evalsha_ro: [0, 2, 3],
  fcall: [0, 2, 3],
  fcall_ro: [0, 2, 3],
  zunionstore: [1, 2, 3],
  zinterstore: [1, 2, 3],
  zdiffstore: [1, 2, 3],
  zunion: [0, 1, 2],
  zinter: [0, 1, 2],
  zdiff: [0, 1, 2],
  zintercard: [0, 1, 2],
  sintercard: [0, 1, 2],
  lmpop: [0, 1, 2],
  zmpop: [0, 1, 2],
  blmpop: [0, 2, 3],
  bzmpop: [0, 2, 3],
};
const OTHER_FINDERS: Record<string, number> = {
  sort: K_SORT,
  migrate: K_MIGRATE,
  georadius: K_GEORADIUS,
  georadiusbymember: K_GEORADIUS,
  xread: K_XREAD,
  xreadgroup: K_XREAD,
};
const MULTIKEY_SPLIT = new Set(['mget', 'mset', 'del', 'exists', 'unlink', 'touch']);
const TRANSACTION = new Set(['multi', 'exec', 'discard', 'watch', 'unwatch']);
const CONNECTION = new Set(['auth', 'hello', 'select', 'client', 'quit', 'reset', 'readonly', 'readwrite', 'asking']);
const SHARD_CHANNEL = new Set(['spublish', 'ssubscribe', 'sunsubscribe']);
// PING carries request_policy:all_shards, but a proxy answers it itself.
const NOT_FANOUT = new Set(['ping']);

type MutableSpec = { -readonly [K in keyof CommandSpec]: CommandSpec[K] };

function buildTable(): Map<string, CommandSpec> {
  const top = new Map<string, CommandSpec>();
  for (const line of COMMAND_TABLE.split('\n')) {
    if (line === '') continue;
    const [fullName, arity, first, last, step, flagList, tipList] = line.split(' ');
    let flags = 0;
    if (flagList !== '-') {
      for (const f of flagList.split(',')) {
        const bit = REDIS_FLAG_NAMES.indexOf(f as RedisFlag);
        if (bit < 0) throw new Error(`commands: unknown redis flag ${f}`);
        flags |= 1 << bit;
      }
    }
    const tips = tipList ? tipList.split(',') : [];
    const bar = fullName.indexOf('|');
    const container = bar < 0 ? undefined : top.get(fullName.slice(0, bar));
    if (bar >= 0 && container === undefined) throw new Error(`commands: ${fullName} before its container`);
    const base = bar < 0 ? fullName : fullName.slice(0, bar);
    const spec: MutableSpec = {
      name: fullName,
      arity: Number(arity),
      firstKey: Number(first),
      lastKey: Number(last),
      step: Number(step),
      flags,
      proxy: 0,
      tips,
      requestPolicy: tips.find((t) => t.startsWith('request_policy:'))?.slice(15),
      responsePolicy: tips.find((t) => t.startsWith('response_policy:'))?.slice(16),
      subcommands: undefined,
      container,
      keyFinder: OTHER_FINDERS[fullName] ?? (NUMKEYS[fullName] ? K_NUMKEYS : K_RANGE),
      numkeys: NUMKEYS[fullName],
    };
    let p = 0;
    if (spec.numkeys) p |= P_NUMKEYS;
    if (flags & CMD_BLOCKING) p |= P_BLOCKING;
    if (flags & CMD_PUBSUB || base === 'pubsub') p |= P_PUBSUB;
    if (SHARD_CHANNEL.has(fullName)) p |= P_SHARD_CHANNEL;
    if (MULTIKEY_SPLIT.has(fullName)) p |= P_MULTIKEY_SPLIT;
    if (TRANSACTION.has(fullName)) p |= P_TRANSACTION;
    if (CONNECTION.has(base)) p |= P_CONNECTION;
    if (fullName === 'post' || fullName === 'host:') p |= P_SECURITY;
    const rp = spec.requestPolicy;
    if ((rp === 'all_shards' || rp === 'all_nodes' || rp === 'special') && !NOT_FANOUT.has(fullName)) p |= P_FANOUT;
    const hasKeys = spec.firstKey > 0 || spec.keyFinder !== K_RANGE;
    if (!hasKeys && (p & (P_FANOUT | P_PUBSUB | P_TRANSACTION | P_CONNECTION | P_SECURITY)) === 0) p |= P_KEYLESS;
    spec.proxy = p;
    if (container === undefined) {
      top.set(fullName, spec);
    } else {
      const c = container as MutableSpec;
      if (c.subcommands === undefined) {
        c.subcommands = new Map();
        c.proxy = (c.proxy & ~P_KEYLESS) | P_CONTAINER;
      }
      (c.subcommands as Map<string, CommandSpec>).set(fullName.slice(bar + 1), spec);
    }
  }
  return top;
}

/** Every top-level command by lower-case name (subcommands hang off their container). */
export const COMMANDS: ReadonlyMap<string, CommandSpec> = buildTable();

/** The spec of a command name (`get`, or `object|encoding` for a subcommand); undefined if unknown. */
export function getCommand(nameLower: string): CommandSpec | undefined {
  const bar = nameLower.indexOf('|');
  if (bar < 0) return COMMANDS.get(nameLower);
  return COMMANDS.get(nameLower.slice(0, bar))?.subcommands?.get(nameLower.slice(bar + 1));
}

/**
 * The spec redis would run for this argv, subcommands resolved as redis's
 * lookupCommand() does (a container alone resolves to itself and then fails
 * its arity). Undefined for an unknown command or subcommand.
 */
export function resolveCommand(nameLower: string, args: readonly Buffer[]): CommandSpec | undefined {
  const base = COMMANDS.get(nameLower);
  if (base === undefined || base.subcommands === undefined || args.length < 2) return base;
  return base.subcommands.get(internName(args[1]));
}

/**
 * What redis 7.0 replies before running anything: the unknown command,
 * unknown subcommand or wrong arity error (message bytes, e.g.
 * `ERR wrong number of arguments for 'get' command`, to pass to
 * encodeError), or undefined when the command may go ahead.
 */
export function checkCommand(args: readonly Buffer[], nameLower?: string): Buffer | undefined {
  if (args.length === 0) return undefined;
  const base = COMMANDS.get(nameLower ?? internName(args[0]));
  if (base === undefined) return unknownCommandError(args);
  let spec = base;
  if (base.subcommands !== undefined && args.length >= 2) {
    const sub = base.subcommands.get(internName(args[1]));
    if (sub === undefined) return unknownSubcommandError(args);
    spec = sub;
  }
  const argc = args.length;
  if ((spec.arity > 0 && spec.arity !== argc) || argc < -spec.arity) {
    return errorText(`ERR wrong number of arguments for '${spec.name}' command`);
  }
  return undefined;
}

/**
 * redis 7.0's reply to an unknown command:
 * `ERR unknown command '<name>', with args beginning with: '<a1>' '<a2>' `
 * — name cut at 128 bytes, arguments quoted each with a trailing space until
 * 128 bytes of them are shown, C strings (cut at a NUL), CR/LF as spaces.
 */
export function unknownCommandError(args: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from("ERR unknown command '"), cString(args[0] ?? EMPTY_BUF, 128)];
  parts.push(Buffer.from("', with args beginning with: "));
  let shown = 0;
  for (let i = 1; i < args.length && shown < 128; i++) {
    const a = cString(args[i], 128 - shown);
    parts.push(QUOTE, a, QUOTE_SPACE);
    shown += a.length + 3;
  }
  return spacesForNewlines(Buffer.concat(parts));
}

/** redis 7.0's `ERR unknown subcommand '<sub>'. Try <COMMAND> HELP.` */
export function unknownSubcommandError(args: readonly Buffer[]): Buffer {
  const container = cString(args[0], Infinity)
    .toString('latin1')
    .replace(/[a-z]/g, (c) => c.toUpperCase());
  return spacesForNewlines(
    Buffer.concat([Buffer.from("ERR unknown subcommand '"), cString(args[1], 128), Buffer.from(`'. Try ${container} HELP.`, 'latin1')]),
  );
}

/**
 * Argument indexes of the keys of a command (args[0] is the name), found the
 * way redis 7.0 finds them for cluster routing. Undefined for an unknown
 * command or subcommand; [] when it has none, including when argv is too short
 * (check arity first, as redis does). For P_SHARD_CHANNEL commands these are
 * the channels, which route like keys.
 */
export function commandKeyIndexes(nameLower: string, args: readonly Buffer[]): number[] | undefined {
  const spec = resolveCommand(nameLower, args);
  return spec === undefined ? undefined : keyIndexes(spec, args);
}

/** The keys of a command (see commandKeyIndexes); undefined if the command is unknown. */
export function commandKeys(nameLower: string, args: readonly Buffer[]): Buffer[] | undefined {
  const spec = resolveCommand(nameLower, args);
  if (spec === undefined) return undefined;
  // Single-key commands are the hot path: skip the index array.
  if (spec.keyFinder === K_RANGE && spec.firstKey > 0 && spec.lastKey === spec.firstKey) {
    return spec.firstKey < args.length ? [args[spec.firstKey]] : [];
  }
  const idx = keyIndexes(spec, args);
  const out = new Array<Buffer>(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = args[idx[i]];
  return out;
}

/** Key indexes for a resolved spec. */
export function keyIndexes(spec: CommandSpec, args: readonly Buffer[]): number[] {
  const argc = args.length;
  switch (spec.keyFinder) {
    case K_NUMKEYS: {
      const [store, count, first] = spec.numkeys!;
      if (count >= argc) return [];
      const num = atoi(args[count]);
      // genericGetKeys: no keys at all when the count is impossible.
      if (num < 1 || num > argc - first) return [];
      const out: number[] = store > 0 ? [store] : [];
      for (let i = 0; i < num; i++) out.push(first + i);
      return out;
    }
    case K_SORT: {
      // sortGetKeys: the last STORE wins; LIMIT takes 2 arguments, GET and BY 1.
      let store = -1;
      for (let i = 2; i < argc; i++) {
        const a = args[i];
        if (eqi(a, 'limit')) i += 2;
        else if (eqi(a, 'store') && i + 1 < argc) store = i + 1;
        else if (eqi(a, 'get') || eqi(a, 'by')) i += 1;
      }
      return argc > 1 ? (store > 0 ? [1, store] : [1]) : [];
    }
    case K_MIGRATE: {
      // migrateGetKeys: the key at 3, or with KEYS (and an empty key) all after it.
      if (argc > 6) {
        for (let i = 6; i < argc; i++) {
          const a = args[i];
          if (eqi(a, 'keys')) {
            if (args[3].length > 0) return [];
            const out: number[] = [];
            for (let j = i + 1; j < argc; j++) out.push(j);
            return out;
          }
          if (eqi(a, 'auth')) i += 1;
          else if (eqi(a, 'auth2')) i += 2;
        }
      }
      return argc > 3 ? [3] : [];
    }
    case K_GEORADIUS: {
      // georadiusGetKeys: options scanned from index 5 for both forms; the last STORE/STOREDIST wins.
      let store = -1;
      for (let i = 5; i < argc; i++) {
        if ((eqi(args[i], 'store') || eqi(args[i], 'storedist')) && i + 1 < argc) {
          store = i + 1;
          i++;
        }
      }
      return argc > 1 ? (store > 0 ? [1, store] : [1]) : [];
    }
    case K_XREAD: {
      // xreadGetKeys: skip options up to STREAMS; keys are the first half after it.
      let streams = -1;
      for (let i = 1; i < argc; i++) {
        const a = args[i];
        if (eqi(a, 'block') || eqi(a, 'count')) i += 1;
        else if (eqi(a, 'group')) i += 2;
        else if (eqi(a, 'noack')) continue;
        else if (eqi(a, 'streams')) {
          streams = i;
          break;
        } else break;
      }
      const rest = argc - streams - 1;
      if (streams < 0 || rest === 0 || rest % 2 !== 0) return [];
      const out: number[] = [];
      for (let i = streams + 1; i < streams + 1 + rest / 2; i++) out.push(i);
      return out;
    }
    default: {
      const first = spec.firstKey;
      if (first <= 0) return [];
      let last = spec.lastKey;
      if (last < 0) last = argc + last;
      const out: number[] = [];
      for (let j = first; j <= last; j += spec.step) {
        if (j >= argc) return [];
        out.push(j);
      }
      return out;
    }
  }
}

const EMPTY_BUF = Buffer.alloc(0);
const QUOTE = Buffer.from("'");
const QUOTE_SPACE = Buffer.from("' ");

function errorText(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** What printf's %.Ns prints of an argument: up to a NUL, at most `max` bytes. */
function cString(b: Buffer, max: number): Buffer {
  let n = b.indexOf(0);
  if (n < 0) n = b.length;
  return b.subarray(0, Math.min(n, max));
}

function spacesForNewlines(b: Buffer): Buffer {
  for (let i = 0; i < b.length; i++) if (b[i] === 13 || b[i] === 10) b[i] = 32;
  return b;
}

/** ASCII case-insensitive equality with a lower-case word (strcasecmp). */
function eqi(b: Buffer, lower: string): boolean {
  if (b.length !== lower.length) return false;
  for (let i = 0; i < b.length; i++) {
    let c = b[i];
    if (c >= 65 && c <= 90) c |= 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** C atoi(): leading blanks, a sign, digits up to the first non-digit; 0 if none. */
function atoi(b: Buffer): number {
  let i = 0;
  const n = b.length;
  while (i < n && (b[i] === 32 || (b[i] >= 9 && b[i] <= 13))) i++;
  let neg = false;
  if (i < n && (b[i] === 43 || b[i] === 45)) neg = b[i++] === 45;
  let v = 0;
  while (i < n && b[i] >= 48 && b[i] <= 57 && v < 1e10) v = v * 10 + (b[i++] - 48);
  return neg ? -v : v;
}
