// Real nodes for multi-node tests: `./bin/tessera node start` processes on
// loopback addresses, temporary data directories, and cleanup of every
// process a test started (by PID).
import { spawn, type ChildProcess, execFile } from 'node:child_process';
import { reap } from './reaper.js';
import { sleep, waitFor } from './wait.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requestJson, type JsonResponse } from '../../src/util/https-json.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = path.join(REPO, 'bin/tessera');
export const USER = 'admin@test.local';
export const PASSWORD = 'test-password-1';

// The one sleep and waitFor (wait.ts), re-exported: the cluster tests take them from here.
export { sleep, waitFor };

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(BIN, args, { env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

export class TestNode {
  proc?: ChildProcess;
  readonly logFile: string;

  constructor(
    readonly addr: string,
    readonly dataDir: string,
    readonly extraArgs: string[] = [],
    /** The launcher to run: the working tree's, or another release's (test/support/previous-release.ts). */
    readonly bin = BIN,
  ) {
    this.logFile = `${dataDir}.log`;
  }

  get uidFromDisk(): number | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dataDir, 'node.json'), 'utf8')).uid;
    } catch {
      return undefined;
    }
  }

  /** Start the daemon and wait until its REST API answers. */
  async start(): Promise<void> {
    const out = fs.openSync(this.logFile, 'a');
    this.proc = reap(
      spawn(this.bin, ['node', 'start', '--addr', this.addr, '--data-dir', this.dataDir, '--log-level', 'info', ...this.extraArgs], {
        stdio: ['ignore', out, out],
      }),
    );
    fs.closeSync(out);
    const proc = this.proc;
    await waitFor(
      `node ${this.addr} REST`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`node ${this.addr} exited (${proc.exitCode}); log: ${this.logTail()}`);
        const r = await requestJson({ host: this.addr, port: 9443, path: '/v1/bootstrap', timeoutMs: 2000 });
        return r.status === 200;
      },
      30_000,
    );
  }

  /** Start a daemon that is expected to refuse to run; resolves with what it logged. */
  async startFails(timeoutMs = 20_000): Promise<string> {
    const out = fs.openSync(this.logFile, 'a');
    const p = reap(
      spawn(this.bin, ['node', 'start', '--addr', this.addr, '--data-dir', this.dataDir, ...this.extraArgs], {
        stdio: ['ignore', out, out],
      }),
    );
    fs.closeSync(out);
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => {
        p.kill('SIGKILL');
        resolve(null);
      }, timeoutMs);
      p.once('exit', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    if (code === null) throw new Error(`node ${this.addr} kept running`);
    if (code === 0) throw new Error(`node ${this.addr} exited 0`);
    return this.logTail(3);
  }

  logTail(n = 5): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-n).join('\n');
    } catch {
      return '';
    }
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<void> {
    const p = this.proc;
    if (!p || !this.running) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(t);
  }

  api<T = unknown>(
    method: string,
    p: string,
    body?: unknown,
    creds: { username?: string; password?: string } | null = { username: USER, password: PASSWORD },
    headers?: Record<string, string>,
  ): Promise<JsonResponse<T>> {
    // Clients trust the services CA (REST, UI, metrics), never the internode CA.
    const caFile = path.join(this.dataDir, 'certs/services-ca.pem');
    const caPem = fs.existsSync(path.join(this.dataDir, 'node.json')) ? fs.readFileSync(caFile, 'utf8') : undefined;
    return requestJson<T>({ host: this.addr, port: 9443, method, path: p, body, ...(creds ?? {}), caPem, headers, timeoutMs: 60_000 });
  }

  cli(args: string[]): Promise<CliResult> {
    return cli(['--node', this.addr, ...args], { TESSERA_USERNAME: USER, TESSERA_PASSWORD: PASSWORD });
  }
}

/**
 * With TESSERA_TEST_NET=<n>, every cluster of the test process goes to
 * 127.0.<n>.x instead, on the next free host numbers (a helper that owns one
 * loopback net runs any test file there).
 */
let sharedNetNext = 1;

/** A set of nodes on 127.0.<net>.1..n with temporary data directories (or see TESSERA_TEST_NET). */
export class TestCluster {
  readonly nodes: TestNode[];
  readonly root: string;

