// Runs on the cluster master: finished actions do not pile up in the store.
// Every operation (database create/update/delete, failover, migration, node
// removal, replica rebuild, certificate rotation) leaves an action record;
// GET /v1/actions lists them and the replica-rebuild follower reads them all.
// The newest KEEP_FINISHED finished ones are kept, older finished ones are
// removed; running actions are never touched.
import type { Logger } from 'pino';
import type { StoreHost } from '../../coord/store.js';
import { isFinished, type ActionRecord } from '../../coord/schema.js';
import { MasterLoop, type MasterLoopHost } from './master-loop.js';

/** Finished actions kept (the newest by uid). */
export const KEEP_FINISHED = 200;
const EVERY_MS = 60_000;

/** The finished actions beyond the newest `keep`, oldest first. Pure. */
export function expiredActions(all: readonly ActionRecord[], keep = KEEP_FINISHED): ActionRecord[] {
  const finished = all.filter(isFinished).sort((a, b) => Number(b.action_uid) - Number(a.action_uid));
  return finished.slice(keep).reverse();
}

export type RetentionHost = MasterLoopHost & StoreHost;

export class ActionRetention {
  private readonly loop: MasterLoop;

  constructor(
    private readonly h: RetentionHost,
    private readonly log: Logger,
    private readonly keep = KEEP_FINISHED,
    everyMs = EVERY_MS,
  ) {
    this.loop = new MasterLoop(h, everyMs, log, 'finished actions cleanup', () => this.tick());
  }

  start(): void {
    this.loop.start();
    this.loop.kick();
  }

  async close(): Promise<void> {
    this.loop.stop();
  }

  private async tick(): Promise<void> {
    const store = this.h.store.actions;
    const old = expiredActions(await store.list(), this.keep);
    for (const a of old) {
      if (this.loop.isStopped || !this.h.isMaster()) return;
      await store.delete(a.action_uid);
    }
    if (old.length)
      this.log.info(
        { removed: old.length, oldest: old[0].action_uid, newest: old[old.length - 1].action_uid, kept: this.keep },
        'finished actions removed',
      );
  }
}
