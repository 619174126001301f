// Does a shard refuse writes, and why? Read from its INFO text (pure, so the
// unit tests feed it INFO as redis prints it). Mirrors redis's own checks:
// writeCommandsDeniedByDiskError (the MISCONF reply) and the OOM check of
// processCommand with a policy that cannot evict (noeviction).

/** Why a shard refuses writes: its AOF cannot be written, its last snapshot failed (stop-writes-on-bgsave-error), or it is full. */
export type WriteRefusal = 'aof_write' | 'bgsave' | 'oom';

export interface WriteHealth {
  refused?: { reason: WriteRefusal; message: string };
  /** The last AOF rewrite failed (RE's node_insufficient_disk_aofrw): writes still go on, the AOF grows. */
  aofRewriteFailed: boolean;
}

/** A refusal for a disk reason: the replica on another node's disk can take over (an OOM replica would be as full). */
export function isDiskRefusal(r: WriteRefusal | undefined): boolean {
  return r === 'aof_write' || r === 'bgsave';
}

function fields(info: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of info.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return out;
}

/**
 * `info`: the text of `INFO persistence memory`. `snapshotsStopWrites`: the
 * shard has save points and stop-writes-on-bgsave-error (redis's default),
 * so a failed snapshot refuses writes (redis checks both; INFO shows neither).
 * Missing fields count as healthy: a shard that does not say is not judged.
 */
export function writeHealth(info: string, snapshotsStopWrites: boolean): WriteHealth {
  const f = fields(info);
  const aofOn = f.get('aof_enabled') === '1';
  const health: WriteHealth = { aofRewriteFailed: aofOn && f.get('aof_last_bgrewrite_status') === 'err' };
  // redis tests the snapshot first, then the AOF (and an AOF fsync failure shows as a write failure in INFO).
  if (snapshotsStopWrites && f.get('rdb_last_bgsave_status') === 'err') {
    health.refused = { reason: 'bgsave', message: 'MISCONF: the last background save failed (stop-writes-on-bgsave-error)' };
  } else if (aofOn && f.get('aof_last_write_status') === 'err') {
    health.refused = { reason: 'aof_write', message: 'MISCONF: errors writing to the AOF file' };
  } else {
    const used = Number(f.get('used_memory'));
    const notCounted = Number(f.get('mem_not_counted_for_evict') ?? 0);
    const max = Number(f.get('maxmemory'));
    // The same figure redis compares with maxmemory: replication and AOF buffers are not counted.
    if (f.get('maxmemory_policy') === 'noeviction' && max > 0 && Number.isFinite(used) && used - (notCounted || 0) > max)
      health.refused = { reason: 'oom', message: `OOM: used memory ${used - (notCounted || 0)} bytes over maxmemory ${max} (noeviction)` };
  }
  return health;
}
