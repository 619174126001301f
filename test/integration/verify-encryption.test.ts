// `tessera verify encryption` and GET /v1/nodes/{uid}/internode_links on a
// 3-node cluster (127.0.18.x) with an encrypted and a plaintext database,
// both sharded and replicated, under traffic through every endpoint: the
// report lists control links, proxy links and replication tunnels with what
// they negotiated, a packet capture agrees with it, --require-all names the
// plaintext database until it is switched to encryption; a node that does
// not answer makes it fail with one line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { TestCluster, type BdbJson, createDb, waitFor, shardCli, type CliResult } from '../support/cluster.js';
import { Capture, stopAllCaptures } from '../support/capture.js';
import type { VerifyReport, ReportedLink } from '../../src/cli/verify.js';
import type { NodeLinksReport } from '../../src/internode/links.js';

const NET = 18;
const cluster = new TestCluster(NET, 3);
const [n1, n2, n3] = cluster.nodes;
const nodeAddrs = new Set(cluster.nodes.map((n) => n.addr));
const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;
const capDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-verify-cap-'));
const ALLOWED_13 = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'];
let enc: BdbJson;
let plain: BdbJson;

const verify = (...args: string[]) => n1.cli(['verify', 'encryption', ...args]);
function parseJson(r: CliResult): VerifyReport {
  assert.ok(r.stdout.trim().startsWith('{'), `JSON on stdout: ${r.stdout.slice(0, 200)} ${r.stderr}`);
  return JSON.parse(r.stdout) as VerifyReport;
}

/** Values carrying `marker` through every node's endpoint of `db`: proxy links to remote shards, then replication, carry them. */
async function writeThroughEveryEndpoint(db: BdbJson, marker: string, count = 40): Promise<void> {
  for (const n of cluster.nodes) {
    const c = new Redis({ host: n.addr, port: db.port, maxRetriesPerRequest: 0 });
    try {
      for (let i = 0; i < count; i++) {
        const k = `v:${n.addr}:${i}`;
        await c.set(k, `${marker}-${i}`);
        assert.equal(await c.get(k), `${marker}-${i}`);
      }
    } finally {
      c.disconnect();
    }
  }
}

/** Every replica has caught up with its master (by key count). */
async function waitReplicated(db: BdbJson): Promise<void> {
  const count = (uid: number, node: number) => shardCli(nodeByUid(node), uid, ['DBSIZE']).then(Number);
  for (const rep of db.shards.filter((s) => s.role === 'slave')) {
    const master = db.shards.find((s) => s.uid === rep.master_uid)!;
    await waitFor(
      `replica ${rep.uid} caught up`,
      async () => (await count(rep.uid, rep.node_uid)) === (await count(master.uid, master.node_uid)),
      30_000,
    );
  }
}

/**
 * Is this byte stream (one direction of a connection) a chain of TLS records?
 * The capture may begin mid-record, so look for a start within one record's
 * reach from which valid headers (type 20-23, version 3.x, length <= 2^14+256)
 * cover the rest; the last record may be cut by the capture's end.
 */
function isTlsRecords(b: Buffer): boolean {
  if (b.length === 0) return true;
  const validAt = (i: number) =>
    i + 5 <= b.length && b[i] >= 20 && b[i] <= 23 && b[i + 1] === 3 && b[i + 2] <= 4 && b.readUInt16BE(i + 3) <= 16384 + 256;
  for (let start = 0; start < Math.min(b.length, 16384 + 261); start++) {
    let i = start;
    while (i < b.length && validAt(i)) i += 5 + b.readUInt16BE(i + 3);
    if (i >= b.length && i !== start) return true;
  }
  return false;
}

before(async () => {
  await cluster.startAll();
  await cluster.form('verify.test');
  const common = { memory_size: 100 << 20, shards_count: 2, sharding: true, replication: true, proxy_policy: 'all-nodes' };
  enc = await createDb(n1, { ...common, name: 'enc', port: 12180, data_internode_encryption: true }, 120_000);
  plain = await createDb(n1, { ...common, name: 'plain', port: 12181, data_internode_encryption: false }, 120_000);
  for (const db of [enc, plain]) {
    // Replicas sit on other nodes than their masters, so their tunnels cross nodes.
    for (const rep of db.shards.filter((s) => s.role === 'slave')) {
      await waitFor(
        `replica ${rep.uid} link up`,
        async () => /master_link_status:up/.test(await shardCli(nodeByUid(rep.node_uid), rep.uid, ['INFO', 'replication'])),
        60_000,
      );
    }
    await writeThroughEveryEndpoint(db, 'warmup', 10);
  }
});
after(async () => {
  await stopAllCaptures();
  await cluster.stop();
  fs.rmSync(capDir, { recursive: true, force: true });
});

