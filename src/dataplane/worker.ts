// The data-plane worker thread: owns the internode listeners (3342 for both
// planes, 3343 plaintext), the database endpoints, shard links and
// replication tunnels. Control-plane requests arriving on 3342 are relayed to
// the main thread, which answers them.
import net from 'node:net';
import type tls from 'node:tls';
import { parentPort } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { applyProcessDefaults } from '../tls/policy.js';
import { endpointTlsOptions } from '../tls/contexts.js';
import { clientCertList } from '../proxy/client-auth.js';
import { CertStore } from '../pki/certstore.js';
import { InternodeServer, LiveLinks, type PeerPolicy, listenOrExplain } from '../internode/channel.js';
import { type InternodeLink, LinkRegistry } from '../internode/links.js';
import { type LinkUse, Placement, ShardLinks, serveShardLink } from './shard-links.js';
import { readLines } from '../internode/rpc.js';
import { Tunnels } from './tunnels.js';
import { Endpoint, type EndpointConfig } from '../proxy/endpoint.js';
import { WriteFence } from '../proxy/fence.js';
import type { EndpointStatsSnapshot } from '../proxy/stats.js';
import type { DataplaneConfig, EndpointState, FromWorker, PeerNode, PolicySnapshot, ReshardOp, ToWorker } from './messages.js';
import { Mover } from './mover.js';

applyProcessDefaults();
/** How long a plaintext link may outlive its database's switch to encryption. */
const PLAINTEXT_GRACE_MS = 10_000;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);

class Dataplane implements PeerPolicy {
  private policySnap!: PolicySnapshot;
  private members = new Set<number>();
  private denied = new Set<string>();
  private identities = new Map<string, { uid: number; plane: 'cp' | 'dp' }>();
  private nodes = new Map<number, PeerNode>();
  private readonly placement = new Placement();
  private config: DataplaneConfig = { localShards: [], bdbs: [], shardLocations: [], endpoints: [], tunnels: [] };
  private internode!: InternodeServer;
  private plain!: net.Server;
  private links!: ShardLinks;
  private tunnels!: Tunnels;
  private mover!: Mover;
  private endpoints = new Map<number, { ep: Endpoint; port: number; listening: boolean; error?: string }>();
  private farLinks = new Map<net.Socket, { bdbUid: number; encrypted: boolean }>();
  private cpConns = new Map<number, tls.TLSSocket>();
  private readonly dialed = new LiveLinks('dialed');
  /** Every internode connection of this thread (both planes, both channels, both sides), for verify encryption. */
  private readonly registry = new LinkRegistry();
  private nextConn = 1;
  /** Bumped when a CA leaves the trust: every endpoint relinks (linkGeneration + this), off links set up under it. */
  private trustEpoch = 0;
  private retryTimer?: NodeJS.Timeout;
  /** The node's proxy certificate (services CA), for TLS endpoints. */
  private proxyCert?: { certPem: string; keyPem: string };
  /** Shared by every endpoint of this node. */
  readonly fence = new WriteFence();
  readonly certs: CertStore;
  readonly log: Logger;

  constructor(private readonly init: Extract<ToWorker, { type: 'init' }>) {
    this.log = pino(
      { level: init.logLevel, base: { node: init.node.addr, component: 'dataplane' } },
      pino.destination({ dest: 1, sync: true }),
    );
    this.certs = new CertStore(init.certs, init.policy.anchors);
    this.proxyCert = init.proxyCert;
    this.certs.setKeyExchange(init.policy.keyExchange);
    this.setPolicy(init.policy);
    this.registry.followTrust(this.certs, this.log, () => this.relinkForTrust());
  }

  /** A CA left the trust: endpoints move their shard links to new ones (dialed with today's certificates). */
  private relinkForTrust(): void {
    this.trustEpoch++;
    for (const spec of this.config.endpoints) this.endpoints.get(spec.bdbUid)?.ep.update(this.endpointConfig(spec));
  }

  /** The live internode connections this thread holds: control connections accepted, shard links and tunnels both ways. */
  internodeLinks(): InternodeLink[] {
    return this.registry.list(this.init.node.uid, (serial) => this.isDenied(serial));
  }

