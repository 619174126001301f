// The node's disk alerts, in Redis Enterprise's names, evaluated by the
// database reconciler after each report:
//   - node_insufficient_disk_aofrw: a shard of this node cannot write its AOF
//     or its snapshot (it refuses writes: MISCONF), or its last AOF rewrite
//     failed;
//   - node_persistent_storage: the file system of the shards' files is used
//     past the threshold (percent, statfs).
// Each is written only when it changes; putAlerts keeps the other alerts.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AlertSettingsRecord, AlertState, NodeAlertsRecord } from '../../coord/schema.js';
import type { ClusterStore } from '../../coord/store.js';

/** A local shard that cannot write to disk. */
export interface DiskTrouble {
  uid: number;
  bdb_uid: number;
  role: 'master' | 'slave';
  reason: string;
}

export class DiskAlerts {
  private last = new Map<string, string>();

  constructor(
    private readonly store: Pick<ClusterStore, 'nodes'>,
    /** The alert settings now, from a watched record (no store round trip per pass). */
    private readonly settings: () => AlertSettingsRecord,
    private readonly uid: number,
    private readonly dataDir: string,
    private readonly log: Logger,
  ) {}

  /**
   * Percent used of the file system that holds the shards' files (the data directory's `shards`, which an
   * operator may mount apart; the data directory itself before any shard ran), and the bytes free to this
   * process; undefined if statfs fails.
   */
  async usage(): Promise<{ used_percent: number; free_bytes: number } | undefined> {
    const shards = path.join(this.dataDir, 'shards');
    try {
      const s = await fs.promises.statfs(fs.existsSync(shards) ? shards : this.dataDir);
      if (!s.blocks) return undefined;
      return { used_percent: +((100 * (s.blocks - s.bfree)) / s.blocks).toFixed(1), free_bytes: s.bavail * s.bsize };
    } catch (err) {
      this.log.warn({ dir: this.dataDir, err: (err as Error).message }, 'cannot read the data directory file system usage');
      return undefined;
    }
  }

  async evaluate(trouble: readonly DiskTrouble[]): Promise<void> {
    const settings = this.settings();
    const rec: NodeAlertsRecord = {};
    const aofrw = settings.node_insufficient_disk_aofrw;
    const stuck = aofrw.enabled && trouble.length > 0;
    rec.node_insufficient_disk_aofrw = alert(aofrw, stuck, 'ERROR', {
      state: stuck,
      ...(stuck ? { shards: [...trouble].sort((a, b) => a.uid - b.uid) } : {}),
    });
    const storage = settings.node_persistent_storage;
    const u = await this.usage();
    const full = storage.enabled && !!u && u.used_percent >= storage.threshold;
    // The figures go in only while raised, in whole percents: the record is rewritten when it changes.
    rec.node_persistent_storage = alert(storage, full, 'WARNING', {
      state: full,
      ...(full && u ? { used_percent: Math.floor(u.used_percent), free_bytes: Math.floor(u.free_bytes / 2 ** 20) * 2 ** 20 } : {}),
    });
    const changed: NodeAlertsRecord = {};
    for (const [name, a] of Object.entries(rec) as [keyof NodeAlertsRecord, AlertState][]) {
      const key = JSON.stringify({ ...a, change_time: '' });
      if (this.last.get(name) === key) continue;
      changed[name] = a;
    }
    if (!Object.keys(changed).length) return;
    await this.store.nodes.putAlerts(this.uid, changed);
    for (const [name, a] of Object.entries(changed) as [string, AlertState][]) {
      this.last.set(name, JSON.stringify({ ...a, change_time: '' }));
      if (a.state) this.log.warn({ alert: name, value: a.change_value }, 'alert raised');
      else this.log.info({ alert: name }, 'alert clear');
    }
  }
}

function alert(
  setting: { enabled: boolean; threshold: number },
  state: boolean,
  severity: 'WARNING' | 'ERROR',
  change_value: AlertState['change_value'],
): AlertState {
  return { enabled: setting.enabled, state, severity, threshold: setting.threshold, change_time: new Date().toISOString(), change_value };
}
