/**
 * The proxy endpoint: a RESP listener that makes a set of master shards look
 * like one redis-server.
 *
 *   const ep = new Endpoint(cfg, (shardUid) => openAuthenticatedStream(shardUid), log);
 *   await ep.listen();
 *   ep.update({ ...cfg, linkGeneration: cfg.linkGeneration + 1 }); // e.g. plaintext → TLS links
 *   await ep.close();
 *
 * It is meant to run alone on its event loop (the data plane runs it in a
 * worker thread). Every command is routed to the master shard owning its
 * key's hash slot; see session.ts for the per-client side (ordering, local
 * commands, transactions, pub/sub) and shard-link.ts for the shared,
 * batched links to the shards.
 *
 * With `tls` set (tls_mode enabled) the endpoint speaks TLS only: each
 * accepted socket is handed to a tls.Server that never listens itself, so
 * switching the mode, the certificate or the client list takes effect on the
 * next connection without closing the listener. Refusals (a plaintext client
 * on a TLS endpoint, a TLS client on a plaintext one, a client certificate
 * not listed) close that connection only; the first per client address is
 * logged, the rest are counted (`traffic.refusals`).
 *
 * For maintainers: all writes happen in one `setImmediate` tick per event
 * loop turn. Sessions and links only mark themselves dirty; the tick first
 * flushes client replies (which may let stalled clients send more), then
 * writes each link's batch. Nothing on the per-command path allocates a
 * closure or a promise.
 */

import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { SLOT_COUNT, STANDARD_HASHING, keySlot, regexHashing, type KeyHasher } from './slots.js';
import { PS_CHANNEL, PS_PATTERN, PS_SHARD, PubSubHub, type Entry, type Subscriber } from './pubsub.js';
import { L_CLOSED, ShardLink, type Logger } from './shard-link.js';
import { Session, type SessionHost } from './session.js';
import type { Proto } from './replies.js';
import { NO_FENCE, type WriteFence } from './fence.js';
import { EndpointStats, type RefusalReason } from './stats.js';
import { clientCertAllowed, type ClientCertList } from './client-auth.js';
import { SlotHolds } from './slot-holds.js';
import { encodeCommand } from './resp-encode.js';

export interface ShardRoute {
  shardUid: number;
  slots: [number, number][];
}

export interface EndpointConfig {
  bdbUid: number;
  host: string;
  port: number;
  /** When set, clients must AUTH (requirepass semantics). */
  password?: string;
  /** Master shards; together they cover 0..16383. */
  shards: ShardRoute[];
  /** When it changes, every link to every shard is re-established. */
  linkGeneration: number;
  /**
   * How long a command for an unreachable master waits (for it to come back
   * or for a failover to name a new one) before -CLUSTERDOWN. Default 10 s.
   */
  holdMs?: number;
  /**
   * The database's `shard_key_regex` rules (Redis Enterprise's custom hashing
   * policy); absent or RE's default list: standard Redis hash tags.
   */
  shardKeyRegex?: string[];
  /** tls_mode enabled. */
  tls?: EndpointTls;
}

export interface EndpointTls {
  /** Listener options (src/tls/contexts.ts endpointTlsOptions); undefined while the node has no proxy certificate: every client is refused. */
  options?: tls.TlsOptions;
  /** authentication_ssl_client_certs, when client certificates are enforced. */
  clientCerts?: ClientCertList;
  /** Changes whenever the options or the list change. */
  version: string;
}

/** Why a connection was refused, as the refusal counter's label says it. */
/** Client addresses whose first refusal was logged; forgotten when it grows past this. */
const MAX_REFUSED_ADDRS = 10_000;
const TLS_RECORD_HANDSHAKE = 0x16;

export const DEFAULT_HOLD_MS = 10_000;
/** How long a shard that left the map (failed over) has to answer what it was sent before its successor takes over. */
const LEFT_SHARD_DRAIN_MS = 2_000;

