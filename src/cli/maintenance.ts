// `node <uid> maintenance_mode on|off` in rladmin's grammar:
//   tessera node <uid> maintenance_mode on [demote_node] [evict_ha_replica enabled|disabled]
//       [keep_slave_shards] [evict_dbs <db...>] [overwrite_snapshot]
//   tessera node <uid> maintenance_mode off [snapshot_name <name>] [skip_shards_restore]
// POST /v1/nodes/{uid}/actions/maintenance_on|maintenance_off, then the action
// is followed (GET /v1/actions/{uid}) and each step printed, as `node remove` does.
import type { Command } from 'commander';
import { followAction } from './shard-ops.js';

type Api = <T>(cmd: Command, method: string, path: string, body?: unknown) => Promise<T>;

const ON_WORDS = ['demote_node', 'evict_ha_replica', 'keep_slave_shards', 'evict_dbs', 'overwrite_snapshot'];
const OFF_WORDS = ['snapshot_name', 'skip_shards_restore'];

/** The REST body of `on|off <words...>`; throws on a word it does not know. */
export function maintenanceBody(mode: string, words: string[]): Record<string, unknown> {
  const allowed = mode === 'on' ? ON_WORDS : mode === 'off' ? OFF_WORDS : undefined;
  if (!allowed) throw new Error(`expected 'on' or 'off' after maintenance_mode, got '${mode ?? ''}'`);
  const body: Record<string, unknown> = {};
  for (let i = 0; i < words.length; ) {
    const w = words[i++];
    if (!allowed.includes(w)) throw new Error(`unexpected word '${w}' (expected one of: ${allowed.join(', ')})`);
    if (w === 'evict_ha_replica') {
      const v = words[i++];
      if (v !== 'enabled' && v !== 'disabled') throw new Error(`'evict_ha_replica' needs 'enabled' or 'disabled'`);
      body.evict_ha_replica = v === 'enabled';
    } else if (w === 'evict_dbs') {
      const dbs: (string | number)[] = [];
      while (i < words.length && !allowed.includes(words[i])) {
        const d = words[i++];
        dbs.push(/^\d+$/.test(d) ? Number(d) : d);
      }
      if (!dbs.length) throw new Error("'evict_dbs' needs one or more databases (db:<uid> or a name)");
      body.evict_dbs = dbs;
    } else if (w === 'snapshot_name') {
      const v = words[i++];
      if (v === undefined) throw new Error("'snapshot_name' needs a value");
      body.snapshot_name = v;
    } else body[w] = true;
  }
  return body;
}

export async function maintenanceMode(cmd: Command, api: Api, uid: string, mode: string, words: string[]): Promise<void> {
  if (!/^\d+$/.test(uid)) throw new Error(`invalid node uid '${uid}'`);
  const body = maintenanceBody(mode, words);
  const r = await api<{ action_uid: string }>(cmd, 'POST', `/v1/nodes/${uid}/actions/maintenance_${mode}`, body);
  console.log(
    mode === 'on'
      ? `Turning maintenance mode on for node ${uid}: moving its shards to the other nodes (action ${r.action_uid})`
      : `Turning maintenance mode off for node ${uid}${body.skip_shards_restore ? '' : ': moving its shards back'} (action ${r.action_uid})`,
  );
  await followAction(cmd, { api }, r.action_uid);
  console.log(`Node ${uid} ${mode === 'on' ? 'is in maintenance mode' : 'left maintenance mode'}`);
}
