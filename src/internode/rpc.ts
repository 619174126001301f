// Control-plane requests between nodes over the internode channel (ALPN
// tessera-cp/1): newline-delimited JSON, {id, method, params} -> {id, result}
// or {id, error}. One long-lived connection per peer, reopened on demand.
// Since 0.2.0 requests and replies carry `v` (the RPC protocol version) and an
// error reply a typed `code` (`unknown_method`, say); 0.1.0 peers send neither
// and ignore both, so the two speak to each other unchanged.
// The client heartbeats its link (HEARTBEAT_MS): a link that answers nothing
// for LINK_SILENCE_MS is closed and its calls fail, in 1.5-2.5 s, instead of
// waiting for TCP to give up. The heartbeat is an ordinary request: `ping` to a
// 0.2 peer, `status` (which 0.1.0 answers) to a 0.1.0 peer or one not yet heard.
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { CertStore } from '../pki/certstore.js';
import { type LiveLinks, type PeerIdentity, type PeerPolicy, dial } from './channel.js';
import type { LinkRegistry } from './links.js';

export type RpcHandler = (method: string, params: unknown, peer: PeerIdentity) => Promise<unknown>;

/** The control RPC protocol version this build speaks; a message without `v` is from a 0.1.0 node (version 1). */
export const RPC_VERSION = 2;

/** A control RPC's typed failure: `code` travels in the reply beside the message. */
export class RpcError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

/** What a handler throws for a method it does not have (a newer peer's, say): the caller can tell it from a failure. */
export function unknownMethod(method: string): RpcError {
  return new RpcError('unknown_method', `unknown method ${method}`);
}

/** The error of an error reply: typed when the peer sent a code; a 0.1.0 peer's "unknown method" is recognised by its text. */
function replyError(msg: { error: unknown; code?: unknown }): Error {
  const text = String(msg.error);
  if (typeof msg.code === 'string') return new RpcError(msg.code, text);
  if (/^unknown method /.test(text)) return new RpcError('unknown_method', text);
  return new Error(text);
}

const MAX_LINE = 16 * 1024 * 1024;

/** How often a client sends its link's heartbeat (a request nobody waits for). */
export const HEARTBEAT_MS = 500;
/** A link that has answered nothing for this long, with a heartbeat unanswered, is dead. */
export const LINK_SILENCE_MS = 2000;
/** The heartbeat method a 0.2 node answers at once (registered by control/membership/peers.ts). */
export const PING_METHOD = 'ping';

/** Call onLine for each newline-terminated line; a line over 16 MiB closes the socket. */
export function readLines(socket: tls.TLSSocket, onLine: (line: string) => void): void {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_LINE) {
      socket.destroy();
      return;
    }
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line) onLine(line);
    }
  });
}

