// Nodes older than the cluster version are kept out, and nothing in the
// cluster changes: a real 0.1.0 node (the previous release, built from its
// commit by test/support/previous-release.ts) asking to join a 0.2 cluster is
// refused by the 0.2 member it asks, with one clear line; and a 0.2 node whose
// data directory belongs to a cluster of a newer version refuses to start.
// And the control RPC's wire across versions, with the 0.1.0 build's own
// rpc module: each side ignores what it does not know.
//
// Addresses: 127.0.52.1-3, 127.0.52.20:13401-13402 (written here: run it under flock /tmp/tessera-integ.lock
// if another file might use them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PASSWORD, TestNode, USER, cli, waitFor, type CliResult } from '../support/cluster.js';
import { previousRelease, previousReleaseBin, previousReleaseDir } from '../support/previous-release.js';
import { InternodeFixture } from '../support/internode-harness.js';
import { CertStore } from '../../src/pki/certstore.js';
import { InternodeServer } from '../../src/internode/channel.js';
import { RPC_VERSION, RpcClient, RpcError, serveRpc, unknownMethod, type RpcHandler } from '../../src/internode/rpc.js';
import pino from 'pino';
import { etcdClient, etcdPaths } from '../../src/coord/etcd.js';
import { KEYS } from '../../src/coord/schema.js';
import { storeOf } from '../../src/coord/store.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-test-52-'));
let oldBin: string;
const nodes: TestNode[] = [];

function run(bin: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

before(async () => {
  oldBin = await previousReleaseBin();
});

after(async () => {
  await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
  if (!process.env.TESSERA_KEEP_TEST_DIRS) fs.rmSync(root, { recursive: true, force: true });
});

type ClusterJson = { cluster_version: string; software_version: string };

test('a 0.1.0 node asking to join a 0.2 cluster is refused in one line; members and store members are unchanged', async () => {
  assert.equal(previousRelease().version, '0.1.0');
  const member = new TestNode('127.0.52.1', path.join(root, 'm1'));
  const old = new TestNode('127.0.52.2', path.join(root, 'old'), [], oldBin);
  nodes.push(member, old);
  await Promise.all([member.start(), old.start()]);
  const c = await cli(['--node', member.addr, 'cluster', 'create', 'name', 'v.local', 'username', USER, 'password', PASSWORD]);
  assert.equal(c.code, 0, c.stderr);
  // The master decides the cluster version once the member has published its record.
  const cl = await waitFor(
    'cluster version 0.2',
    async () => {
      const r = await member.api<ClusterJson>('GET', '/v1/cluster');
      return r.status === 200 && r.body.cluster_version === '0.2' ? r.body : undefined;
    },
    30_000,
  );
  assert.equal(cl.software_version, '0.2.0');

  const store = etcdClient(member.addr, 3341, etcdPaths(member.dataDir));
  try {
    const membersBefore = (await storeOf(store).members.list()).members.map((m) => m.name).sort();
    const nodesBefore = await store.getAll().prefix(KEYS.nodesPrefix).keys();

    // The old release's own CLI, as an operator of that node would run it.
    const j = await run(oldBin, ['--node', old.addr, 'cluster', 'join', 'nodes', member.addr, 'username', USER, 'password', PASSWORD]);
    assert.notEqual(j.code, 0, `the join was not refused: ${j.stdout}`);
    // Besides the CLI's own warning that no ca_fingerprint was given: one error line.
    const lines = j.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('warning: joining without ca_fingerprint'));
    assert.equal(lines.length, 1, `not one line: ${j.stderr}`);
    assert.match(
      lines[0],
      /^error: join refused by 127\.0\.52\.1: node 127\.0\.52\.2 runs Tessera 0\.1\.0, older than the cluster version 0\.2: upgrade it to 0\.2 or later first \(cluster_version_too_old\)$/,
    );

    // Nothing changed: the same store members, node records and no pending join; the refused node is still blank.
    assert.deepEqual((await storeOf(store).members.list()).members.map((m) => m.name).sort(), membersBefore);
    assert.deepEqual(await store.getAll().prefix(KEYS.nodesPrefix).keys(), nodesBefore);
    assert.deepEqual(await store.getAll().prefix(KEYS.joinsPrefix).keys(), []);
    const ns = await member.api<{ uid: number }[]>('GET', '/v1/nodes');
    assert.deepEqual(
      ns.body.map((n) => n.uid),
      [1],
    );
    assert.equal(fs.existsSync(path.join(old.dataDir, 'node.json')), false);
    assert.match(fs.readFileSync(member.logFile, 'utf8'), /older than the cluster version 0\.2/);
  } finally {
    store.close();
  }
});

