// Supervises this node's etcd member: one per node, peer traffic mTLS with the
// node's cp certificate under the cluster CA, client traffic mTLS where only
// the local daemon's own certificate (signed by a node-local CA) is trusted.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { Etcd3, type IOptions } from 'etcd3';
import { ExponentialBackoff, type IBackoff, handleWhen, noop, retry } from 'cockatiel';
import { isRecoverableError, GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { ETCD_CIPHER_SUITES, addTrustedCa, secureContext } from '../tls/policy.js';

export interface EtcdPaths {
  dataDir: string; // the member's data directory
  logFile: string;
  caFile: string; // cluster CA
  certFile: string; // node cp certificate
  keyFile: string;
  clientCaFile: string; // node-local CA that signed the daemon's client certificate
  clientCertFile: string;
  clientKeyFile: string;
}

export interface EtcdMemberOptions {
  name: string; // "n<uid>"
  addr: string;
  peerPort: number;
  clientPort: number;
  initialCluster: string; // name=https://addr:port,...
  state: 'new' | 'existing';
  token: string;
  paths: EtcdPaths;
  log: Logger;
  etcdBinary?: string;
}

/** SNI for the daemon's etcd client; the server's identity is checked against its address. */
const ETCD_SERVERNAME = 'etcd.tessera.internal';

export function peerUrl(addr: string, port: number): string {
  return `https://${addr}:${port}`;
}

/** Delays between restarts of a member that keeps dying; back to the first after it ran a while. */
const RESTART_DELAYS_MS = [250, 500, 1000, 2000, 5000, 10_000];
const RESTART_RESET_AFTER_MS = 30_000;

export class EtcdMember {
  private proc?: ChildProcess;
  private stopping = false;
  private exited?: Promise<void>;
  private supervised = false;
  private restarts = 0;
  private startedAt = 0;
  private restartTimer?: NodeJS.Timeout;
  private trustAtStart = '';

  constructor(private readonly o: EtcdMemberOptions) {}

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /**
   * From now on, restart the member with backoff whenever it exits on its own
   * (it rejoins with its data directory). Bootstrap and join do not supervise:
   * there a failure is reported instead.
   */
  supervise(): void {
    this.supervised = true;
  }

  private onUnexpectedExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.supervised || this.stopping) {
      this.o.log.error({ code, signal }, 'etcd member exited unexpectedly');
      return;
    }
    if (Date.now() - this.startedAt > RESTART_RESET_AFTER_MS) this.restarts = 0;
    const delay = RESTART_DELAYS_MS[Math.min(this.restarts, RESTART_DELAYS_MS.length - 1)];
    this.restarts++;
    this.o.log.error(
      { code, signal, attempt: this.restarts, restart_in_ms: delay, last: this.logTail(2) },
      'etcd member exited unexpectedly; restarting it',
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.stopping) this.start();
    }, delay);
  }

  /** The trusted-CA bundle (`ca.pem`) as the member read it at its last start: etcd 3.4 does not reload it. */
  caAtStart(): string {
    return this.trustAtStart;
  }

  /**
   * Stop the member and start it again (its data directory kept): how it
   * takes a changed `ca.pem` (a CA rollover). The caller restarts one member
   * at a time, only while the others keep the quorum.
   */
  /** When restart() was last called (0: never): a planned restart, which the write fence may ride out (liveness.ts). */
  get plannedRestartAt(): number {
    return this.plannedRestartAt_;
  }
  private plannedRestartAt_ = 0;

  async restart(): Promise<void> {
    this.plannedRestartAt_ = Date.now();
    await this.stop();
    this.stopping = false;
    this.start();
  }

  start(): void {
    const o = this.o;
    this.startedAt = Date.now();
    try {
      this.trustAtStart = fs.readFileSync(o.paths.caFile, 'utf8');
    } catch (err) {
      // etcd itself fails on a missing file, and says so in its log.
      o.log.warn({ err: (err as Error).message }, 'cannot read the trusted CA file before starting etcd');
    }
    fs.mkdirSync(o.paths.dataDir, { recursive: true, mode: 0o700 });
    fs.chmodSync(o.paths.dataDir, 0o700);
    const args = [
      '--name',
      o.name,
      '--data-dir',
      o.paths.dataDir,
      '--listen-peer-urls',
      peerUrl(o.addr, o.peerPort),
      '--initial-advertise-peer-urls',
      peerUrl(o.addr, o.peerPort),
      '--listen-client-urls',
      peerUrl(o.addr, o.clientPort),
      '--advertise-client-urls',
      peerUrl(o.addr, o.clientPort),
      '--initial-cluster',
      o.initialCluster,
      '--initial-cluster-state',
      o.state,
      '--initial-cluster-token',
      o.token,
      '--peer-cert-file',
      o.paths.certFile,
      '--peer-key-file',
      o.paths.keyFile,
      '--peer-trusted-ca-file',
      o.paths.caFile,
      '--peer-client-cert-auth',
      '--cert-file',
      o.paths.certFile,
      '--key-file',
      o.paths.keyFile,
      '--trusted-ca-file',
      o.paths.clientCaFile,
      '--client-cert-auth',
      '--cipher-suites',
      ETCD_CIPHER_SUITES,
      '--heartbeat-interval',
      '150',
      '--election-timeout',
      '1500',
      // A member that returns from a partition with a raised term must not depose a healthy leader
      // (and so stall every write of the majority): it asks for votes before it campaigns.
      '--pre-vote',
      '--logger',
      'zap',
      '--log-outputs',
      'stderr',
      '--snapshot-count',
      '10000',
      // Heartbeats write a revision per node twice a second: keep the last 100k (hours of history, for watches that reconnect), drop the rest.
      '--auto-compaction-mode',
      'revision',
      '--auto-compaction-retention',
      '100000',
      '--quota-backend-bytes',
      String(2 * 1024 * 1024 * 1024),
    ];
    const out = fs.openSync(o.paths.logFile, 'a');
    // setpriv --pdeathsig: etcd dies with this daemon even when the daemon is SIGKILLed,
    // so a killed node leaves no member behind holding its ports.
    const proc = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', o.etcdBinary ?? 'etcd', ...args], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    this.proc = proc;
    o.log.info({ pid: proc.pid, name: o.name, state: o.state }, 'etcd member started');
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        if (!this.stopping) this.onUnexpectedExit(code, signal);
        resolve();
      });
      proc.once('error', (err) => {
        o.log.error({ err: err.message }, 'etcd could not be started');
        resolve();
      });
    });
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The last lines etcd wrote, to explain a failure. */
  logTail(lines = 5): string {
    try {
      const text = fs.readFileSync(this.o.paths.logFile, 'utf8').trim().split('\n').slice(-lines);
      return text
        .map((l) => {
          try {
            const j = JSON.parse(l);
            return `${j.msg}${j.error ? `: ${j.error}` : ''}`;
          } catch {
            return l; // not JSON: the raw line is kept
          }
        })
        .join('; ');
    } catch {
      return ''; // no log file (yet): nothing to add to the explanation
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    if (!this.proc) return;
    if (this.running) this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

/**
 * A client of the local member. Short deadlines, fast reconnects, no circuit
 * breaker to sit out. Its TLS context is the project's policy, given
 * explicitly: etcd3 only takes PEM buffers and builds the context with gRPC's
 * `credentials.createSsl`, which inherits the process-wide TLS defaults. So
 * for the duration of the (synchronous) constructor, that factory hands out
 * credentials made from our own context instead.
 */
export function etcdClient(addr: string, clientPort: number, paths: EtcdPaths): Etcd3 {
  const caPem = fs.readFileSync(paths.caFile, 'utf8');
  const ctx = secureContext({
    certPem: fs.readFileSync(paths.clientCertFile, 'utf8'),
    keyPem: fs.readFileSync(paths.clientKeyFile, 'utf8'),
    caPem,
  });
  followCaFile(ctx, paths.caFile, caPem);
  const factory = grpc.credentials;
  const createSsl = factory.createSsl;
  let used = false;
  factory.createSsl = () => {
    used = true;
    // The member's certificate names its IP; check that, while SNI carries a name (RFC 6066 forbids IPs there).
    return grpc.credentials.createFromSecureContext(ctx, { checkServerIdentity: (_name, cert) => tls.checkServerIdentity(addr, cert) });
  };
  let client: Etcd3;
  try {
    client = withCredentials(addr, clientPort, paths);
  } finally {
    factory.createSsl = createSsl;
  }
  // A second copy of @grpc/grpc-js under etcd3 would bypass the swap: refuse to run on defaults.
  if (!used) throw new Error('etcd client: could not give gRPC the TLS policy (a second @grpc/grpc-js copy?)');
  return client;
}

/**
 * The member's certificate is the node's cp certificate; a CA rollover
 * (pki/ca-list.ts) reissues it from the next CA after the node's `ca.pem`
 * bundle lists that CA. gRPC keeps the context for the client's life, so a
 * CA that appears in the file is added to it (a reconnect after the reissue
 * must verify). A CA that leaves the file stays trusted by this one client
 * of the local member, whose other side is this node's own etcd.
 */
function followCaFile(ctx: tls.SecureContext, caFile: string, initial: string): void {
  const known = new Set(pemsOf(initial));
  const check = (): void => {
    let text: string;
    try {
      text = fs.readFileSync(caFile, 'utf8');
    } catch {
      return; // rewritten right now (atomic rename) or gone with the node's data: the next check reads it
    }
    for (const pem of pemsOf(text)) {
      if (known.has(pem)) continue;
      addTrustedCa(ctx, pem);
      known.add(pem);
    }
  };
  fs.watchFile(caFile, { interval: 500 }, check).unref();
}

function pemsOf(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => p.trim());
}

function withCredentials(addr: string, clientPort: number, paths: EtcdPaths): Etcd3 {
  const b = clientBehaviour();
  return new Etcd3({
    ...b,
    hosts: `https://${addr}:${clientPort}`,
    credentials: {
      // Still passed so etcd3 takes the TLS path; the context comes from etcdClient().
      rootCertificate: fs.readFileSync(paths.caFile),
      privateKey: fs.readFileSync(paths.clientKeyFile),
      certChain: fs.readFileSync(paths.clientCertFile),
    },
    grpcOptions: { ...b.grpcOptions, 'grpc.ssl_target_name_override': ETCD_SERVERNAME },
  });
}

/**
 * How the node's etcd client behaves, TLS aside: deadlines, keepalive,
 * reconnects and retries. Exported for the tests' scratch etcd, so that a
 * store outage looks to a route test as it looks to a node.
 */
export function clientBehaviour() {
  return {
    dialTimeout: 3000,
    defaultCallOptions: (ctx: { isStream: boolean }) => (ctx.isStream ? {} : { deadline: Date.now() + 2500 }),
    grpcOptions: {
      'grpc.keepalive_time_ms': 5000,
      'grpc.keepalive_timeout_ms': 2000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    },
    faultHandling: {
      host: () => noop,
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 2 }),
      // etcd3 calls next() on this factory; its typing names the wrong interface.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) as unknown as IBackoff<unknown>,
    },
  } satisfies Partial<IOptions>;
}

