// Supervises one shard: a real redis-server process listening on a unix
// socket only (port 0), configured by this node, restarted if it dies, and
// stopped with the node. Secrets go in the config file (0600), never argv.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { encodeCommand } from '../proxy/resp-encode.js';

export interface ShardSpec {
  bdbUid: number;
  shardUid: number;
  /** Bytes; enforced by redis as maxmemory. */
  maxmemory: number;
  persistence: 'disabled' | 'aof' | 'snapshot';
  evictionPolicy: string;
  /** Redis's min-replicas-to-write (0: off) and min-replicas-max-lag (seconds): the database's guard. */
  minReplicasToWrite?: number;
  minReplicasMaxLag?: number;
  /** Internal secret: requirepass and masterauth. Clients never see it; the proxy and tunnels use it. */
  secret: string;
  /** The node's own address: replication leaves from it (bind-source-addr). */
  sourceAddr: string;
}

export function shardDir(dataDir: string, shardUid: number): string {
  return path.join(dataDir, 'shards', String(shardUid));
}

export function shardSocket(dataDir: string, shardUid: number): string {
  return path.join(shardDir(dataDir, shardUid), 'redis.sock');
}

function configText(spec: ShardSpec, dir: string, replicaOf?: { host: string; port: number }): string {
  const lines = [
    '# written by tessera; changes are overwritten',
    'port 0',
    `unixsocket ${path.join(dir, 'redis.sock')}`,
    'unixsocketperm 700',
    `dir ${dir}`,
    'daemonize no',
    `logfile ${path.join(dir, 'redis.log')}`,
    'loglevel notice',
    `maxmemory ${spec.maxmemory}`,
    `maxmemory-policy ${spec.evictionPolicy}`,
    `min-replicas-to-write ${spec.minReplicasToWrite ?? 0}`,
    `min-replicas-max-lag ${spec.minReplicasMaxLag ?? 10}`,
    `requirepass "${spec.secret}"`,
    `masterauth "${spec.secret}"`,
    `bind-source-addr ${spec.sourceAddr}`,
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
    'repl-backlog-size 16mb',
    'replica-read-only yes',
    'protected-mode no',
    'enable-debug-command local',
  ];
  // A replica is one from its first instant: it never serves, even briefly, as an empty master.
  if (replicaOf) lines.push(`replicaof ${replicaOf.host} ${replicaOf.port}`);
  if (spec.persistence === 'aof') lines.push('appendonly yes', 'appendfsync everysec', 'save ""');
  else if (spec.persistence === 'snapshot') lines.push('appendonly no', 'save 900 1 300 10 60 10000');
  else lines.push('appendonly no', 'save ""');
  return lines.join('\n') + '\n';
}

/** Left in a shard's directory when redis-server exited cleanly (its shutdown save done); removed at start. */
const CLEAN_STOP_FILE = 'clean-stop';

/** Did this shard's last run end with a clean shutdown (so its files hold every write it acknowledged)? */
export function stoppedCleanly(dataDir: string, shardUid: number): boolean {
  return fs.existsSync(path.join(shardDir(dataDir, shardUid), CLEAN_STOP_FILE));
}

export class RedisShard {
  private proc?: ChildProcess;
  private stopping = false;
  private restarts = 0;
  private restartTimer?: NodeJS.Timeout;
  readonly dir: string;
  readonly socketPath: string;
  /** Set by the reconciler: replicate from this local tunnel port, or be a master. */
  replicaOf?: { host: string; port: number };
  onRestart?: () => void;
  /**
   * Asked when the process dies unexpectedly: 'restart' brings it back as it
   * was; 'hold' leaves it down for the reconciler (a master whose replica
   * should take over, rather than come back empty).
   */
  onCrash?: () => 'restart' | 'hold';
  /** Down after a crash, waiting for the reconciler. */
  held = false;

