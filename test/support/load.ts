// A steady write load through one database endpoint, as the operation tests
// run it: `clients` connections each SET fresh keys one at a time; every
// acknowledged key is remembered with its value, every failure counted by its
// error, and the slowest acknowledged SET noted (a write pause shows there).
import { Redis } from 'ioredis';
import type { TestNode } from './cluster.js';
import { sleep } from './wait.js';

export interface LoadOptions {
  /** Count failures by the error's first word (the default: `CLUSTERDOWN`, `READONLY`) or by the whole message. */
  errorKey?: 'word' | 'message';
}

export class Load {
  readonly acked = new Map<string, string>();
  ok = 0;
  failed = 0;
  /** The slowest acknowledged SET, in milliseconds. */
  maxMs = 0;
  /** When the last SET was acknowledged (Date.now()). */
  lastAckAt = 0;
  readonly errors = new Map<string, number>();
  /** When the first and the last command failed (Date.now()), to place failures against an operation's steps. */
  firstErrorAt = 0;
  lastErrorAt = 0;
  private running = true;
  private readonly clients: Redis[] = [];
  private readonly loops: Promise<void>[] = [];

  constructor(
    readonly name: string,
    node: TestNode,
    port: number,
    clients: number,
    private readonly o: LoadOptions = {},
  ) {
    for (let c = 0; c < clients; c++) {
      const r = new Redis({ host: node.addr, port, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 100 });
      r.on('error', () => undefined); // failed commands are counted below
      this.clients.push(r);
      this.loops.push(this.loop(r, `${name}:${c}`));
    }
  }

  private async loop(r: Redis, prefix: string): Promise<void> {
    // Without an offline queue, commands sent before the connection is up would fail: not the operation's doing.
    await new Promise((resolve) => r.once('ready', resolve));
    for (let i = 0; this.running; i++) {
      const key = `${prefix}:${i}`;
      const val = `v${i}-${Date.now()}`;
      const t0 = performance.now();
      try {
        if ((await r.set(key, val)) === 'OK') {
          this.maxMs = Math.max(this.maxMs, performance.now() - t0);
          this.lastAckAt = Date.now();
          this.acked.set(key, val);
          this.ok++;
        }
      } catch (err) {
        this.failed++;
        this.lastErrorAt = Date.now();
        this.firstErrorAt ||= this.lastErrorAt;
        const msg = (err as Error).message;
        const kind = this.o.errorKey === 'message' ? msg : msg.split(' ')[0];
        this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
        await sleep(10);
      }
    }
  }

  /** Counts so far, for a step's difference. */
  snapshot() {
    return { ok: this.ok, failed: this.failed, errors: new Map(this.errors) };
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const c of this.clients) c.disconnect();
  }
}

/** Read every key of `expect` back through an endpoint (MGET in batches): the keys whose value differs, as `key=value`. */
export async function readBack(through: Pick<TestNode, 'addr'>, port: number, expect: Map<string, string>): Promise<string[]> {
  const c = new Redis({ host: through.addr, port, maxRetriesPerRequest: 0 });
  try {
    const keys = [...expect.keys()];
    const wrong: string[] = [];
    for (let i = 0; i < keys.length; i += 1000) {
      const part = keys.slice(i, i + 1000);
      const vals = await c.mget(...part);
      part.forEach((k, j) => {
        if (vals[j] !== expect.get(k)) wrong.push(`${k}=${vals[j]}`);
      });
    }
    return wrong;
  } finally {
    c.disconnect();
  }
}
