// JSON schemas shared by several route plugins.

/** A user name and password: cluster creation and join, the web UI's sign-in. */
export const credentialsBody = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'password'],
  properties: {
    username: { type: 'string', minLength: 1, maxLength: 256 },
    password: { type: 'string', minLength: 1, maxLength: 1024 },
  },
} as const;

/** `{uid}` in a path: digits only, so `/v1/nodes/abc` is a 400, not a lookup. */
export const uidParams = {
  type: 'object',
  required: ['uid'],
  properties: { uid: { type: 'string', pattern: '^[0-9]{1,9}$' } },
} as const;