test('verify encryption passes and lists control links, proxy links and replication tunnels: TLSv1.3 for the encrypted database, plaintext for the other', async () => {
  const t0 = Date.now();
  const text = await verify();
  console.log(`# verify encryption took ${Date.now() - t0} ms`);
  assert.equal(text.code, 0, text.stdout + text.stderr);
  assert.match(
    text.stdout,
    /^INTERNODE LINKS:\nNODE\s+SIDE\s+PEER\s+PURPOSE\s+DB\s+SHARD\s+PORT\s+PROTOCOL\s+CIPHER\s+GROUP\s+PEER_CERT\s+DAYS_LEFT\n/,
  );
  assert.match(
    text.stdout,
    /node:\d\s+dialed\s+node:\d\s+control\s+-\s+-\s+3342\s+TLSv1\.3\s+TLS_AES_\S+\s+X25519MLKEM768\s+[0-9a-f]+\s+\d+/,
  );
  assert.match(
    text.stdout,
    new RegExp(`node:\\d\\s+dialed\\s+node:\\d\\s+proxy\\s+db:${enc.uid}\\s+redis:\\d+\\s+3342\\s+TLSv1\\.3\\s+TLS_AES_`),
  );
  assert.match(
    text.stdout,
    new RegExp(`node:\\d\\s+dialed\\s+node:\\d\\s+replication\\s+db:${enc.uid}\\s+redis:\\d+→redis:\\d+\\s+3342\\s+TLSv1\\.3\\s+TLS_AES_`),
  );
  assert.match(
    text.stdout,
    new RegExp(`node:\\d\\s+accepted\\s+node:\\d\\s+replication\\s+db:${enc.uid}\\s+redis:\\d+→redis:\\d+\\s+3342\\s+TLSv1\\.3`),
  );
  assert.match(
    text.stdout,
    new RegExp(`node:\\d\\s+dialed\\s+node:\\d\\s+proxy\\s+db:${plain.uid}\\s+redis:\\d+\\s+3343\\s+plaintext\\s+-\\s+-\\s+-\\s+-`),
  );
  assert.match(
    text.stdout,
    new RegExp(`node:\\d\\s+dialed\\s+node:\\d\\s+replication\\s+db:${plain.uid}\\s+redis:\\d+→redis:\\d+\\s+3343\\s+plaintext`),
  );
  assert.match(text.stdout, /VERDICT: OK\. Every link carries what its database's setting says/);

  const r = parseJson(await verify('--json'));
  assert.equal(r.ok, true);
  assert.deepEqual(r.violations, []);
  assert.deepEqual(
    r.nodes.map((n) => n.uid),
    [1, 2, 3],
  );
  // Each end names the certificate the other node presents for that plane.
  const certs = (
    await n1.api<{ certificates: { node_uid: number; plane: string; serial: string; not_after: string }[] }>(
      'GET',
      '/v1/cluster/certificates',
    )
  ).body.certificates;
  const certOf = (uid: number, plane: string) => certs.find((c) => c.node_uid === uid && c.plane === plane)!;
  for (const l of r.links.filter((x) => x.protocol !== 'plaintext')) {
    const c = certOf(l.remote_uid!, l.purpose === 'control' ? 'cp' : 'dp');
    assert.equal(l.peer_cert_serial, c.serial, `${l.purpose} ${l.local_address} → ${l.remote_address}`);
    assert.equal(l.peer_cert_not_after, new Date(c.not_after).toISOString());
    assert.ok(
      Math.abs(l.peer_cert_days_left! - Math.floor((Date.parse(c.not_after) - Date.now()) / 86_400_000)) <= 1,
      `days left ${l.peer_cert_days_left}`,
    );
  }
  const of = (pred: (l: ReportedLink) => boolean) => r.links.filter(pred);
  const control = of((l) => l.purpose === 'control');
  assert.ok(control.some((l) => l.side === 'dialed') && control.some((l) => l.side === 'accepted'), 'control links, both ends');
  // Every node probes every other: a control link each way between each pair, seen by both ends.
  for (const a of [1, 2, 3])
    for (const b of [1, 2, 3])
      if (a !== b)
        assert.ok(
          control.some((l) => l.local_uid === a && l.remote_uid === b && l.side === 'dialed'),
          `control ${a} → ${b}`,
        );
  for (const l of control) assert.equal(l.protocol, 'TLSv1.3');

  for (const purpose of ['proxy', 'replication'] as const) {
    const e = of((l) => l.bdb_uid === enc.uid && l.purpose === purpose);
    const p = of((l) => l.bdb_uid === plain.uid && l.purpose === purpose);
    assert.ok(
      e.some((l) => l.side === 'dialed') && e.some((l) => l.side === 'accepted'),
      `${purpose} links of the encrypted db, both ends`,
    );
    assert.ok(
      p.some((l) => l.side === 'dialed') && p.some((l) => l.side === 'accepted'),
      `${purpose} links of the plaintext db, both ends`,
    );
    for (const l of e) {
      assert.equal(l.protocol, 'TLSv1.3', `${purpose} ${l.local_address} → ${l.remote_address}`);
      assert.ok(ALLOWED_13.includes(l.cipher!), String(l.cipher));
      assert.equal(l.channel_port, 3342);
      assert.ok(l.peer_cert_days_left! > 0);
      assert.equal(l.peer_cert_denied, false);
      if (l.side === 'dialed' || l.peer_end_reported) assert.equal(l.group, 'X25519MLKEM768');
    }
    for (const l of p) {
      assert.equal(l.protocol, 'plaintext');
      assert.equal(l.channel_port, 3343);
      assert.equal(l.cipher, null);
      assert.equal(l.peer_cert_serial, null);
      assert.notEqual(l.remote_uid, null, 'the plaintext peer is known by its address');
    }
  }
  // Replication tunnels run from the replica's node to its master's.
  for (const db of [enc, plain]) {
    for (const rep of db.shards.filter((s) => s.role === 'slave')) {
      const master = db.shards.find((s) => s.uid === rep.master_uid)!;
      const t = of((l) => l.purpose === 'replication' && l.side === 'dialed' && l.replica_shard_uid === rep.uid);
      assert.equal(t.length, 1, `one tunnel for replica ${rep.uid}`);
      assert.equal(t[0].shard_uid, master.uid);
      assert.equal(t[0].local_uid, rep.node_uid);
      assert.equal(t[0].remote_uid, master.node_uid);
    }
  }
  assert.deepEqual(
    r.databases.map((d) => [d.uid, d.data_internode_encryption, d.plaintext_connections > 0, d.tls_connections > 0]),
    [
      [enc.uid, true, false, true],
      [plain.uid, false, true, false],
    ],
  );
});

test('--require-all fails naming the plaintext database; db scope and errors', async () => {
  const all = await verify('--require-all');
  assert.equal(all.code, 1, all.stdout + all.stderr);
  assert.match(
    all.stdout,
    new RegExp(
      `VERDICT: FAILED\\. 1 violation.*\\n  - db:${plain.uid} \\(plain\\): data crosses nodes in plaintext \\(data_internode_encryption is disabled; \\d+ plaintext connection`,
    ),
  );
  assert.doesNotMatch(all.stdout, new RegExp(`  - db:${enc.uid} `));
  const j = parseJson(await verify('--require-all', '--json'));
  assert.equal(j.ok, false);
  assert.deepEqual(
    j.violations.map((v) => [v.kind, v.bdb_uid]),
    [['plaintext_database', plain.uid]],
  );

  const scoped = await verify('db', String(enc.uid), '--require-all');
  assert.equal(scoped.code, 0, scoped.stdout + scoped.stderr);
  assert.doesNotMatch(scoped.stdout, new RegExp(`db:${plain.uid}\\b`), 'the other database is left out');
  const byName = await verify('db', 'plain', '--require-all');
  assert.equal(byName.code, 1);

  const unknown = await verify('db', '999');
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stdout, '');
  assert.equal(unknown.stderr.trim().split('\n').length, 1);
  assert.match(unknown.stderr, /^error: cannot verify encryption: .*999/);
  const bad = await verify('shard', '1');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unexpected word 'shard'/);
});

