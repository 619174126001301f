/**
 * Byte constants shared by the RESP modules (`resp-request.ts`,
 * `resp-reply.ts`, `resp-encode.ts`). They live apart so that none of those
 * modules has to import another just for a char code.
 */

export const CR = 13;
export const LF = 10;
export const STAR = 42; // '*'
export const DOLLAR = 36; // '$'
export const MINUS = 45; // '-'

export const EMPTY = Buffer.alloc(0);
