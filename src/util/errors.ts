// Errors an operator sees: the reference's `{error_code, description}` and a
// kind that says what went wrong, not how a transport reports it. The REST
// layer maps kinds to HTTP statuses (api/errors.ts); the CLI prints them.
export type ErrorKind =
  | 'invalid'
  | 'not_acceptable'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'too_many'
  | 'internal'
  | 'upstream'
  | 'unavailable'
  | 'timeout';

export class OperatorError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    description: string,
    /** When set, the caller may try again after this many seconds (HTTP `Retry-After`). */
    readonly retryAfterSeconds?: number,
  ) {
    super(description);
  }
}

export const invalid = (code: string, d: string) => new OperatorError('invalid', code, d);
/** A configuration the reference refuses as "not acceptable" (HTTP 406): well-formed, but invalid as a whole. */
export const unacceptable = (code: string, d: string) => new OperatorError('not_acceptable', code, d);
export const unauthorized = (d = 'authentication required') => new OperatorError('unauthorized', 'unauthorized', d);
export const notFound = (code: string, d: string) => new OperatorError('not_found', code, d);
export const conflict = (code: string, d: string) => new OperatorError('conflict', code, d);