test('GET /v1/nodes/{uid}/internode_links: every node answers, through any node; an unknown node is a 404', async () => {
  for (const asker of [n1, n3]) {
    for (const uid of [1, 2, 3]) {
      const r = await asker.api<NodeLinksReport>('GET', `/v1/nodes/${uid}/internode_links`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.uid, uid);
      assert.equal(r.body.addr, nodeByUid(uid).addr);
      assert.ok(r.body.links.length > 0);
      assert.ok(r.body.links.every((l) => l.local_uid === uid));
      assert.ok(r.body.links.some((l) => l.purpose === 'control' && l.side === 'accepted'));
    }
  }
  const missing = await n2.api<{ error_code: string; description: string }>('GET', '/v1/nodes/99/internode_links');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error_code, 'node_not_found');
  assert.match(missing.body.description, /node 99 does not exist/);
  const bad = await n2.api<{ error_code: string }>('GET', '/v1/nodes/abc/internode_links');
  assert.equal(bad.status, 400);
});

test('a packet capture agrees: each reported link is where the capture sees its stream, TLS on 3342, clear on 3343 with the values of the plaintext database', async () => {
  const cap = new Capture(path.join(capDir, 'links.pcap'), `tcp and net 127.0.${NET}.0/24`);
  await cap.start();
  const encMarker = randomBytes(8).toString('hex');
  const plainMarker = randomBytes(8).toString('hex');
  await writeThroughEveryEndpoint(enc, encMarker);
  await writeThroughEveryEndpoint(plain, plainMarker);
  await waitReplicated(enc);
  await waitReplicated(plain);
  await cap.stop();
  const r = parseJson(await verify('--json'));
  assert.equal(r.ok, true);

  // Streams between nodes on the internode ports, keyed dialer → listener.
  const streams = new Map<string, { toListener: Buffer[]; toDialer: Buffer[] }>();
  // The control RPC dials without binding the node's address, so on loopback it leaves from 127.0.0.1.
  for (const p of await cap.payloadsBetween(new Set([...nodeAddrs, '127.0.0.1']))) {
    const listenerIsDst = p.dport === 3342 || p.dport === 3343;
    if (!listenerIsDst && p.sport !== 3342 && p.sport !== 3343) continue; // etcd and the rest
    const k = listenerIsDst ? `${p.src}:${p.sport}>${p.dst}:${p.dport}` : `${p.dst}:${p.dport}>${p.src}:${p.sport}`;
    if (!streams.has(k)) streams.set(k, { toListener: [], toDialer: [] });
    streams.get(k)![listenerIsDst ? 'toListener' : 'toDialer'].push(p.data);
  }
  assert.ok(streams.size > 0, 'internode traffic captured');
  const dialed = new Map(r.links.filter((l) => l.side === 'dialed').map((l) => [`${l.local_address}>${l.remote_address}`, l]));
  const seen = { proxyPlain: 0, replPlain: 0, tls: new Set<string>() };
  for (const [k, s] of streams) {
    const l = dialed.get(k);
    assert.ok(l, `captured stream ${k} is a reported link (reported: ${[...dialed.keys()].join(', ')})`);
    const up = Buffer.concat(s.toListener);
    const down = Buffer.concat(s.toDialer);
    assert.ok(!up.includes(encMarker) && !down.includes(encMarker), `the encrypted database's values never cross in clear (${k})`);
    if (l.protocol === 'plaintext') {
      assert.equal(l.channel_port, 3343);
      assert.ok(k.endsWith(':3343'), k);
      assert.equal(l.bdb_uid, plain.uid);
      // A proxy link carries SETs to the shard; a tunnel carries the master's stream back to the replica.
      if (l.purpose === 'proxy' && up.includes(plainMarker)) seen.proxyPlain++;
      if (l.purpose === 'replication' && down.includes(plainMarker)) seen.replPlain++;
    } else {
      assert.ok(k.endsWith(':3342'), k);
      assert.equal(l.protocol, 'TLSv1.3');
      for (const b of [up, down]) assert.ok(isTlsRecords(b), `TLS records both ways on ${k}`);
      seen.tls.add(l.purpose);
      if (l.bdb_uid !== null) assert.equal(l.bdb_uid, enc.uid);
    }
  }
  assert.ok(seen.proxyPlain > 0, "a plaintext proxy link carried the plaintext database's values");
  assert.ok(seen.replPlain > 0, "a plaintext replication tunnel carried the plaintext database's values");
  for (const p of ['control', 'proxy', 'replication']) assert.ok(seen.tls.has(p), `a TLS ${p} link carried traffic`);
});

