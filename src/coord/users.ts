// Users and web UI sessions in the cluster store (ClusterStore.users,
// ClusterStore.uiSessions; the key layout is schema.ts KEYS).
import type { Etcd3 } from 'etcd3';
import { KEYS, UiSessionRecord, UserRecord } from './schema.js';
import { readRecord, readRecords, updateRecord } from './records.js';

const json = (v: unknown) => JSON.stringify(v);

export class UserStore {
  constructor(private readonly c: Etcd3) {}

  get(username: string): Promise<UserRecord | null> {
    return readRecord(this.c, KEYS.user(username), UserRecord);
  }

  async list(): Promise<UserRecord[]> {
    return [...(await readRecords(this.c, KEYS.usersPrefix, UserRecord)).values()];
  }

  /** Store a new user; false when one with its name exists. */
  async create(rec: UserRecord): Promise<boolean> {
    const key = KEYS.user(rec.username);
    const r = await this.c
      .if(key, 'Create', '==', 0)
      .then(this.c.put(key).value(json(rec)))
      .commit();
    return r.succeeded;
  }

  /** Read-modify-write of one user (compare-and-swap); `fn` gets undefined when there is none. */
  update(username: string, fn: (u: UserRecord | undefined) => UserRecord | undefined): Promise<UserRecord | undefined> {
    return updateRecord(this.c, KEYS.user(username), UserRecord, fn);
  }

  async delete(username: string): Promise<void> {
    await this.c.delete().key(KEYS.user(username));
  }
}

/** Web UI sessions, by a digest of their token (ui/sessions.ts's SessionBackend). */
export class UiSessionStore {
  constructor(private readonly c: Etcd3) {}

  get(id: string): Promise<UiSessionRecord | null> {
    return readRecord(this.c, KEYS.uiSession(id), UiSessionRecord);
  }

  async put(id: string, rec: UiSessionRecord): Promise<void> {
    await this.c.put(KEYS.uiSession(id)).value(json(rec));
  }

  async delete(id: string): Promise<void> {
    await this.c.delete().key(KEYS.uiSession(id));
  }

  async list(): Promise<Map<string, UiSessionRecord>> {
    const prefix = KEYS.uiSessionsPrefix;
    const all = await readRecords(this.c, prefix, UiSessionRecord);
    return new Map([...all].map(([k, v]) => [k.slice(prefix.length), v]));
  }
}