  constructor(
    readonly spec: ShardSpec,
    dataDir: string,
    private readonly log: Logger,
    private readonly binary = 'redis-server',
  ) {
    this.dir = shardDir(dataDir, spec.shardUid);
    this.socketPath = shardSocket(dataDir, spec.shardUid);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Why the last start failed (cleared by a start that succeeds): reported with the shard's status. */
  lastError?: string;

  async start(): Promise<void> {
    try {
      await this.startOnce();
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      throw err;
    }
  }

  private async startOnce(): Promise<void> {
    this.stopping = false;
    this.held = false;
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const conf = path.join(this.dir, 'redis.conf');
    fs.writeFileSync(conf, configText(this.spec, this.dir, this.replicaOf), { mode: 0o600 });
    fs.rmSync(this.socketPath, { force: true });
    fs.rmSync(path.join(this.dir, CLEAN_STOP_FILE), { force: true });
    // Without persistence a shard starts empty. A replica's full sync leaves the
    // master's snapshot in dump.rdb, which redis would load at the next start
    // even with `save ""`: an old, partial copy is worse than none.
    if (this.spec.persistence === 'disabled') fs.rmSync(path.join(this.dir, 'dump.rdb'), { force: true });
    // setpriv --pdeathsig: the shard dies with the node even if the node is SIGKILLed.
    const proc = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', this.binary, conf], { stdio: 'ignore' });
    this.proc = proc;
    proc.once('exit', (code, signal) => {
      if (this.stopping) return;
      if (this.onCrash?.() === 'hold') {
        this.held = true;
        this.log.warn({ shard: this.spec.shardUid, code, signal }, 'shard exited; held for failover');
        return;
      }
      this.log.warn({ shard: this.spec.shardUid, code, signal }, 'shard exited; restarting');
      const delay = Math.min(5000, 200 * 2 ** Math.min(this.restarts++, 5));
      this.restartTimer = setTimeout(() => {
        this.start()
          .then(() => this.onRestart?.())
          .catch((err) => this.log.error({ shard: this.spec.shardUid, err: (err as Error).message }, 'shard restart failed'));
      }, delay);
    });
    await this.waitReady(10_000);
    this.log.info({ shard: this.spec.shardUid, pid: proc.pid, replicaOf: this.replicaOf }, 'shard running');
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`redis-server for shard ${this.spec.shardUid} exited: ${this.logTail()}`);
      try {
        const r = await this.command(['PING']);
        if (r.startsWith('+PONG')) return;
        last = r;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`shard ${this.spec.shardUid} did not answer: ${last}`);
  }

  logTail(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'redis.log'), 'utf8').trim().split('\n').slice(-3).join('; ');
    } catch {
      return ''; // no log file (yet): nothing to add to the explanation
    }
  }

  /** One command over the unix socket, authenticated; returns the raw first reply line(s). */
  command(args: string[], timeoutMs = 3000): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.socketPath);
      let buf = '';
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error('shard command timed out'));
      }, timeoutMs);
      s.on('connect', () => s.write(Buffer.concat([encodeCommand(['AUTH', this.spec.secret]), encodeCommand(args)])));
      s.on('data', (d) => {
        buf += d.toString('utf8');
        const first = buf.indexOf('\r\n');
        if (first < 0) return;
        if (!buf.startsWith('+OK')) {
          clearTimeout(t);
          s.destroy();
          return reject(new Error(`shard auth failed: ${buf.slice(0, first)}`));
        }
        const rest = buf.slice(first + 2);
        if (rest.includes('\r\n') && isComplete(rest)) {
          clearTimeout(t);
          s.end();
          resolve(rest);
        }
      });
      s.on('error', (err) => {
        clearTimeout(t);
        reject(err);
      });
    });
  }

  /** Recorded only once redis took it (or for the next start), so a failed change is tried again. */
  async setReplicaOf(target: { host: string; port: number } | undefined): Promise<void> {
    if (!this.running) {
      this.replicaOf = target;
      return;
    }
    const r = await this.command(target ? ['REPLICAOF', target.host, String(target.port)] : ['REPLICAOF', 'NO', 'ONE']);
    if (!r.startsWith('+OK')) throw new Error(`REPLICAOF refused: ${r.trim()}`);
    this.replicaOf = target;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const p = this.proc;
    if (!p || !this.running) return;
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    p.kill('SIGTERM');
    // redis waits up to shutdown-timeout (10 s) for lagging replicas before its final save.
    const t = setTimeout(() => p.kill('SIGKILL'), 15_000);
    const code = await exited;
    clearTimeout(t);
    if (code === 0) {
      try {
        fs.writeFileSync(path.join(this.dir, CLEAN_STOP_FILE), new Date().toISOString());
      } catch (err) {
        // Without the mark the next start treats the files as possibly stale: safe, only slower.
        this.log.warn({ shard: this.spec.shardUid, err: (err as Error).message }, 'cannot mark the shard as cleanly stopped');
      }
    }
  }
}

/** Enough of RESP to know a small reply (a line, a bulk string, or INFO's bulk) is complete. */
function isComplete(s: string): boolean {
  if (s[0] !== '$') return true;
  const nl = s.indexOf('\r\n');
  const len = Number(s.slice(1, nl));
  return len < 0 || Buffer.byteLength(s) >= nl + 2 + len + 2;
}
