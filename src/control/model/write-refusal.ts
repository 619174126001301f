// Which master shards should hand over because they refuse writes for a disk
// reason (their AOF or snapshot cannot be written: clients get MISCONF), and
// to which replica. Pure: the cluster master's FailoverController reads the
// observed reports, keeps the time each case has lasted, and promotes.
// OOM is shown but never moved: the replica holds the same data and would be
// just as full.
import type { BdbRecord, ObservedRecord } from '../../coord/schema.js';

export interface WriteRefusalHandover {
  bdbUid: number;
  masterUid: number;
  masterNode: number;
  replicaUid: number;
  reason: string;
}

/**
 * Masters of `b` whose node reports (for `b`'s current generation) that they
 * refuse writes for a disk reason, each with a replica on another node that
 * is up and reported in sync with it (active, link up, no full sync under
 * way) and able to write itself. `reports`: the observed records of `b`, one
 * per node, already checked to come from each node's current run.
 */
export function writeRefusalHandovers(
  b: BdbRecord,
  reports: readonly ObservedRecord[],
  isUp: (nodeUid: number) => boolean,
): WriteRefusalHandover[] {
  const reported = (nodeUid: number, shardUid: number) =>
    reports.find((o) => o.node_uid === nodeUid && o.generation === b.generation)?.shards.find((s) => s.uid === shardUid);
  const out: WriteRefusalHandover[] = [];
  for (const m of b.shards) {
    if (m.role !== 'master') continue;
    const r = reported(m.node_uid, m.uid);
    const reason = r?.role === 'master' ? r.write_refused?.reason : undefined;
    if (reason !== 'aof_write' && reason !== 'bgsave') continue;
    const replica = b.shards.find((s) => {
      if (s.role !== 'slave' || s.master_uid !== m.uid || s.node_uid === m.node_uid || !isUp(s.node_uid)) return false;
      const rs = reported(s.node_uid, s.uid);
      return (
        rs?.status === 'active' &&
        rs.master_link_status === 'up' &&
        rs.sync_progress === undefined &&
        // A replica that cannot write its own disk would refuse as well once promoted.
        rs.write_refused?.reason !== 'aof_write' &&
        rs.write_refused?.reason !== 'bgsave'
      );
    });
    if (replica)
      out.push({ bdbUid: b.uid, masterUid: m.uid, masterNode: m.node_uid, replicaUid: replica.uid, reason: r!.write_refused!.message });
  }
  return out;
}