  /** Every endpoint's traffic counters. */
  endpointStats(): EndpointStatsSnapshot[] {
    return [...this.endpoints.entries()].map(([bdbUid, e]) => e.ep.traffic.snapshot(bdbUid, e.ep.sessions.size));
  }

  /** On the plaintext channel a peer is known only by its address (dialers leave from their node's own). */
  private nodeAt(addr: string | undefined): number | undefined {
    for (const n of this.nodes.values()) if (n.addr === addr) return n.uid;
    return undefined;
  }

  clusterId(): string {
    return this.policySnap.clusterId;
  }
  isMember(uid: number): boolean {
    return this.members.has(uid);
  }
  isDenied(serial: string): boolean {
    return this.denied.has(serial);
  }
  identityOf(serial: string) {
    return this.identities.get(serial);
  }

  setPolicy(p: PolicySnapshot): void {
    this.policySnap = p;
    this.members = new Set(p.members);
    this.denied = new Set(p.denied);
    this.nodes = new Map(p.nodes.map((n) => [n.uid, n]));
    this.identities = new Map(p.identities.map((i) => [i.serial, { uid: i.uid, plane: i.plane }]));
    this.certs?.setAnchors(p.anchors);
    this.certs?.setKeyExchange(p.keyExchange);
    this.internode?.recheck();
    this.dialed.recheck(this, this.log);
  }

  async start(): Promise<void> {
    const { node } = this.init;
    this.links = new ShardLinks(
      {
        self: { uid: node.uid, addr: node.addr },
        certs: this.certs,
        policy: this,
        node: (uid) => this.nodes.get(uid),
        log: this.log,
        links: this.dialed,
        registry: this.registry,
      },
      this.placement,
    );
    this.tunnels = new Tunnels(node.addr, this.links, this.placement, this.log, (replicaShardUid, host, p) =>
      post({ type: 'tunnel', replicaShardUid, host, port: p }),
    );
    this.mover = new Mover(
      {
        open: (shardUid, from) =>
          this.links.open(shardUid, from === undefined ? undefined : { purpose: 'migration', sourceShardUid: from }),
      },
      this.log.child({ component: 'key-mover' }),
    );
    const track =
      (peerUid: number | undefined) => (bdbUid: number, s: net.Socket, encrypted: boolean, link: { shardUid: number; use?: LinkUse }) => {
        this.farLinks.set(s, { bdbUid, encrypted });
        s.once('close', () => this.farLinks.delete(s));
        const use = link.use;
        this.registry.add(s, {
          side: 'accepted',
          purpose: use?.purpose ?? 'unknown',
          remoteUid: peerUid ?? this.nodeAt(s.remoteAddress),
          bdbUid,
          shardUid: link.shardUid,
          ...(use?.purpose === 'replication' ? { replicaShardUid: use.replicaShardUid } : {}),
        });
      };
    this.internode = new InternodeServer({
      host: node.addr,
      port: node.ports.internode,
      certs: this.certs,
      policy: this,
      log: this.log,
      handlers: {
        cp: (s, peer) => this.relayCp(s, peer),
        dp: (s, peer) => serveShardLink(s, true, this.placement, this.log, track(peer.uid)),
      },
    });
    this.plain = net.createServer((s) => serveShardLink(s, false, this.placement, this.log, track(undefined)));
    await this.internode.listen();
    await listenOrExplain(this.plain, node.addr, node.ports.dp_plain, 'plaintext data-plane channel');
  }

  /** Control-plane requests are answered by the main thread; the socket stays here. */
  private relayCp(s: tls.TLSSocket, peer: { uid: number; plane: 'cp' | 'dp'; serial: string }): void {
    const conn = this.nextConn++;
    this.cpConns.set(conn, s);
    this.registry.add(s, { side: 'accepted', purpose: 'control', remoteUid: peer.uid });
    s.once('close', () => this.cpConns.delete(conn));
    readLines(s, (line) => post({ type: 'rpc', conn, peer, line }));
  }

