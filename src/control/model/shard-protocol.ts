// The control RPCs of operator shard operations, as both sides name them:
// the controller on the cluster master (controllers/shard-ops.ts) asks, the
// shard's node answers (reconcilers/shard-rpc.ts). Names and shapes only.
import type { Logger } from 'pino';

export const SHARD_REPLICATION_RPC = 'shard_replication';
export const SHARD_PAUSE_RPC = 'shard_pause';
export const SHARD_UNPAUSE_RPC = 'shard_unpause';
export const SHARD_RPCS = [SHARD_REPLICATION_RPC, SHARD_PAUSE_RPC, SHARD_UNPAUSE_RPC] as const;

/** A shard's INFO replication, parsed (the answer to shard_replication). */
export interface ShardReplication {
  role: 'master' | 'slave';
  master_repl_offset: number;
  /** Replica: its link to its master. */
  master_link_status?: string;
  /** Replica: a full sync is in progress. */
  master_sync_in_progress?: boolean;
  /** Replica: the master's offset this replica has processed. */
  slave_repl_offset?: number;
  /** Master: its replicas' acknowledged offsets. */
  replicas: { state: string; offset: number }[];
}

/** The logging shard operations do (a pino logger, or a REST request's). */
export type OpLog = Pick<Logger, 'info' | 'warn' | 'error'>;
