// Runs on the cluster master: maintenance mode (RE's `rladmin node <uid>
// maintenance_mode on|off`). The REST API writes a node's maintenance record
// and an action (control/services/maintenance.ts); this loop does the work,
// one step at a time, each step a shard operation run by the
// ShardOpsController (shard-ops.ts) so that every move goes through the same
// machinery as an operator's failover and migrate:
//   on  (`entering`): planned failovers of the node's masters to their
//       replicas elsewhere (writes paused, replica caught up, then switched:
//       no failed command), then migrations of everything left to placeable
//       nodes; once it holds nothing, a node that is the cluster master hands
//       the role to another; then `on`, the action completed.
//   off (`leaving`): the shards that took the node's place migrate back, then
//       planned failovers give it back the masters it held (model/maintenance.ts
//       planRestore); the record goes, the action completes.
// Nothing is kept outside the store: the record names the operation it waits
// for (`op_action_uid`), so the next master resumes where this one stopped.
import type { Logger } from 'pino';
import type { LiveRecord, MaintenanceRecord, NodeRecord, ShardOpRecord } from '../../coord/schema.js';
import { isFinished } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { StoreHost } from '../../coord/store.js';
import { MasterLoop, type MasterLoopHost } from './master-loop.js';
import { type NodeStateHost, nodeIsUp } from '../model/node-state.js';
import { type MaintenanceStep, masterRoleTarget, placeableNodes, planEnter, planRestore } from '../model/maintenance.js';

/** A shard operation that fails this many times in a row fails the maintenance action. */
const MAX_OP_FAILURES = 5;
/** After a failed shard operation, the next is planned this long later, times the failures so far (a replica may still be syncing). */
const RETRY_MS = 2000;

/** What the controller needs of its node's membership (src/node/loops.ts builds it). */
export interface MaintenanceHost extends MasterLoopHost, NodeStateHost {
  readonly uid: number;
  readonly nodes: PrefixCache<NodeRecord>;
  readonly live: PrefixCache<LiveRecord>;
  /** Hand the cluster master role to node `uid` (RE's change_master). */
  changeMaster(uid: number): Promise<void>;
}

export class MaintenanceController {
  private readonly records: PrefixCache<MaintenanceRecord>;
  private readonly loop: MasterLoop;

  constructor(
    private readonly h: MaintenanceHost & StoreHost,
    private readonly log: Logger,
  ) {
    this.records = h.store.maintenanceMode.cache();
    this.records.on('malformed', (err: Error) => this.log.error({ err: err.message }, 'ignoring a malformed maintenance record'));
    this.loop = new MasterLoop(h, 500, log, 'maintenance mode', () => this.tick());
  }

  async start(): Promise<void> {
    await this.records.start();
    this.records.on('change', this.loop.kick);
    this.loop.start();
  }

  async close(): Promise<void> {
    this.loop.stop();
    await this.records.stop();
  }

  /** The nodes in maintenance mode (any state): nothing is placed on them. */
  values(): MaintenanceRecord[] {
    return this.records.values();
  }

  private async tick(): Promise<void> {
    for (const rec of this.records.values()) {
      if (rec.state === 'on') continue;
      if (this.loop.isStopped || !this.h.isMaster()) return;
      await this.advance(rec);
    }
  }

  private members(): number[] {
    return this.h.nodes
      .values()
      .filter((n) => n.addr)
      .map((n) => n.uid);
  }

  private async note(rec: MaintenanceRecord, text: string, progress?: number): Promise<void> {
    this.log.info({ node: rec.node_uid, action: rec.action_uid, progress }, text);
    await this.h.store.actions.update(rec.action_uid, { description: text, ...(progress !== undefined ? { progress } : {}) });
  }

  private async fail(rec: MaintenanceRecord, why: string): Promise<void> {
    this.log.error({ node: rec.node_uid, action: rec.action_uid, err: why }, 'maintenance mode failed');
    await this.h.store.maintenanceMode.update(rec.node_uid, (r) =>
      r.action_uid === rec.action_uid ? { ...r, op_action_uid: undefined } : undefined,
    );
    await this.h.store.actions.finish(rec.action_uid, 'failed', why);
  }