test('a node whose data directory belongs to a cluster of a newer version refuses to start, in one line', async () => {
  const n = new TestNode('127.0.52.3', path.join(root, 'n3'));
  nodes.push(n);
  await n.start();
  const c = await cli(['--node', n.addr, 'cluster', 'create', 'name', 'w.local', 'username', USER, 'password', PASSWORD]);
  assert.equal(c.code, 0, c.stderr);
  const store = etcdClient(n.addr, 3341, etcdPaths(n.dataDir));
  try {
    // As a newer release's master would have stored it; the master here never lowers it.
    await store.put(KEYS.clusterVersion).value(JSON.stringify({ version: '9.9', updated_time: new Date().toISOString() }));
    await waitFor(
      'the stored version shown',
      async () => (await n.api<ClusterJson>('GET', '/v1/cluster')).body.cluster_version === '9.9',
      10_000,
    );
  } finally {
    store.close();
  }
  await n.kill('SIGTERM');
  const nodeJson = fs.readFileSync(path.join(n.dataDir, 'node.json'), 'utf8');
  const tail = await n.startFails(30_000);
  assert.match(
    tail,
    /this node \(127\.0\.52\.3\) runs Tessera 0\.2\.0, older than the cluster version 9\.9: upgrade it to 9\.9 or later first/,
  );
  // The data directory still belongs to its cluster: a newer build resumes it.
  assert.equal(fs.readFileSync(path.join(n.dataDir, 'node.json'), 'utf8'), nodeJson);
});

test('control RPC across versions: a 0.2 client and a 0.1.0 server, and the reverse; unknown methods are told apart on both', async () => {
  const fx = await InternodeFixture.create();
  // The previous release's own RPC module (its wire side), from the build of its commit.
  const old = (await import(path.join(previousReleaseDir(), 'dist/src/internode/rpc.js'))) as {
    serveRpc: typeof serveRpc;
    RpcClient: typeof RpcClient;
  };
  const members = new Set([1, 2, 3]);
  const policy = { clusterId: () => fx.cc.clusterId, isMember: (u: number) => members.has(u), isDenied: () => false };
  const log = pino({ level: 'silent' });
  // As each release's member answers: 0.1.0 threw a plain error for an unknown method, 0.2 a typed one.
  const handler =
    (unknown: (m: string) => Error): RpcHandler =>
    async (m) => {
      if (m === 'ping') return { pong: true };
      throw unknown(m);
    };
  const serve = async (port: number, serveWith: typeof serveRpc, h: RpcHandler) => {
    const srv = new InternodeServer({
      host: '127.0.52.20',
      port,
      certs: new CertStore({ cp: fx.cc.nodes[0].cp, dp: fx.cc.nodes[0].dp }),
      policy,
      log,
      handlers: { cp: (sock, peer) => serveWith(sock, peer, h), dp: (sock) => sock.destroy() },
    });
    await srv.listen();
    return srv;
  };
  const clientCerts = () => new CertStore({ cp: fx.cc.nodes[1].cp, dp: fx.cc.nodes[1].dp });
  const oldServer = await serve(
    13401,
    old.serveRpc,
    handler((m) => new Error(`unknown method ${m}`)),
  );
  const newServer = await serve(13402, serveRpc, handler(unknownMethod));
  const toOld = new RpcClient({ uid: 1, host: '127.0.52.20', port: 13401 }, clientCerts(), policy);
  const fromOld = new old.RpcClient({ uid: 1, host: '127.0.52.20', port: 13402 }, clientCerts(), policy);
  try {
    // 0.2 → 0.1.0: the request's version is ignored; the reply has none (protocol 1); its unknown method is recognised.
    assert.deepEqual(await toOld.call('ping'), { pong: true });
    assert.equal(toOld.peerVersion, 1);
    await assert.rejects(toOld.call('reshard'), (e: unknown) => e instanceof RpcError && e.code === 'unknown_method');
    // 0.1.0 → 0.2: the reply's version and code are ignored; the error reads as 0.1.0 read it.
    assert.deepEqual(await fromOld.call('ping'), { pong: true });
    await assert.rejects(fromOld.call('reshard'), (e: unknown) => (e as Error).message === 'unknown method reshard');
    assert.equal(RPC_VERSION, 2);
  } finally {
    toOld.close();
    fromOld.close();
    await oldServer.close();
    await newServer.close();
    fx.cleanup();
  }
});