  /** A resharding's request: a hold or release on this node's endpoint, or a key-mover step. */
  async reshard(op: ReshardOp): Promise<unknown> {
    if (op.kind === 'move') return this.mover.step(op.spec, op.step);
    const e = this.endpoints.get(op.bdbUid);
    if (op.kind === 'release') {
      e?.ep.releaseSlots(op.ranges, op.token);
      return { released: !!e };
    }
    if (!e) return { held: false };
    await e.ep.holdSlots(op.ranges, op.from, op.timeoutMs, op.token);
    return { held: true };
  }

  rpcReply(conn: number, line: string): void {
    const s = this.cpConns.get(conn);
    if (s?.writable) s.write(line + '\n');
  }

  async apply(cfg: DataplaneConfig): Promise<void> {
    const before = new Map(this.config.bdbs.map((b) => [b.uid, b]));
    this.config = cfg;
    this.placement.update(cfg);
    // Plaintext links of a database that now wants encryption are cut, after a
    // grace period: each node learns of the switch on its own, and a proxy
    // elsewhere may still be draining commands it sent on such a link.
    for (const [s, l] of this.farLinks) {
      const b = this.placement.bdb(l.bdbUid);
      if (!b) s.destroy();
      else if (!l.encrypted && b.encrypted) {
        setTimeout(() => {
          const now = this.placement.bdb(l.bdbUid);
          if (!now || now.encrypted) s.destroy();
        }, PLAINTEXT_GRACE_MS).unref();
      }
    }
    await this.tunnels.apply(cfg.tunnels).catch((err) => this.log.error({ err: (err as Error).message }, 'tunnels'));
    await this.applyEndpoints(cfg);
    for (const b of cfg.bdbs) {
      const prev = before.get(b.uid);
      if (prev && prev.encrypted !== b.encrypted) this.log.info({ bdb: b.uid, encrypted: b.encrypted }, 'database links switched');
    }
  }

  /** A new proxy certificate: TLS endpoints present it from their next handshake on. */
  setProxyCert(cert: { certPem: string; keyPem: string }): void {
    this.proxyCert = cert;
    for (const spec of this.config.endpoints) if (spec.tls) this.endpoints.get(spec.bdbUid)?.ep.update(this.endpointConfig(spec));
  }

  private endpointTls(spec: DataplaneConfig['endpoints'][number]): EndpointConfig['tls'] {
    if (!spec.tls) return undefined;
    const pc = this.proxyCert;
    const certs = spec.tls.clientCerts;
    const version = createHash('sha256')
      .update(pc?.certPem ?? '-')
      .update(JSON.stringify(certs ?? null))
      .digest('hex');
    return { options: pc ? endpointTlsOptions(pc, certs) : undefined, clientCerts: certs ? clientCertList(certs) : undefined, version };
  }

  private endpointConfig(spec: DataplaneConfig['endpoints'][number]): EndpointConfig {
    const bdb = this.placement.bdb(spec.bdbUid);
    return {
      tls: this.endpointTls(spec),
      bdbUid: spec.bdbUid,
      host: this.init.node.addr,
      port: spec.port,
      password: spec.password,
      ...(spec.shardKeyRegex ? { shardKeyRegex: spec.shardKeyRegex } : {}),
      shards: spec.shards.map((s) => ({ shardUid: s.shardUid, slots: s.slots })),
      linkGeneration: (bdb?.linkGeneration ?? 0) + this.trustEpoch,
      holdMs: spec.holdMs,
    };
  }

