// Failed logins, counted per source address: REST basic auth and the web UI's
// sign-in share one limiter per node (api/auth.ts's passwordCheck owns it), so
// an address that failed 10 times within a minute is refused (429 with
// Retry-After) on both, BEFORE any password hash is computed: a refused guess
// costs the node a map lookup, not 40 ms of scrypt. Other addresses are not
// affected. A success from an address clears its count.

export const LOGIN_FAILURES_ALLOWED = 10;
export const LOGIN_WINDOW_MS = 60_000;
/** Addresses tracked at most; beyond it the stalest are dropped (an attacker with many addresses is not stopped by a per-address limit anyway). */
const MAX_ADDRESSES = 10_000;

export class LoginLimiter {
  /** Per address: the times of its recent failures, oldest first, at most `allowed` of them. */
  private readonly failures = new Map<string, number[]>();

  constructor(
    readonly allowed = LOGIN_FAILURES_ALLOWED,
    readonly windowMs = LOGIN_WINDOW_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** 0 when the address may try a password now; otherwise the seconds until it may. */
  retryAfterSeconds(addr: string): number {
    const times = this.recent(addr);
    if (times.length < this.allowed) return 0;
    return Math.max(1, Math.ceil((times[0] + this.windowMs - this.now()) / 1000));
  }

  failed(addr: string): void {
    const times = this.recent(addr);
    times.push(this.now());
    while (times.length > this.allowed) times.shift();
    this.failures.delete(addr); // re-insert: the map's order is least recently failed first
    if (this.failures.size >= MAX_ADDRESSES) this.failures.delete(this.failures.keys().next().value!);
    this.failures.set(addr, times);
  }

  succeeded(addr: string): void {
    this.failures.delete(addr);
  }

  get size(): number {
    return this.failures.size;
  }

  private recent(addr: string): number[] {
    const times = this.failures.get(addr);
    if (!times) return [];
    const since = this.now() - this.windowMs;
    while (times.length && times[0] <= since) times.shift();
    if (!times.length) this.failures.delete(addr);
    return times;
  }
}
