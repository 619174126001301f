// Links to shards. Same node: the shard's unix socket. Another node: that
// node's internode channel (3342, ALPN tessera-dp/1, dp certificates) when the
// database's data_internode_encryption is on, its plaintext channel (3343)
// when off. A remote link opens with one header line naming the shard and
// carrying the database's internal secret; after it, the bytes are the
// shard's own RESP stream, piped by the far side to the shard's socket.
// The header's optional last word says what the link is for (`proxy`, or
// `replication:<replica shard>`), so both ends can report it; a far side
// that does not know the word ignores it.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { CertStore } from '../pki/certstore.js';
import { type LiveLinks, type PeerPolicy, dial } from '../internode/channel.js';
import type { LinkRegistry } from '../internode/links.js';
import { encodeCommand } from '../proxy/resp-encode.js';
import type { BdbLinkConfig, DataplaneConfig, LocalShard, PeerNode, ShardLocation } from './messages.js';

export const LINK_MAGIC = 'TDP1';
const MAX_HEADER = 512;

export interface LinkContext {
  self: { uid: number; addr: string };
  certs: CertStore;
  policy: PeerPolicy;
  node(uid: number): PeerNode | undefined;
  log?: Logger;
  /** Dialed dp links, cut when their peer is revoked or removed. */
  links?: LiveLinks;
  /** Every dialed link to another node, TLS or plaintext, with what it is for (verify encryption). */
  registry?: LinkRegistry;
}

/** What a link to a shard is for. */
export type LinkUse =
  | { purpose: 'proxy' }
  | { purpose: 'replication'; replicaShardUid: number }
  /** A resharding's key mover, copying keys of `sourceShardUid` to the linked shard. */
  | { purpose: 'migration'; sourceShardUid: number };

function useWord(u: LinkUse): string {
  if (u.purpose === 'proxy') return 'proxy';
  return u.purpose === 'replication' ? `replication:${u.replicaShardUid}` : `migration:${u.sourceShardUid}`;
}

/** The header's purpose word; undefined when absent or not understood (an older node). */
export function parseUseWord(w: string | undefined): LinkUse | undefined {
  if (w === 'proxy') return { purpose: 'proxy' };
  const m = /^replication:(\d+)$/.exec(w ?? '');
  if (m) return { purpose: 'replication', replicaShardUid: Number(m[1]) };
  const g = /^migration:(\d+)$/.exec(w ?? '');
  return g ? { purpose: 'migration', sourceShardUid: Number(g[1]) } : undefined;
}

/** The current view of a shard's placement and database, indexed for the hot path of opening links. */
export class Placement {
  private shards = new Map<number, ShardLocation>();
  private bdbs = new Map<number, BdbLinkConfig>();
  private local = new Map<number, LocalShard>();

  update(cfg: DataplaneConfig): void {
    this.shards = new Map(cfg.shardLocations.map((s) => [s.shardUid, s]));
    this.bdbs = new Map(cfg.bdbs.map((b) => [b.uid, b]));
    this.local = new Map(cfg.localShards.map((s) => [s.shardUid, s]));
  }
  shard(uid: number) {
    return this.shards.get(uid);
  }
  bdb(uid: number) {
    return this.bdbs.get(uid);
  }
  localShard(uid: number) {
    return this.local.get(uid);
  }
}

function connected(s: net.Socket): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const onErr = (e: Error) => reject(e);
    s.once('error', onErr);
    s.once('connect', () => {
      s.off('error', onErr);
      resolve(s);
    });
  });
}

export class ShardLinks {
  constructor(
    private readonly ctx: LinkContext,
    private readonly placement: Placement,
  ) {}

  /** A byte stream to the shard, not yet authenticated: replication tunnels let redis do its own AUTH. */
  async openRaw(shardUid: number, use: LinkUse = { purpose: 'proxy' }): Promise<Duplex> {
    const loc = this.placement.shard(shardUid);
    if (!loc) throw new Error(`shard ${shardUid} is not placed`);
    const bdb = this.placement.bdb(loc.bdbUid);
    if (!bdb) throw new Error(`database ${loc.bdbUid} is unknown`);
    if (loc.nodeUid === this.ctx.self.uid) {
      const local = this.placement.localShard(shardUid);
      if (!local) throw new Error(`shard ${shardUid} is not running here`);
      const s = await connected(net.connect(local.socketPath));
      return s;
    }
    const node = this.ctx.node(loc.nodeUid);
    if (!node) throw new Error(`node ${loc.nodeUid} is unknown`);
    let s: net.Socket;
    if (bdb.encrypted) {
      ({ socket: s } = await dial({
        host: node.addr,
        port: node.internode,
        plane: 'dp',
        certs: this.ctx.certs,
        policy: this.ctx.policy,
        expectUid: node.uid,
        localAddress: this.ctx.self.addr,
        log: this.ctx.log,
        links: this.ctx.links,
        purpose:
          use.purpose === 'proxy'
            ? `link to shard ${shardUid} (db ${loc.bdbUid})`
            : use.purpose === 'replication'
              ? `replication tunnel of shard ${use.replicaShardUid} from shard ${shardUid} (db ${loc.bdbUid})`
              : `key migration from shard ${use.sourceShardUid} to shard ${shardUid} (db ${loc.bdbUid})`,
      }));
    } else {
      s = await connected(net.connect({ host: node.addr, port: node.dp_plain, localAddress: this.ctx.self.addr }));
      s.setNoDelay(true);
      s.setKeepAlive(true, 10_000);
    }
    this.ctx.registry?.add(s, {
      side: 'dialed',
      purpose: use.purpose,
      remoteUid: node.uid,
      bdbUid: loc.bdbUid,
      shardUid,
      ...(use.purpose === 'replication' ? { replicaShardUid: use.replicaShardUid } : {}),
    });
    s.write(`${LINK_MAGIC} ${loc.bdbUid} ${shardUid} ${bdb.secret} ${useWord(use)}\n`);
    return s;
  }