test('after switching the plaintext database to encryption, --require-all passes', async () => {
  const t = await n2.cli(['tune', 'db', String(plain.uid), 'data_internode_encryption', 'enabled']);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /Finished successfully/);
  const switched = Date.now();
  await writeThroughEveryEndpoint(plain, 'after-switch', 10);
  // Plaintext links of the old generation close once drained; until then they are violations, rightly.
  let last: CliResult | undefined;
  await waitFor(
    'verify --require-all passes',
    async () => {
      last = await verify('--require-all');
      return last.code === 0;
    },
    90_000,
    1000,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${last?.stdout}\n${last?.stderr}`);
  });
  console.log(`# --require-all passed ${Date.now() - switched} ms after the switch finished`);
  assert.match(last!.stdout, /No database's data crosses nodes in plaintext/);
  const r = parseJson(await verify('--require-all', '--json'));
  assert.equal(r.ok, true);
  const links = r.links.filter((l) => l.bdb_uid === plain.uid);
  assert.ok(links.some((l) => l.purpose === 'proxy') && links.some((l) => l.purpose === 'replication'));
  for (const l of links) {
    assert.equal(l.protocol, 'TLSv1.3');
    assert.equal(l.channel_port, 3342);
  }
});

test('a node that does not answer: one clear line, exit 2', async () => {
  await n3.kill('SIGKILL');
  const r = await verify();
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(
    r.stderr,
    new RegExp(
      `^error: cannot verify encryption: node ${n3.uidFromDisk} \\(127\\.0\\.18\\.3\\) is unreachable: .*\\(node_unreachable\\)$`,
      'm',
    ),
  );
});
