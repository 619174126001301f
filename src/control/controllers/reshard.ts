// Resharding (PUT /v1/bdbs/{uid} shards_count), run by the cluster master.
// The REST call planned it (control/model/reshard-plan.ts) and wrote, in one
// compare-and-swap, the new shards (masters serving no slot yet) and the
// database's `reshard` marker: the moves still to do. This controller keeps
// nothing outside the store, so the next master resumes where it stopped:
//   1. waits until the new master shards run;
//   2. moves each range a chunk at a time: the source node's key mover copies
//      the chunk's keys while the source stays writable, then copies again
//      what was written meanwhile; every node's endpoint holds the chunk's
//      slots (commands wait, none fails) until what it sent the source is
//      answered; the mover copies the last writes; one compare-and-swap
//      gives the slots to the target (generation + 1), and each endpoint
//      ends its hold as it applies the new map; the source's copies of the
//      chunk's keys are then removed (recorded first, so a new master
//      finishes that too);
//   3. removes the emptied masters with their replicas, and gives every
//      shard one range again; the database controller then marks the
//      database active and completes the action once every node converged.
// The write pause of a chunk is the time from the first hold to the flip;
// it is logged per chunk (`pause_ms`), and each endpoint logs its own hold.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { BdbRecord, NodeRecord, ObservedRecord } from '../../coord/schema.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore, StoreHost } from '../../coord/store.js';
import { MasterLoop, type MasterLoopHost } from './master-loop.js';
import { nodeIsUp, type NodeStateHost } from '../model/node-state.js';
import { isGone } from '../model/shard-plans.js';
import { applyChunk, finishReshard, firstChunk, remapToMasters, type Range } from '../model/reshard-plan.js';

export const RESHARD_HOLD_RPC = 'reshard_hold';
export const RESHARD_RELEASE_RPC = 'reshard_release';
export const RESHARD_MOVE_RPC = 'reshard_move';

/** Slots moved per chunk (each chunk is one write pause). */
export const CHUNK_SLOTS = 512;
/** How long an endpoint holds slots at most should the master vanish before the flip. */
const HOLD_MS = 8_000;
/** From the holds to the flip at most: past it the chunk is given up (released) and tried again. */
const PAUSE_BUDGET_MS = 900;
/** A bulk copy step may take this long (a large chunk). */
const COPY_MS = 600_000;
/** Catch-up rounds before the pause, and the dirty keys small enough to pause for. */
const CATCHUP_ROUNDS = 5;
const DIRTY_OK = 200;

export interface ReshardHost extends MasterLoopHost, NodeStateHost {
  readonly store: ClusterStore;
  readonly nodes: PrefixCache<NodeRecord>;
  /** Call a control-RPC method on node `uid` (in-process when it is this node). */
  call<T>(uid: number, method: string, params: object, timeoutMs?: number): Promise<T>;
}

interface MoveResult {
  copied: number;
  dirty: number;
  removed?: number;
  ms: number;
}

export class ReshardController {
  private readonly loop: MasterLoop;
  private readonly bdbs: PrefixCache<BdbRecord>;
  private readonly observed: PrefixCache<ObservedRecord>;

  constructor(
    private readonly h: ReshardHost & StoreHost,
    private readonly log: Logger,
  ) {
    this.bdbs = h.store.bdbs.cache();
    this.observed = h.store.observed.cache();
    this.loop = new MasterLoop(h, 1000, log, 'resharding tick', () => this.tick());
  }

  async start(): Promise<void> {
    await Promise.all([this.bdbs.start(), this.observed.start()]);
    this.bdbs.on('change', this.loop.kick);
    this.loop.start();
  }

  async close(): Promise<void> {
    this.loop.stop();
    await Promise.all([this.bdbs.stop(), this.observed.stop()]);
  }

  private async tick(): Promise<void> {
    for (const b of this.bdbs.values()) if (b.reshard && !isGone(b)) await this.run(b.uid);
  }

  private liveNodes(): number[] {
    return this.h.nodes
      .values()
      .filter((n) => n.addr && nodeIsUp(this.h, n.uid))
      .map((n) => n.uid);
  }