/** Opens a fresh, already authenticated raw RESP2 byte stream to a shard. */
export type ShardConnector = (shardUid: number) => Promise<Duplex>;

const NOOP_LOG: Logger = { info() {}, warn() {}, error() {} };
const NO_WAIT = { ack() {} };

export class Endpoint implements SessionHost {
  /** @internal */ readonly connector: ShardConnector;
  /** @internal */ readonly log: Logger;
  /** @internal */ serverVersion = '7.0.0';
  /** @internal */ password: string | undefined;
  /** @internal */ gen: number;
  /** @internal */ holdMs: number;
  /** @internal slot → shard index (into shardUids), -1 when unserved; one extra entry (NO_RULE_SLOT) is never served. */
  slotShard = new Int16Array(SLOT_COUNT + 1).fill(-1);
  /** @internal A key's slot under the database's hashing policy (standard, or its shard_key_regex rules). */
  keySlot: KeyHasher['keySlot'] = keySlot;
  /** @internal The same, for a key lying in `buf[start, end)`. */
  keySlotOf: KeyHasher['keySlotOf'];
  /** @internal shard uids, sorted: the index SCAN cursors and pools use. */
  shardUids: number[] = [];
  /** @internal */ readonly sessions = new Set<Session>();
  /** @internal */ nextClientId = 1;
  /** @internal */ commands = 0;
  /** @internal */ errors = 0;
  /** Requests, latencies and connections, for the metrics endpoint. */
  readonly traffic = new EndpointStats();
  /** Slots a resharding's cut-over holds; each hold's length is logged when it ends (the write pause). */
  readonly holds = new SlotHolds((ranges, ms, why) =>
    this.log.info({ bdb: this.cfg.bdbUid, slots: ranges, pause_ms: Math.round(ms), why }, 'slot hold ended'),
  );
  private refusedAddrs = new Set<string>();
  private tlsServer: tls.Server | null = null;
  private tlsVersion: string | undefined;
  private clientListKey: string | undefined;

  private cfg: EndpointConfig;
  private pools: [(ShardLink | undefined)[], (ShardLink | undefined)[]] = [[], []];
  private hubs: (PubSubHub | undefined)[] = [];
  /** Retired links still answering their last batch (closed with the endpoint). */
  private draining = new Set<ShardLink>();
  private links = 0;
  private dirtySessions: Session[] = [];
  private dirtyLinks: ShardLink[] = [];
  private tickPending = false;
  private server: net.Server | null = null;
  private closed = false;

  constructor(
    cfg: EndpointConfig,
    connect: ShardConnector,
    log?: Logger,
    /** @internal Refuses writes while the node may have been failed over. */
    readonly fence: WriteFence = NO_FENCE,
  ) {
    this.cfg = cfg;
    this.connector = connect;
    this.log = log ?? NOOP_LOG;
    this.password = cfg.password ? cfg.password : undefined;
    this.gen = cfg.linkGeneration;
    this.holdMs = cfg.holdMs ?? DEFAULT_HOLD_MS;
    const h = cfg.shardKeyRegex ? regexHashing(cfg.shardKeyRegex) : STANDARD_HASHING;
    this.keySlot = h.keySlot;
    this.keySlotOf = h.keySlotOf;
    this.applyShards(cfg.shards);
    this.applyTls(cfg.tls);
  }

  get shardCount(): number {
    return this.shardUids.length;
  }

