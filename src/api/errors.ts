// REST errors: an HTTP status and the reference's `{error_code, description}` body.
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    description: string,
  ) {
    super(description);
  }
}

export const badRequest = (code: string, d: string) => new ApiError(400, code, d);
export const unauthorized = (d = 'authentication required') => new ApiError(401, 'unauthorized', d);
export const notFound = (code: string, d: string) => new ApiError(404, code, d);
export const conflict = (code: string, d: string) => new ApiError(409, code, d);
