/**
 * Redis Cluster key → hash slot mapping (CRC16/XMODEM of the key or of its
 * `{hash tag}`, modulo 16384), bit-for-bit what redis's `keyHashSlot` does,
 * so a slot computed here is the slot a shard's `CLUSTER KEYSLOT` would give.
 */

export const SLOT_COUNT = 16384;

const OPEN_BRACE = 0x7b; // '{'
const CLOSE_BRACE = 0x7d; // '}'

// Byte-at-a-time table: one lookup per key byte instead of eight shift/xor
// steps; this runs for every routed command.
const CRC16_TABLE: Uint16Array = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let b = 0; b < 8; b++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    t[i] = crc;
  }
  return t;
})();

/** CRC16/XMODEM (poly 0x1021, init 0, no reflection) of `buf[start, end)`. */
export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ buf[i]) & 0xff];
  }
  return crc;
}

/**
 * Slot of the key stored in `buf[start, end)`. Taking a range lets the proxy
 * hash a key where it lies in a received chunk, without slicing it out.
 */
export function keySlotOf(buf: Uint8Array, start = 0, end = buf.length): number {
  let s = start;
  while (s < end && buf[s] !== OPEN_BRACE) s++;
  if (s < end) {
    let e = s + 1;
    while (e < end && buf[e] !== CLOSE_BRACE) e++;
    // Only a non-empty tag counts: "{}" or an unclosed "{" hash the whole key.
    if (e < end && e > s + 1) return crc16(buf, s + 1, e) & 0x3fff;
  }
  return crc16(buf, start, end) & 0x3fff;
}

/** Slot of a key; strings are taken as their UTF-8 bytes, as clients send them. */
export function keySlot(key: Uint8Array | string): number {
  if (typeof key !== 'string') return keySlotOf(key, 0, key.length);
  // ASCII keys (the usual case) are hashed from their char codes directly,
  // avoiding an encode + allocation per lookup.
  const n = key.length;
  for (let i = 0; i < n; i++) {
    if (key.charCodeAt(i) > 0x7f) return keySlotOf(Buffer.from(key, 'utf8'));
  }
  let s = 0;
  while (s < n && key.charCodeAt(s) !== OPEN_BRACE) s++;
  let from = 0;
  let to = n;
  if (s < n) {
    let e = s + 1;
    while (e < n && key.charCodeAt(e) !== CLOSE_BRACE) e++;
    if (e < n && e > s + 1) {
      from = s + 1;
      to = e;
    }
  }
  return crc16Latin1(key, from, to) & 0x3fff;
}

/**
 * Redis Enterprise's default `shard_key_regex` list: the `{tag}` if there is
 * one, else the whole key. A database with exactly this list (or none) uses
 * the Redis hash-tag rule above, on the fast path.
 */
export const DEFAULT_SHARD_KEY_REGEX: readonly string[] = ['.*\\{(?<tag>.*)\\}.*', '(?<tag>.*)'];

/** The slot a key gets when no `shard_key_regex` rule matches it: one past the last; no shard serves it. */
export const NO_RULE_SLOT = SLOT_COUNT;

/** True when `rules` is RE's default list, which the standard hashing serves. */
export function isDefaultShardKeyRegex(rules: readonly string[] | undefined): boolean {
  return (
    rules === undefined || (rules.length === DEFAULT_SHARD_KEY_REGEX.length && rules.every((r, i) => r === DEFAULT_SHARD_KEY_REGEX[i]))
  );
}

/** Why a rule list is not usable (RE's limits: 1-32 rules of at most 256 characters, each with a `tag` group), or undefined. */
export function shardKeyRegexProblem(rules: readonly string[]): string | undefined {
  if (rules.length < 1 || rules.length > 32) return 'shard_key_regex takes 1 to 32 rules';
  for (const [i, r] of rules.entries()) {
    if (r.length < 1 || r.length > 256) return `shard_key_regex rule ${i + 1} must be 1 to 256 characters`;
    let re: RegExp;
    try {
      re = new RegExp(r, 'sy');
    } catch (err) {
      return `shard_key_regex rule ${i + 1} is not a valid regular expression: ${(err as Error).message}`;
    }
    // A regex's groups show in the match of the empty-alternative trick: (?:re)|  always matches.
    const groups = new RegExp(`(?:${re.source})|`).exec('')?.groups;
    if (!groups || !('tag' in groups)) return `shard_key_regex rule ${i + 1} has no named group 'tag' (e.g. "(?<tag>.*)")`;
  }
  return undefined;
}

export interface KeyHasher {
  keySlot(key: Uint8Array | string): number;
  keySlotOf(buf: Uint8Array, start: number, end: number): number;
}

/** The standard hashing (Redis hash tags). */
export const STANDARD_HASHING: KeyHasher = { keySlot, keySlotOf };

/** CRC16/XMODEM of the char codes `s[from, to)`, each taken as one byte (ASCII or latin1 strings). */
function crc16Latin1(s: string, from: number, to: number): number {
  let crc = 0;
  for (let i = from; i < to; i++) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ s.charCodeAt(i)) & 0xff];
  return crc;
}

/**
 * A custom hashing policy, as Redis Enterprise applies `shard_key_regex`: the
 * rules are tried in order, each anchored at the start of the key; the first
 * that matches gives the `tag` group, whose bytes are hashed (CRC16 mod
 * 16384). A key no rule matches gets NO_RULE_SLOT. Keys are matched as
 * latin1 strings, so one character is one byte of the key.
 */
export function regexHashing(rules: readonly string[]): KeyHasher {
  if (isDefaultShardKeyRegex(rules)) return STANDARD_HASHING;
  const res = rules.map((r) => new RegExp(r, 'sy'));
  const slotOfLatin1 = (s: string): number => {
    for (const re of res) {
      re.lastIndex = 0;
      const m = re.exec(s);
      if (m === null) continue;
      const tag = m.groups?.tag ?? '';
      return crc16Latin1(tag, 0, tag.length) & 0x3fff;
    }
    return NO_RULE_SLOT;
  };
  const latin1 = (buf: Uint8Array, start: number, end: number): string =>
    Buffer.isBuffer(buf)
      ? buf.toString('latin1', start, end)
      : Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('latin1');
  return {
    keySlot: (key) => slotOfLatin1(typeof key === 'string' ? Buffer.from(key, 'utf8').toString('latin1') : latin1(key, 0, key.length)),
    keySlotOf: (buf, start, end) => slotOfLatin1(latin1(buf, start, end)),
  };
}