  private async step(b: BdbRecord, description: string, progress?: number): Promise<void> {
    this.log.info({ bdb: b.uid, action: b.action_uid }, description);
    if (b.action_uid)
      await this.h.store.actions.update(b.action_uid, { description, status: 'active', ...(progress !== undefined ? { progress } : {}) });
  }

  private progressOf(b: BdbRecord): number {
    const r = b.reshard!;
    return r.total_slots ? Math.min(95, Math.floor((90 * r.moved_slots) / r.total_slots) + 5) : 95;
  }

  /** Drive one database's resharding as far as it goes now; throws to be retried at the next tick. */
  private async run(uid: number): Promise<void> {
    for (;;) {
      if (!this.h.isMaster() || this.loop.isStopped) return;
      const b = await this.h.store.bdbs.get(uid);
      if (!b?.reshard || isGone(b)) return;
      // A failover meanwhile: the promoted replica takes the old master's part.
      const remapped = remapToMasters(b.shards, b.reshard);
      if (remapped) {
        await this.h.store.bdbs.update(uid, (cur) =>
          cur.generation === b.generation && cur.reshard
            ? { ...cur, reshard: remapToMasters(cur.shards, cur.reshard) ?? cur.reshard }
            : undefined,
        );
        this.log.info({ bdb: uid, moves: remapped.moves }, 'resharding follows a failover: moves re-pointed to the new masters');
        continue;
      }
      const r = b.reshard;
      if (r.cleanup?.length) {
        await this.cleanup(b, r.cleanup[0].source, r.cleanup[0].slots);
        continue;
      }
      if (!(await this.newShardsRun(b))) return; // the next tick looks again
      if (r.moves.length) {
        await this.moveChunk(b);
        continue;
      }
      await this.finish(b);
      return;
    }
  }

  /** Every master (the new ones included) reported active by its node. */
  private async newShardsRun(b: BdbRecord): Promise<boolean> {
    for (const s of b.shards.filter((x) => x.role === 'master')) {
      const o = this.observed.items.get(`${b.uid}/${s.node_uid}`);
      if (!o?.shards.some((x) => x.uid === s.uid && x.status === 'active')) {
        this.log.info({ bdb: b.uid, shard: s.uid, node: s.node_uid }, 'waiting for the new master shard to run');
        return false;
      }
    }
    return true;
  }

  private moveCall(b: BdbRecord, source: number, target: number, ranges: Range[], step: string, timeoutMs = COPY_MS) {
    const node = b.shards.find((s) => s.uid === source)!.node_uid;
    const spec = {
      bdbUid: b.uid,
      source,
      target,
      ranges,
      ...(b.shard_key_regex ? { shardKeyRegex: b.shard_key_regex.map((x) => x.regex) } : {}),
    };
    return this.h.call<MoveResult>(node, RESHARD_MOVE_RPC, { spec, step }, timeoutMs);
  }

