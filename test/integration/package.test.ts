// The Debian package, installed for real: `dpkg -i` of what scripts/package.sh
// builds, three nodes started as the unprivileged `tessera` user with
// `runuser` (CI has no systemd) from config files, a cluster formed and an
// encrypted database served, then the package purged. Proves that nothing in
// Tessera needs root: every process the nodes run (node, etcd, redis-server)
// belongs to `tessera`. Needs root and dpkg; skipped when a tessera package is
// already installed (an operator's, not ours to remove). Net 127.0.68.x.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO, PASSWORD, USER, redisCli } from '../support/cluster.js';
import { reap } from '../support/reaper.js';
import { sleep, waitFor } from '../support/wait.js';
import { requestJson } from '../../src/util/https-json.js';

const NET = 68;
const ADDRS = [1, 2, 3].map((i) => `127.0.${NET}.${i}`);
const DATA_ROOT = '/var/lib/tessera';

function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { timeout: 180_000, maxBuffer: 16 << 20, env: { ...process.env, ...opts.env } }, (e, out, err) =>
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) || 1 : 0, out, err }),
    ),
  );
}

function installedVersion(): string | undefined {
  try {
    const out = execFileSync('dpkg-query', ['-W', '-f', '${Status} ${Version}', 'tessera'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    return out.startsWith('install ok installed') ? out.split(' ').pop() : undefined;
  } catch {
    return undefined; // dpkg-query exits non-zero for a package it does not know
  }
}

const skip = process.getuid?.() !== 0 ? 'needs root (dpkg -i)' : installedVersion() ? 'a tessera package is already installed here' : false;

describe('Debian package, run as the tessera user', { skip }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-pkg-'));
  const runDir = path.join(tmp, 'run');
  const nodes: { addr: string; dir: string; conf: string; proc?: ChildProcess; log: string }[] = ADDRS.map((addr, i) => ({
    addr,
    dir: path.join(DATA_ROOT, `pkgtest-n${i + 1}`),
    conf: path.join(tmp, `n${i + 1}.conf`),
    log: path.join(tmp, `n${i + 1}.log`),
  }));
  let deb = '';
  let installed = false;

  /** The CLI of the installed package, as the tessera user (its run files are the tessera user's). */
  const tcli = (args: string[]) =>
    sh('runuser', ['-u', 'tessera', '--', 'env', `TESSERA_RUN_DIR=${runDir}`, `HOME=${runDir}`, '/usr/bin/tessera', ...args], {
      env: { TESSERA_USERNAME: USER, TESSERA_PASSWORD: PASSWORD },
    });

  const childPid = (parent: number): number | undefined => {
    const r = execFileSync('ps', ['-o', 'pid=', '--ppid', String(parent)])
      .toString()
      .trim()
      .split(/\s+/)[0];
    return r ? Number(r) : undefined;
  };

  async function stopNode(n: (typeof nodes)[number]): Promise<void> {
    const p = n.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    // SIGTERM to the node itself (runuser's child): runuser would pass it on but
    // SIGKILL its child 2 s later. The node stops its own shards and etcd; runuser
    // exits with it.
    const node = p.pid && childPid(p.pid);
    if (node) process.kill(node, 'SIGTERM');
    else p.kill('SIGTERM');
    const t = setTimeout(() => {
      const pid = p.pid && childPid(p.pid);
      if (pid) process.kill(pid, 'SIGKILL');
      p.kill('SIGKILL');
    }, 30_000);
    await exited;
    clearTimeout(t);
  }

  before(async () => {
    const b = await sh(path.join(REPO, 'scripts/package.sh'), []);
    assert.equal(b.code, 0, b.err);
    deb = path.join(REPO, b.out.trim());
    const i = await sh('dpkg', ['-i', deb]);
    assert.equal(i.code, 0, `dpkg -i: ${i.err}`);
    installed = true;
  });

  after(async () => {
    for (const n of nodes) await stopNode(n);
    for (const n of nodes) fs.rmSync(n.dir, { recursive: true, force: true });
    if (installed) {
      const r = await sh('dpkg', ['--purge', 'tessera']);
      if (r.code !== 0) console.error(`dpkg --purge: ${r.err}`);
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('installs the service user, data directory, unit and config, and leaves the distribution services alone', async () => {
    const id = await sh('id', ['-u', 'tessera']);
    assert.equal(id.code, 0, 'user tessera exists');
    assert.notEqual(Number(id.out.trim()), 0);
    const st = fs.statSync(DATA_ROOT);
    assert.equal(st.mode & 0o777, 0o700, `${DATA_ROOT} mode`);
    assert.equal(st.uid, Number(id.out.trim()), `${DATA_ROOT} owner`);
    assert.ok(fs.existsSync('/lib/systemd/system/tessera.service'));
    const conf = fs.readFileSync('/etc/tessera/tessera.conf', 'utf8');
    assert.match(conf, /^data-dir = \/var\/lib\/tessera$/m);
    const unit = fs.readFileSync('/lib/systemd/system/tessera.service', 'utf8');
    for (const line of [
      'User=tessera',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/tessera',
      'PrivateTmp=yes',
    ]) {
      assert.ok(unit.includes(line), `unit has ${line}`);
    }
    // The unit is syntactically valid for systemd (where systemd-analyze exists).
    if (fs.existsSync('/usr/bin/systemd-analyze')) {
      const v = await sh('systemd-analyze', ['verify', '/lib/systemd/system/tessera.service']);
      const problems = (v.out + v.err)
        .split('\n')
        .filter((l) => l.includes('tessera.service') && !/Failed to (connect|create|initialize)|System has not been booted/.test(l));
      assert.deepEqual(problems, [], `systemd-analyze verify:\n${v.out}${v.err}`);
    }
    const version = await sh('/usr/bin/tessera', ['--version']);
    assert.equal(version.code, 0, version.err);
    assert.match(version.out, /0\.2\.\d/);
    // A start with no address says so in one line and fails.
    const bare = await sh('runuser', ['-u', 'tessera', '--', '/usr/bin/tessera', 'node', 'start', '--config', '/etc/tessera/tessera.conf']);
    assert.notEqual(bare.code, 0);
    assert.match(bare.err.trim(), /^error: --addr is required/);
  });

  it('runs three nodes as tessera from config files, forms a cluster and serves an encrypted database', async () => {
    fs.mkdirSync(runDir, { mode: 0o700 });
    execFileSync('chown', ['tessera:tessera', runDir]);
    fs.chmodSync(tmp, 0o755);
    for (const n of nodes) {
      fs.writeFileSync(n.conf, `# test node\naddr = ${n.addr}\ndata-dir = ${n.dir}\nlog-level = info\n`, { mode: 0o644 });
      const out = fs.openSync(n.log, 'a');
      n.proc = reap(
        spawn(
          'runuser',
          ['-u', 'tessera', '--', 'env', `TESSERA_RUN_DIR=${runDir}`, '/usr/bin/tessera', 'node', 'start', '--config', n.conf],
          {
            stdio: ['ignore', out, out],
          },
        ),
      );
    }
    // Each node writes its run file once it listens.
    await waitFor('three run files', () => fs.readdirSync(runDir).length >= 3, 60_000);
    const c = await tcli(['--node', nodes[0].addr, 'cluster', 'create', 'name', 'pkg.test', 'username', USER, 'password', PASSWORD]);
    assert.equal(c.code, 0, `create: ${c.err}`);
    for (const n of nodes.slice(1)) {
      const j = await tcli(['--node', n.addr, 'cluster', 'join', 'nodes', nodes[0].addr, 'username', USER, 'password', PASSWORD]);
      assert.equal(j.code, 0, `join ${n.addr}: ${j.err}`);
    }
    const caPem = fs.readFileSync(path.join(nodes[0].dir, 'certs/services-ca.pem'), 'utf8');
    const api = <T>(method: string, p: string, body?: unknown) =>
      requestJson<T>({
        host: nodes[0].addr,
        port: 9443,
        method,
        path: p,
        body,
        username: USER,
        password: PASSWORD,
        caPem,
        timeoutMs: 60_000,
      });
    const created = await api<{ uid: number; endpoints: { addr: string[]; port: number }[] }>('POST', '/v1/bdbs', {
      name: 'pkgdb',
      memory_size: 64 << 20,
      shards_count: 2,
      sharding: true,
      replication: true,
      data_internode_encryption: true,
      port: 12068,
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    await waitFor(
      'database active',
      async () => (await api<{ status: string }>('GET', `/v1/bdbs/${created.body.uid}`)).body.status === 'active',
      90_000,
    );
    const bdb = await api<{ endpoints: { addr: string[] }[] }>('GET', `/v1/bdbs/${created.body.uid}`);
    const endpoints = bdb.body.endpoints[0].addr;
    assert.ok(endpoints.length >= 2, `endpoints ${endpoints}`);
    for (const addr of endpoints) {
      const set = await redisCli(addr, 12068, ['SET', `k-${addr}`, addr]);
      assert.equal(set.stdout.trim(), 'OK', `SET through ${addr}: ${set.stdout}${set.stderr}`);
    }
    const get = await redisCli(endpoints[1], 12068, ['GET', `k-${endpoints[0]}`]);
    assert.equal(get.stdout.trim(), endpoints[0]);

    const status = await tcli(['--node', nodes[1].addr, 'status']);
    assert.equal(status.code, 0, status.err);
    const verify = await tcli(['--node', nodes[0].addr, 'verify', 'encryption']);
    assert.equal(verify.code, 0, `verify encryption:\n${verify.out}${verify.err}`);

    // Nothing runs as root: every process below each node belongs to tessera.
    const uid = execFileSync('id', ['-u', 'tessera']).toString().trim();
    const tree = execFileSync('ps', ['-e', '-o', 'pid=,ppid=,uid=,comm=']).toString().trim().split('\n');
    const rows = tree.map((l) => l.trim().split(/\s+/)).map(([pid, ppid, u, comm]) => ({ pid, ppid, uid: u, comm }));
    const below = (root: string): typeof rows => {
      const kids = rows.filter((r) => r.ppid === root);
      return kids.concat(kids.flatMap((k) => below(k.pid)));
    };
    const procs = nodes.flatMap((n) => below(String(n.proc?.pid)));
    const comms = new Set(procs.map((p) => p.comm));
    // Node names its main thread's process MainThread.
    assert.ok(comms.has('node') || comms.has('MainThread'), `a node process runs (${[...comms]})`);
    for (const want of ['etcd', 'redis-server']) assert.ok(comms.has(want), `a ${want} process runs (${[...comms]})`);
    assert.deepEqual(
      procs.filter((p) => p.uid !== uid),
      [],
      'every process of the nodes runs as tessera',
    );
  });

  it('stops on SIGTERM and purges cleanly', async () => {
    for (const n of nodes) await stopNode(n);
    for (const n of nodes) assert.ok(n.proc?.exitCode !== null || n.proc?.signalCode !== null);
    for (const n of nodes) fs.rmSync(n.dir, { recursive: true, force: true });
    await sleep(100);
    const r = await sh('dpkg', ['--purge', 'tessera']);
    assert.equal(r.code, 0, r.err);
    installed = false;
    for (const p of ['/opt/tessera', '/usr/bin/tessera', '/lib/systemd/system/tessera.service', '/etc/tessera', DATA_ROOT]) {
      assert.ok(!fs.existsSync(p), `${p} removed`);
    }
  });
});
