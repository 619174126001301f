// Maintenance mode, the request side (POST /v1/nodes/{uid}/actions/maintenance_on
// and maintenance_off): validate, write the node's maintenance record and an
// action, answer. The record is the mark (nothing is placed on the node while
// it exists) and the work list of the cluster master's MaintenanceController
// (control/controllers/maintenance.ts), which empties the node or fills it
// again and finishes the action; a refusal changes nothing.
import type { ActionRecord, BdbRecord, MaintenanceRecord, NodeRecord } from '../../coord/schema.js';
import { isFinished } from '../../coord/schema.js';
import type { ClusterStore } from '../../coord/store.js';
import { conflict, invalid, notFound } from '../../util/errors.js';
import { type NodeStateHost, nodeIsUp } from '../model/node-state.js';
import { requireFeature } from '../model/version-gates.js';
import { type EvictOptions, checkEnter, placeableNodes, quorumRefusal, snapshotOf } from '../model/maintenance.js';

/** RE's maintenance_on fields that apply here. */
export interface MaintenanceOnRequest {
  /**
   * RE's option to hand the cluster master role over when the node has it.
   * Here that is always done (the node is about to be stopped, and a cluster
   * without a master pauses its controllers for the failover timeout): true
   * is accepted as the default, false is refused (400 unsupported_option).
   */
  demote_node?: boolean;
  evict_ha_replica?: boolean;
  /** Deprecated in RE for evict_ha_replica false; same meaning here. */
  keep_slave_shards?: boolean;
  /** Databases by uid, `db:<uid>` or name. */
  evict_dbs?: (number | string)[];
  overwrite_snapshot?: boolean;
}

export interface MaintenanceOffRequest {
  snapshot_name?: string;
  skip_shards_restore?: boolean;
}

/** What the requests read: the store, the nodes' records, who is up. */
export interface MaintenanceRequestHost extends NodeStateHost {
  readonly store: Pick<ClusterStore, 'maintenanceMode' | 'actions' | 'bdbs' | 'clusterVersion'>;
  readonly nodes: { values(): NodeRecord[]; readonly items: ReadonlyMap<string, NodeRecord> };
}

type Log = { info(o: object, msg: string): void };

const members = (h: MaintenanceRequestHost) => h.nodes.values().filter((n) => n.addr);

async function gate(h: MaintenanceRequestHost): Promise<void> {
  const stored = await h.store.clusterVersion.get();
  requireFeature(
    { cluster_version: stored?.version, members: members(h).map((n) => ({ uid: n.uid, software_version: n.software_version })) },
    'maintenance_mode',
  );
}

function requireNode(h: MaintenanceRequestHost, node: number): NodeRecord {
  const n = h.nodes.items.get(String(node));
  if (!n?.addr) throw notFound('node_not_found', `node ${node} does not exist`);
  return n;
}

/** `evict_dbs` as database uids: a uid, `db:<uid>`, or a name; an unknown one is 404 db_not_exist. */
function evictDbs(bdbs: readonly BdbRecord[], refs: readonly (number | string)[] | undefined): number[] | undefined {
  if (!refs) return undefined;
  return refs.map((ref) => {
    const t = String(ref);
    const m = /^(?:db:)?(\d+)$/.exec(t);
    const b = m ? bdbs.find((x) => x.uid === Number(m[1])) : bdbs.find((x) => x.name === t);
    if (!b) throw notFound('db_not_exist', `evict_dbs: database ${t} does not exist`);
    return b.uid;
  });
}

/** A running action of the record, if any. */
async function running(h: MaintenanceRequestHost, rec: MaintenanceRecord): Promise<ActionRecord | undefined> {
  const a = await h.store.actions.get(rec.action_uid);
  return a && !isFinished(a) ? a : undefined;
}

/**
 * Put node `node` in maintenance mode. Refusals: node_not_found,
 * db_not_exist (404); cluster_version_too_old, already_in_maintenance,
 * maintenance_busy, node_down, quorum_loss, no_placement (409).
 */
