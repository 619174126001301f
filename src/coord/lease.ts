// Liveness leases: a lease that etcd drops when its holder stops renewing it,
// taking the keys bound to it (a node's liveness record, its heartbeat, the
// master key) along. Callers hold a StoreLease; only coord/ sees etcd3's.
import type { Etcd3, Lease } from 'etcd3';

export interface LeaseOptions {
  /** Renew it in the background (default true); false: it lapses after its TTL unless renewed with `keepaliveOnce`. */
  autoKeepAlive?: boolean;
}

export class StoreLease {
  /** @internal coord/ binds its writes to the etcd3 lease. */
  constructor(readonly etcdLease: Lease) {}

  /** The lease's id once etcd granted it; rejects when it could not be (it is then also reported lost). */
  grant(): Promise<string> {
    return this.etcdLease.grant();
  }

  /** Drop it now, and every key bound to it. */
  revoke(): Promise<void> {
    return this.etcdLease.revoke();
  }

  /** Renew it once, now. */
  async keepaliveOnce(): Promise<void> {
    await this.etcdLease.keepaliveOnce();
  }

  /** etcd said it is gone (expired or revoked by someone else), or it was never granted. */
  revoked(): boolean {
    return this.etcdLease.revoked();
  }

  /**
   * 'lost' (err): the lease is gone (expired, revoked elsewhere, or never
   * granted; not after `revoke()`): take a new one. 'renewed': a keepalive
   * came back. 'renewalFailed' (err): a keepalive did not (the lease may
   * still hold until its TTL runs out).
   */
  on(event: 'lost' | 'renewalFailed', fn: (err: Error) => void): this;
  on(event: 'renewed', fn: () => void): this;
  on(event: 'lost' | 'renewed' | 'renewalFailed', fn: (err: Error) => void): this {
    const name = event === 'lost' ? 'lost' : event === 'renewed' ? 'keepaliveSucceeded' : 'keepaliveFailed';
    this.etcdLease.on(name as 'lost', fn);
    return this;
  }
}

/** The etcd3 lease behind either form (callers still holding an etcd3 Lease while they move to StoreLease). */
export function etcdLeaseOf(l: StoreLease | Lease): Lease {
  return l instanceof StoreLease ? l.etcdLease : l;
}

export class LeaseStore {
  constructor(private readonly c: Etcd3) {}

  /** A new lease of `ttlSeconds`, granted in the background (`grant()` waits for it). */
  create(ttlSeconds: number, opts: LeaseOptions = {}): StoreLease {
    return new StoreLease(this.c.lease(ttlSeconds, { autoKeepAlive: opts.autoKeepAlive ?? true }));
  }
}