/** Serve requests on an accepted control-plane connection. */
export function serveRpc(socket: tls.TLSSocket, peer: PeerIdentity, handler: RpcHandler): void {
  readLines(socket, (line) => {
    let msg: { id?: unknown; method?: unknown; params?: unknown };
    try {
      msg = JSON.parse(line);
    } catch {
      socket.destroy();
      return;
    }
    const { id, method, params } = msg;
    const reply = (r: object) => socket.writable && socket.write(JSON.stringify({ id, ...r, v: RPC_VERSION }) + '\n');
    if (typeof method !== 'string') {
      // JSON without a method (another version's message, say): answered, so the caller does not wait for nothing.
      reply({ error: 'request without a method', code: 'invalid_request' });
      return;
    }
    // A handler that throws synchronously is answered like one that rejects: never a crash, never silence.
    Promise.resolve()
      .then(() => handler(method, params, peer))
      .then(
        (result) => reply({ result }),
        (err: Error) => reply({ error: err.message, ...(err instanceof RpcError ? { code: err.code } : {}) }),
      );
  });
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** A client for one peer node. */
export class RpcClient {
  private socket?: tls.TLSSocket;
  private connecting?: Promise<tls.TLSSocket>;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private closed = false;
  /** The RPC protocol version of the peer's last reply (1: a 0.1.0 node); undefined before any reply. */
  peerVersion?: number;
  /** When the peer last answered anything on the current link (ms since the epoch); 0 while no link is up. */
  lastHeardAt = 0;
  private heartbeat?: NodeJS.Timeout;
  /** The unanswered heartbeat's id and when it was sent. */
  private ping?: { id: number; at: number };

  constructor(
    private readonly target: { uid: number; host: string; port: number; localAddress?: string },
    private readonly certs: CertStore,
    private readonly policy: PeerPolicy,
    private readonly log?: Logger,
    private readonly links?: LiveLinks,
    /** Where the connection is listed as a control link (verify encryption). */
    private readonly registry?: LinkRegistry,
  ) {}

  private connect(): Promise<tls.TLSSocket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    if (!this.connecting) {
      this.connecting = dial({
        ...this.target,
        plane: 'cp',
        certs: this.certs,
        policy: this.policy,
        expectUid: this.target.uid,
        timeoutMs: 3000,
        log: this.log,
        purpose: 'control rpc',
        links: this.links,
      })
        .then(({ socket, peer }) => {
          this.socket = socket;
          this.registry?.add(socket, { side: 'dialed', purpose: 'control', remoteUid: peer.uid });
          socket.on('error', () => socket.destroy());
          socket.on('close', () => {
            this.stopHeartbeat(socket);
            this.failAll(new Error(`connection to node ${this.target.uid} closed`));
          });
          readLines(socket, (line) => this.onReply(line));
          if (this.closed) socket.destroy();
          else this.startHeartbeat(socket);
          return socket;
        })
        .finally(() => {
          this.connecting = undefined;
        });
    }
    return this.connecting;
  }

  private onReply(line: string): void {
    let msg: { id: number; v?: unknown; result?: unknown; error?: string; code?: unknown };
    try {
      msg = JSON.parse(line);
    } catch {
      return; // a malformed reply cannot be matched to a call; that call times out and rejects
    }
    this.peerVersion = typeof msg.v === 'number' ? msg.v : 1;
    this.lastHeardAt = Date.now();
    if (this.ping?.id === msg.id) {
      this.ping = undefined;
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error !== undefined) p.reject(replyError({ error: msg.error, code: msg.code }));
    else p.resolve(msg.result);
  }

  private startHeartbeat(socket: tls.TLSSocket): void {
    this.lastHeardAt = Date.now();
    this.ping = undefined;
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => this.beat(socket), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private stopHeartbeat(socket: tls.TLSSocket): void {
    if (this.socket !== socket) return;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.ping = undefined;
    this.lastHeardAt = 0;
  }

  /** Send the next heartbeat, or close a link silent too long (its calls fail now, not after TCP's timeout). */
  private beat(socket: tls.TLSSocket): void {
    if (socket.destroyed || this.socket !== socket) return;
    const now = Date.now();
    if (this.ping && now - this.lastHeardAt > LINK_SILENCE_MS) {
      const silentMs = now - this.lastHeardAt;
      this.log?.warn({ peer: this.target.uid, silent_ms: silentMs }, 'control link silent: closing it');
      this.failAll(new Error(`node ${this.target.uid}: control link silent for ${silentMs} ms`));
      socket.destroy();
      return;
    }
    if (this.ping) return;
    const id = this.nextId++;
    this.ping = { id, at: now };
    // A 0.1.0 node answers an unknown method with an error line: harmless, but `status` keeps its log quiet.
    const method = this.peerVersion !== undefined && this.peerVersion >= 2 ? PING_METHOD : 'status';
    socket.write(JSON.stringify({ id, v: RPC_VERSION, method, params: {} }) + '\n');
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }

  async call<T = unknown>(method: string, params: unknown = {}, timeoutMs = 3000): Promise<T> {
    if (this.closed) throw new Error('client closed');
    const socket = await this.connect();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`node ${this.target.uid}: ${method} timed out`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      socket.write(JSON.stringify({ id, v: RPC_VERSION, method, params }) + '\n');
    });
  }

  get connected(): boolean {
    return !!this.socket && !this.socket.destroyed;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.socket?.destroy();
    this.failAll(new Error('client closed'));
  }
}