  /** One step of a node entering or leaving maintenance mode. */
  private async advance(rec: MaintenanceRecord): Promise<void> {
    const action = await this.h.store.actions.get(rec.action_uid);
    if (!action || isFinished(action)) return; // failed (the operator asks again) or interrupted by a newer request
    if (action.status === 'pending') await this.h.store.actions.update(rec.action_uid, { status: 'active' });
    if (rec.op_action_uid && !(await this.opDone(rec))) return;
    const cur = await this.h.store.maintenanceMode.get(rec.node_uid);
    if (cur?.action_uid !== rec.action_uid || cur.op_action_uid) return;
    const failures = cur.op_failures ?? 0;
    if (failures && Date.now() - Date.parse(cur.updated_time) < RETRY_MS * failures) return;
    try {
      if (cur.state === 'entering') await this.enter(cur);
      else if (cur.state === 'leaving') await this.leave(cur);
    } catch (err) {
      await this.fail(cur, (err as Error).message);
    }
  }

  /** Has the operation the record waits for finished (true: plan the next step)? A failure is retried a few times. */
  private async opDone(rec: MaintenanceRecord): Promise<boolean> {
    const uid = rec.op_action_uid!;
    const op = await this.h.store.actions.get(uid);
    let error: string | undefined;
    if (op && !isFinished(op)) {
      // An action whose operation record never got written (the master went between the two writes) will not run.
      if (op.status !== 'pending' || (await this.h.store.shardOps.list()).some((o) => o.action_uid === uid)) return false;
      error = `shard operation ${uid} was never queued`;
      await this.h.store.actions.finish(uid, 'failed', error);
    } else if (!op) error = `shard operation ${uid} is gone`;
    else if (op.status === 'failed') error = op.error ?? `shard operation ${uid} failed`;
    const failures = error ? (rec.op_failures ?? 0) + 1 : 0;
    await this.h.store.maintenanceMode.update(rec.node_uid, (r) =>
      r.op_action_uid === uid
        ? { ...r, op_action_uid: undefined, op_failures: failures, updated_time: new Date().toISOString() }
        : undefined,
    );
    if (!error) return true;
    if (failures >= MAX_OP_FAILURES) {
      await this.fail(rec, `node ${rec.node_uid}: ${error} (${failures} times in a row); nothing more was moved`);
      return false;
    }
    await this.note(rec, `${error}; planning again (attempt ${failures + 1} of ${MAX_OP_FAILURES})`);
    return true;
  }

  private liveSet(): Set<number> {
    return new Set(this.members().filter((u) => nodeIsUp(this.h, u)));
  }

  private progress(rec: MaintenanceRecord, left: number): number {
    const total = Math.max(1, rec.shards.length);
    return Math.max(1, Math.min(95, Math.round(((total - Math.min(total, left)) / total) * 95)));
  }

  private async enter(rec: MaintenanceRecord): Promise<void> {
    const node = rec.node_uid;
    const bdbs = await this.h.store.bdbs.list();
    const live = this.liveSet();
    const targets = placeableNodes([...live], this.records.values());
    const load = new Map<number, number>();
    for (const b of bdbs) for (const s of b.shards) load.set(s.node_uid, (load.get(s.node_uid) ?? 0) + 1);
    const step = planEnter(bdbs, node, rec, live, targets, load);
    if (step) {
      await this.queue(rec, step, this.progress(rec, load.get(node) ?? 0));
      return;
    }
    const master = await this.h.store.master.get();
    if (master?.uid === node) {
      const others = targets.filter((u) => u !== node);
      const to = masterRoleTarget(others, new Set(others), (u) => this.h.nodes.items.get(String(u))?.software_version ?? '0.1.0');
      if (to === undefined) throw new Error(`node ${node} is the cluster master and no other live node can take the role`);
      await this.note(rec, `node ${node} holds no shard; it is the cluster master: handing the role to node ${to}`, 97);
      await this.h.changeMaster(to);
      return; // the next master finishes this
    }
    await this.h.store.maintenanceMode.update(node, (r) =>
      r.action_uid === rec.action_uid ? { ...r, state: 'on', op_failures: 0, updated_time: new Date().toISOString() } : undefined,
    );
    await this.note(rec, `node ${node} is in maintenance mode: it holds no evicted shard, and nothing is placed on it`, 100);
    await this.h.store.actions.finish(rec.action_uid, 'completed');
    this.log.warn({ node, snapshot: rec.snapshot_name }, 'node is in maintenance mode');
  }

