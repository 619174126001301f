// The Cluster Manager web UI's server (HTTPS, 8443 on every node of a
// cluster). It serves the bundled page and its assets, and the very REST
// resources of the API (api/server.ts's registerOperatorRoutes: the same
// handlers, schemas and errors), behind a session cookie instead of basic
// auth: the page is one more client of /v1. Sign-in checks the password with
// the REST API's own check.
//
// Every response carries a strict Content-Security-Policy (`default-src
// 'self'`, no inline script or style), HSTS, and no-store unless it is a
// hashed asset. State-changing calls need the session's CSRF token.
import type { Logger } from 'pino';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { NodeDaemon } from '../control/daemon.js';
import { HttpsService, PasswordCheck, installErrorHandling, registerOperatorRoutes } from '../api/server.js';
import { forbidden, loadUser, permitted } from '../api/auth.js';
import { credentialsBody } from '../api/schemas.js';
import { OperatorError, notFound } from '../util/errors.js';
import { UiAssets, loadAssets } from './assets.js';
import {
  BACKGROUND_HEADER,
  CSRF_HEADER,
  SESSION_COOKIE,
  Session,
  SessionStore,
  clearedSessionCookie,
  credentialOf,
  csrfMatches,
  readCookie,
  sessionCookie,
} from './sessions.js';

export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
  'strict-transport-security': 'max-age=31536000',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};
const IMMUTABLE = 'public, max-age=31536000, immutable';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const signInBody = credentialsBody;

export class UiServer extends HttpsService {
  readonly sessions: SessionStore;
  private readonly current = new WeakMap<FastifyRequest, { token: string; session: Session }>();

  constructor(
    daemon: NodeDaemon,
    cert: { certPem: string; keyPem: string },
    log: Logger,
    checkPassword: PasswordCheck,
    assets: UiAssets = loadAssets(),
    sessions = new SessionStore(),
  ) {
    super(cert, log, 'web UI');
    this.sessions = sessions;
    const app = this.app;
    if (assets.problem) log.error(assets.problem);
    installErrorHandling(app);
    app.addHook('onRequest', async (_req, reply) => {
      reply.headers(SECURITY_HEADERS);
    });
    app.addHook('onRequest', (req, reply) => this.requireSession(daemon, req, reply));
    registerOperatorRoutes(app, daemon);

    const view = (s: Session) => ({ username: s.username, csrf_token: s.csrfToken, idle_timeout_seconds: Math.floor(sessions.idleTimeoutMs / 1000) });

    app.post<{ Body: { username: string; password: string } }>('/ui/session', { config: { auth: false }, schema: { body: signInBody } }, async (req, reply) => {
      const { username, password } = req.body;
      const user = await checkPassword(username, password, req.ip);
      if (!user) {
        req.log.warn({ username, ip: req.ip }, 'web UI sign-in refused');
        throw new OperatorError('unauthorized', 'unauthorized', 'wrong email or password');
      }
      sessions.end(readCookie(req.headers.cookie, SESSION_COOKIE)); // a session this browser had before ends here
      const { token, session } = sessions.create(username, user.passwordHash);
      reply.header('set-cookie', sessionCookie(token, sessions.idleTimeoutMs));
      req.log.info({ username, ip: req.ip }, 'web UI sign-in');
      return view(session);
    });
    app.get('/ui/session', async (req) => view(this.current.get(req)!.session));
    app.delete('/ui/session', async (req, reply) => {
      const { token, session } = this.current.get(req)!;
      sessions.end(token);
      req.log.info({ username: session.username, ip: req.ip }, 'web UI sign-out');
      reply.removeHeader('set-cookie'); // not the renewed one the session check set
      reply.header('set-cookie', clearedSessionCookie()).status(204);
    });

    app.get('/', { config: { auth: false } }, async (_req, reply) => {
      if (!assets.index) return reply.status(503).type('text/plain; charset=utf-8').send(`${assets.problem}\n`);
      return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(assets.index);
    });
    app.get<{ Params: { name: string } }>('/assets/:name', { config: { auth: false } }, async (req, reply) => {
      const a = assets.files.get(req.params.name);
      if (!a) throw notFound('not_found', `no such asset: ${req.params.name}`);
      return reply.type(a.type).header('cache-control', IMMUTABLE).send(a.body);
    });
  }

  /** Every route but the page, its assets and sign-in needs a live session; state-changing ones also its CSRF token. */
  private async requireSession(daemon: NodeDaemon, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (req.routeOptions.config?.auth === false || !req.routeOptions.url) return; // open route, or a 404
    const token = readCookie(req.headers.cookie, SESSION_COOKIE);
    const background = req.headers[BACKGROUND_HEADER] === '1';
    const session = this.sessions.find(token, !background);
    if (!session || !token) {
      if (token) reply.header('set-cookie', clearedSessionCookie());
      throw new OperatorError('unauthorized', 'unauthorized', 'sign in first: there is no session, or it has expired');
    }
    // The user as stored now: a deleted user, or a changed password, ends the session at once; the role is the current one.
    const user = await loadUser(daemon, session.username);
    if (!user || credentialOf(user.password_hash) !== session.credential) {
      this.sessions.end(token);
      reply.header('set-cookie', clearedSessionCookie());
      throw new OperatorError('unauthorized', 'unauthorized', 'sign in again: this user\'s password was changed, or the user was removed');
    }
    // Signing out is every user's right; everything else follows the role.
    if (req.routeOptions.url !== '/ui/session' && !permitted(user.role, req.method, req.routeOptions.url)) throw forbidden(user.role, req.method, req.routeOptions.url);
    if (!SAFE_METHODS.has(req.method) && !csrfMatches(session, req.headers[CSRF_HEADER])) {
      throw new OperatorError('forbidden', 'csrf_token_invalid', `a state-changing call needs this session's CSRF token in the ${CSRF_HEADER} header`);
    }
    // The cookie lapses with the session: each call of the user's pushes its expiry back.
    if (!background) reply.header('set-cookie', sessionCookie(token, this.sessions.idleTimeoutMs));
    this.current.set(req, { token, session });
  }

}