/** A member's view of its leader ('0': none) and its raft term. */
export interface LeaderStatus {
  leader: string;
  raftTerm: string;
  /** The leader member's name (`n<uid>`), when known. */
  leaderName?: string;
}

/** Member id → name, per client: members change rarely, and a cut-off member still lists them. */
const memberNames = new WeakMap<Etcd3, Map<string, string>>();

/**
 * The local member's leader and term, with a short deadline: a member cut
 * off from its peers answers too (no quorum needed), with leader '0' once it
 * has lost its leader.
 */
export async function memberLeaderStatus(client: Etcd3, timeoutMs = 400): Promise<LeaderStatus | undefined> {
  try {
    const s = await client.maintenance.status({ deadline: Date.now() + timeoutMs });
    const leader = String(s.leader);
    let names = memberNames.get(client);
    if (leader !== '0' && !names?.has(leader)) {
      const list = await client.cluster.memberList({}, { deadline: Date.now() + timeoutMs });
      names = new Map(list.members.map((m) => [String(m.ID), m.name]));
      memberNames.set(client, names);
    }
    const leaderName = names?.get(leader);
    return { leader, raftTerm: String(s.raftTerm), ...(leaderName ? { leaderName } : {}) };
  } catch {
    // Not answering shows no election: the caller then keeps the short fence, the safe side.
    return undefined;
  }
}

