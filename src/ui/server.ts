// The Cluster Manager web UI's server (HTTPS, 8443 on every node of a
// cluster). It serves the bundled page and its assets, and the very REST
// resources of the API (api/server.ts's registerOperatorRoutes: the same
// handlers, schemas and errors), behind a session cookie instead of basic
// auth: the page is one more client of /v1. Sign-in checks the password with
// the REST API's own check. Sessions live in the cluster store, so a session
// works on every node and signing out ends it on every node (sessions.ts).
//
// Two routes of its own serve the page what REST does not have: a database's
// traffic on every node (its live chart) and the verify-encryption report of
// its Security section, judged by internode/verify.ts as the CLI judges it.
//
// Every response carries a strict Content-Security-Policy (`default-src
// 'self'`, no inline script or style), HSTS, and no-store unless it is a
// hashed asset. State-changing calls need the session's CSRF token.
import type { Logger } from 'pino';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiMember, ApiNode } from '../api/services.js';
import type { BdbRecord } from '../coord/schema.js';
import { HttpsService, type PasswordCheck, installErrorHandling, registerOperatorRoutes } from '../api/server.js';
import { forbidden, loadUser, permitted } from '../api/auth.js';
import { credentialsBody, uidParams } from '../api/schemas.js';
import { OperatorError, notFound } from '../util/errors.js';
import { bdbView } from '../api/routes/bdbs.js';
import { type TrafficHost, clusterTraffic } from '../control/reconcilers/traffic.js';
import type { NodeLinksReport } from '../internode/links.js';
import { verifyEncryption } from '../internode/verify.js';
import { LATENCY_BOUNDS_US } from '../proxy/stats.js';
import type { DatabaseMetrics, VerifyEncryptionView } from './views.js';
import { type UiAssets, loadAssets } from './assets.js';
import {
  BACKGROUND_HEADER,
  CSRF_HEADER,
  SESSION_COOKIE,
  type Session,
  type SessionStore,
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

/** What the UI's own routes read of the node: the operator routes' member, and the databases it knows. */
export interface UiNode extends ApiNode {
  requireMember(): ApiMember & TrafficHost & { databases(): readonly BdbRecord[] };
}

export class UiServer extends HttpsService {
  readonly sessions: SessionStore;
  private readonly current = new WeakMap<FastifyRequest, { token: string; session: Session }>();

  constructor(
    daemon: UiNode,
    cert: { certPem: string; keyPem: string },
    log: Logger,
    checkPassword: PasswordCheck,
    sessions: SessionStore,
    assets: UiAssets = loadAssets(),
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

    const view = (s: Session) => ({
      username: s.username,
      csrf_token: s.csrfToken,
      idle_timeout_seconds: Math.floor(sessions.idleTimeoutMs / 1000),
    });

    app.post<{ Body: { username: string; password: string } }>(
      '/ui/session',
      { config: { auth: false }, schema: { body: signInBody } },
      async (req, reply) => {
        const { username, password } = req.body;
        const user = await checkPassword(username, password, req.ip);
        if (!user) {
          req.log.warn({ username, ip: req.ip }, 'web UI sign-in refused');
          throw new OperatorError('unauthorized', 'unauthorized', 'wrong email or password');
        }
        await sessions.end(readCookie(req.headers.cookie, SESSION_COOKIE)); // a session this browser had before ends here
        const { token, session } = await sessions.create(username, user.passwordHash);
        reply.header('set-cookie', sessionCookie(token, sessions.idleTimeoutMs));
        req.log.info({ username, ip: req.ip }, 'web UI sign-in');
        return view(session);
      },
    );
    app.get('/ui/session', async (req) => view(this.current.get(req)!.session));
    app.delete('/ui/session', async (req, reply) => {
      const { token, session } = this.current.get(req)!;
      await sessions.end(token);
      req.log.info({ username: session.username, ip: req.ip }, 'web UI sign-out');
      reply.removeHeader('set-cookie'); // not the renewed one the session check set
      reply.header('set-cookie', clearedSessionCookie()).status(204);
    });

    // A database's traffic through every node's endpoint, and the memory of its shards: cumulative counters
    // per node, which the page turns into rates between two reads. A node that does not answer is listed as such.
    app.get<{ Params: { uid: string } }>(
      '/ui/bdbs/:uid/metrics',
      { schema: { params: uidParams } },
      async (req): Promise<DatabaseMetrics> => {
        const m = daemon.requireMember();
        const uid = Number(req.params.uid);
        if (!m.databases().some((b) => b.uid === uid)) throw notFound('bdb_not_found', `database ${uid} does not exist`);
        const nodes = await clusterTraffic(m);
        return {
          bdb_uid: uid,
          time: Date.now(),
          latency_bounds_us: [...LATENCY_BOUNDS_US],
          nodes: nodes.map((n) => {
            if (!n.ok) return { uid: n.uid, addr: n.addr, ok: false, error: n.error };
            const e = n.traffic.endpoints.find((x) => x.bdbUid === uid);
            const buckets = e ? e.latencyBuckets[0].map((_, k) => e.latencyBuckets.reduce((a, b) => a + b[k], 0)) : [];
            const sum = (xs: number[] | undefined) => (xs ?? []).reduce((a, b) => a + b, 0);
            return {
              uid: n.uid,
              addr: n.addr,
              ok: true,
              time: n.traffic.time,
              endpoint: !!e,
              requests: sum(e?.requests),
              responses: sum(e?.responses),
              latency_sum_us: sum(e?.latencySumUs),
              latency_buckets: buckets,
              clients: e?.clients ?? 0,
              used_memory: sum(n.traffic.shards.filter((s) => s.bdbUid === uid).map((s) => s.used_memory)),
            };
          }),
        };
      },
    );

    // `tessera verify encryption db <uid>`, for the database's Security section.
    app.get<{ Querystring: { db?: string } }>(
      '/ui/verify_encryption',
      {
        schema: {
          querystring: { type: 'object', additionalProperties: false, properties: { db: { type: 'string', pattern: '^[0-9]{1,9}$' } } },
        },
      },
      async (req): Promise<VerifyEncryptionView> => {
        const m = daemon.requireMember();
        const db = req.query.db === undefined ? undefined : Number(req.query.db);
        const bdbs = m.databases().map((b) => bdbView(m, b));
        if (db !== undefined && !bdbs.some((b) => b.uid === db)) throw notFound('bdb_not_found', `database ${db} does not exist`);
        const nodes = m.nodes
          .values()
          .filter((n) => n.addr)
          .sort((a, b) => a.uid - b.uid);
        const unreachable: VerifyEncryptionView['unreachable'] = [];
        const reports: NodeLinksReport[] = [];
        await Promise.all(
          nodes.map(async (n) => {
            try {
              reports.push(
                n.uid === m.uid ? await m.internodeLinks() : await m.rpc(n.uid)!.call<NodeLinksReport>('internode_links', {}, 5000),
              );
            } catch (err) {
              unreachable.push({ uid: n.uid, addr: n.addr, error: (err as Error).message });
            }
          }),
        );
        const report = verifyEncryption(nodes, bdbs, reports, { db, requireAll: false, keyExchange: m.policy().internode_key_exchange });
        return { report, unreachable: unreachable.sort((a, b) => a.uid - b.uid) };
      },
    );

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
  private async requireSession(daemon: UiNode, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (req.routeOptions.config?.auth === false || !req.routeOptions.url) return; // open route, or a 404
    const token = readCookie(req.headers.cookie, SESSION_COOKIE);
    const background = req.headers[BACKGROUND_HEADER] === '1';
    const session = await this.sessions.find(token, !background);
    if (!session || !token) {
      if (token) reply.header('set-cookie', clearedSessionCookie());
      throw new OperatorError('unauthorized', 'unauthorized', 'sign in first: there is no session, or it has expired');
    }
    // The user as stored now: a deleted user, or a changed password, ends the session at once; the role is the current one.
    const user = await loadUser(daemon, session.username);
    if (!user || credentialOf(user.password_hash) !== session.credential) {
      await this.sessions.end(token);
      reply.header('set-cookie', clearedSessionCookie());
      throw new OperatorError('unauthorized', 'unauthorized', "sign in again: this user's password was changed, or the user was removed");
    }
    // Signing out is every user's right; everything else follows the role.
    if (req.routeOptions.url !== '/ui/session' && !permitted(user.role, req.method, req.routeOptions.url))
      throw forbidden(user.role, req.method, req.routeOptions.url);
    if (!SAFE_METHODS.has(req.method) && !csrfMatches(session, req.headers[CSRF_HEADER])) {
      throw new OperatorError(
        'forbidden',
        'csrf_token_invalid',
        `a state-changing call needs this session's CSRF token in the ${CSRF_HEADER} header`,
      );
    }
    // The cookie lapses with the session: each call of the user's pushes its expiry back.
    if (!background) reply.header('set-cookie', sessionCookie(token, this.sessions.idleTimeoutMs));
    this.current.set(req, { token, session });
  }
}
