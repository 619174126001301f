// The common shape of the controllers that run on the cluster master only
// (database status, node failover, shard operations): a body that runs on a
// timer and whenever something it watches changes (`kick`), never two at
// once, only while this node is the master and its view of the store is
// current (a master cut off from etcd must not decide from a stale view).
import type { Logger } from 'pino';

export interface MasterLoopHost {
  isMaster(): boolean;
  /** False while this node may have been cut off from the store. */
  storeIsCurrent(): boolean;
}

export class MasterLoop {
  private timer?: NodeJS.Timeout;
  private busy = false;
  private stopped = false;

  /**
   * `body` runs each tick; `onNotMaster` runs instead while this node is not
   * the master (to drop what only a master keeps). A failing body is logged
   * as `<what> failed` and retried at the next tick.
   */
  constructor(
    private readonly host: MasterLoopHost,
    private readonly everyMs: number,
    private readonly log: Logger,
    private readonly what: string,
    private readonly body: () => Promise<void>,
    private readonly onNotMaster?: () => void,
  ) {}

  start(): void {
    this.timer = setInterval(this.kick, this.everyMs);
    this.timer.unref();
  }

  /** Run a tick now (unless one is running). */
  readonly kick = (): void => {
    void this.tick();
  };

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    if (!this.host.isMaster()) {
      this.onNotMaster?.();
      return;
    }
    if (!this.host.storeIsCurrent()) return;
    this.busy = true;
    try {
      await this.body();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, `${this.what} failed; the next tick retries`);
    } finally {
      this.busy = false;
    }
  }
}