  listen(): Promise<void> {
    const { host, port } = this.cfg;
    return new Promise((resolve, reject) => {
      const srv = net.createServer({ noDelay: true }, (sock) => this.accept(sock));
      const onError = (e: NodeJS.ErrnoException) => {
        srv.removeListener('listening', onListening);
        if (e.code === 'EADDRINUSE') reject(new Error(`port ${host}:${port} is already in use`));
        else reject(e);
      };
      const onListening = () => {
        srv.removeListener('error', onError);
        srv.on('error', (e) => this.log.error({ bdb: this.cfg.bdbUid, err: e.message }, 'endpoint listener error'));
        this.server = srv;
        // Open the RESP2 links now so the first commands do not wait for them.
        for (let i = 0; i < this.shardCount; i++) this.sharedLink(i, 2);
        this.log.info({ bdb: this.cfg.bdbUid, host, port }, 'endpoint listening');
        resolve();
      };
      srv.once('error', onError);
      srv.once('listening', onListening);
      srv.listen({ host, port });
    });
  }

  update(cfg: EndpointConfig): void {
    const old = this.cfg;
    this.cfg = cfg;
    // Takes effect for the next AUTH; authenticated clients stay so, as with
    // CONFIG SET requirepass.
    this.password = cfg.password ? cfg.password : undefined;
    this.holdMs = cfg.holdMs ?? DEFAULT_HOLD_MS;
    // The hashing policy is fixed for a database's life (a change would move keys between shards).
    if (cfg.tls?.version !== old.tls?.version) this.applyTls(cfg.tls);
    const shardsChanged = !sameShards(old.shards, cfg.shards);
    if (shardsChanged) {
      this.applyShards(cfg.shards);
      this.holds.mapChanged((uid, slot) => this.slotShard[slot] >= 0 && this.shardUids[this.slotShard[slot]] === uid);
    }
    if (cfg.linkGeneration !== this.gen) {
      this.gen = cfg.linkGeneration;
      this.relink();
    } else if (shardsChanged) {
      for (const s of this.sessions) s.relinkDedicated();
    }
  }

