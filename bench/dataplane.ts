// Data-plane benchmark: throughput and latency through a Tessera endpoint,
// with the shard on the same node and on another node, data-plane encryption
// off and on, against a direct redis-server for reference; and the client
// side encrypted: a tls_mode enabled endpoint (mutual TLS, a listed client
// CA) against the plaintext endpoint, same node, same shard placement, run
// back to back in each round. Prints medians of paired runs, the ratios
// encrypted/plaintext and endpoint/direct, and for client TLS the per-round
// ratios' spread and the CPU per operation.
//
//   npm run bench            (5 rounds; BENCH_ROUNDS, BENCH_REQUESTS, BENCH_CLIENTS, BENCH_NET to change)
//
// Everything runs on loopback addresses 127.0.9.x (BENCH_NET=N: 127.0.N.x) and is stopped at the end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { TestCluster, createDb, waitDbStatus, waitFor } from '../test/support/cluster.js';
import { createCa, issueLocally } from '../src/pki/pki.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 100_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);
const PIPELINES = [1, 16];
/** The loopback net 127.0.<BENCH_NET>.x (default 9). */
const NET = Number(process.env.BENCH_NET ?? 9);
const DIRECT = { host: `127.0.${NET}.50`, port: 16379 };

interface Result {
  rps: number;
  p50: number;
  p99: number;
}
type Row = Record<string, Result>; // test name → result

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, timeout: 600_000 }, (err, out, errOut) =>
      err ? reject(new Error(`${cmd}: ${err.message} ${errOut}`)) : resolve(out),
    ),
  );
}

/** CPU seconds (user+system) used so far by these processes and their threads. */
function cpuSeconds(pids: number[]): number {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const pid of pids) {
    try {
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / tick;
    } catch {
      /* process gone */
    }
  }
  return total;
}

