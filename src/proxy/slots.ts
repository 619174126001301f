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
  let crc = 0;
  for (let i = from; i < to; i++) {
    crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ key.charCodeAt(i)) & 0xff];
  }
  return crc & 0x3fff;
}
