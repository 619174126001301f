// This node's peers over the control plane: one RPC client per node (dialed
// from this thread), their last probe (`status`, every probeIntervalMs), and
// the registry of control-RPC methods this node answers. The loops register
// their own methods (shard operations, traffic, ports_free, ...), wired by
// src/node, so membership knows none of them; a method nobody registered is
// answered with a typed `unknown_method` error (internode/rpc.ts) (the caller's call rejects), never a crash.
import type { Logger } from 'pino';
import type { NodeRecord } from '../../coord/schema.js';
import type { CertStore } from '../../pki/certstore.js';
import { LiveLinks, type PeerIdentity, type PeerPolicy } from '../../internode/channel.js';
import { PING_METHOD, RpcClient, unknownMethod } from '../../internode/rpc.js';
import { type InternodeLink, LinkRegistry } from '../../internode/links.js';

/** What a node tells its peers about itself over the control plane. */
export interface StatusReply {
  uid: number;
  uptime: number;
  cores: number;
  total_memory: number;
  software_version: string;
  master_uid?: number;
}

export interface ProbeResult {
  ok: boolean;
  at: number;
  status?: StatusReply;
  error?: string;
}

/** One control-RPC method: its params as sent (unchecked), the calling peer (undefined in-process). */
export type RpcMethod = (params: unknown, peer: PeerIdentity | undefined) => Promise<unknown>;

export interface PeersOptions {
  uid: number;
  /** This node's address: control links leave from it (not 127.0.0.1 or the route's default), so a cut between two nodes' addresses cuts them. */
  addr?: string;
  certs: CertStore;
  /** Who may use the internode channel (the view). */
  policy: PeerPolicy;
  nodes: { values(): NodeRecord[]; readonly items: ReadonlyMap<string, NodeRecord> };
  probeIntervalMs: number;
  log: Logger;
}

export class Peers {
  readonly probes = new Map<number, ProbeResult>();
  private readonly clients = new Map<number, RpcClient>();
  private readonly methods = new Map<string, RpcMethod>();
  /** This thread's dialed control links, cut when their peer is revoked or removed. */
  private readonly links = new LiveLinks('dialed');
  /** The same links with what they are for, for verify encryption (the worker lists the rest). */
  private readonly registry = new LinkRegistry();
  private probeTimer?: NodeJS.Timeout;

  constructor(private readonly o: PeersOptions) {
    // The control links' heartbeat (internode/rpc.ts): answered at once.
    this.methods.set(PING_METHOD, async () => 'pong');
  }

  /** Serve `method` (one handler per method; a second registration is a wiring error). */
  register(method: string, handler: RpcMethod): void {
    if (this.methods.has(method)) throw new Error(`control RPC method ${method} registered twice`);
    this.methods.set(method, handler);
  }

  /** Answer a control RPC (from the data-plane worker's listener, or in-process). */
  handle(method: string, params: unknown, peer?: PeerIdentity): Promise<unknown> {
    const h = this.methods.get(method);
    if (!h) return Promise.reject(unknownMethod(method));
    return h(params, peer);
  }

  /** The RPC client of node `uid`, while it is a member. */
  rpc(uid: number): RpcClient | undefined {
    const rec = this.o.nodes.items.get(String(uid));
    if (!rec) return undefined;
    let c = this.clients.get(uid);
    if (!c) {
      c = new RpcClient(
        { uid, host: rec.addr, port: rec.ports.internode, localAddress: this.o.addr },
        this.o.certs,
        this.o.policy,
        this.o.log.child({ component: 'rpc' }),
        this.links,
        this.registry,
      );
      this.clients.set(uid, c);
    }
    return c;
  }

  /** Call `method` on node `uid`: this node's own handler in-process, another's over the control plane. */
  call<T>(uid: number, method: string, params: object, timeoutMs = 3000): Promise<T> {
    if (uid === this.o.uid) return this.handle(method, params) as Promise<T>;
    const c = this.rpc(uid);
    if (!c) return Promise.reject(new Error(`node ${uid} is unknown`));
    return c.call<T>(method, params, timeoutMs);
  }

  /** How many other member nodes answered on their control link within the last `withinMs` (its heartbeats). */
  heardFrom(withinMs: number): number {
    const since = Date.now() - withinMs;
    let n = 0;
    for (const [uid, c] of this.clients) if (uid !== this.o.uid && this.o.nodes.items.has(String(uid)) && c.lastHeardAt >= since) n++;
    return n;
  }

  /** Did node `uid` answer on its control link within the last `withinMs`? */
  hears(uid: number, withinMs: number): boolean {
    return (this.clients.get(uid)?.lastHeardAt ?? 0) >= Date.now() - withinMs;
  }

  /** The membership or deny list changed: cut the links now refused. */
  recheck(): void {
    this.links.recheck(this.o.policy, this.o.log);
  }

  /** This thread's dialed control links (the worker lists the rest). */
  listLinks(isDenied: (serial: string) => boolean): InternodeLink[] {
    return this.registry.list(this.o.uid, isDenied);
  }

  startProbes(): void {
    // A CA rollover's step 4: control links set up under the dropped CA are cut; the next call re-dials.
    this.registry.followTrust(this.o.certs, this.o.log);
    this.probeTimer = setInterval(() => void this.probe(), this.o.probeIntervalMs);
    this.probeTimer.unref();
  }

  stop(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    for (const c of this.clients.values()) c.close();
  }

  private async probe(): Promise<void> {
    for (const [id, c] of this.clients) {
      if (!this.o.nodes.items.has(id.toString())) {
        c.close();
        this.clients.delete(id);
        this.probes.delete(id);
      }
    }
    await Promise.all(
      this.o.nodes.values().map(async (n) => {
        if (n.uid === this.o.uid) return;
        const client = this.rpc(n.uid);
        if (!client) return;
        try {
          const status = await client.call<StatusReply>('status', {}, Math.max(500, this.o.probeIntervalMs));
          this.probes.set(n.uid, { ok: true, at: Date.now(), status });
        } catch (err) {
          const prev = this.probes.get(n.uid);
          this.probes.set(n.uid, { ok: false, at: prev?.at ?? 0, status: prev?.status, error: (err as Error).message });
        }
      }),
    );
  }
}