  private async leave(rec: MaintenanceRecord): Promise<void> {
    const node = rec.node_uid;
    if (!rec.skip_shards_restore) {
      const bdbs = await this.h.store.bdbs.list();
      const plan = planRestore(rec.shards, bdbs, node, rec.moves ?? [], this.liveSet());
      if (plan.step) {
        const here = bdbs.reduce((n, b) => n + b.shards.filter((s) => s.node_uid === node).length, 0);
        await this.queue(rec, plan.step, this.progress(rec, rec.shards.length - here));
        return;
      }
      if (plan.unrestorable.length) await this.note(rec, `not restored: ${plan.unrestorable.join('; ')}`);
    }
    await this.h.store.maintenanceMode.delete(node);
    const how = rec.skip_shards_restore ? 'its shards were not moved back (skip_shards_restore)' : `snapshot ${rec.snapshot_name} restored`;
    await this.note(rec, `node ${node} left maintenance mode; ${how}`, 100);
    await this.h.store.actions.finish(rec.action_uid, 'completed');
    this.log.warn({ node }, 'node left maintenance mode');
  }

  /** Queue one step as a shard operation (an action of its own) and note it in the record first, so that a new master waits for it. */
  private async queue(rec: MaintenanceRecord, step: MaintenanceStep, progress: number): Promise<void> {
    const node = rec.node_uid;
    const first = step.kind === 'migrate' ? await this.h.store.seqs.next('shard', step.items.length) : 0;
    const items: ShardOpRecord['items'] =
      step.kind === 'migrate' ? step.items.map((it, i) => ({ ...it, new_shard_uid: first + i })) : step.items.map((it) => ({ ...it }));
    const op = await this.h.store.actions.create(`shard_${step.kind}`, `node:${node}`);
    const moves =
      rec.state === 'entering' && step.kind === 'migrate'
        ? items.map((it) => ({
            bdb_uid: it.bdb_uid,
            shard_uid: it.shard_uid,
            new_shard_uid: it.new_shard_uid!,
            target_node_uid: it.target_node_uid!,
          }))
        : [];
    const noted = await this.h.store.maintenanceMode.update(node, (r) =>
      r.action_uid === rec.action_uid && !r.op_action_uid
        ? { ...r, op_action_uid: op.action_uid, moves: [...(r.moves ?? []), ...moves], updated_time: new Date().toISOString() }
        : undefined,
    );
    if (!noted) {
      await this.h.store.actions.finish(op.action_uid, 'failed', 'the maintenance request changed before this step was queued');
      return;
    }
    await this.h.store.shardOps.put({ kind: step.kind, items, action_uid: op.action_uid, created_time: new Date().toISOString() });
    const what =
      step.kind === 'failover'
        ? `switching over ${items.map((i) => `shard ${i.shard_uid}${i.to_shard_uid !== undefined ? ` to shard ${i.to_shard_uid}` : ''}`).join(', ')} (planned failover, writes paused, no command failed)`
        : `migrating ${items.map((i) => `shard ${i.shard_uid} to node ${i.target_node_uid} (as shard ${i.new_shard_uid})`).join(', ')}`;
    await this.note(rec, `node ${node}: ${what}; action ${op.action_uid}`, progress);
  }
}
