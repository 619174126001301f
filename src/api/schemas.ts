// JSON schemas shared by several route plugins.

/** `{uid}` in a path: digits only, so `/v1/nodes/abc` is a 400, not a lookup. */
export const uidParams = {
  type: 'object',
  required: ['uid'],
  properties: { uid: { type: 'string', pattern: '^[0-9]{1,9}$' } },
} as const;
