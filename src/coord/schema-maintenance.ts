// A node's maintenance-mode record (0.2). Apart from schema.ts for size; the
// same rules hold: optional fields stay optional, unknown fields are kept.
import { type Static, Type } from '@sinclair/typebox';
import { OneOf, Role, Time, Uid } from './schema-types.js';

/** One shard a node held when it entered maintenance mode: what maintenance_off puts back. */
export const MaintenanceShard = Type.Object({
  bdb_uid: Uid,
  shard_uid: Uid,
  role: Role,
  /** The slots of its master: how the shard's family is found again after migrations gave it new uids. */
  slots: Type.Tuple([Type.Integer(), Type.Integer()]),
});
export type MaintenanceShard = Static<typeof MaintenanceShard>;

/**
 * A node in maintenance mode (0.2; RE's `rladmin node <uid> maintenance_mode`),
 * under its own key so the node's own record stays the node's. While it exists
 * nothing is placed on the node. `entering`: its shards move off (the cluster
 * master's MaintenanceController, control/controllers/maintenance.ts);
 * `on`: it holds none; `leaving`: they move back as the snapshot says; the
 * record goes when that is done.
 */
export const MaintenanceRecord = Type.Object({
  node_uid: Uid,
  state: OneOf('entering', 'on', 'leaving'),
  /** The on or off action that runs now, or ran last. */
  action_uid: Type.String(),
  snapshot_name: Type.String(),
  snapshot_time: Time,
  /** What the node held when the snapshot was taken. */
  shards: Type.Array(MaintenanceShard),
  /** maintenance_on options (RE's names): only these databases' shards move (absent: all of them). */
  evict_dbs: Type.Optional(Type.Array(Uid)),
  /** false: replica shards stay on the node (RE's `evict_ha_replica disabled`). */
  evict_ha_replica: Type.Optional(Type.Boolean()),
  demote_node: Type.Optional(Type.Boolean()),
  /** maintenance_off: only clear the mark. */
  skip_shards_restore: Type.Optional(Type.Boolean()),
  /** The shard operation (its action uid) the controller waits for. */
  op_action_uid: Type.Optional(Type.String()),
  /** Failed shard operations in a row (retried a few times, then the action fails). */
  op_failures: Type.Optional(Type.Integer()),
  /** Shards moved off the node: the new shard that took each one's place (maintenance_off moves those back first). */
  moves: Type.Optional(Type.Array(Type.Object({ bdb_uid: Uid, shard_uid: Uid, new_shard_uid: Uid, target_node_uid: Uid }))),
  updated_time: Time,
});
export type MaintenanceRecord = Static<typeof MaintenanceRecord>;
