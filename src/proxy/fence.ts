/**
 * Write fencing of a node cut off from the cluster.
 *
 * The control loop renews the fence each time it reaches the cluster store
 * (its liveness lease renewals). Once a renewal is overdue, the node may
 * have been failed over: another node may already hold a promoted master for
 * the slots this node's endpoints still route to its old one. From then on,
 * until the control loop has the current database map again, the endpoints
 * answer reads but refuse writes, so a slot never has two writable masters.
 *
 * The check reads the clock on each write, not a flag set by a timer: after
 * a SIGSTOP/SIGCONT the first client write may be handled before any timer
 * of either thread has run.
 */
export class WriteFence {
  /** Writes are refused after this time (ms since the epoch); 0: never. */
  private deadline = 0;

  /** The store was reached: writes are allowed for `validForMs` more. */
  renew(validForMs: number): void {
    this.deadline = Date.now() + validForMs;
  }

  get fenced(): boolean {
    return this.deadline !== 0 && Date.now() > this.deadline;
  }
}

/** For endpoints that run outside a cluster (tests, tools): never fenced. */
export const NO_FENCE = new WriteFence();