async function benchmark(
  host: string,
  port: number,
  pipeline: number,
  cpuPids: number[],
  tlsArgs: string[] = [],
): Promise<{ row: Row; cpuUsPerOp: number }> {
  const before = cpuSeconds(cpuPids);
  const out = await run('redis-benchmark', [
    '-h',
    host,
    '-p',
    String(port),
    ...tlsArgs,
    '-t',
    'set,get',
    '-n',
    String(REQUESTS),
    '-c',
    String(CLIENTS),
    '-P',
    String(pipeline),
    '-r',
    '100000',
    '-d',
    '64',
    '--csv',
  ]);
  const cpu = cpuSeconds(cpuPids) - before;
  const row: Row = {};
  for (const line of out.split('\n')) {
    const cells = line.split(',').map((c) => c.replace(/"/g, ''));
    if (cells[0] === 'SET' || cells[0] === 'GET') row[cells[0]] = { rps: Number(cells[1]), p50: Number(cells[4]), p99: Number(cells[6]) };
  }
  return { row, cpuUsPerOp: (cpu * 1e6) / (2 * REQUESTS) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  const cluster = new TestCluster(NET, 2);
  let direct: ChildProcess | undefined;
  const directDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bench-direct-'));
  try {
    await cluster.startAll();
    await cluster.form('bench.local');
    const [n1] = cluster.nodes;
    // One shard on node 1; endpoints on both nodes: node 1's reaches it over its unix socket, node 2's over a link.
    const db = await createDb(n1, {
      name: 'bench',
      memory_size: 1 << 30,
      port: 12900,
      proxy_policy: 'all-nodes',
      data_internode_encryption: false,
    });
    const shardNode = cluster.nodes.find((n) => n.uidFromDisk === db.shards[0].node_uid)!;
    const otherNode = cluster.nodes.find((n) => n !== shardNode)!;
    direct = spawn(
      'redis-server',
      ['--bind', DIRECT.host, '--port', String(DIRECT.port), '--save', '', '--appendonly', 'no', '--dir', directDir],
      { stdio: 'ignore' },
    );
    await waitFor(
      'direct redis',
      async () => (await run('redis-cli', ['-h', DIRECT.host, '-p', String(DIRECT.port), 'PING'])).trim() === 'PONG',
    );
    // The client-TLS database: its endpoint on the node of its shard, compared with the plaintext one on the same terms.
    const clientCa = await createCa('bench-clients', 'bench');
    const client = await issueLocally(clientCa, { clusterId: 'bench', uid: 1, plane: 'cp', addr: '127.0.9.1', validitySeconds: 86_400 });
    const tlsDb = await createDb(n1, {
      name: 'bench-tls',
      memory_size: 1 << 30,
      port: 12901,
      proxy_policy: 'all-nodes',
      data_internode_encryption: false,
      tls_mode: 'enabled',
      authentication_ssl_client_certs: [{ client_cert: clientCa.certPem }],
    });
    const tlsShardNode = cluster.nodes.find((n) => n.uidFromDisk === tlsDb.shards[0].node_uid)!;
    const files = { cert: path.join(directDir, 'client.pem'), key: path.join(directDir, 'client.key') };
    fs.writeFileSync(files.cert, client.certPem);
    fs.writeFileSync(files.key, client.keyPem, { mode: 0o600 });
    const tlsArgs = [
      '--tls',
      '--cacert',
      path.join(tlsShardNode.dataDir, 'certs/services-ca.pem'),
      '--cert',
      files.cert,
      '--key',
      files.key,
    ];
    const nodePids = cluster.nodes.map((n) => n.proc!.pid!);
    const shardPids = (await run('pgrep', ['-f', `${shardNode.dataDir}/shards/`])).trim().split('\n').map(Number);
    const tlsShardPids = (await run('pgrep', ['-f', `${tlsShardNode.dataDir}/shards/`])).trim().split('\n').map(Number);

    const setEncryption = async (on: boolean) => {
      const r = await n1.api('PUT', `/v1/bdbs/${db.uid}`, { data_internode_encryption: on });
      if (r.status !== 200) throw new Error(JSON.stringify(r.body));
      await waitDbStatus(n1, db.uid, 'active');
    };

    type Key = string; // e.g. "remote-on P1"
    const results = new Map<Key, { rows: Row[]; cpu: number[] }>();
    const record = (k: Key, r: { row: Row; cpuUsPerOp: number }) => {
      const e = results.get(k) ?? { rows: [], cpu: [] };
      e.rows.push(r.row);
      e.cpu.push(r.cpuUsPerOp);
      results.set(k, e);
    };
    for (let round = 1; round <= ROUNDS; round++) {
      for (const P of PIPELINES) {
        record(`direct P${P}`, await benchmark(DIRECT.host, DIRECT.port, P, [direct.pid!]));
        // Paired: off then on, back to back, for each placement.
        for (const on of [false, true]) {
          await setEncryption(on);
          const mode = on ? 'on' : 'off';
          record(`local-${mode} P${P}`, await benchmark(shardNode.addr, db.port, P, [...nodePids, ...shardPids]));
          record(`remote-${mode} P${P}`, await benchmark(otherNode.addr, db.port, P, [...nodePids, ...shardPids]));
        }
        // Client side, back to back: the plaintext endpoint and the TLS one, each on the node of its shard.
        record(`client-plain P${P}`, await benchmark(shardNode.addr, db.port, P, [...nodePids, ...shardPids]));
        record(`client-tls P${P}`, await benchmark(tlsShardNode.addr, tlsDb.port, P, [...nodePids, ...tlsShardPids], tlsArgs));
      }
      process.stderr.write(`round ${round}/${ROUNDS} done\n`);
    }

    const med = (k: Key, t: 'SET' | 'GET', f: keyof Result) => median(results.get(k)!.rows.map((r) => r[t][f]));
    console.log(
      `Tessera data-plane benchmark: ${ROUNDS} rounds, redis-benchmark -n ${REQUESTS} -c ${CLIENTS} -d 64, medians; ${os.cpus().length} cores`,
    );
    console.log('config            test  P   ops/s      p50 ms  p99 ms  cpu µs/op');
    for (const k of results.keys()) {
      for (const t of ['SET', 'GET'] as const) {
        const P = k.split(' P')[1];
        console.log(
          `${k.split(' ')[0].padEnd(17)} ${t.padEnd(5)} ${P.padEnd(3)} ${med(k, t, 'rps').toFixed(0).padStart(8)}  ${med(k, t, 'p50').toFixed(3).padStart(6)}  ${med(k, t, 'p99').toFixed(3).padStart(6)}  ${median(results.get(k)!.cpu).toFixed(1).padStart(8)}`,
        );
      }
    }
    console.log('\nratios of median throughput');
    for (const P of PIPELINES) {
      for (const t of ['SET', 'GET'] as const) {
        const r = (a: Key, b: Key) => (med(a, t, 'rps') / med(b, t, 'rps')).toFixed(2);
        console.log(
          `P${P} ${t}: encrypted/plaintext remote ${r(`remote-on P${P}`, `remote-off P${P}`)}, local ${r(`local-on P${P}`, `local-off P${P}`)}; ` +
            `endpoint/direct local ${r(`local-off P${P}`, `direct P${P}`)}, remote ${r(`remote-off P${P}`, `direct P${P}`)}, remote encrypted ${r(`remote-on P${P}`, `direct P${P}`)}`,
        );
      }
    }
    // Client TLS: what encrypting the application's hop costs, from the interleaved pairs.
    console.log("\nclient TLS (tls_mode enabled, mutual TLS, TLS 1.3) against the plaintext endpoint, both on their shard's node");
    console.log('P   test  ops/s plain  ops/s TLS  TLS/plain (median)  per-round spread  cpu µs/op plain  TLS');
    for (const P of PIPELINES) {
      const plain = results.get(`client-plain P${P}`)!;
      const enc = results.get(`client-tls P${P}`)!;
      for (const t of ['SET', 'GET'] as const) {
        const ratios = enc.rows.map((r, i) => r[t].rps / plain.rows[i][t].rps);
        console.log(
          `${String(P).padEnd(3)} ${t.padEnd(5)} ${med(`client-plain P${P}`, t, 'rps').toFixed(0).padStart(10)}  ${med(`client-tls P${P}`, t, 'rps').toFixed(0).padStart(9)}  ${median(ratios).toFixed(2).padStart(18)}  ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`.padEnd(
            68,
          ) + `  ${median(plain.cpu).toFixed(1).padStart(8)}  ${median(enc.cpu).toFixed(1).padStart(6)}`,
        );
      }
    }
  } finally {
    direct?.kill('SIGTERM');
    await cluster.stop();
    fs.rmSync(directDir, { recursive: true, force: true });
  }
}

await main();
