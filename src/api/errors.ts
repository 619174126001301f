// How an operator error travels over HTTP: its kind picks the status.
import type { ErrorKind } from '../util/errors.js';

export const HTTP_STATUS: Record<ErrorKind, number> = {
  invalid: 400,
  not_acceptable: 406,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_many: 429,
  internal: 500,
  upstream: 502,
  unavailable: 503,
  timeout: 504,
};
