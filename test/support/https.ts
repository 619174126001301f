// One HTTPS request helper for the tests of the client-facing listeners
// (REST 9443, UI 8443, metrics 8070): verified against the node's services
// CA, which signs every client-facing certificate.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON; undefined when it is not JSON (the metrics text): read `text`. */
  json: unknown;
}

export interface RequestOptions {
  cookie?: string;
  csrf?: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Basic authentication (user, password). */
  auth?: [string, string];
  /** The source address (a 127.0.0.x of the test's net), for per-address limits. */
  localAddress?: string;
}

export function servicesRequest(
  node: { addr: string; dataDir: string },
  port: number,
  method: string,
  p: string,
  o: RequestOptions = {},
): Promise<RawResponse> {
  const ca = fs.readFileSync(path.join(node.dataDir, 'certs/services-ca.pem'), 'utf8');
  const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
  const headers: Record<string, string> = { accept: 'application/json', ...(o.headers ?? {}) };
  if (payload) headers['content-type'] = 'application/json';
  if (o.cookie) headers.cookie = o.cookie;
  if (o.csrf) headers['x-csrf-token'] = o.csrf;
  if (o.auth) headers.authorization = 'Basic ' + Buffer.from(`${o.auth[0]}:${o.auth[1]}`).toString('base64');
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: node.addr, port, method, path: p, headers, ca, localAddress: o.localAddress, agent: false, timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined; // not JSON: the caller reads `text`
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${node.addr}:${port}`)));
    req.on('error', reject);
    if (payload) req.end(payload);
    else req.end();
  });
}
