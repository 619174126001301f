// The page's one way to the REST resources: same-origin fetch with the
// session cookie, the CSRF token on every state-changing call, and REST
// errors ({error_code, description}) turned into ApiError.
import type { SessionInfo } from './types.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    description: string,
    readonly body?: unknown,
  ) {
    super(description);
  }
}

let csrfToken: string | undefined;
let sessionEnded: (why: string) => void = () => undefined;

/** Called when a call is refused for want of a session (it expired, or it was ended elsewhere). */
export function onSessionEnded(fn: (why: string) => void): void {
  sessionEnded = fn;
}

export interface CallOptions {
  /** A periodic refresh: served, but it does not keep an idle session alive. */
  background?: boolean;
}

export async function call<T>(method: string, path: string, body?: unknown, o: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  if (o.background) headers['x-tessera-background'] = '1';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'node_unreachable', `this node does not answer (${(err as Error).message})`);
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const e = (typeof data === 'object' && data ? data : {}) as { error_code?: string; description?: string };
    const err = new ApiError(res.status, e.error_code ?? `http_${res.status}`, e.description ?? `${res.status} ${res.statusText}`, data);
    if (res.status === 401 && csrfToken) {
      csrfToken = undefined;
      sessionEnded('Your session has ended. Sign in again.');
    }
    throw err;
  }
  return data as T;
}

export async function currentSession(): Promise<SessionInfo | undefined> {
  try {
    const s = await call<SessionInfo>('GET', '/ui/session');
    csrfToken = s.csrf_token;
    return s;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return undefined;
    throw err;
  }
}

export async function signIn(username: string, password: string): Promise<SessionInfo> {
  const s = await call<SessionInfo>('POST', '/ui/session', { username, password });
  csrfToken = s.csrf_token;
  return s;
}

export async function signOut(): Promise<void> {
  try {
    await call('DELETE', '/ui/session');
  } finally {
    csrfToken = undefined;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
