// A live database's shape from the CLI (issue 21):
//   tessera tune db <db> replication enabled|disabled
//   tessera bdb <db> optimize_shards_placement [apply]
// The first is rladmin's; rladmin has no word for the second (RE offers it
// over REST only), so it is Tessera's: it prints the proposed blueprint
// (GET /v1/bdbs/{uid}/actions/optimize_shards_placement) beside the current
// placement, and with `apply` sends it back with its cluster-state-id
// (PUT /v1/bdbs/{uid} {"shards_blueprint": …}) and follows the action.
import type { Command } from 'commander';
import type { BdbView } from './format.js';
import type { JsonResponse } from '../util/https-json.js';
import { followAction } from './shard-ops.js';

/** What these commands need of the CLI's REST helpers (cli/main.ts). */
export interface ShapeCliDeps {
  api<T>(cmd: Command, method: string, path: string, body?: unknown): Promise<T>;
  apiResponse<T>(cmd: Command, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<JsonResponse<T>>;
  findDb(cmd: Command, ref: string): Promise<BdbView>;
}

interface BlueprintEntry {
  nodes: { node_uid: string; role: string }[];
  slot_range: string;
}

/** `tune db <db> replication enabled|disabled`: the change, followed step by step until it is done. */
export async function tuneReplication(cmd: Command, deps: ShapeCliDeps, uid: number, enabled: boolean): Promise<void> {
  const r = await deps.api<{ action_uid?: string }>(cmd, 'PUT', `/v1/bdbs/${uid}`, { replication: enabled });
  if (!r.action_uid) {
    console.log(`Replication is already ${enabled ? 'enabled' : 'disabled'}`);
    return;
  }
  console.log(`${enabled ? 'Enabling' : 'Disabling'} replication of db:${uid} (action ${r.action_uid})`);
  await followAction(cmd, deps, r.action_uid);
}

const where = (e: BlueprintEntry) => {
  const m = e.nodes.filter((n) => n.role === 'master').map((n) => `node:${n.node_uid}`);
  const r = e.nodes.filter((n) => n.role !== 'master').map((n) => `node:${n.node_uid}`);
  return { master: m.join(','), replicas: r.join(',') || '-' };
};

/** The blueprint as a table, each range beside where it is now. */
function table(b: BdbView, bp: BlueprintEntry[]): string {
  const rows = [['SLOTS', 'MASTER', 'REPLICAS', 'NOW']];
  for (const e of bp) {
    const fam = b.shards.filter(
      (s) =>
        s.assigned_slots === e.slot_range && (s.role === 'master' || b.shards.some((m) => m.uid === s.master_uid && m.role === 'master')),
    );
    const now = where({
      slot_range: e.slot_range,
      nodes: fam.map((s) => ({ node_uid: String(s.node_uid), role: s.role })),
    });
    const want = where(e);
    const same = now.master === want.master && now.replicas === want.replicas;
    rows.push([e.slot_range, want.master, want.replicas, same ? '(unchanged)' : `master ${now.master}, replicas ${now.replicas}`]);
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(w[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function addShapeCommands(program: Command, deps: ShapeCliDeps): void {
  program
    .command('bdb')
    .description('a database placement proposal: bdb <db> optimize_shards_placement [apply]')
    .argument('<db>', 'database: <uid>, db:<uid> or its name')
    .argument('<action>', 'optimize_shards_placement')
    .argument('[apply]', 'apply: move the shards as proposed')
    .action(async (ref: string, action: string, apply: string | undefined, _o, cmd: Command) => {
      if (action !== 'optimize_shards_placement') throw new Error(`unknown action '${action}' (expected optimize_shards_placement)`);
      if (apply !== undefined && apply !== 'apply') throw new Error(`unexpected word '${apply}' (expected apply)`);
      const b = await deps.findDb(cmd, ref);
      const res = await deps.apiResponse<BlueprintEntry[]>(cmd, 'GET', `/v1/bdbs/${b.uid}/actions/optimize_shards_placement`);
      const id = String(res.headers?.['cluster-state-id'] ?? '');
      console.log(table(b, res.body));
      console.log(`cluster-state-id: ${id}`);
      if (apply === undefined) return;
      const put = await deps.apiResponse<{ action_uid?: string }>(
        cmd,
        'PUT',
        `/v1/bdbs/${b.uid}`,
        { shards_blueprint: res.body },
        {
          'cluster-state-id': id,
        },
      );
      if (!put.body.action_uid) {
        console.log('The shards are placed as proposed already');
        return;
      }
      console.log(`Moving shards of db:${b.uid} (action ${put.body.action_uid})`);
      await followAction(cmd, deps, put.body.action_uid);
      console.log('Done');
    });
}
