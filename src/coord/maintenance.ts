// Maintenance-mode records (/tessera/maintenance/<node uid>): written by the
// REST API when an operator asks (maintenance_on, maintenance_off) and by the
// cluster master's maintenance controller as the node is emptied and filled
// again (control/controllers/maintenance.ts). A record of its own, not a
// field of the node record: that one is written by the node itself.
import type { Etcd3 } from 'etcd3';
import { KEYS, MaintenanceRecord } from './schema.js';
import { readRecord, readRecords, updateRecord } from './records.js';
import { PrefixCache } from './watch.js';

export class MaintenanceStore {
  constructor(private readonly c: Etcd3) {}

  get(node: number): Promise<MaintenanceRecord | null> {
    return readRecord(this.c, KEYS.maintenance(node), MaintenanceRecord);
  }

  async list(): Promise<MaintenanceRecord[]> {
    return [...(await readRecords(this.c, KEYS.maintenancePrefix, MaintenanceRecord)).values()];
  }

  /** Write node `rec.node_uid`'s record (a new maintenance_on or maintenance_off replaces it). */
  async put(rec: MaintenanceRecord): Promise<void> {
    await this.c.put(KEYS.maintenance(rec.node_uid)).value(JSON.stringify(rec));
  }

  /** Change a node's record (compare-and-swap); undefined from `fn`, or an absent record, leaves it. */
  update(node: number, fn: (r: MaintenanceRecord) => MaintenanceRecord | undefined): Promise<MaintenanceRecord | undefined> {
    return updateRecord(this.c, KEYS.maintenance(node), MaintenanceRecord, (cur) => (cur ? fn(cur) : undefined));
  }

  /** The node left maintenance mode (or was removed): its record goes. */
  async delete(node: number): Promise<void> {
    await this.c.delete().key(KEYS.maintenance(node));
  }

  /** A watched copy of every record, by node uid (start it). */
  cache(): PrefixCache<MaintenanceRecord> {
    return new PrefixCache(this.c, KEYS.maintenancePrefix, MaintenanceRecord);
  }
}
