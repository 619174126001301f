// Replication tunnels: a replica shard runs `REPLICAOF <node addr> <port>`
// against a local listener that this node opens to its master shard over the
// same links as the proxy (TLS or plaintext by the database's setting). Redis
// replication is unchanged; only its transport is ours. When the mode changes
// the tunnel's connections are cut: the replica reconnects through the new
// link and continues with a partial resync.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ShardLinks, Placement } from './shard-links.js';
import type { TunnelSpec } from './messages.js';
import { listenOrExplain } from '../internode/channel.js';

interface Tunnel {
  spec: TunnelSpec;
  server: net.Server;
  port: number;
  mode: string;
  conns: Set<Duplex>;
  /** Failed attempts to reach the master since the last success (the replica retries every second). */
  failures: number;
}

export class Tunnels {
  private tunnels = new Map<number, Tunnel>();

  constructor(
    private readonly addr: string,
    private readonly links: ShardLinks,
    private readonly placement: Placement,
    private readonly log: Logger,
    private readonly onPort: (replicaShardUid: number, host: string, port: number) => void,
  ) {}

  private modeOf(spec: TunnelSpec): string {
    const b = this.placement.bdb(spec.bdbUid);
    const m = this.placement.shard(spec.masterShardUid);
    return `${b?.encrypted}:${b?.linkGeneration}:${m?.nodeUid}`;
  }

  async apply(specs: TunnelSpec[]): Promise<void> {
    const want = new Map(specs.map((s) => [s.replicaShardUid, s]));
    for (const [uid, t] of this.tunnels) {
      if (!want.has(uid)) {
        this.closeTunnel(t);
        this.tunnels.delete(uid);
      }
    }
    for (const spec of specs) {
      const t = this.tunnels.get(spec.replicaShardUid);
      if (t) {
        t.spec = spec;
        const mode = this.modeOf(spec);
        if (mode !== t.mode) {
          this.log.info({ replica: spec.replicaShardUid, from: t.mode, to: mode }, 'replication tunnel moves to a new link');
          t.mode = mode;
          for (const c of t.conns) c.destroy();
        }
        this.onPort(spec.replicaShardUid, this.addr, t.port);
        continue;
      }
      const tunnel: Tunnel = { spec, server: net.createServer(), port: 0, mode: this.modeOf(spec), conns: new Set(), failures: 0 };
      tunnel.server.on('connection', (inbound) => this.accept(tunnel, inbound));
      await listenOrExplain(tunnel.server, this.addr, 0, 'replication tunnel');
      tunnel.port = (tunnel.server.address() as net.AddressInfo).port;
      this.tunnels.set(spec.replicaShardUid, tunnel);
      this.onPort(spec.replicaShardUid, this.addr, tunnel.port);
    }
  }

  private accept(t: Tunnel, inbound: net.Socket): void {
    // Only our own replica, which leaves from this node's address, may use the tunnel.
    if (inbound.remoteAddress !== this.addr) {
      inbound.destroy();
      return;
    }
    inbound.setNoDelay(true);
    inbound.pause();
    t.conns.add(inbound);
    inbound.on('error', () => inbound.destroy());
    inbound.on('close', () => t.conns.delete(inbound));
    this.links.openRaw(t.spec.masterShardUid, { purpose: 'replication', replicaShardUid: t.spec.replicaShardUid }).then(
      (out) => {
        if (inbound.destroyed) {
          out.destroy();
          return;
        }
        if (t.failures > 0)
          this.log.info({ replica: t.spec.replicaShardUid, failures: t.failures }, 'replication tunnel reaches the master shard again');
        t.failures = 0;
        t.conns.add(out);
        const close = () => {
          inbound.destroy();
          out.destroy();
          t.conns.delete(out);
        };
        out.on('error', close);
        out.on('close', close);
        inbound.on('close', close);
        inbound.pipe(out);
        out.pipe(inbound);
        inbound.resume();
      },
      (err) => {
        // Logged once, then every 30th attempt with the count: the replica retries every second.
        if (t.failures++ % 30 === 0)
          this.log.warn(
            { replica: t.spec.replicaShardUid, failures: t.failures, err: (err as Error).message },
            'replication tunnel cannot reach the master shard',
          );
        inbound.destroy();
      },
    );
  }

  private closeTunnel(t: Tunnel): void {
    for (const c of t.conns) c.destroy();
    t.server.close();
  }

  close(): void {
    for (const t of this.tunnels.values()) this.closeTunnel(t);
    this.tunnels.clear();
  }
}