export function etcdPaths(dataDir: string): EtcdPaths {
  const certs = path.join(dataDir, 'certs');
  return {
    dataDir: path.join(dataDir, 'etcd'),
    logFile: path.join(dataDir, 'etcd.log'),
    caFile: path.join(certs, 'ca.pem'),
    // The cp pair through a symlinked directory, swapped atomically on rotation.
    certFile: path.join(certs, 'etcd-peer', 'current', 'cert.pem'),
    keyFile: path.join(certs, 'etcd-peer', 'current', 'key.pem'),
    clientCaFile: path.join(certs, 'etcd-client-ca.pem'),
    clientCertFile: path.join(certs, 'etcd-client.pem'),
    clientKeyFile: path.join(certs, 'etcd-client.key'),
  };
}

/** Is this error the local store being unreachable (member down, restarting, no quorum)? */
export function isStoreUnavailable(err: unknown): boolean {
  return (
    err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError || (err instanceof Error && isRecoverableError(err))
  );
}

/** Wait until the member answers a linearizable read (a learner never does until promoted). */
export async function waitReady(store: { ping(): Promise<void> }, member: EtcdMember, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (!member.running) throw new Error(`etcd exited: ${member.logTail()}`);
    try {
      await store.ping();
      return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`etcd did not become ready in ${timeoutMs} ms: ${last}; ${member.logTail(3)}`);
}