  private async moveChunk(b: BdbRecord): Promise<void> {
    const r = b.reshard!;
    const move = r.moves[0];
    const chunk = firstChunk(move, CHUNK_SLOTS);
    const ranges: Range[] = [chunk];
    const slots = chunk[1] - chunk[0] + 1;
    await this.step(b, `moving slots ${chunk[0]}-${chunk[1]} from shard ${move.source} to shard ${move.target}`, this.progressOf(b));
    const bulk = await this.moveCall(b, move.source, move.target, ranges, 'start');
    let dirty = bulk.dirty;
    for (let i = 0; i < CATCHUP_ROUNDS && dirty > DIRTY_OK; i++)
      dirty = (await this.moveCall(b, move.source, move.target, ranges, 'catchup')).dirty;

    // The pause: every endpoint holds the slots, the last writes are copied, the slots flip.
    const nodes = this.liveNodes();
    const token = randomUUID();
    const t0 = performance.now();
    const release = () =>
      Promise.all(
        nodes.map((n) =>
          this.h
            .call(n, RESHARD_RELEASE_RPC, { bdb_uid: b.uid, ranges, token }, 5000)
            .catch((e) => this.log.warn({ node: n, err: (e as Error).message }, 'cannot release held slots (they end at their deadline)')),
        ),
      );
    let next: BdbRecord | undefined;
    let last: MoveResult;
    try {
      await Promise.all(
        nodes.map((n) => this.h.call(n, RESHARD_HOLD_RPC, { bdb_uid: b.uid, ranges, from: move.source, timeout_ms: HOLD_MS, token }, 3000)),
      );
      last = await this.moveCall(b, move.source, move.target, ranges, 'final', 5000);
      if (performance.now() - t0 > PAUSE_BUDGET_MS)
        throw new Error(`the cut-over took ${Math.round(performance.now() - t0)} ms; trying again`);
      next = await this.h.store.bdbs.update(b.uid, (cur) => {
        if (cur.generation !== b.generation || !cur.reshard) return undefined;
        const shards = applyChunk(cur.shards, move.source, move.target, chunk);
        if (!shards) return undefined;
        const rest =
          chunk[1] >= move.slots[1]
            ? cur.reshard.moves.slice(1)
            : [{ ...move, slots: [chunk[1] + 1, move.slots[1]] as Range }, ...cur.reshard.moves.slice(1)];
        return {
          ...cur,
          shards,
          generation: cur.generation + 1,
          last_changed_time: new Date().toISOString(),
          reshard: {
            ...cur.reshard,
            moves: rest,
            moved_slots: cur.reshard.moved_slots + slots,
            cleanup: [...(cur.reshard.cleanup ?? []), { source: move.source, slots: chunk }],
          },
        };
      });
    } catch (e) {
      await release();
      await this.moveCall(b, move.source, move.target, ranges, 'abort', 5000).catch(() => undefined); // its connections end with the node anyway
      throw e;
    }
    const pauseMs = Math.round(performance.now() - t0);
    if (!next) {
      await release();
      throw new Error(`database ${b.uid} changed during the cut-over of slots ${chunk[0]}-${chunk[1]}; trying again`);
    }
    this.log.info(
      {
        bdb: b.uid,
        slots: chunk,
        source: move.source,
        target: move.target,
        keys: bulk.copied,
        last_writes: last.copied,
        copy_ms: bulk.ms,
        pause_ms: pauseMs,
      },
      'slots moved',
    );
    await this.step(
      next,
      `slots ${chunk[0]}-${chunk[1]} moved to shard ${move.target} (${bulk.copied} keys, write pause ${pauseMs} ms)`,
      this.progressOf(next),
    );
    // Each endpoint ends its hold as it applies the new map; a release (answered after the map it was sent) makes sure.
    // A node that has not applied it keeps its hold until it does (or its deadline).
    if (await this.converged(next, 10_000)) await release();
  }

