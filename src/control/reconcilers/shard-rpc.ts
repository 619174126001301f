// The node's side of operator shard operations (control/controllers/shard-ops.ts): what
// the controller on the cluster master asks of the node that runs a shard,
// over the control-plane RPC (registered with membership/peers.ts by src/node), or directly when the
// shard is on the master itself.
//
//   shard_replication {shard_uid}      → the shard's INFO replication, parsed
//   shard_pause {shard_uid, ms}        → writes paused; the offset they stopped at
//   shard_unpause {shard_uid, fence}   → writes resumed (fenced first if asked
//                                        and the shard is still a master)
//
// The pause (CLIENT PAUSE <ms> WRITE) holds writes without failing them. A
// master whose slots went to its replica must never acknowledge a write
// again: if it is not a replica yet when its pause ends, a write fence
// (min-replicas-to-write beyond any replica count) makes its writes fail
// (-NOREPLICAS) until it is one. The fence is set only then: redis checks it
// before the pause, so a fenced master refuses writes the pause would hold.
// A guard on this node does the same just before the pause runs out, should
// the controller never come back.
import type { BdbRecord } from '../../coord/schema.js';
import type { RedisShard } from '../../shards/redis-shard.js';
import { type OpLog, type ShardReplication, SHARD_PAUSE_RPC, SHARD_REPLICATION_RPC, SHARD_UNPAUSE_RPC } from '../model/shard-protocol.js';

/** What the node-local side needs: the shard processes this node runs and its copy of the database map (src/node wires them). */
export interface ShardRpcHost {
  readonly uid: number;
  shardProcess(uid: number): RedisShard | undefined;
  databases(): readonly BdbRecord[];
}

export type { OpLog, ShardReplication };

export function parseReplication(reply: string): ShardReplication {
  if (reply.startsWith('-')) throw new Error(reply.split('\r\n')[0].slice(1));
  const f = new Map<string, string>();
  for (const line of reply.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) f.set(line.slice(0, i), line.slice(i + 1));
  }
  const replicas: ShardReplication['replicas'] = [];
  for (const [k, v] of f) {
    if (!/^slave\d+$/.test(k)) continue;
    const kv = new Map(v.split(',').map((p) => p.split('=') as [string, string]));
    replicas.push({ state: kv.get('state') ?? '', offset: Number(kv.get('offset') ?? 0) });
  }
  const role = f.get('role');
  if (role !== 'master' && role !== 'slave') throw new Error(`unexpected INFO replication reply: ${reply.slice(0, 80)}`);
  return {
    role,
    master_repl_offset: Number(f.get('master_repl_offset') ?? 0),
    ...(f.has('master_link_status') ? { master_link_status: f.get('master_link_status') } : {}),
    ...(f.has('master_sync_in_progress') ? { master_sync_in_progress: f.get('master_sync_in_progress') === '1' } : {}),
    ...(f.has('slave_repl_offset') ? { slave_repl_offset: Number(f.get('slave_repl_offset')) } : {}),
    replicas,
  };
}

async function ok(shard: RedisShard, args: string[]): Promise<void> {
  const r = await shard.command(args);
  if (!r.startsWith('+OK')) throw new Error(`${args.slice(0, 2).join(' ')} on shard ${shard.spec.shardUid}: ${r.split('\r\n')[0]}`);
}

export async function replicationOf(shard: RedisShard): Promise<ShardReplication> {
  return parseReplication(await shard.command(['INFO', 'replication']));
}

function shardParam(params: unknown): number {
  const uid = Number((params as { shard_uid?: unknown } | undefined)?.shard_uid);
  if (!Number.isInteger(uid) || uid < 0) throw new Error('invalid shard_uid');
  return uid;
}

function running(h: ShardRpcHost, uid: number): RedisShard {
  const s = h.shardProcess(uid);
  if (!s?.running) throw new Error(`shard ${uid} is not running on node ${h.uid}`);
  return s;
}

/** No replica count reaches it: every write is refused with -NOREPLICAS. */
const FENCE = '1000000';
/** The guard acts this long before the pause runs out. */
const GUARD_MARGIN_MS = 2000;
/** How often a fenced shard is looked at until it can be unfenced. */
const FENCE_CHECK_MS = 200;

/** Per shard process: the guard of its pause, or the watch of its fence. */
const guards = new WeakMap<RedisShard, NodeJS.Timeout>();

function disarm(shard: RedisShard): void {
  clearTimeout(guards.get(shard));
  guards.delete(shard);
}

function later(shard: RedisShard, ms: number, fn: () => Promise<void>): void {
  disarm(shard);
  const t = setTimeout(() => {
    guards.delete(shard);
    void fn();
  }, ms);
  t.unref();
  guards.set(shard, t);
}

