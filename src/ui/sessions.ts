// Web UI sessions: an opaque random token in a cookie, kept in this node's
// memory (a session belongs to the node that issued it; another node's UI
// signs in again). Each session carries its own CSRF token, which every
// state-changing call must echo in a header. A session ends when its user
// signs out, or after 30 minutes without a call the user made; background
// refreshes of an open page do not count as activity.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** `__Host-`: the browser keeps it only if Secure, Path=/ and no Domain, so no other host can plant or share it. */
export const SESSION_COOKIE = '__Host-tessera_session';
export const CSRF_HEADER = 'x-csrf-token';
/** Set by the UI on its periodic refreshes: the call is served but does not keep the session alive. */
export const BACKGROUND_HEADER = 'x-tessera-background';
export const IDLE_TIMEOUT_MS = 30 * 60_000;
/** Sessions beyond this many push out the least recently used (every one needed the admin password). */
const MAX_SESSIONS = 1000;

export interface Session {
  readonly username: string;
  /** A digest of the user's password hash at sign-in: when the password changes, the session ends. */
  readonly credential: string;
  readonly csrfToken: string;
  readonly createdAt: number;
  lastActiveAt: number;
}

const digest = (token: string) => createHash('sha256').update(token).digest('base64url');
/** What a session remembers of its user's password hash. */
export const credentialOf = (passwordHash: string) => createHash('sha256').update('session\0').update(passwordHash).digest('base64url');

export class SessionStore {
  /** By a digest of the token: the tokens themselves are never kept. */
  private readonly sessions = new Map<string, Session>();

  constructor(
    readonly idleTimeoutMs = IDLE_TIMEOUT_MS,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /** A new session for a user whose password was just checked; returns the cookie's token. */
  create(username: string, passwordHash = ''): { token: string; session: Session } {
    this.sweep();
    if (this.sessions.size >= MAX_SESSIONS) {
      const oldest = [...this.sessions.entries()].sort((a, b) => a[1].lastActiveAt - b[1].lastActiveAt)[0];
      this.sessions.delete(oldest[0]);
    }
    const token = randomBytes(32).toString('base64url');
    const t = this.now();
    const session: Session = { username, credential: credentialOf(passwordHash), csrfToken: randomBytes(32).toString('base64url'), createdAt: t, lastActiveAt: t };
    this.sessions.set(digest(token), session);
    return { token, session };
  }

  /** The live session a token names, if any. `activity`: the call counts as the user's, and restarts the idle clock. */
  find(token: string | undefined, activity: boolean): Session | undefined {
    if (!token) return undefined;
    const key = digest(token);
    const s = this.sessions.get(key);
    if (!s) return undefined;
    const t = this.now();
    if (t - s.lastActiveAt >= this.idleTimeoutMs) {
      this.sessions.delete(key);
      return undefined;
    }
    if (activity) s.lastActiveAt = t;
    return s;
  }

  end(token: string | undefined): void {
    if (token) this.sessions.delete(digest(token));
  }

  private sweep(): void {
    const t = this.now();
    for (const [k, s] of this.sessions) if (t - s.lastActiveAt >= this.idleTimeoutMs) this.sessions.delete(k);
  }
}

/** The presented CSRF token matches the session's (compared in constant time). */
export function csrfMatches(s: Session, presented: string | string[] | undefined): boolean {
  if (typeof presented !== 'string') return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(s.csrfToken);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** One cookie's value from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** The session cookie: script cannot read it, it travels only over HTTPS and only on same-site requests, and it lapses with the idle timeout. */
export function sessionCookie(token: string, maxAgeMs: number): string {
  return `${SESSION_COOKIE}=${token}; Path=/; Max-Age=${Math.floor(maxAgeMs / 1000)}; Secure; HttpOnly; SameSite=Strict`;
}

export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict`;
}
