// Reading and changing databases in the coordination store: compare-and-swap
// updates, uid sequences, shard placement, and actions.
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { KEYS, ActionRecord, BdbRecord, NodeRecord, SeqValue, ShardPlacement } from '../coord/schema.js';
import { readRecord, updateRecord } from '../coord/records.js';
import { SLOT_COUNT } from '../proxy/slots.js';


/** Increment a sequence key atomically and return the new value. */
export async function nextSeq(c: Etcd3, key: string, count = 1): Promise<number> {
  const last = (await updateRecord(c, key, SeqValue, (cur) => (cur ?? 0) + count))!;
  return last - count + 1;
}

/**
 * Change one database by a function of its current record, retried on
 * conflict. Returning undefined from `fn` leaves it unchanged.
 */
export function updateBdb(c: Etcd3, uid: number, fn: (b: BdbRecord) => BdbRecord | undefined): Promise<BdbRecord | undefined> {
  return updateRecord(c, KEYS.bdb(uid), BdbRecord, (cur) => (cur ? fn(cur) : undefined));
}

export function newSecret(): string {
  return randomBytes(24).toString('base64url');
}

/** Split the 16384 slots into n contiguous, near-equal ranges. */
export function slotRanges(n: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) out.push([Math.floor((i * SLOT_COUNT) / n), Math.floor(((i + 1) * SLOT_COUNT) / n) - 1]);
  return out;
}

/**
 * Place masters round-robin over the nodes (fewest shards first), and each
 * replica on the next node after its master's, never on the master's node.
 */
export function placeShards(
  nodes: NodeRecord[],
  shardLoad: Map<number, number>,
  shardsCount: number,
  replication: boolean,
  firstShardUid: number,
  placement: 'dense' | 'sparse',
): ShardPlacement[] {
  const order = [...nodes].sort((a, b) => (shardLoad.get(a.uid) ?? 0) - (shardLoad.get(b.uid) ?? 0) || a.uid - b.uid).map((n) => n.uid);
  const ranges = slotRanges(shardsCount);
  const out: ShardPlacement[] = [];
  let uid = firstShardUid;
  for (let i = 0; i < shardsCount; i++) {
    const masterNode = placement === 'dense' ? order[0] : order[i % order.length];
    const master: ShardPlacement = { uid: uid++, role: 'master', node_uid: masterNode, slots: ranges[i] };
    out.push(master);
    if (replication) {
      const idx = order.indexOf(masterNode);
      const replicaNode = order[(idx + 1) % order.length];
      out.push({ uid: uid++, role: 'slave', node_uid: replicaNode, slots: ranges[i], master_uid: master.uid });
    }
  }
  return out;
}

/**
 * Several uid sequences read at once, and a transaction that takes the next
 * uids of each only if none moved since: the way to create a record that must
 * not burn a uid when it is refused. The caller validates against what it read
 * after `readSeqs`, then `commitWithSeqs`; false means someone else created
 * something meanwhile, and the caller validates again.
 */
export async function readSeqs(c: Etcd3, keys: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const k of keys) out.set(k, (await readRecord(c, k, SeqValue)) ?? 0);
  return out;
}

export async function commitWithSeqs(c: Etcd3, seen: Map<string, number>, bump: Map<string, number>, puts: [string, string][]): Promise<boolean> {
  let txn: ReturnType<Etcd3['if']> | undefined;
  for (const [k, v] of seen) {
    const [col, cmp, val] = v === 0 ? (['Create', '==', 0] as const) : (['Value', '==', JSON.stringify(v)] as const);
    txn = txn ? txn.and(k, col, cmp, val) : c.if(k, col, cmp, val);
  }
  for (const [k] of puts) txn = txn!.and(k, 'Create', '==', 0);
  const ops = [...[...bump].map(([k, n]) => c.put(k).value(JSON.stringify(seen.get(k)! + n))), ...puts.map(([k, v]) => c.put(k).value(v))];
  const r = await txn!.then(...ops).commit();
  return r.succeeded;
}

export async function createAction(c: Etcd3, name: string, objectName: string, extra: Partial<ActionRecord> = {}): Promise<ActionRecord> {
  const uid = await nextSeq(c, KEYS.actionSeq);
  const a: ActionRecord = { action_uid: String(uid), name, object_name: objectName, progress: 0, status: 'pending', creation_time: new Date().toISOString(), ...extra };
  await c.put(KEYS.action(uid)).value(JSON.stringify(a));
  return a;
}

export async function finishAction(c: Etcd3, uid: string | undefined, status: 'completed' | 'failed', error?: string): Promise<void> {
  if (!uid) return;
  const cur = await readRecord(c, KEYS.action(Number(uid)), ActionRecord);
  if (!cur || cur.status === 'completed' || cur.status === 'failed') return;
  await c.put(KEYS.action(Number(uid))).value(JSON.stringify({ ...cur, status, progress: status === 'completed' ? 100 : cur.progress, ...(error ? { error } : {}) }));
}

/** Steps an action keeps. */
const MAX_STEPS = 200;

/**
 * Change a running action; a new description is also appended to its steps
 * (`<progress>% <description>`). A finished action is left as it is.
 */
export async function updateAction(c: Etcd3, uid: string, patch: Partial<ActionRecord>): Promise<void> {
  await updateRecord(c, KEYS.action(Number(uid)), ActionRecord, (cur) => {
    if (!cur || cur.status === 'completed' || cur.status === 'failed') return undefined;
    const next = { ...cur, ...patch, progress: Math.max(cur.progress, patch.progress ?? 0) };
    if (patch.description !== undefined) next.steps = [...(cur.steps ?? []), `${next.progress}% ${patch.description}`].slice(-MAX_STEPS);
    return next;
  });
}

/** The nodes that run an endpoint for this database. */
export function endpointNodes(b: BdbRecord, allNodes: number[]): number[] {
  const masters = b.shards.filter((s) => s.role === 'master');
  switch (b.proxy_policy) {
    case 'single':
      return masters.length ? [masters[0].node_uid] : [];
    case 'all-master-shards':
      return [...new Set(masters.map((s) => s.node_uid))].sort((a, z) => a - z);
    case 'all-nodes':
      return [...allNodes].sort((a, z) => a - z);
  }
}
