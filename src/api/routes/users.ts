// Users (Redis Enterprise's `/v1/users`): GET /v1/users[/{uid}], POST /v1/users,
// PUT /v1/users/{uid} (role, name, password), DELETE /v1/users/{uid}. The login
// name is `email`; roles are `admin` and `db_viewer` (auth.ts says what each
// may do). A changed password works at once, and the old one stops at once:
// every check reads the user record (auth.ts), and web UI sessions end when
// their user's password changes (ui/server.ts).
import type { FastifyPluginAsync } from 'fastify';
import type { ApiNode } from '../services.js';
import { USER_ROLES, type UserRecord } from '../../coord/schema.js';
import { hashPassword } from '../../control/bootstrap/passwords.js';
import { OperatorError, conflict, invalid, notFound } from '../../util/errors.js';
import { uidParams } from '../schemas.js';

const EMAIL = '^[^\\s/@]+@[^\\s/@]+$';
const fields = {
  email: { type: 'string', minLength: 3, maxLength: 256, pattern: EMAIL },
  password: { type: 'string', minLength: 1, maxLength: 1024 },
  name: { type: 'string', maxLength: 256 },
  role: { type: 'string', enum: [...USER_ROLES] },
  // Accepted as Redis Enterprise sends them; only their one supported value.
  auth_method: { const: 'regular' },
  email_alerts: { const: false },
} as const;
const createBody = { type: 'object', additionalProperties: false, required: ['email', 'password', 'role'], properties: fields } as const;
const updateBody = { type: 'object', additionalProperties: false, minProperties: 1, properties: fields } as const;

interface UserInput {
  email?: string;
  password?: string;
  name?: string;
  role?: UserRecord['role'];
}

/** Users written before uids existed: the first admin is uid 1. */
const uidOf = (u: UserRecord) => u.uid ?? 1;

function view(u: UserRecord) {
  return {
    uid: uidOf(u),
    email: u.username,
    name: u.name ?? '',
    role: u.role,
    status: 'active',
    auth_method: 'regular',
    email_alerts: false,
    ...(u.password_issue_date ? { password_issue_date: u.password_issue_date } : {}),
  };
}

export const usersRoutes: FastifyPluginAsync<{ daemon: ApiNode }> = async (app, { daemon }) => {
  const users = () => daemon.requireMember().store.users;
  const all = () => users().list();
  const byUid = async (uid: number) => {
    const u = (await all()).find((x) => uidOf(x) === uid);
    if (!u) throw notFound('user_not_exist', `user ${uid} does not exist`);
    return u;
  };

  app.get('/v1/users', async () => (await all()).sort((a, b) => uidOf(a) - uidOf(b)).map(view));

  app.get<{ Params: { uid: string } }>('/v1/users/:uid', { schema: { params: uidParams } }, async (req) =>
    view(await byUid(Number(req.params.uid))),
  );

  app.post<{ Body: UserInput & { email: string; password: string; role: UserRecord['role'] } }>(
    '/v1/users',
    { schema: { body: createBody } },
    async (req) => {
      const store = daemon.requireMember().store;
      const v = req.body;
      if ((await all()).some((u) => u.username === v.email)) throw conflict('user_exists', `a user with email ${v.email} exists`);
      const password_hash = await hashPassword(v.password);
      // uid 1 is the first admin, also when an older version did not number it.
      let uid = await store.seqs.next('user');
      if (uid === 1) uid = await store.seqs.next('user');
      const rec: UserRecord = {
        uid,
        username: v.email,
        password_hash,
        role: v.role,
        ...(v.name ? { name: v.name } : {}),
        password_issue_date: new Date().toISOString(),
      };
      if (!(await store.users.create(rec))) throw conflict('user_exists', `a user with email ${v.email} exists`);
      req.log.info({ user: uid, email: v.email, role: v.role }, 'user created');
      return view(rec);
    },
  );

  app.put<{ Params: { uid: string }; Body: UserInput }>(
    '/v1/users/:uid',
    { schema: { params: uidParams, body: updateBody } },
    async (req) => {
      const v = req.body;
      const cur = await byUid(Number(req.params.uid));
      if (v.email !== undefined && v.email !== cur.username)
        throw invalid('unsupported_change', "a user's email cannot be changed; create a new user");
      if (v.role !== undefined && v.role !== 'admin' && cur.role === 'admin') await keepAnAdmin(cur);
      const password_hash = v.password !== undefined ? await hashPassword(v.password) : undefined;
      const next = await users().update(cur.username, (u) =>
        u
          ? {
              ...u,
              uid: uidOf(u),
              ...(v.role !== undefined ? { role: v.role } : {}),
              ...(v.name !== undefined ? { name: v.name } : {}),
              ...(password_hash ? { password_hash, password_issue_date: new Date().toISOString() } : {}),
            }
          : undefined,
      );
      if (!next) throw notFound('user_not_exist', `user ${req.params.uid} does not exist`);
      req.log.info(
        {
          user: uidOf(next),
          change: Object.keys(v)
            .filter((k) => k !== 'password')
            .concat(password_hash ? ['password'] : []),
        },
        'user updated',
      );
      return view(next);
    },
  );

  app.delete<{ Params: { uid: string } }>('/v1/users/:uid', { schema: { params: uidParams } }, async (req) => {
    const cur = await byUid(Number(req.params.uid));
    if (cur.role === 'admin') await keepAnAdmin(cur);
    await users().delete(cur.username);
    req.log.info({ user: uidOf(cur), email: cur.username }, 'user deleted');
    return {};
  });

  /** The cluster always keeps one admin: nobody could manage it otherwise. */
  async function keepAnAdmin(leaving: UserRecord): Promise<void> {
    if (!(await all()).some((u) => u.role === 'admin' && u.username !== leaving.username)) {
      throw new OperatorError('invalid', 'last_admin', `${leaving.username} is the cluster's only admin`);
    }
  }
};
