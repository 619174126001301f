// The control loop's handle on the data-plane worker: starts it, feeds it the
// current certificates, policy and configuration, relays control-plane
// requests to the main thread's handler, and restarts it if it dies.
import { Worker } from 'node:worker_threads';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { DataplaneConfig, EndpointState, FromWorker, PolicySnapshot, ReshardOp, ToWorker } from './messages.js';
import type { Bundle } from '../tls/policy.js';
import type { Plane } from '../pki/pki.js';
import type { NodePorts } from '../coord/schema.js';
import type { PeerIdentity } from '../internode/channel.js';
import type { InternodeLink } from '../internode/links.js';
import type { EndpointStatsSnapshot } from '../proxy/stats.js';

export type RpcAnswer = (method: string, params: unknown, peer: PeerIdentity) => Promise<unknown>;

export interface DataplaneHostOptions {
  node: { uid: number; addr: string; ports: NodePorts };
  certs: () => Record<Plane, Bundle>;
  /** The node's proxy certificate, for TLS endpoints (undefined until it has one). */
  proxyCert: () => { certPem: string; keyPem: string } | undefined;
  policy: () => PolicySnapshot;
  rpc: RpcAnswer;
  log: Logger;
  logLevel: string;
}

export class DataplaneHost extends EventEmitter {
  private worker?: Worker;
  private config?: DataplaneConfig;
  private configText = '';
  private stopping = false;
  endpoints: EndpointState[] = [];
  /** Connections each endpoint refused (plaintext on TLS, TLS on plaintext, client certificate), by reason. */
  readonly tunnelPorts = new Map<number, { host: string; port: number }>();
  private nextRequest = 1;
  /** Reads of the worker's live state (links, traffic counters), by request id. */
  private readonly requests = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly o: DataplaneHostOptions) {
    super();
  }

  /** Start the worker; resolves once its listeners are up, rejects with the reason if they cannot be. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const w = new Worker(new URL('./worker.js', import.meta.url));
      this.worker = w;
      let started = false;
      w.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'ready':
            started = true;
            if (this.config) this.send({ type: 'config', config: this.config });
            resolve();
            break;
          case 'listen-error':
            reject(new Error(m.message));
            void w.terminate();
            break;
          case 'endpoints':
            this.endpoints = m.endpoints;
            this.emit('endpoints', m.endpoints);
            break;
          case 'tunnel':
            this.tunnelPorts.set(m.replicaShardUid, { host: m.host, port: m.port });
            this.emit('tunnel', m.replicaShardUid, { host: m.host, port: m.port });
            break;
          case 'rpc':
            void this.answer(m.conn, m.line, m.peer);
            break;
          case 'links-reply':
          case 'stats-reply': {
            const r = this.requests.get(m.id);
            if (r) {
              this.requests.delete(m.id);
              clearTimeout(r.timer);
              r.resolve(m.type === 'links-reply' ? m.links : m.endpoints);
            }
            break;
          }
          case 'reshard-reply': {
            const r = this.requests.get(m.id);
            if (r) {
              this.requests.delete(m.id);
              clearTimeout(r.timer);
              if (m.error !== undefined) r.reject(new Error(m.error));
              else r.resolve(m.result);
            }
            break;
          }
          case 'stopped':
            break;
        }
      });
      w.on('error', (err) => {
        this.o.log.error({ err: err.message, stack: err.stack }, 'data-plane worker crashed');
        if (!started) reject(err);
      });
      w.on('exit', (code) => {
        if (this.stopping || !started) return;
        this.o.log.error({ code }, 'data-plane worker exited; restarting');
        setTimeout(() => void this.start().catch((e) => this.o.log.error({ err: (e as Error).message }, 'data-plane restart failed')), 500);
      });
      this.send({
        type: 'init',
        node: this.o.node,
        certs: this.o.certs(),
        policy: this.o.policy(),
        logLevel: this.o.logLevel,
        proxyCert: this.o.proxyCert(),
      });
    });
  }

  private async answer(conn: number, line: string, peer: PeerIdentity): Promise<void> {
    let msg: { id?: unknown; method?: unknown; params?: unknown };
    try {
      msg = JSON.parse(line);
    } catch {
      return; // a malformed request has no usable id to answer; the peer's call times out
    }
    if (typeof msg.method !== 'string') return;
    let reply: string;
    try {
      reply = JSON.stringify({ id: msg.id, result: await this.o.rpc(msg.method, msg.params, peer) });
    } catch (err) {
      reply = JSON.stringify({ id: msg.id, error: (err as Error).message });
    }
    this.send({ type: 'rpc-reply', conn, line: reply });
  }

  private send(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  /** The worker's live internode connections: shard links, tunnels, accepted control connections. */
  internodeLinks(timeoutMs = 5000): Promise<InternodeLink[]> {
    return this.ask<InternodeLink[]>('links-request', 'list its links', timeoutMs);
  }

  /** Every endpoint's traffic counters (requests, latencies, connections), for the metrics endpoint. */
  endpointStats(timeoutMs = 2000): Promise<EndpointStatsSnapshot[]> {
    return this.ask<EndpointStatsSnapshot[]>('stats-request', 'report its traffic counters', timeoutMs);
  }

  private ask<T>(type: 'links-request' | 'stats-request', what: string, timeoutMs: number): Promise<T> {
    if (!this.worker || this.stopping) return Promise.reject(new Error('the data plane is not running'));
    const id = this.nextRequest++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(id);
        reject(new Error(`the data plane did not ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.requests.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.send({ type, id });
    });
  }

  /** A resharding's hold, release or key-mover step, run by the worker (dataplane/messages.ts ReshardOp). */
  reshard<T>(op: ReshardOp, timeoutMs: number): Promise<T> {
    if (!this.worker || this.stopping) return Promise.reject(new Error('the data plane is not running'));
    const id = this.nextRequest++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(id);
        reject(new Error(`the data plane did not finish ${op.kind} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.requests.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.send({ type: 'reshard', id, op });
    });
  }

  setPolicy(p: PolicySnapshot): void {
    this.send({ type: 'policy', policy: p });
  }

  setCerts(plane: Plane, bundle: Bundle): void {
    this.send({ type: 'certs', plane, bundle });
  }

  setProxyCert(cert: { certPem: string; keyPem: string }): void {
    this.send({ type: 'proxy-cert', cert });
  }

  /** The control loop reached the cluster store: see WriteFence. */
  renewContact(validForMs: number, ordered: boolean): void {
    this.send({ type: 'contact', validForMs, ordered });
  }

  /** Send the configuration if it changed (the reconciler recomputes it every few seconds). */
  setConfig(cfg: DataplaneConfig): void {
    const text = JSON.stringify(cfg);
    if (text === this.configText) return;
    this.configText = text;
    this.config = cfg;
    this.send({ type: 'config', config: cfg });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const w = this.worker;
    if (!w) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 3000);
      w.on('message', (m: FromWorker) => {
        if (m.type === 'stopped') {
          clearTimeout(t);
          resolve();
        }
      });
      this.send({ type: 'stop' });
    });
    await w.terminate();
  }
}