/** The database's own guard (min_replicas_to_write, 0: off), which a lifted handover fence goes back to. */
function unfenced(shard: RedisShard): string[] {
  const { minReplicasToWrite = 0, minReplicasMaxLag = 10 } = shard.spec;
  return ['CONFIG', 'SET', 'min-replicas-to-write', String(minReplicasToWrite), 'min-replicas-max-lag', String(minReplicasMaxLag)];
}

async function resume(shard: RedisShard): Promise<void> {
  await ok(shard, unfenced(shard));
  await ok(shard, ['CLIENT', 'UNPAUSE']);
}

/** The role this node's copy of the database map gives a shard. */
function placedRole(h: ShardRpcHost, uid: number): 'master' | 'slave' | undefined {
  for (const b of h.databases()) for (const s of b.shards) if (s.uid === uid) return s.role;
  return undefined;
}

/**
 * A master the map has demoted but that is not a replica yet: its writes are
 * refused (and those the pause held fail) until its reconciler has made it
 * a replica, or the map names it master again; then the fence goes.
 */
async function fenceUntilReplica(h: ShardRpcHost, shard: RedisShard, log: OpLog, why: string): Promise<void> {
  await ok(shard, ['CONFIG', 'SET', 'min-replicas-to-write', FENCE, 'min-replicas-max-lag', '10']);
  await ok(shard, ['CLIENT', 'UNPAUSE']);
  log.warn({ shard: shard.spec.shardUid, why }, 'shard operation: the old master is not a replica yet; its writes are refused until it is');
  const check = async (): Promise<void> => {
    if (!shard.running) return;
    try {
      const role = (await replicationOf(shard)).role;
      if (role === 'slave' || placedRole(h, shard.spec.shardUid) === 'master') {
        await ok(shard, unfenced(shard));
        log.info({ shard: shard.spec.shardUid, role }, 'shard operation: write fence lifted');
        return;
      }
    } catch (err) {
      log.warn({ shard: shard.spec.shardUid, err: (err as Error).message }, 'shard operation: cannot check a fenced shard; retrying');
    }
    later(shard, FENCE_CHECK_MS, check);
  };
  later(shard, FENCE_CHECK_MS, check);
}

/**
 * Just before a pause runs out without the controller having ended it (it
 * died, or lost the cluster master role): a shard the map has demoted is
 * fenced until it is a replica; otherwise (the switch never happened, or it
 * is a replica already) writes resume.
 */
function guardPause(h: ShardRpcHost, shard: RedisShard, ms: number, log: OpLog): void {
  later(shard, Math.max(ms - GUARD_MARGIN_MS, ms / 2), async () => {
    if (!shard.running) return;
    try {
      const role = (await replicationOf(shard)).role;
      if (role === 'master' && placedRole(h, shard.spec.shardUid) === 'slave')
        return await fenceUntilReplica(h, shard, log, 'its pause ran out');
      await resume(shard);
      log.warn({ shard: shard.spec.shardUid, role }, 'shard operation: the controller did not end the pause; writes resumed');
    } catch (err) {
      log.error(
        { shard: shard.spec.shardUid, err: (err as Error).message },
        'shard operation: cannot end the pause; it runs out by itself',
      );
    }
  });
}

/** Answer shard_replication, shard_pause or shard_unpause for a shard this node runs. */
export async function shardRpc(h: ShardRpcHost, log: OpLog, method: string, params: unknown): Promise<unknown> {
  const uid = shardParam(params);
  const shard = running(h, uid);
  switch (method) {
    case SHARD_REPLICATION_RPC:
      return replicationOf(shard);
    case SHARD_PAUSE_RPC: {
      const ms = Number((params as { ms?: unknown }).ms);
      if (!Number.isInteger(ms) || ms < 1000 || ms > 60_000) throw new Error('invalid pause ms');
      await ok(shard, ['CLIENT', 'PAUSE', String(ms), 'WRITE']);
      const info = await replicationOf(shard);
      if (info.role !== 'master') {
        await resume(shard);
        throw new Error(`shard ${uid} is not a master`);
      }
      guardPause(h, shard, ms, log);
      log.info({ shard: uid, ms, offset: info.master_repl_offset }, 'shard operation: writes paused');
      return { offset: info.master_repl_offset };
    }
    case SHARD_UNPAUSE_RPC: {
      disarm(shard);
      const fence = (params as { fence?: unknown }).fence === true;
      if (fence && (await replicationOf(shard)).role === 'master') {
        await fenceUntilReplica(h, shard, log, 'the controller ended the pause');
        return { fenced: true };
      }
      await resume(shard);
      log.info({ shard: uid }, 'shard operation: writes resumed');
      return { fenced: false };
    }
    default:
      throw new Error(`unknown method ${method}`);
  }
}