  /** Wait (bounded) until every live node reported the record's generation (or a later one). */
  private async converged(b: BdbRecord, ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    for (;;) {
      const behind = this.liveNodes().filter((n) => (this.observed.items.get(`${b.uid}/${n}`)?.generation ?? 0) < b.generation);
      if (!behind.length) return true;
      if (Date.now() >= until) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async cleanup(b: BdbRecord, source: number, slots: Range): Promise<void> {
    // Only once every node routes the slots to their new shard: no command of theirs reaches the source any more.
    if (!(await this.converged(b, 10_000))) throw new Error(`database ${b.uid}: a node has not applied the map yet; the cleanup waits`);
    const res = await this.moveCall(b, source, source, [slots], 'cleanup');
    await this.h.store.bdbs.update(b.uid, (cur) =>
      cur.reshard
        ? {
            ...cur,
            reshard: {
              ...cur.reshard,
              cleanup: (cur.reshard.cleanup ?? []).filter(
                (c) => !(c.source === source && c.slots[0] === slots[0] && c.slots[1] === slots[1]),
              ),
            },
          }
        : undefined,
    );
    this.log.info({ bdb: b.uid, shard: source, slots, removed: res.removed, ms: res.ms }, 'moved keys removed from their former shard');
  }

  private async finish(b: BdbRecord): Promise<void> {
    const r = b.reshard!;
    const next = await this.h.store.bdbs.update(b.uid, (cur) => {
      if (!cur.reshard || cur.reshard.moves.length || cur.reshard.cleanup?.length) return undefined;
      const shards = finishReshard(cur.shards, cur.reshard.remove);
      if (!shards) return undefined;
      const { reshard: _r, ...rest } = cur;
      const n = cur.reshard.shards_count;
      return {
        ...rest,
        shards,
        shards_count: n,
        sharding: n > 1 || cur.sharding,
        generation: cur.generation + 1,
        status: 'active-change-pending',
        last_changed_time: new Date().toISOString(),
      };
    });
    if (!next) throw new Error(`database ${b.uid}: the resharding cannot finish (a removed shard still serves slots)`);
    await this.step(
      next,
      `resharding to ${r.shards_count} shards done${r.remove.length ? `; shards ${r.remove.join(', ')} removed` : ''}; waiting for every node`,
      98,
    );
  }
}

// --- the node's side of the reshard RPCs (registered in node/loops.ts): checked, then handed to the data plane ---

const isRanges = (v: unknown): v is Range[] =>
  Array.isArray(v) &&
  v.length > 0 &&
  v.every((r) => Array.isArray(r) && r.length === 2 && r.every((x) => Number.isInteger(x) && x >= 0 && x < 16384) && r[0] <= r[1]);
const isUid = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;

export type ReshardRpcOp =
  | { kind: 'hold'; bdbUid: number; ranges: Range[]; from: number; timeoutMs: number; token?: string }
  | { kind: 'release'; bdbUid: number; ranges: Range[]; token?: string }
  | {
      kind: 'move';
      spec: { bdbUid: number; source: number; target: number; ranges: Range[]; shardKeyRegex?: string[] };
      step: 'start' | 'catchup' | 'final' | 'cleanup' | 'abort';
    };

/** The data-plane request a reshard RPC asks for; throws on malformed parameters. */
export function reshardRpcOp(method: string, params: unknown): ReshardRpcOp {
  const p = (params ?? {}) as Record<string, unknown>;
  const bad = () => new Error(`${method}: malformed parameters`);
  if (method === RESHARD_HOLD_RPC || method === RESHARD_RELEASE_RPC) {
    if (!isUid(p.bdb_uid) || !isRanges(p.ranges)) throw bad();
    if (p.token !== undefined && !(typeof p.token === 'string' && p.token.length <= 64)) throw bad();
    const token = p.token === undefined ? {} : { token: p.token as string };
    if (method === RESHARD_RELEASE_RPC) return { kind: 'release', bdbUid: p.bdb_uid, ranges: p.ranges, ...token };
    if (!isUid(p.from) || !Number.isInteger(p.timeout_ms) || (p.timeout_ms as number) < 1 || (p.timeout_ms as number) > 60_000) throw bad();
    return { kind: 'hold', bdbUid: p.bdb_uid, ranges: p.ranges, from: p.from, timeoutMs: p.timeout_ms as number, ...token };
  }
  const s = (p.spec ?? {}) as Record<string, unknown>;
  const steps = ['start', 'catchup', 'final', 'cleanup', 'abort'] as const;
  const step = steps.find((x) => x === p.step);
  if (!step || !isUid(s.bdbUid) || !isUid(s.source) || !isUid(s.target) || !isRanges(s.ranges)) throw bad();
  if (s.shardKeyRegex !== undefined && !(Array.isArray(s.shardKeyRegex) && s.shardKeyRegex.every((x) => typeof x === 'string')))
    throw bad();
  return {
    kind: 'move',
    step,
    spec: {
      bdbUid: s.bdbUid,
      source: s.source,
      target: s.target,
      ranges: s.ranges,
      ...(s.shardKeyRegex ? { shardKeyRegex: s.shardKeyRegex as string[] } : {}),
    },
  };
}

/** How long the data plane may take for each kind of request. */
export function reshardRpcTimeout(op: ReshardRpcOp): number {
  return op.kind === 'move' ? COPY_MS : 5000;
}