  /** An authenticated RESP2 stream to the shard, for the proxy (or what `use` says). */
  async open(shardUid: number, use: LinkUse = { purpose: 'proxy' }): Promise<Duplex> {
    const s = await this.openRaw(shardUid, use);
    const bdb = this.placement.bdb(this.placement.shard(shardUid)!.bdbUid)!;
    s.write(encodeCommand(['AUTH', bdb.secret]));
    await new Promise<void>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => fail(new Error(`shard ${shardUid}: no answer to AUTH`)), 5000);
      const done = () => {
        clearTimeout(timer);
        s.off('data', onData);
        s.off('error', fail);
        s.off('close', onClose);
      };
      const fail = (e: Error) => {
        done();
        s.destroy();
        reject(e);
      };
      const onClose = () => fail(new Error(`shard ${shardUid}: link closed during AUTH`));
      const onData = (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString();
        if (line !== '+OK') return fail(new Error(`shard ${shardUid}: ${line.replace(/^-/, '')}`));
        done();
        s.pause();
        const rest = buf.subarray(nl + 2);
        if (rest.length) s.unshift(rest);
        resolve();
      };
      s.on('data', onData);
      s.once('error', fail);
      s.once('close', onClose);
    });
    return s;
  }
}

/**
 * Refusals of shard links are logged, but at most `burst` lines per window:
 * a probe sending thousands of bad headers must not flood the node's log.
 * The first refusal after a quiet window says how many were left out.
 */
export class RefusalLog {
  private windowStart = 0;
  private logged = 0;
  private suppressed = 0;

  constructor(
    private readonly burst = 10,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Log one refusal, or count it when the window's lines are used up; returns whether it was logged. */
  refused(log: Logger, fields: Record<string, unknown>): boolean {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      this.windowStart = t;
      this.logged = 0;
    }
    if (this.logged >= this.burst) {
      this.suppressed++;
      return false;
    }
    this.logged++;
    const extra = this.suppressed ? { suppressed_before: this.suppressed } : {};
    this.suppressed = 0;
    log.warn({ ...fields, ...extra }, 'shard link refused');
    return true;
  }
}

const refusals = new RefusalLog();
/**
 * What a refused link hears: the same words whether the shard is not here, the
 * database does not exist, or the secret is wrong, so a probe of 3343 learns
 * nothing about which databases and shards a node has. The log says which.
 */
export const LINK_REFUSED = 'link refused';

/**
 * The far side of a link: read the header, check the database's secret, and
 * pipe to the local shard. On the plaintext channel, databases with
 * encryption on are refused.
 */
export function serveShardLink(
  socket: net.Socket,
  encryptedChannel: boolean,
  placement: Placement,
  log: Logger,
  track: (bdbUid: number, s: net.Socket, encrypted: boolean, link: { shardUid: number; use?: LinkUse }) => void,
): void {
  let head = Buffer.alloc(0);
  socket.setNoDelay(true);
  const timer = setTimeout(() => socket.destroy(), 5000);
  const refuse = (why: string, reply = LINK_REFUSED) => {
    clearTimeout(timer);
    refusals.refused(log, { remote: socket.remoteAddress, reason: why, encrypted: encryptedChannel });
    socket.end(`-ERR ${reply}\r\n`);
    socket.destroy();
  };
  const onData = (d: Buffer) => {
    head = Buffer.concat([head, d]);
    const nl = head.indexOf(10);
    if (nl < 0) {
      if (head.length > MAX_HEADER) refuse('bad link header');
      return;
    }
    socket.off('data', onData);
    socket.pause();
    clearTimeout(timer);
    const [magic, bdbS, shardS, secret, useW] = head.subarray(0, nl).toString('latin1').split(' ');
    const rest = head.subarray(nl + 1);
    const bdbUid = Number(bdbS);
    const shardUid = Number(shardS);
    const bdb = placement.bdb(bdbUid);
    const local = placement.localShard(shardUid);
    // Another version of the link header (a newer node's): said as such, since it tells nothing of this node's shards.
    if (magic !== LINK_MAGIC && /^TDP\d+$/.test(magic))
      return refuse('unsupported link version', `unsupported_link_version: ${magic} (this node speaks ${LINK_MAGIC})`);
    if (magic !== LINK_MAGIC || !bdb || !local || local.bdbUid !== bdbUid) return refuse('no such shard here');
    const a = Buffer.from(secret ?? '');
    const b = Buffer.from(bdb.secret);
    if (a.length !== b.length || !timingSafeEqual(a, b)) return refuse('bad database secret');
    // Told only to a peer that knows the database's secret.
    if (!encryptedChannel && bdb.encrypted) return refuse('database requires an encrypted link', 'database requires an encrypted link');
    const shard = net.connect(local.socketPath);
    shard.once('connect', () => {
      if (rest.length) shard.write(rest);
      socket.pipe(shard);
      shard.pipe(socket);
      socket.resume();
    });
    const close = () => {
      socket.destroy();
      shard.destroy();
    };
    shard.on('error', close);
    shard.on('close', close);
    socket.on('close', close);
    track(bdbUid, socket, encryptedChannel, { shardUid, use: parseUseWord(useW) });
  };
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
}
