// A small JSON-over-HTTPS client for the REST API, used by the CLI and by a
// joining node talking to a member. Speaks the project's TLS policy.
import https from 'node:https';
import { httpsClientOptions } from '../tls/contexts.js';

export interface JsonRequest {
  method?: string;
  host: string;
  port: number;
  path: string;
  body?: unknown;
  username?: string;
  password?: string;
  /** Trust this CA; without it the server's certificate is not verified (like `curl -k`)… */
  caPem?: string;
  /** …unless this is set: then it is verified against the system's roots and the host name. */
  systemTrust?: boolean;
  timeoutMs?: number;
  /** More request headers (a joining node's software version, say). */
  headers?: Record<string, string>;
}

export interface JsonResponse<T = unknown> {
  status: number;
  body: T;
  /** The server's certificate (DER), so a caller can pin or check it. */
  peerCertRaw?: Buffer;
  /** The response headers (lower-case names), for answers that carry data there (`cluster-state-id`). */
  headers?: import('node:http').IncomingHttpHeaders;
}

export class ConnectError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** OpenSSL's and Node's codes for a certificate that failed verification. */
const CERT_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export function requestJson<T = unknown>(r: JsonRequest): Promise<JsonResponse<T>> {
  return new Promise((resolve, reject) => {
    const payload = r.body === undefined ? undefined : Buffer.from(JSON.stringify(r.body));
    const headers: Record<string, string> = { ...r.headers, accept: 'application/json' };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    if (r.username !== undefined) headers.authorization = 'Basic ' + Buffer.from(`${r.username}:${r.password ?? ''}`).toString('base64');
    const req = https.request(
      {
        ...httpsClientOptions(r.caPem, r.systemTrust),
        method: r.method ?? 'GET',
        host: r.host,
        port: r.port,
        path: r.path,
        headers,
        agent: false,
        timeout: r.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            /* not JSON: keep the text */
          }
          const sock = res.socket as import('node:tls').TLSSocket;
          resolve({ status: res.statusCode ?? 0, body: body as T, peerCertRaw: sock.getPeerCertificate?.()?.raw, headers: res.headers });
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new ConnectError(`no answer from ${r.host}:${r.port} within ${r.timeoutMs ?? 30_000} ms`, 'ETIMEDOUT')),
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof ConnectError) return reject(err);
      if (err.code && CERT_ERRORS.has(err.code))
        reject(new ConnectError(`the certificate of ${r.host}:${r.port} is not trusted: ${err.message}`, 'CERT'));
      else if (err.code === 'ECONNREFUSED')
        reject(new ConnectError(`nothing listens on ${r.host}:${r.port} (connection refused)`, err.code));
      else if (err.code === 'EPROTO' || /SSL|TLS|wrong version/i.test(err.message))
        reject(new ConnectError(`${r.host}:${r.port} does not speak the Tessera REST API over TLS (${err.message})`, 'EPROTO'));
      else reject(new ConnectError(`cannot reach ${r.host}:${r.port}: ${err.message}`, err.code));
    });
    if (payload) req.write(payload);
    req.end();
  });
}

/** The error text of a `{error_code, description}` body, or a fallback. */
export function errorText(res: JsonResponse): string {
  const b = res.body as { error_code?: string; description?: string } | undefined;
  if (b && typeof b === 'object' && b.description) return `${b.description} (${b.error_code ?? res.status})`;
  return `HTTP ${res.status}`;
}
