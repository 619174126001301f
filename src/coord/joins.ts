// Joins run as actions (control/controllers/join-controller.ts): the store
// side that coord/store.ts's JoinStore does not have, kept apart so that the
// typed store's file stays as it is (helper "coord" reworks it).
import type { Etcd3 } from 'etcd3';
import { KEYS, type ActionRecord, JoinRecord } from './schema.js';
import { PrefixCache } from './watch.js';

/**
 * Admit a join: its record and its `join_node` action in one transaction, so
 * that there is never a join that no one follows. False when either exists.
 */
export async function createJoinAction(c: Etcd3, join: JoinRecord, action: ActionRecord): Promise<boolean> {
  const actionKey = KEYS.action(Number(action.action_uid));
  const r = await c
    .if(actionKey, 'Create', '==', 0)
    .and(KEYS.join(join.uid), 'Create', '==', 0)
    .then(c.put(KEYS.join(join.uid)).value(JSON.stringify(join)), c.put(actionKey).value(JSON.stringify(action)))
    .commit();
  return r.succeeded;
}

/** A watched copy of the join records, by node uid (start it). */
export function joinsCache(c: Etcd3): PrefixCache<JoinRecord> {
  return new PrefixCache(c, KEYS.joinsPrefix, JoinRecord);
}
