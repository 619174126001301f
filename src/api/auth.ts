// Basic authentication against the cluster's users (kept in the coordination store).
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { NodeDaemon } from '../control/daemon.js';
import { KEYS, UserRecord } from '../coord/schema.js';
import { readRecord } from '../coord/records.js';
import { OperatorError } from '../util/errors.js';
import { VerifiedCache } from '../control/passwords.js';

export function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  if (!header || !header.startsWith('Basic ')) return undefined;
  const text = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i < 0) return undefined;
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

/**
 * The one password check of the cluster's users: REST basic auth and the web
 * UI's sign-in both go through it (one instance per node), so any limit on
 * failed attempts added here applies to both alike.
 */
export function passwordCheck(daemon: NodeDaemon): (username: string, password: string) => Promise<boolean> {
  const cache = new VerifiedCache();
  return async (username, password) => {
    const member = daemon.requireMember();
    const user = await readRecord(member.client, KEYS.user(username), UserRecord);
    return !!user && (await cache.verify(username, password, user.password_hash));
  };
}

export function authHook(daemon: NodeDaemon, check = passwordCheck(daemon)) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (req.routeOptions.config?.auth === false || !req.routeOptions.url) return; // open route, or a 404
    daemon.requireMember();
    const creds = parseBasic(req.headers.authorization);
    const deny = (d: string) => {
      reply.header('www-authenticate', 'Basic realm="tessera"');
      return new OperatorError('unauthorized', 'unauthorized', d);
    };
    if (!creds) throw deny('authentication required');
    if (!(await check(creds.username, creds.password))) throw deny('wrong username or password');
  };
}
