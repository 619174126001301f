// `failover` and `migrate` in rladmin's grammar:
//   tessera failover [db <db>] shard <uid...> [immediate]
//   tessera migrate [db <db>] shard <uid...> target_node <uid>
// Each queues an action through the REST API (POST /v1/shards/.../actions/...)
// and follows it (GET /v1/actions/{uid}), printing each step, until it has
// finished; a failure is one line on stderr and a non-zero exit.
import type { Command } from 'commander';
import type { BdbView } from './format.js';
import type { ActionRecord } from '../coord/schema.js';

/** What these commands need of the CLI's REST helpers (cli/main.ts). */
export interface ShardCliDeps {
  api<T>(cmd: Command, method: string, path: string, body?: unknown): Promise<T>;
  findDb(cmd: Command, ref: string): Promise<BdbView>;
}

const ACTION_TIMEOUT_MS = 15 * 60_000;

interface Words {
  db?: string;
  shards: string[];
  immediate: boolean;
  targetNode?: string;
}

/** Parse `[db <db>] shard <uid...> [immediate] [target_node <uid>]`; shards may be written `12` or `redis:12`. */
function parseWords(words: string[], allowed: string[]): Words {
  const out: Words = { shards: [], immediate: false };
  for (let i = 0; i < words.length; ) {
    const w = words[i++];
    if (!allowed.includes(w)) throw new Error(`unexpected word '${w}' (expected one of: ${allowed.join(', ')})`);
    if (w === 'immediate') out.immediate = true;
    else if (w === 'shard') {
      while (i < words.length && /^(redis:)?\d+$/.test(words[i])) out.shards.push(words[i++].replace(/^redis:/, ''));
      if (!out.shards.length) throw new Error("'shard' needs one or more shard uids");
    } else {
      const v = words[i++];
      if (v === undefined) throw new Error(`'${w}' needs a value`);
      if (w === 'db') out.db = v;
      else if (w === 'target_node') {
        if (!/^(node:)?\d+$/.test(v)) throw new Error(`invalid node uid '${v}'`);
        out.targetNode = v.replace(/^node:/, '');
      }
    }
  }
  if (!out.shards.length) throw new Error("'shard <uid>' is required");
  return out;
}

async function checkDb(cmd: Command, deps: ShardCliDeps, w: Words): Promise<void> {
  if (w.db === undefined) return;
  const b = await deps.findDb(cmd, w.db);
  for (const s of w.shards) if (!b.shards.some((x) => String(x.uid) === s)) throw new Error(`shard ${s} is not a shard of db:${b.uid}`);
}

/** Follow an action to its end, printing each new step. */
export async function followAction(cmd: Command, deps: Pick<ShardCliDeps, 'api'>, uid: string): Promise<void> {
  const deadline = Date.now() + ACTION_TIMEOUT_MS;
  let shown = 0;
  for (;;) {
    let a: ActionRecord;
    try {
      a = await deps.api<ActionRecord>(cmd, 'GET', `/v1/actions/${uid}`);
    } catch (err) {
      // The node's etcd member may be restarting (a CA rollover restarts each one in turn): ask again shortly.
      if (!/\(store_unavailable\)$/.test((err as Error).message) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    const steps = a.steps ?? [];
    for (; shown < steps.length; shown++) {
      const m = /^(\d+)% (.*)$/s.exec(steps[shown]);
      console.log(m ? `${m[1].padStart(3)}%  ${m[2]}` : steps[shown]);
    }
    if (a.status === 'completed') return;
    if (a.status === 'failed') throw new Error(a.error ?? `action ${uid} failed`);
    if (Date.now() > deadline)
      throw new Error(
        `action ${uid} is still ${a.status} (${a.progress}%) after ${ACTION_TIMEOUT_MS / 60_000} minutes; follow it with GET /v1/actions/${uid}`,
      );
    await new Promise((r) => setTimeout(r, 150));
  }
}

export function addShardCommands(program: Command, deps: ShardCliDeps): void {
  program
    .command('failover')
    .description('fail a master shard over to its replica, losing no acknowledged write: failover [db <db>] shard <uid...> [immediate]')
    .argument('<words...>')
    .action(async (words: string[], _o, cmd: Command) => {
      const w = parseWords(words, ['db', 'shard', 'immediate']);
      await checkDb(cmd, deps, w);
      const extra = w.immediate ? { immediate: true } : {};
      const r =
        w.shards.length === 1
          ? await deps.api<{ action_uid: string }>(cmd, 'POST', `/v1/shards/${w.shards[0]}/actions/failover`, extra)
          : await deps.api<{ action_uid: string }>(cmd, 'POST', '/v1/shards/actions/failover', { shard_uids: w.shards, ...extra });
      console.log(`Executing shard fail-over (action ${r.action_uid})`);
      await followAction(cmd, deps, r.action_uid);
      console.log('Finished successfully');
    });
  program
    .command('migrate')
    .description('move shards to another node: migrate [db <db>] shard <uid...> target_node <uid>')
    .argument('<words...>')
    .action(async (words: string[], _o, cmd: Command) => {
      const w = parseWords(words, ['db', 'shard', 'target_node']);
      if (w.targetNode === undefined) throw new Error("'target_node <uid>' is required");
      await checkDb(cmd, deps, w);
      const target = Number(w.targetNode);
      const r =
        w.shards.length === 1
          ? await deps.api<{ action_uid: string }>(cmd, 'POST', `/v1/shards/${w.shards[0]}/actions/migrate`, { target_node_uid: target })
          : await deps.api<{ action_uid: string }>(cmd, 'POST', '/v1/shards/actions/migrate', {
              shard_uids: w.shards,
              target_node_uid: target,
            });
      console.log(`Migrating shard${w.shards.length > 1 ? 's' : ''} ${w.shards.join(', ')} to node ${target} (action ${r.action_uid})`);
      await followAction(cmd, deps, r.action_uid);
      console.log('Done');
    });
}

/** `tune db <db> shards_count <n>`: reshard, printing each step of the action (alone: other settings are another change). */
export async function tuneShardsCount(
  cmd: Command,
  deps: Pick<ShardCliDeps, 'api'>,
  bdbUid: number,
  w: Record<string, string>,
): Promise<void> {
  if (Object.keys(w).length > 1) throw new Error('shards_count is changed alone: give the other settings in another tune db');
  const n = Number(w.shards_count);
  if (!Number.isInteger(n) || n < 1 || n > 512) throw new Error('shards_count must be a whole number from 1 to 512');
  const r = await deps.api<{ action_uid?: string }>(cmd, 'PUT', `/v1/bdbs/${bdbUid}`, {
    shards_count: n,
    ...(n > 1 ? { sharding: true } : {}),
  });
  if (r.action_uid) await followAction(cmd, deps, r.action_uid);
}