  constructor(net: number, count: number, extraArgs: (i: number) => string[] = () => []) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `tessera-test-${net}-`));
    const shared = process.env.TESSERA_TEST_NET;
    const first = shared ? sharedNetNext : 1;
    if (shared) sharedNetNext += count;
    this.nodes = Array.from(
      { length: count },
      (_, i) => new TestNode(`127.0.${shared ?? net}.${first + i}`, path.join(this.root, `n${i + 1}`), extraArgs(i)),
    );
  }

  async startAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.start()));
  }

  /** Create on the first node and join the others, all through the CLI. */
  /** Wait until the cluster master has raised the cluster version to `version` (features gated on it: maintenance, reshaping). */
  async waitClusterVersion(version = '0.2'): Promise<void> {
    await waitFor(
      `cluster version ${version}`,
      async () => (await this.nodes[0].api<{ cluster_version: string }>('GET', '/v1/cluster')).body.cluster_version === version,
      30_000,
      200,
    );
  }

  async form(name = 'test.local'): Promise<void> {
    const [first, ...rest] = this.nodes;
    const c = await cli(['--node', first.addr, 'cluster', 'create', 'name', name, 'username', USER, 'password', PASSWORD]);
    if (c.code !== 0) throw new Error(`create failed: ${c.stderr}\n${first.logTail()}`);
    for (const n of rest) {
      const j = await cli(['--node', n.addr, 'cluster', 'join', 'nodes', first.addr, 'username', USER, 'password', PASSWORD]);
      if (j.code !== 0) throw new Error(`join of ${n.addr} failed: ${j.stderr}\n${n.logTail()}`);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill('SIGTERM')));
    if (!process.env.TESSERA_KEEP_TEST_DIRS) fs.rmSync(this.root, { recursive: true, force: true });
  }
}

export interface BdbJson {
  uid: number;
  name: string;
  port: number;
  status: string;
  data_internode_encryption: boolean;
  shards: { uid: number; role: string; node_uid: number; assigned_slots: string; status: string; master_uid?: number }[];
  endpoints: { addr: string[]; port: number }[];
  action_uid?: string;
  error?: string;
}

/** Create a database through REST and wait until it is active. */
export async function createDb(n: TestNode, body: Record<string, unknown>, timeoutMs = 60_000): Promise<BdbJson> {
  const r = await n.api<BdbJson>('POST', '/v1/bdbs', body);
  if (r.status !== 200) throw new Error(`create db: ${r.status} ${JSON.stringify(r.body)}`);
  return waitDbStatus(n, r.body.uid, 'active', timeoutMs);
}

export async function waitDbStatus(n: TestNode, uid: number, status: string, timeoutMs = 60_000): Promise<BdbJson> {
  let last: BdbJson | undefined;
  try {
    return await waitFor(
      `db ${uid} ${status}`,
      async () => {
        const r = await n.api<BdbJson>('GET', `/v1/bdbs/${uid}`);
        last = r.body;
        return r.status === 200 && r.body.status === status ? r.body : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(last)}`);
  }
}

/** A shard's internal secret, as its node wrote it into the shard's config (tests inspect shards directly). */
export function shardSecret(node: TestNode, shardUid: number): string {
  const conf = fs.readFileSync(path.join(node.dataDir, 'shards', String(shardUid), 'redis.conf'), 'utf8');
  return /^requirepass "([^"]+)"/m.exec(conf)![1];
}

export function shardSocketPath(node: TestNode, shardUid: number): string {
  return path.join(node.dataDir, 'shards', String(shardUid), 'redis.sock');
}

/** Run redis-cli against a shard's unix socket, authenticated with its secret. */
export function shardCli(node: TestNode, shardUid: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'redis-cli',
      ['-s', shardSocketPath(node, shardUid), '--no-auth-warning', '-a', shardSecret(node, shardUid), ...args],
      { timeout: 10_000 },
      (err, stdout) => (err ? reject(err) : resolve(stdout.trim())),
    );
  });
}

export function redisCli(host: string, port: number, args: string[], input?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = execFile('redis-cli', ['-h', host, '-p', String(port), ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? 1 : 0, stdout, stderr });
    });
    if (input !== undefined) p.stdin?.end(input);
  });
}