  /**
   * Hold `ranges` (a resharding's cut-over): from now on commands for them
   * wait; resolves once every command this endpoint already sent to shard
   * `from` (the slots' owner) has been answered, so the shard holds no write of
   * theirs still to run. The hold ends when the map moves the slots, on
   * `releaseSlots`, or after `timeoutMs`.
   */
  async holdSlots(ranges: [number, number][], from: number, timeoutMs: number, token?: string): Promise<void> {
    this.holds.add(ranges, from, timeoutMs, token);
    const i = this.shardUids.indexOf(from);
    if (i < 0) return;
    const ping = encodeCommand(['PING']);
    const waits: Promise<void>[] = [];
    for (const pool of this.pools) {
      const l = pool[i];
      if (l === undefined || l.state === L_CLOSED) continue;
      waits.push(
        new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`shard ${from} did not answer within 2 s`)), 2000);
          l.send([ping], ping.length, {
            onReply: (r) => {
              clearTimeout(t);
              if (r === null) reject(new Error(`the link to shard ${from} was lost`));
              else resolve();
            },
          });
        }),
      );
    }
    try {
      await Promise.all(waits);
    } catch (e) {
      this.holds.release(ranges, token);
      throw e;
    }
  }

  releaseSlots(ranges: [number, number][], token?: string): void {
    this.holds.release(ranges, token);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.holds.clear();
    const srv = this.server;
    this.server = null;
    const done = srv === null ? Promise.resolve() : new Promise<void>((r) => srv.close(() => r()));
    for (const s of [...this.sessions]) s.destroy();
    for (const pool of this.pools) {
      for (const l of pool) l?.close();
      pool.length = 0;
    }
    for (const l of this.draining) l.close();
    this.draining.clear();
    for (const h of this.hubs) h?.close();
    this.hubs = [];
    await done;
  }

  stats(): { clients: number; commands: number; errors: number; links: number; refusals: Record<RefusalReason, number> } {
    return {
      clients: this.sessions.size,
      commands: this.commands,
      errors: this.errors,
      links: this.links,
      refusals: { ...this.traffic.refusals },
    };
  }

  /**
   * Switch TLS on, off, or to new options. New connections follow at once;
   * open ones that the new setting would not admit are closed: plaintext
   * clients when TLS comes on, TLS clients when it goes off, and clients whose
   * certificate is no longer listed.
   */
  private applyTls(t: EndpointTls | undefined): void {
    this.tlsVersion = t?.version;
    // A new proxy certificate alone re-admits everyone already in; a changed list is checked again.
    const listKey = t?.clientCerts ? t.clientCerts.pems.join('\n') : undefined;
    const listChanged = listKey !== this.clientListKey;
    this.clientListKey = listKey;
    if (!t) {
      this.tlsServer = null;
    } else {
      const srv = t.options ? tls.createServer(t.options) : null;
      srv?.on('secureConnection', (s: tls.TLSSocket) => this.acceptTls(s, t.clientCerts));
      srv?.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
        // A plaintext client's bytes make OpenSSL fail the handshake with a record-layer error.
        const plain = /wrong version number|http request|unknown protocol|packet length too long|record layer failure/i.test(err.message);
        this.refuse(s, plain ? 'plaintext_on_tls' : 'tls_handshake', err.message);
      });
      this.tlsServer = srv;
    }
    for (const s of [...this.sessions]) {
      const sock = s.socket;
      const isTls = sock instanceof tls.TLSSocket;
      if (!t && isTls) s.destroy();
      else if (t && !isTls) s.destroy();
      else if (
        t &&
        isTls &&
        t.clientCerts &&
        listChanged &&
        !clientCertAllowed(t.clientCerts, (sock as tls.TLSSocket).getPeerX509Certificate(), false)
      )
        s.destroy();
    }
  }

  /** Is TLS on for new connections? */
  get tlsEnabled(): boolean {
    return this.tlsVersion !== undefined;
  }

  // -------------------------------------------------------------------------
  // For sessions and links.

  /** @internal The shared link to shard `idx` for protocol `proto`. */
  sharedLink(idx: number, proto: Proto): ShardLink {
    const pool = this.pools[proto - 2];
    let l = pool[idx];
    if (l === undefined) {
      l = new ShardLink(this, this.shardUids[idx], proto, this.gen, false);
      pool[idx] = l;
      l.start();
    }
    return l;
  }

  /** @internal */
  hub(idx: number): PubSubHub {
    let h = this.hubs[idx];
    if (h === undefined) {
      h = new PubSubHub(this, this.shardUids[idx], this.gen);
      this.hubs[idx] = h;
    }
    return h;
  }

  /** @internal */
  hasShard(uid: number): boolean {
    return this.shardUids.includes(uid);
  }

  /** @internal */
  hubIfAny(idx: number): PubSubHub | undefined {
    return this.hubs[idx];
  }

  /** @internal */
  markLinkDirty(l: ShardLink): void {
    this.dirtyLinks.push(l);
    if (!this.tickPending) this.scheduleTick();
  }

  /** @internal */
  markSessionDirty(s: Session): void {
    this.dirtySessions.push(s);
    if (!this.tickPending) this.scheduleTick();
  }

  /** @internal */
  countLink(delta: number): void {
    this.links += delta;
  }

  /** @internal */
  removeSession(s: Session): void {
    this.sessions.delete(s);
  }

  // -------------------------------------------------------------------------

  private accept(sock: net.Socket): void {
    if (this.closed) {
      sock.destroy();
      return;
    }
    sock.on('error', () => {}); // the session adds its own; this covers the gap
    if (this.tlsVersion !== undefined) {
      if (this.tlsServer === null) this.refuse(sock, 'tls_handshake', 'this node has no proxy certificate yet');
      else this.tlsServer.emit('connection', sock);
      return;
    }
    // Plaintext: the first bytes must not open a TLS handshake (one check per connection, then the listener is gone).
    let session: Session | undefined;
    sock.once('data', (first: Buffer) => {
      if (first[0] === TLS_RECORD_HANDSHAKE) {
        session?.destroy();
        this.refuse(sock, 'tls_on_plaintext', 'TLS ClientHello on a plaintext endpoint');
      }
    });
    session = this.startSession(sock);
  }

  private acceptTls(sock: tls.TLSSocket, clientCerts: ClientCertList | undefined): void {
    if (this.closed) {
      sock.destroy();
      return;
    }
    if (clientCerts && !clientCertAllowed(clientCerts, sock.getPeerX509Certificate(), sock.authorized)) {
      const cert = sock.getPeerX509Certificate();
      // TLS 1.3 clients learn of the refusal only after their handshake: say it in RESP, then close.
      sock.end('-ERR client certificate not accepted by this database\r\n');
      this.refuse(
        sock,
        'client_cert',
        cert ? `certificate ${cert.subject.replace(/\n/g, ', ')} (sha256 ${cert.fingerprint256}) is not listed` : 'no client certificate',
      );
      return;
    }
    this.startSession(sock);
  }

  private startSession(sock: net.Socket): Session | undefined {
    this.traffic.connections++;
    try {
      const s = new Session(this, sock);
      this.sessions.add(s);
      return s;
    } catch (e) {
      this.log.error({ err: String(e) }, 'could not start a client session');
      sock.destroy();
      return undefined;
    }
  }

  /** Close one refused connection; the first refusal per client address is logged, every one counted. */
  private refuse(sock: net.Socket, reason: RefusalReason, detail: string): void {
    const addr = sock.remoteAddress ?? 'unknown';
    this.traffic.refusals[reason]++;
    if (!this.refusedAddrs.has(addr)) {
      if (this.refusedAddrs.size >= MAX_REFUSED_ADDRS) this.refusedAddrs.clear();
      this.refusedAddrs.add(addr);
      this.log.warn(
        { bdb: this.cfg.bdbUid, client: addr, reason, detail },
        'client connection refused (further refusals from this address are only counted)',
      );
    }
    if (reason === 'client_cert') setTimeout(() => sock.destroy(), 1000).unref();
    else sock.destroy();
  }

  private scheduleTick(): void {
    this.tickPending = true;
    setImmediate(this.tick);
  }

  private readonly tick = (): void => {
    this.tickPending = false;
    if (this.dirtySessions.length > 0) {
      const ss = this.dirtySessions;
      this.dirtySessions = [];
      for (const s of ss) {
        try {
          s.flushOut();
        } catch (e) {
          this.log.error({ client: s.id, err: String((e as Error)?.stack ?? e) }, 'client flush failed');
          s.destroy();
        }
      }
    }
    if (this.dirtyLinks.length > 0) {
      const ls = this.dirtyLinks;
      this.dirtyLinks = [];
      for (const l of ls) {
        try {
          l.flush();
        } catch (e) {
          this.log.error({ shard: l.shardUid, err: String(e) }, 'link flush failed');
          l.fail(e as Error);
        }
      }
    }
  };

  /** New link generation: every shard link is replaced without losing or reordering a command. */
  private relink(): void {
    this.log.info({ bdb: this.cfg.bdbUid, generation: this.gen }, 'relinking shards');
    for (const l of this.draining) if (l.state === L_CLOSED) this.draining.delete(l);
    for (let p = 0; p < 2; p++) {
      const pool = this.pools[p];
      for (let i = 0; i < pool.length; i++) {
        const old = pool[i];
        if (old === undefined) continue;
        const next = new ShardLink(this, old.shardUid, old.proto, this.gen, false);
        pool[i] = next;
        old.retire(next);
        if (old.state !== L_CLOSED) this.draining.add(old);
        next.start();
      }
    }
    for (const h of this.hubs) h?.relink(this.gen);
    for (const s of this.sessions) s.relinkDedicated();
  }

  /** (Re)builds the slot map; links and hubs follow their shard uid. */
  private applyShards(shards: ShardRoute[]): void {
    const uids = [...new Set(shards.map((s) => s.shardUid))].sort((a, b) => a - b);
    const index = new Map(uids.map((u, i) => [u, i]));
    const map = new Int16Array(SLOT_COUNT + 1).fill(-1);
    for (const s of shards) {
      const i = index.get(s.shardUid)!;
      for (const [a, b] of s.slots) for (let x = Math.max(0, a); x <= Math.min(SLOT_COUNT - 1, b); x++) map[x] = i;
    }
    const oldUids = this.shardUids;
    const oldMap = this.slotShard;
    const oldHubs = this.hubs;
    this.slotShard = map;
    this.shardUids = uids;
    const gone: [number, ShardLink][] = [];
    for (let p = 0; p < 2; p++) {
      const old = this.pools[p];
      const next: (ShardLink | undefined)[] = uids.map(() => undefined);
      old.forEach((l, i) => {
        if (l === undefined) return;
        const j = index.get(oldUids[i]);
        if (j !== undefined) next[j] = l;
        else gone.push([i, l]);
      });
      this.pools[p] = next;
    }
    for (const [i, l] of gone) {
      // A failover: the shard's slots now all belong to one other shard, so
      // the commands still queued for it (never sent) go there, in order.
      const heir = heirOf(oldMap, map, i);
      l.retire(heir < 0 ? null : this.sharedLink(heir, l.proto), LEFT_SHARD_DRAIN_MS);
      if (l.state !== L_CLOSED) this.draining.add(l);
    }
    this.hubs = uids.map(() => undefined);
    oldHubs.forEach((h, i) => {
      if (h === undefined) return;
      const j = index.get(oldUids[i]);
      if (j !== undefined) this.hubs[j] = h;
    });
    if (oldHubs.some((h) => h !== undefined)) this.rehomeSubscriptions(oldHubs);
  }

  /**
   * After a shard map change, every subscription must be on the hub of its
   * channel's current shard, and every pattern on every hub.
   */
  private rehomeSubscriptions(oldHubs: (PubSubHub | undefined)[]): void {
    const moves: [PubSubHub, number, string, Buffer, Subscriber][] = [];
    const patterns = new Map<string, { name: Buffer; subs: Set<Subscriber> }>();
    for (const h of oldHubs) {
      if (h === undefined) continue;
      for (const kind of [PS_CHANNEL, PS_SHARD]) {
        for (const e of h.entries(kind) as IterableIterator<Entry>) {
          const i: number = this.slotShard[keySlot(e.name)];
          const target: PubSubHub | undefined = i >= 0 ? this.hub(i) : undefined;
          if (target === h) continue;
          for (const s of e.subs) moves.push([h, kind, e.key, e.name, s]);
        }
      }
      for (const e of h.entries(PS_PATTERN)) {
        const p = patterns.get(e.key) ?? { name: e.name, subs: new Set<Subscriber>() };
        for (const s of e.subs) p.subs.add(s);
        patterns.set(e.key, p);
      }
    }
    for (const [h, kind, key, name, s] of moves) {
      const i = this.slotShard[keySlot(name)];
      if (i >= 0) this.hub(i).add(kind, key, name, s, NO_WAIT);
      h.remove(kind, key, s);
    }
    for (let i = 0; i < this.shardCount; i++) {
      for (const [key, p] of patterns) for (const s of p.subs) this.hub(i).add(PS_PATTERN, key, p.name, s, NO_WAIT);
    }
    for (const h of oldHubs) if (h !== undefined && !this.hubs.includes(h)) h.close();
  }
}

/** The one new shard index serving every slot old shard `i` served, or -1. */
function heirOf(oldMap: Int16Array, map: Int16Array, i: number): number {
  let heir = -1;
  for (let x = 0; x < oldMap.length; x++) {
    if (oldMap[x] !== i) continue;
    const j = map[x];
    if (j < 0 || (heir >= 0 && j !== heir)) return -1;
    heir = j;
  }
  return heir;
}

function sameShards(a: ShardRoute[], b: ShardRoute[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
