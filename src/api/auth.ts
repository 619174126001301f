// Basic authentication against the cluster's users (kept in the coordination
// store), and what each role may do.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiNode } from './services.js';
import type { UserRecord, UserRole } from '../coord/schema.js';
import { OperatorError } from '../util/errors.js';
import { VerifiedCache, verifyNobody } from '../control/bootstrap/passwords.js';
import { LoginLimiter } from './login-limiter.js';

export function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const text = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i < 0) return undefined;
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

/** Who made a request: the user whose password was just checked. */
export interface AuthedUser {
  username: string;
  role: UserRole;
  /** The stored hash the password matched: a session remembers it, and ends when it changes. */
  passwordHash: string;
}

/** Checks a user's password for a login from `sourceAddr`; throws 429 (too_many) when that address failed too often. */
export type PasswordCheck = (username: string, password: string, sourceAddr: string) => Promise<AuthedUser | undefined>;

/** A user's current record, or undefined (also for names that cannot be keys). */
export async function loadUser(daemon: ApiNode, username: string): Promise<UserRecord | undefined> {
  if (!username || username.includes('/')) return undefined;
  return (await daemon.requireMember().store.users.get(username)) ?? undefined;
}

/**
 * The one password check of the cluster's users: REST basic auth and the web
 * UI's sign-in both go through it (one instance per node), so the limit on
 * failed attempts (login-limiter.ts) applies to both alike. The limit is
 * checked before anything else, the password is compared in constant time
 * (passwords.ts), and an unknown user costs the same scrypt as a known one.
 * A changed password takes effect at once: the user record is read on every
 * check, and the cache of good checks is keyed by the stored hash.
 */
export function passwordCheck(daemon: ApiNode, limiter = new LoginLimiter()): PasswordCheck {
  const cache = new VerifiedCache();
  return async (username, password, sourceAddr) => {
    const wait = limiter.retryAfterSeconds(sourceAddr);
    if (wait > 0) {
      throw new OperatorError(
        'too_many',
        'too_many_login_failures',
        `too many failed logins from ${sourceAddr}; try again in ${wait} s`,
        wait,
      );
    }
    const user = await loadUser(daemon, username);
    const ok = user ? await cache.verify(username, password, user.password_hash) : await verifyNobody(password);
    if (!ok || !user) {
      limiter.failed(sourceAddr);
      return undefined;
    }
    limiter.succeeded(sourceAddr);
    return { username: user.username, role: user.role, passwordHash: user.password_hash };
  };
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * What a role may do (Redis Enterprise's names): `admin` everything;
 * `db_viewer` reads the cluster, nodes and databases, changes nothing, and
 * does not see the users.
 */
export function permitted(role: UserRole, method: string, routeUrl: string): boolean {
  if (role === 'admin') return true;
  return READ_METHODS.has(method) && !routeUrl.startsWith('/v1/users');
}

export function forbidden(role: UserRole, method: string, routeUrl: string): OperatorError {
  return new OperatorError('forbidden', 'insufficient_permissions', `the role ${role} may not ${method} ${routeUrl}`);
}

/** The user a request was authenticated as (REST: basic auth; the web UI: its session). */
export const requestUser = new WeakMap<FastifyRequest, AuthedUser>();

export function authHook(daemon: ApiNode, check: PasswordCheck) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (req.routeOptions.config?.auth === false || !req.routeOptions.url) return; // open route, or a 404
    daemon.requireMember();
    const creds = parseBasic(req.headers.authorization);
    const deny = (d: string) => {
      reply.header('www-authenticate', 'Basic realm="tessera"');
      return new OperatorError('unauthorized', 'unauthorized', d);
    };
    if (!creds) throw deny('authentication required');
    const user = await check(creds.username, creds.password, req.ip);
    if (!user) throw deny('wrong username or password');
    if (!permitted(user.role, req.method, req.routeOptions.url)) throw forbidden(user.role, req.method, req.routeOptions.url);
    requestUser.set(req, user);
  };
}