  private async applyEndpoints(cfg: DataplaneConfig): Promise<void> {
    const want = new Map(cfg.endpoints.map((e) => [e.bdbUid, e]));
    for (const [uid, e] of this.endpoints) {
      const spec = want.get(uid);
      if (!spec || spec.port !== e.port) {
        await e.ep.close().catch((err) => this.log.warn({ bdb: uid, err: (err as Error).message }, 'closing an endpoint'));
        this.endpoints.delete(uid);
      }
    }
    for (const spec of cfg.endpoints) {
      const ec = this.endpointConfig(spec);
      let e = this.endpoints.get(spec.bdbUid);
      if (!e) {
        const ep = new Endpoint(ec, (shardUid) => this.links.open(shardUid), this.log.child({ bdb: spec.bdbUid }), this.fence);
        e = { ep, port: spec.port, listening: false };
        this.endpoints.set(spec.bdbUid, e);
      } else {
        e.ep.update(ec);
      }
      if (!e.listening) {
        try {
          await e.ep.listen();
          e.listening = true;
          e.error = undefined;
        } catch (err) {
          e.error = (err as Error).message;
        }
      }
    }
    this.reportEndpoints();
    // An endpoint whose port was taken (say, by a database being deleted) tries again.
    clearTimeout(this.retryTimer);
    if ([...this.endpoints.values()].some((e) => !e.listening))
      this.retryTimer = setTimeout(() => void this.applyEndpoints(this.config), 1000);
  }

  private reportEndpoints(): void {
    const endpoints: EndpointState[] = [...this.endpoints.entries()].map(([bdbUid, e]) => ({
      bdbUid,
      port: e.port,
      listening: e.listening,
      error: e.error,
    }));
    post({ type: 'endpoints', endpoints });
  }

  async stop(): Promise<void> {
    clearTimeout(this.retryTimer);
    for (const [uid, e] of this.endpoints)
      await e.ep.close().catch((err) => this.log.warn({ bdb: uid, err: (err as Error).message }, 'closing an endpoint'));
    this.tunnels?.close();
    this.mover?.close();
    for (const s of this.farLinks.keys()) s.destroy();
    await this.internode?.close().catch((err) => this.log.warn({ err: (err as Error).message }, 'closing the internode listener'));
    await new Promise<void>((r) => (this.plain ? this.plain.close(() => r()) : r()));
  }
}

let dp: Dataplane | undefined;
let queue = Promise.resolve();

port.on('message', (m: ToWorker) => {
  // Renewals do not wait behind a config being applied; a lift does.
  if (m.type === 'contact' && !m.ordered) {
    dp?.fence.renew(m.validForMs);
    return;
  }
  // A read of live state: answered at once, not behind a config being applied.
  if (m.type === 'links-request') {
    post({ type: 'links-reply', id: m.id, links: dp?.internodeLinks() ?? [] });
    return;
  }
  if (m.type === 'stats-request') {
    post({ type: 'stats-reply', id: m.id, endpoints: dp?.endpointStats() ?? [] });
    return;
  }
  // Long (a key copy) or urgent (a hold): not behind a config being applied, nor holding one up.
  // A release is ordered: answered once the configs sent before it are applied.
  if (m.type === 'reshard' && m.op.kind !== 'release') {
    if (!dp) post({ type: 'reshard-reply', id: m.id, error: 'the data plane is not started' });
    else
      dp.reshard(m.op).then(
        (result) => post({ type: 'reshard-reply', id: m.id, result }),
        (err) => post({ type: 'reshard-reply', id: m.id, error: (err as Error).message }),
      );
    return;
  }
  // One message at a time, in order: a config must not overtake the init.
  queue = queue.then(async () => {
    try {
      switch (m.type) {
        case 'init':
          dp = new Dataplane(m);
          try {
            await dp.start();
            post({ type: 'ready' });
          } catch (err) {
            post({ type: 'listen-error', message: (err as Error).message });
          }
          break;
        case 'certs':
          dp?.certs.set(m.plane, m.bundle);
          break;
        case 'proxy-cert':
          dp?.setProxyCert(m.cert);
          break;
        case 'policy':
          dp?.setPolicy(m.policy);
          break;
        case 'config':
          await dp?.apply(m.config);
          break;
        case 'rpc-reply':
          dp?.rpcReply(m.conn, m.line);
          break;
        case 'contact':
          dp?.fence.renew(m.validForMs);
          break;
        case 'reshard':
          post({ type: 'reshard-reply', id: m.id, result: await dp?.reshard(m.op) });
          break;
        case 'stop':
          await dp?.stop();
          post({ type: 'stopped' });
          break;
      }
    } catch (err) {
      dp?.log.error({ err: (err as Error).message, stack: (err as Error).stack, msg: m.type }, 'data plane message failed');
    }
  });
});
