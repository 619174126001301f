// Pieces of request parsing that stand alone: interning command names, and
// splitting an inline request (redis's sdssplitargs) into its arguments.

// Command names repeat endlessly; a small shared cache, keyed by a
// case-folded hash of the bytes, returns the lower-case string without
// allocating. Bounded, so a client inventing names cannot grow it.
const NAME_CACHE = new Map<number, string>();
const NAME_CACHE_MAX = 2048;

/** The ASCII-lower-cased latin1 string of a command name. */
export function internName(b: Buffer): string {
  const n = b.length;
  if (n > 32) return asciiLower(b);
  let h = n;
  for (let i = 0; i < n; i++) {
    let c = b[i];
    if (c >= 65 && c <= 90) c |= 32;
    h = Math.imul(h ^ c, 16777619);
  }
  const hit = NAME_CACHE.get(h);
  if (hit !== undefined && hit.length === n) {
    let i = 0;
    for (; i < n; i++) {
      let c = b[i];
      if (c >= 65 && c <= 90) c |= 32;
      if (hit.charCodeAt(i) !== c) break;
    }
    if (i === n) return hit;
  }
  const s = asciiLower(b);
  if (hit === undefined && NAME_CACHE.size < NAME_CACHE_MAX) NAME_CACHE.set(h, s);
  return s;
}

function asciiLower(b: Buffer): string {
  const s = b.toString('latin1');
  // toLowerCase would also fold latin1 letters; redis folds ASCII only.
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      let out = '';
      for (let j = 0; j < s.length; j++) {
        const c = s.charCodeAt(j);
        out += String.fromCharCode(c >= 65 && c <= 90 ? c | 32 : c);
      }
      return out;
    }
  }
  return s.toLowerCase();
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13); // C isspace(): " \t\n\v\f\r"
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Splits an inline request into arguments exactly as redis's sdssplitargs():
 * blanks separate arguments; "double quotes" take \xHH, \n, \r, \t, \b, \a
 * and \<any>; 'single quotes' take \'; a closing quote must be followed by a
 * blank or the end. Returns null on unbalanced quotes. Unquoted arguments
 * are views of `line`.
 */
export function splitInlineArgs(line: Buffer): Buffer[] | null {
  const out: Buffer[] = [];
  const n = line.length;
  let p = 0;
  for (;;) {
    while (p < n && isSpace(line[p])) p++;
    if (p >= n) return out;
    const start = p;
    let bytes: number[] | null = null; // used once a quote makes a copy necessary
    let inq = false;
    let insq = false;
    let end = -1;
    for (;;) {
      const c = p < n ? line[p] : 0;
      if (inq) {
        if (c === 0x5c && p + 3 < n && line[p + 1] === 0x78 && hexVal(line[p + 2]) >= 0 && hexVal(line[p + 3]) >= 0) {
          bytes!.push(hexVal(line[p + 2]) * 16 + hexVal(line[p + 3]));
          p += 3;
        } else if (c === 0x5c && p + 1 < n) {
          p++;
          const e = line[p];
          bytes!.push(e === 0x6e ? 10 : e === 0x72 ? 13 : e === 0x74 ? 9 : e === 0x62 ? 8 : e === 0x61 ? 7 : e);
        } else if (c === 0x22) {
          if (p + 1 < n && !isSpace(line[p + 1])) return null;
          p++;
          break;
        } else if (p >= n) {
          return null;
        } else {
          bytes!.push(c);
        }
      } else if (insq) {
        if (c === 0x5c && p + 1 < n && line[p + 1] === 0x27) {
          p++;
          bytes!.push(0x27);
        } else if (c === 0x27) {
          if (p + 1 < n && !isSpace(line[p + 1])) return null;
          p++;
          break;
        } else if (p >= n) {
          return null;
        } else {
          bytes!.push(c);
        }
      } else if (c === 32 || c === 10 || c === 13 || c === 9 || p >= n) {
        end = p;
        if (p < n) p++;
        break;
      } else if (c === 0x22 || c === 0x27) {
        if (bytes === null) bytes = Array.from(line.subarray(start, p));
        if (c === 0x22) inq = true;
        else insq = true;
      } else if (bytes !== null) {
        bytes.push(c);
      }
      p++;
    }
    out.push(bytes !== null ? Buffer.from(bytes) : line.subarray(start, end));
  }
}
