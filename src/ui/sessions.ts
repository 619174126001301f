// Web UI sessions: an opaque random token in a cookie; the session itself is
// kept in the cluster store (etcd, by a digest of the token), so a session
// signed in on one node is valid on every node, and signing out ends it on
// every node at once (each call reads the store). Each session carries its
// own CSRF token, which every state-changing call must echo in a header. A
// session ends when its user signs out, or after 30 minutes without a call
// the user made; background refreshes of an open page do not count as
// activity. A user's activity is recorded at most once a minute (one store
// write), so the idle timeout is exact to within that minute.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { UiSessionRecord } from '../coord/schema.js';

/** `__Host-`: the browser keeps it only if Secure, Path=/ and no Domain, so no other host can plant or share it. */
export const SESSION_COOKIE = '__Host-tessera_session';
export const CSRF_HEADER = 'x-csrf-token';
/** Set by the UI on its periodic refreshes: the call is served but does not keep the session alive. */
export const BACKGROUND_HEADER = 'x-tessera-background';
export const IDLE_TIMEOUT_MS = 30 * 60_000;
/** A user's activity is written back at most this often. */
export const TOUCH_EVERY_MS = 60_000;
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

/** Where sessions are kept, by the digest of their token: the cluster store's `uiSessions` (coord/store.ts), so every node sees every session. */
export interface SessionBackend {
  get(id: string): Promise<UiSessionRecord | null>;
  put(id: string, rec: UiSessionRecord): Promise<void>;
  delete(id: string): Promise<void>;
  list(): Promise<Map<string, UiSessionRecord>>;
}

const digest = (token: string) => createHash('sha256').update(token).digest('base64url');
const view = (r: UiSessionRecord): Session => ({
  username: r.username,
  credential: r.credential ?? '',
  csrfToken: r.csrf_token,
  createdAt: r.created,
  lastActiveAt: r.last_active,
});
/** What a session remembers of its user's password hash. */
export const credentialOf = (passwordHash: string) => createHash('sha256').update('session\0').update(passwordHash).digest('base64url');

export class SessionStore {
  constructor(
    private readonly backend: SessionBackend,
    readonly idleTimeoutMs = IDLE_TIMEOUT_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new session for a user whose password was just checked; returns the cookie's token. */
  async create(username: string, passwordHash = ''): Promise<{ token: string; session: Session }> {
    await this.sweep();
    const token = randomBytes(32).toString('base64url');
    const t = this.now();
    const rec: UiSessionRecord = {
      username,
      credential: credentialOf(passwordHash),
      csrf_token: randomBytes(32).toString('base64url'),
      created: t,
      last_active: t,
    };
    await this.backend.put(digest(token), rec);
    return { token, session: view(rec) };
  }

  /** The live session a token names, if any. `activity`: the call counts as the user's, and restarts the idle clock. */
  async find(token: string | undefined, activity: boolean): Promise<Session | undefined> {
    if (!token || token.length > 200) return undefined;
    const id = digest(token);
    const rec = await this.backend.get(id);
    if (!rec) return undefined;
    const t = this.now();
    if (t - rec.last_active >= this.idleTimeoutMs) {
      await this.backend.delete(id);
      return undefined;
    }
    if (activity && t - rec.last_active >= TOUCH_EVERY_MS) {
      rec.last_active = t;
      await this.backend.put(id, rec);
    }
    return view(rec);
  }

  async end(token: string | undefined): Promise<void> {
    if (token && token.length <= 200) await this.backend.delete(digest(token));
  }

  /** Lapsed sessions go; beyond MAX_SESSIONS, the least recently active too. */
  private async sweep(): Promise<void> {
    const t = this.now();
    const all = [...(await this.backend.list())];
    const live = all.filter(([, r]) => t - r.last_active < this.idleTimeoutMs).sort((a, b) => a[1].last_active - b[1].last_active);
    const drop = [
      ...all.filter(([, r]) => t - r.last_active >= this.idleTimeoutMs),
      ...live.slice(0, Math.max(0, live.length - (MAX_SESSIONS - 1))),
    ];
    await Promise.all(drop.map(([id]) => this.backend.delete(id)));
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
