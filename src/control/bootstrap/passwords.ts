// Password hashing for the admin user: scrypt with a random salt. Only the
// hash is stored (in the coordination store); the password is never logged.
import { scrypt as scryptCb, randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { promisify } from 'node:util';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number, opts: object) => Promise<Buffer>;
const PARAMS = { N: 16384, r: 8, p: 1 };

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, 32, PARAMS);
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, n, r, p, saltB64, hashB64] = stored.split('$');
  if (kind !== 'scrypt') return false;
  const expected = Buffer.from(hashB64, 'base64');
  const got = await scrypt(password, Buffer.from(saltB64, 'base64'), expected.length, { N: Number(n), r: Number(r), p: Number(p) });
  return got.length === expected.length && timingSafeEqual(got, expected);
}

let dummy: Promise<string> | undefined;

/**
 * Spend what checking `password` against a real user's hash costs, and fail:
 * a login for an unknown user takes as long as a wrong password for a known
 * one, so timing does not tell which users exist.
 */
export async function verifyNobody(password: string): Promise<false> {
  dummy ??= hashPassword(randomBytes(16).toString('base64'));
  await verifyPassword(password, await dummy);
  return false;
}

/**
 * Remembers recent successful checks for a short while so that a CLI or UI
 * polling the API does not pay for scrypt on every request. Keyed by a digest
 * of the stored hash and the presented password, never by the password itself.
 */
export class VerifiedCache {
  private ok = new Map<string, number>();
  constructor(private readonly ttlMs = 60_000) {}

  private key(user: string, password: string, stored: string): string {
    return createHash('sha256').update(user).update('\0').update(password).update('\0').update(stored).digest('base64');
  }

  async verify(user: string, password: string, stored: string): Promise<boolean> {
    const k = this.key(user, password, stored);
    const t = this.ok.get(k);
    if (t && t > Date.now()) return true;
    const good = await verifyPassword(password, stored);
    if (good) {
      if (this.ok.size > 1000) this.ok.clear();
      this.ok.set(k, Date.now() + this.ttlMs);
    }
    return good;
  }
}
