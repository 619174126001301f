// The REST API (HTTPS, 9443): Fastify, routes grouped as plugins with their
// JSON schemas beside them. Validation is strict: unknown fields and wrong
// types are rejected, never ignored or coerced.
import type https from 'node:https';
import Fastify, { type FastifyError, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import { httpsServerOptions } from '../tls/contexts.js';
import type { ApiNode, BootstrapNode, JoinAdmission } from './services.js';
import { OperatorError } from '../util/errors.js';
import { HTTP_STATUS } from './errors.js';
import { isStoreUnavailable } from '../coord/etcd.js';
import { type PasswordCheck, authHook, passwordCheck } from './auth.js';
import { usersRoutes } from './routes/users.js';
export type { PasswordCheck } from './auth.js';
import { bootstrapRoutes } from './routes/bootstrap.js';
import { clusterRoutes } from './routes/cluster.js';
import { nodesRoutes } from './routes/nodes.js';
import { joinRoutes } from './routes/join.js';
import { bdbsRoutes } from './routes/bdbs.js';
import { shardsRoutes } from './routes/shards.js';
import { lifecycleRoutes, customerCertRoutes } from './routes/lifecycle.js';
import { caRoutes } from './routes/cas.js';
import { listenOrExplain } from '../internode/channel.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: the route answers without credentials (bootstrap before a cluster exists). */
    auth?: boolean;
  }
}

export type Api = FastifyInstance<https.Server>;

/** A Fastify HTTPS app with the options every API origin of a node shares (REST on 9443, the web UI on 8443). */
export function newApiApp(cert: { certPem: string; keyPem: string }, log: Logger): Api {
  return Fastify({
    https: httpsServerOptions(cert),
    loggerInstance: log,
    // One log line per request would drown the node's log; routes log what changes.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 4 * 1024 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
  }) as unknown as Api;
}

/** Every error, and every unknown path, answered as `{error_code, description}` with its HTTP status. */
export function installErrorHandling(app: Api): void {
  app.setErrorHandler((err: FastifyError | OperatorError, req, reply) => {
    if (err instanceof OperatorError) {
      if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
      return reply.status(HTTP_STATUS[err.kind]).send({ error_code: err.code, description: err.message });
    }
    if (isStoreUnavailable(err)) {
      req.log.warn({ err: (err as Error).message, url: req.url }, 'coordination store unreachable');
      return reply.status(503).header('retry-after', '2').send({
        error_code: 'store_unavailable',
        description:
          "this node's coordination store (etcd) is unreachable; it is being restarted, or the cluster has lost its majority. Try again shortly, or ask another node.",
      });
    }
    const fe = err as FastifyError;
    if (fe.validation) {
      const v = fe.validation[0];
      const where = `${fe.validationContext ?? 'request'}${v?.instancePath ?? ''}`;
      const extra = (v?.params as { additionalProperty?: string } | undefined)?.additionalProperty;
      const description = extra ? `unknown field '${extra}' in ${where}` : `${where} ${v?.message ?? fe.message}`;
      return reply.status(400).send({ error_code: 'invalid_schema', description });
    }
    if (fe.statusCode && fe.statusCode < 500) {
      return reply
        .status(fe.statusCode)
        .send({ error_code: (fe.code ?? 'invalid_request').toLowerCase().replace(/^fst_err_/, ''), description: fe.message });
    }
    req.log.error({ err: fe.message, stack: fe.stack, url: req.url }, 'request failed');
    return reply.status(500).send({ error_code: 'internal_error', description: fe.message });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error_code: 'not_found', description: `no such endpoint: ${req.method} ${req.url.split('?')[0]}` }),
  );
}

/**
 * The operator's resources (cluster, nodes, databases, shards, certificates,
 * alerts): mounted by the REST server behind basic auth and by the web UI's
 * server behind its session, so both answer from the same handlers.
 */
export function registerOperatorRoutes(app: Api, daemon: ApiNode): void {
  app.register(clusterRoutes, { daemon });
  app.register(nodesRoutes, { daemon });
  app.register(bdbsRoutes, { daemon });
  app.register(shardsRoutes, { daemon });
  app.register(lifecycleRoutes, { daemon });
  app.register(customerCertRoutes, { daemon });
  app.register(caRoutes, { daemon });
  app.register(usersRoutes, { daemon });
}

/** An HTTPS Fastify app on one node address: listen, swap its certificate, close. */
export class HttpsService {
  readonly app: Api;

  constructor(
    cert: { certPem: string; keyPem: string },
    log: Logger,
    /** What it is, for the port-in-use explanation. */
    private readonly what: string,
  ) {
    this.app = newApiApp(cert, log);
  }

  async listen(host: string, port: number): Promise<void> {
    await this.app.ready();
    await listenOrExplain(this.app.server, host, port, this.what);
  }

  /** Swap the certificate for new connections; open ones are not touched. */
  setCertificate(cert: { certPem: string; keyPem: string }): void {
    this.app.server.setSecureContext(httpsServerOptions(cert));
  }

  async close(): Promise<void> {
    this.app.server.closeAllConnections?.();
    await this.app.close();
  }
}

export class RestServer extends HttpsService {
  /** The cluster users' password check; the web UI's sign-in uses this same one. */
  readonly checkPassword: PasswordCheck;

  constructor(daemon: ApiNode & BootstrapNode & JoinAdmission, cert: { certPem: string; keyPem: string }, log: Logger) {
    super(cert, log, 'REST API');
    const app = this.app;
    installErrorHandling(app);
    this.checkPassword = passwordCheck(daemon);
    app.addHook('onRequest', authHook(daemon, this.checkPassword));
    // Bootstrap and joins are node-to-node and first-contact routes: REST only.
    app.register(bootstrapRoutes, { daemon });
    app.register(joinRoutes, { daemon });
    registerOperatorRoutes(app, daemon);
  }
}