export async function requestMaintenanceOn(
  h: MaintenanceRequestHost,
  log: Log,
  node: number,
  req: MaintenanceOnRequest,
): Promise<ActionRecord> {
  if (req.demote_node === false)
    throw invalid(
      'unsupported_option',
      'demote_node false is not supported: a node entering maintenance mode always hands the cluster master role to another node, as demote_node asks; leave it out or send true',
    );
  requireNode(h, node);
  await gate(h);
  const all = await h.store.maintenanceMode.list();
  const cur = all.find((m) => m.node_uid === node);
  if (cur) {
    const a = await running(h, cur);
    if (a)
      throw conflict(
        'maintenance_busy',
        `node ${node}: ${cur.state === 'leaving' ? 'maintenance_off' : 'maintenance_on'} is under way (action ${a.action_uid})`,
      );
    // An earlier maintenance_on that failed may be asked again (its snapshot is kept); a finished one only with overwrite_snapshot.
    const failed = cur.state === 'entering';
    if (!failed && !req.overwrite_snapshot)
      throw conflict(
        'already_in_maintenance',
        `node ${node} is already in maintenance mode (snapshot ${cur.snapshot_name}); use overwrite_snapshot to take a new snapshot`,
      );
  }
  if (!nodeIsUp(h, node)) throw conflict('node_down', `node ${node} is down; its shards are failed over by the node failover`);
  const voters = members(h).map((n) => n.uid);
  const down = new Set(voters.filter((u) => !nodeIsUp(h, u)));
  const others = new Set(all.filter((m) => m.node_uid !== node).map((m) => m.node_uid));
  const q = quorumRefusal(voters, node, down, others);
  if (q) throw q;

  const bdbs = await h.store.bdbs.list();
  const opts: EvictOptions = {
    evict_dbs: evictDbs(bdbs, req.evict_dbs),
    evict_ha_replica: req.keep_slave_shards ? false : req.evict_ha_replica,
  };
  const live = new Set(voters.filter((u) => !down.has(u)));
  const targets = placeableNodes([...live], [...all, { node_uid: node }]);
  const load = new Map<number, number>();
  for (const b of bdbs) for (const s of b.shards) load.set(s.node_uid, (load.get(s.node_uid) ?? 0) + 1);
  // Every shard must have somewhere to go before anything moves (409 no_placement).
  checkEnter(bdbs, node, opts, live, targets, load);

  const keep = cur && !req.overwrite_snapshot;
  const now = new Date();
  const action = await h.store.actions.create('maintenance_on', `node:${node}`);
  const rec: MaintenanceRecord = {
    node_uid: node,
    state: 'entering',
    action_uid: action.action_uid,
    snapshot_name: keep ? cur.snapshot_name : `maintenance_mode_node${node}_${now.toISOString().replace(/[-:.]/g, '')}`,
    snapshot_time: keep ? cur.snapshot_time : now.toISOString(),
    shards: keep ? cur.shards : snapshotOf(bdbs, node),
    ...(opts.evict_dbs ? { evict_dbs: [...opts.evict_dbs] } : {}),
    ...(opts.evict_ha_replica === false ? { evict_ha_replica: false } : {}),
    ...(req.demote_node ? { demote_node: true } : {}),
    ...(keep && cur.moves ? { moves: cur.moves } : {}),
    ...(keep && cur.op_action_uid ? { op_action_uid: cur.op_action_uid } : {}),
    updated_time: now.toISOString(),
  };
  try {
    await h.store.maintenanceMode.put(rec);
  } catch (err) {
    await h.store.actions.finish(action.action_uid, 'failed', `the maintenance record could not be written: ${(err as Error).message}`);
    throw err;
  }
  log.info({ action: action.action_uid, node, snapshot: rec.snapshot_name, shards: rec.shards.length }, 'maintenance mode on requested');
  return action;
}

/**
 * Take node `node` out of maintenance mode: its shards move back as the
 * snapshot says (or, skip_shards_restore, only the mark goes). Refusals:
 * node_not_found, snapshot_not_found (404); cluster_version_too_old,
 * not_in_maintenance, maintenance_busy, node_down (409). A maintenance_on still
 * under way is interrupted (its action fails, saying so).
 */
export async function requestMaintenanceOff(
  h: MaintenanceRequestHost,
  log: Log,
  node: number,
  req: MaintenanceOffRequest,
): Promise<ActionRecord> {
  requireNode(h, node);
  await gate(h);
  const cur = await h.store.maintenanceMode.get(node);
  if (!cur) throw conflict('not_in_maintenance', `node ${node} is not in maintenance mode`);
  if (req.snapshot_name !== undefined && req.snapshot_name !== cur.snapshot_name)
    throw notFound('snapshot_not_found', `node ${node} has no snapshot named ${req.snapshot_name} (its snapshot is ${cur.snapshot_name})`);
  const a = await running(h, cur);
  if (a && cur.state === 'leaving')
    throw conflict('maintenance_busy', `node ${node}: maintenance_off is under way (action ${a.action_uid})`);
  if (!req.skip_shards_restore && !nodeIsUp(h, node))
    throw conflict('node_down', `node ${node} is down: its shards can move back once it is up (or use skip_shards_restore)`);
  const action = await h.store.actions.create('maintenance_off', `node:${node}`);
  const next = await h.store.maintenanceMode.update(node, (r) => ({
    ...r,
    state: 'leaving',
    action_uid: action.action_uid,
    ...(req.skip_shards_restore ? { skip_shards_restore: true } : {}),
    op_failures: 0,
    updated_time: new Date().toISOString(),
  }));
  if (!next) {
    await h.store.actions.finish(action.action_uid, 'failed', `node ${node} left maintenance mode meanwhile`);
    throw conflict('not_in_maintenance', `node ${node} is not in maintenance mode`);
  }
  if (a) await h.store.actions.finish(a.action_uid, 'failed', `interrupted by maintenance_off (action ${action.action_uid})`);
  log.info(
    { action: action.action_uid, node, snapshot: cur.snapshot_name, skip: !!req.skip_shards_restore },
    'maintenance mode off requested',
  );
  return action;
}
