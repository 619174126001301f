// Certificate lifecycle on a real 3-node cluster (127.0.7.1-3): on-demand and
// scheduled rotation (settings in fractions of days, so seconds), rotation
// under load, the expiry alert and metric, a node that was down at its
// renewal time, and removal of a node revoking its certificates.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import { Redis } from 'ioredis';
import { execFileSync } from 'node:child_process';
import { TestCluster, type TestNode, createDb, waitDbStatus, waitFor, sleep } from '../support/cluster.js';
import { etcdClient, etcdPaths } from '../../src/coord/etcd.js';
import { KEYS, type DenyRecord } from '../../src/coord/schema.js';
import { normalizeSerial } from '../../src/pki/pki.js';
import { rsaKeys, ecKeys, keyPem, makeHierarchy, makeLeaf } from '../support/pki-hierarchy.js';

const cluster = new TestCluster(7, 3);
const [n1, n2, n3] = cluster.nodes;

before(async () => {
  await cluster.startAll();
  await cluster.form('life.test');
});
after(async () => {
  await cluster.stop();
});

function serialOnDisk(n: TestNode, plane: 'cp' | 'dp'): string {
  return new X509Certificate(fs.readFileSync(path.join(n.dataDir, 'certs', `${plane}.pem`))).serialNumber;
}
function secondsLeftOnDisk(n: TestNode, plane: 'cp' | 'dp'): number {
  return (Date.parse(new X509Certificate(fs.readFileSync(path.join(n.dataDir, 'certs', `${plane}.pem`))).validTo) - Date.now()) / 1000;
}
const allSerials = () => cluster.nodes.flatMap((n) => [serialOnDisk(n, 'cp'), serialOnDisk(n, 'dp')]);

/** Serial of the certificate a node presents on 3342 for a plane, as a member sees it. */
function presentedSerial(target: TestNode, plane: 'cp' | 'dp', as: TestNode): Promise<string> {
  const dir = path.join(as.dataDir, 'certs');
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: target.addr,
      port: 3342,
      cert: fs.readFileSync(path.join(dir, `${plane}.pem`)),
      key: fs.readFileSync(path.join(dir, `${plane}.key`)),
      ca: fs.readFileSync(path.join(dir, 'ca.pem')),
      servername: `${plane}.tessera.internal`,
      ALPNProtocols: [`tessera-${plane}/1`],
      checkServerIdentity: () => undefined,
    });
    s.once('secureConnect', () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.once('error', reject);
  });
}

interface Creds {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}
/** A node's cp credentials, read now (a removed node wipes its own). */
function cpCreds(n: TestNode): Creds {
  const dir = path.join(n.dataDir, 'certs');
  return {
    cert: fs.readFileSync(path.join(dir, 'cp.pem')),
    key: fs.readFileSync(path.join(dir, 'cp.key')),
    ca: fs.readFileSync(path.join(dir, 'ca.pem')),
  };
}
/** Open a cp connection to a node's 3342 with these credentials: the socket, or the handshake's error. */
function connectAs(target: TestNode, creds: Creds): Promise<tls.TLSSocket | Error> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: target.addr,
      port: 3342,
      ...creds,
      servername: 'cp.tessera.internal',
      ALPNProtocols: ['tessera-cp/1'],
      checkServerIdentity: () => undefined,
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', (e) => resolve(e));
  });
}
/** One control RPC (`status`) on an open link: the reply line, or '' if the link closed first. */
function rpcStatus(s: tls.TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    s.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out);
    });
    s.on('close', () => resolve(out));
    s.on('error', () => s.destroy());
    s.write(JSON.stringify({ id: 1, method: 'status', params: {} }) + '\n');
  });
}
async function controlLink(from: TestNode, uid: number): Promise<string> {
  return (await from.api<{ control_plane_link: string }>('GET', `/v1/nodes/${uid}`)).body.control_plane_link;
}

// First, before any rotation: a link dialed before a rotation stays on the
// older (still valid) certificate, whose serial this test does not deny.
test("a member's certificate on the deny list is refused on 3342 while it is still a member; live links (accepted and dialed) close within 5 s; logged as revoked", async () => {
  const creds = cpCreds(n3);
  const serial = normalizeSerial(new X509Certificate(creds.cert).serialNumber);
  const live = await connectAs(n1, creds);
  assert.ok(!(live instanceof Error), String(live));
  assert.match(await rpcStatus(live), /"uptime"/, 'the link works before the serial is denied');
  const closed = new Promise<number>((resolve) => live.once('close', () => resolve(Date.now())));
  await waitFor('node 1 reaches node 3 over the control plane', async () => (await controlLink(n1, 3)) === 'ok', 15_000);
  const logFrom = fs.statSync(n1.logFile).size;

  // Straight into the store, as node removal does, but node 3 stays a member: the deny list is the only reason left.
  const store = etcdClient(n1.addr, 3341, etcdPaths(n1.dataDir));
  try {
    const rec: DenyRecord = { serial, node_uid: 3, plane: 'cp', time: new Date().toISOString() };
    const t0 = Date.now();
    await store.put(KEYS.deny(serial)).value(JSON.stringify(rec));
    const closedAt = await Promise.race([closed, sleep(10_000).then(() => Infinity)]);
    assert.ok(closedAt - t0 < 5000, `accepted live link closed after ${closedAt - t0} ms`);
    assert.deepEqual(
      (await n1.api<{ uid: number }[]>('GET', '/v1/nodes')).body.map((n) => n.uid),
      [1, 2, 3],
      'node 3 is still a member',
    );

    // New connections with the denied certificate: refused by both other nodes.
    for (const target of [n1, n2]) {
      const s = await connectAs(target, creds);
      if (s instanceof Error) continue; // refused during the handshake
      assert.equal(await rpcStatus(s), '', `${target.addr} answers nothing to a denied certificate`);
    }
    // Node 1's own dialed control link to node 3 (node 3 presents the denied certificate) is cut and stays cut.
    await waitFor(
      'node 1 no longer trusts node 3 on the control plane',
      async () => (await controlLink(n1, 3)) === 'unreachable',
      5000,
      100,
    );
    await sleep(2500);
    assert.equal(await controlLink(n1, 3), 'unreachable');
    const log = fs.readFileSync(n1.logFile, 'utf8').slice(logFrom);
    assert.match(log, new RegExp(`certificate ${serial} is revoked`));
    assert.doesNotMatch(log, /node 3 is not a member/);
  } finally {
    await store.delete().key(KEYS.deny(serial));
    store.close();
  }
  // Off the list again: node 3 is trusted again, with nothing restarted.
  await waitFor('node 1 reaches node 3 again', async () => (await controlLink(n1, 3)) === 'ok', 15_000);
  const again = await connectAs(n2, creds);
  assert.ok(!(again instanceof Error), String(again));
  assert.match(await rpcStatus(again), /"uptime"/);
  again.destroy();
});

test('rotate renews cp and dp on every node: serials, files and what 3342 presents all change', async () => {
  const before = allSerials();
  const r = await n2.api<{ nodes: { node_uid: number; ok: boolean }[]; action_uid: string }>('POST', '/v1/cluster/certificates/rotate', {});
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.nodes.length, 3);
  const after = allSerials();
  for (let i = 0; i < before.length; i++) assert.notEqual(after[i], before[i], `certificate ${i} renewed`);
  // The rotation was an action: every node's renewal is a step, naming the serial now on its disk.
  const a = await n3.api<{ name: string; status: string; progress: number; steps: string[] }>('GET', `/v1/actions/${r.body.action_uid}`);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(a.body.name, 'rotate_certificates');
  assert.equal(a.body.status, 'completed');
  assert.equal(a.body.progress, 100);
  const norm = (x: string) => x.toLowerCase().replace(/^0+/, '');
  for (const n of cluster.nodes) {
    const step = a.body.steps.find((x) => x.includes(`node ${n.uidFromDisk} renewed`));
    assert.ok(step, `a step for node ${n.uidFromDisk}: ${JSON.stringify(a.body.steps)}`);
    assert.ok(step.includes(`ccs_internode_encryption (serial ${norm(serialOnDisk(n, 'cp'))})`), step);
    assert.ok(step.includes(`data_internode_encryption (serial ${norm(serialOnDisk(n, 'dp'))})`), step);
  }
  assert.equal(await presentedSerial(n1, 'dp', n2), serialOnDisk(n1, 'dp'));
  assert.equal(await presentedSerial(n3, 'cp', n1), serialOnDisk(n3, 'cp'));
  // Only the named plane with a name; the CLI says the same thing.
  const cpBefore = cluster.nodes.map((n) => serialOnDisk(n, 'cp'));
  const dpBefore = cluster.nodes.map((n) => serialOnDisk(n, 'dp'));
  const cli = await n1.cli(['cluster', 'certificate', 'rotate', 'data_internode_encryption']);
  assert.equal(cli.code, 0, cli.stderr);
  for (const n of cluster.nodes)
    assert.match(cli.stdout, new RegExp(`node ${n.uidFromDisk} renewed data_internode_encryption \\(serial `), cli.stdout);
  assert.deepEqual(
    cluster.nodes.map((n) => serialOnDisk(n, 'cp')),
    cpBefore,
  );
  assert.ok(cluster.nodes.every((n, i) => serialOnDisk(n, 'dp') !== dpBefore[i]));
  // As the reference: an unknown name is 403; a body that is not an object, or an unknown field, 400.
  const bad = await n1.api<{ error_code: string }>('POST', '/v1/cluster/certificates/rotate', { name: 'bogus' });
  assert.equal(bad.status, 403);
  assert.equal(bad.body.error_code, 'unknown_certificate');
  assert.equal((await n1.api('POST', '/v1/cluster/certificates/rotate', { name: 'dp', extra: 1 })).status, 400);
  // The reference's exact call has no body at all: both planes rotate.
  const cpMid = cluster.nodes.map((n) => serialOnDisk(n, 'cp'));
  const nobody = await n1.api<{ rotated: string[] }>('POST', '/v1/cluster/certificates/rotate');
  assert.equal(nobody.status, 200, JSON.stringify(nobody.body));
  assert.equal(nobody.body.rotated.length, 2);
  assert.ok(
    cluster.nodes.every((n, i) => serialOnDisk(n, 'cp') !== cpMid[i]),
    'no body: the control-plane certificates were renewed too',
  );
  // The cluster's view matches the files.
  const certs = await n3.api<{ certificates: { node_uid: number; plane: string; serial: string }[] }>('GET', '/v1/cluster/certificates');
  for (const c of certs.body.certificates) {
    const n = cluster.nodes.find((x) => x.uidFromDisk === c.node_uid)!;
    assert.equal(
      c.serial,
      serialOnDisk(n, c.plane as 'cp' | 'dp')
        .toLowerCase()
        .replace(/^0+/, ''),
    );
  }
});

test('job_scheduler settings are validated', async () => {
  const r = await n1.api<{ error_code: string }>('PUT', '/v1/job_scheduler', {
    cert_rotation_job_settings: { validity_days: 1, expiry_days_before_rotation: 2 },
  });
  assert.equal(r.status, 400);
  assert.equal(r.body.error_code, 'invalid_schedule');
  const t = await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { validity_days: 'x' } });
  assert.equal(t.status, 400);
  const u = await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { bogus: 1 } });
  assert.equal(u.status, 400);
  const g = await n2.api<{ cert_rotation_job_settings: { enabled: boolean; validity_days: number; expiry_days_before_rotation: number } }>(
    'GET',
    '/v1/job_scheduler',
  );
  assert.deepEqual(g.body.cert_rotation_job_settings, { enabled: true, validity_days: 90, expiry_days_before_rotation: 60 });
});

test('scheduled renewal again and again, under load with encryption on: zero failed commands, no dropped connection', async () => {
  const db = await createDb(n1, {
    name: 'rot',
    memory_size: 100 << 20,
    shards_count: 3,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    data_internode_encryption: true,
    port: 12300,
  });
  // validity 0.0006 d ≈ 52 s; renew when < 0.0004 d ≈ 35 s are left: every ≈ 17 s.
  const s = await n1.api('PUT', '/v1/job_scheduler', {
    cert_rotation_job_settings: { validity_days: 0.0006, expiry_days_before_rotation: 0.0004 },
  });
  assert.equal(s.status, 200);
  const r = await n1.api('POST', '/v1/cluster/certificates/rotate', {}); // issue short-lived certificates now
  assert.equal(r.status, 200);
  assert.ok(secondsLeftOnDisk(n2, 'dp') < 56);

  const clients = cluster.nodes.map(
    (n) =>
      new Redis({
        host: n.addr,
        port: db.port,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        retryStrategy: () => null,
        lazyConnect: true,
      }),
  );
  let closes = 0;
  let errors = 0;
  let rounds = 0;
  await Promise.all(clients.map((c) => c.connect()));
  clients.forEach((c) => c.on('close', () => closes++));
  let running = true;
  const loops = clients.map(async (c, i) => {
    let n = 0;
    while (running) {
      try {
        await c.set(`rot:${i}:${n % 100}`, String(n));
        if ((await c.get(`rot:${i}:${n % 100}`)) !== String(n)) errors++;
        rounds++;
        n++;
      } catch (err) {
        if (errors++ < 3) console.log(`# load error on client ${i}: ${(err as Error).message}`);
        await sleep(20);
      }
    }
  });

  // Watch node 2's dp serial change by schedule, twice.
  const seen = new Set<string>([serialOnDisk(n2, 'dp')]);
  const cpSeen = new Set<string>([serialOnDisk(n1, 'cp')]);
  await waitFor(
    'two scheduled renewals',
    async () => {
      seen.add(serialOnDisk(n2, 'dp'));
      cpSeen.add(serialOnDisk(n1, 'cp'));
      return seen.size >= 3 && cpSeen.size >= 3;
    },
    120_000,
    500,
  );
  running = false;
  await Promise.all(loops);
  clients.forEach((c) => c.disconnect());
  assert.equal(errors, 0, 'no failed command across rotations');
  assert.equal(closes, 0, 'no client connection dropped');
  assert.ok(rounds > 200, `load ran: ${rounds}`);
  const log = fs.readFileSync(n2.logFile, 'utf8');
  assert.match(log, /"why":"schedule"[^\n]*internode certificate renewed|internode certificate renewed[^\n]*"why":"schedule"/);
});

test('a node stopped across its renewal time renews as soon as it restarts', async () => {
  // Certificates now renew when fewer than ≈ 35 s of ≈ 52 are left.
  await n3.kill('SIGTERM');
  // Read what the stopped node holds, then wait past the time it was due.
  const due = secondsLeftOnDisk(n3, 'cp') - 35;
  const serial = serialOnDisk(n3, 'cp');
  // Meanwhile a rotation of every node: the stopped node is reported, not waited for; the others renew.
  const others = [n1, n2].map((n) => serialOnDisk(n, 'dp'));
  const [rot] = await Promise.all([
    n1.api<{
      error_code: string;
      description: string;
      failed_nodes: { node_uid: number; ok: boolean; error: string }[];
      action_uid: string;
    }>('POST', '/v1/cluster/certificates/rotate', { name: 'data_internode_encryption' }),
    sleep(Math.max(0, due * 1000) + 3000),
  ]);
  assert.equal(rot.status, 400, JSON.stringify(rot.body));
  assert.equal(rot.body.error_code, 'rotation_incomplete');
  assert.deepEqual(
    rot.body.failed_nodes.map((f) => f.node_uid),
    [n3.uidFromDisk],
  );
  assert.match(rot.body.failed_nodes[0].error, /is down/);
  assert.match(rot.body.description, new RegExp(`not renewed on node\\(s\\) ${n3.uidFromDisk}\\b`));
  assert.ok(
    [n1, n2].every((n, i) => serialOnDisk(n, 'dp') !== others[i]),
    'the live nodes renewed',
  );
  const failedAction = await n2.api<{ status: string; error: string }>('GET', `/v1/actions/${rot.body.action_uid}`);
  assert.equal(failedAction.body.status, 'failed');
  assert.match(failedAction.body.error, /is down/);
  assert.equal(serialOnDisk(n3, 'cp'), serial, 'no renewal while stopped');
  const t0 = Date.now();
  await n3.start();
  await waitFor('renewed after restart', async () => serialOnDisk(n3, 'cp') !== serial, 20_000, 200);
  assert.ok(Date.now() - t0 < 20_000);
  await waitFor(
    'n3 active',
    async () => (await n1.api<{ status: string }[]>('GET', '/v1/nodes')).body.every((n) => n.status === 'active'),
    30_000,
  );
});

function metric(n: TestNode): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(
        {
          host: n.addr,
          port: 8070,
          path: '/metrics',
          ca: fs.readFileSync(path.join(n.dataDir, 'certs/services-ca.pem')),
          checkServerIdentity: () => undefined,
        },
        (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve(body));
        },
      )
      .on('error', reject);
  });
}

test('with rotation disabled the expiry alert rises on every node and clears when rotation is enabled again; the metric reports seconds left', async () => {
  // Longer-lived certificates than the tests above (≈ 104 s, renewed below ≈ 69 s left), so that
  // none expires between the alert rising on the first node and on the last.
  await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { validity_days: 0.0012, expiry_days_before_rotation: 0.0008 } });
  assert.equal((await n1.api('POST', '/v1/cluster/certificates/rotate', {})).status, 200);
  await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { enabled: false } });
  // Threshold 0.0007 d ≈ 60 s, below the ≈ 69 s at which renewal happens: only a certificate
  // that is not renewed falls under it.
  const a = await n2.api('PUT', '/v1/cluster', {
    alert_settings: { node_internal_certs_about_to_expire: { enabled: true, threshold: 0.0007 } },
  });
  assert.equal(a.status, 200);
  type Alerts = Record<
    string,
    {
      node_internal_certs_about_to_expire?: {
        state: boolean;
        threshold: number;
        change_value: { seconds_left?: number; certificate?: string };
      };
    }
  >;
  const raised = await waitFor(
    'alert on every node',
    async () => {
      const r = await n3.api<Alerts>('GET', '/v1/nodes/alerts');
      const all = Object.values(r.body);
      return all.length === 3 &&
        all.every((x) => x.node_internal_certs_about_to_expire?.state && x.node_internal_certs_about_to_expire.threshold === 0.0007)
        ? r.body
        : undefined;
    },
    90_000,
    500,
  );
  for (const x of Object.values(raised))
    assert.ok((x.node_internal_certs_about_to_expire!.change_value.seconds_left ?? 1e9) <= 61, JSON.stringify(x));
  const one = await n1.api<{ node_internal_certs_about_to_expire: { state: boolean; severity: string } }>('GET', `/v1/nodes/2/alerts`);
  assert.equal(one.body.node_internal_certs_about_to_expire.state, true);
  const st = await n1.cli(['status']);
  assert.match(st.stdout, /node_internal_certs_about_to_expire/);

  const text = await metric(n1);
  const m = /^node_cert_expires_in_seconds\{node="2",name="data_internode_encryption"\} (-?\d+)$/m.exec(text);
  assert.ok(m, text.slice(0, 500));
  const left = Number(m![1]);
  assert.ok(Math.abs(left - secondsLeftOnDisk(n2, 'dp')) < 5, `metric ${left} vs file ${secondsLeftOnDisk(n2, 'dp')}`);

  await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { enabled: true } });
  // Renewal gives ≈ 104 s again, above the ≈ 60 s threshold: the alert clears.
  await waitFor(
    'alert cleared everywhere',
    async () => {
      const r = await n2.api<Alerts>('GET', '/v1/nodes/alerts');
      return Object.values(r.body).every((x) => x.node_internal_certs_about_to_expire && !x.node_internal_certs_about_to_expire.state);
    },
    60_000,
    500,
  );
  // Back to defaults so nothing renews during the last test.
  await n1.api('PUT', '/v1/job_scheduler', { cert_rotation_job_settings: { validity_days: 90, expiry_days_before_rotation: 60 } });
  await n1.api('PUT', '/v1/cluster', { alert_settings: { node_internal_certs_about_to_expire: { threshold: 45 } } });
  await n1.api('POST', '/v1/cluster/certificates/rotate', {});
});

test('operator-provided certificates with a 3-level chain are accepted and used; bad ones are refused with the reason and nothing applied', async () => {
  const keys = await rsaKeys(6);
  const { root, cas } = await makeHierarchy('Acme', 2, keys); // root → intermediate 1 → intermediate 2 → leaves
  const leaves = await Promise.all(cluster.nodes.map((_, i) => makeLeaf(cas[1], `node${i + 1}-dp`, keys[3 + i])));
  const pem = (e: { pem: string }) => e.pem.trim() + '\n';
  const chainOf = (leaf: { pem: string }) => [leaf, cas[0], cas[1], root].map(pem).join(''); // intermediates out of order on purpose
  const certs = await Promise.all(
    leaves.map(async (leaf, i) => ({
      name: 'data_internode_encryption',
      certificate: chainOf(leaf),
      key: await keyPem(leaf.keys),
      node_uid: i + 1,
    })),
  );
  const dpBefore = cluster.nodes.map((n) => serialOnDisk(n, 'dp'));

  // Refused, each with its reason, and nothing applied.
  const [ecK] = [await ecKeys()];
  const noClient = await makeLeaf(cas[1], 'noclient', keys[3], { eku: ['1.3.6.1.5.5.7.3.1'] });
  const ecdsa = await makeLeaf(cas[1], 'ecdsa', ecK);
  const expired = await makeLeaf(cas[1], 'expired', keys[4], {
    notBefore: new Date(Date.now() - 20 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
  });
  const bad: [unknown, RegExp][] = [
    [{ ...certs[0], certificate: chainOf(noClient), key: await keyPem(keys[3]) }, /eku_client_auth/],
    [{ ...certs[0], certificate: chainOf(ecdsa), key: await keyPem(ecK) }, /key_type/],
    [{ ...certs[0], certificate: chainOf(expired), key: await keyPem(keys[4]) }, /expired/],
    [{ ...certs[0], key: await keyPem(keys[5]) }, /key_mismatch/],
  ];
  for (const [c, reason] of bad) {
    const r = await n1.api<{ error_code: string; description: string }>('PUT', '/v1/cluster/certificates', { certificates: [certs[1], c] });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error_code, 'invalid_certificate');
    assert.match(r.body.description, reason);
  }
  assert.deepEqual(
    cluster.nodes.map((n) => serialOnDisk(n, 'dp')),
    dpBefore,
    'nothing applied',
  );

  const ok = await n2.api<{ certificates: { node_uid: number; serial: string }[] }>('PUT', '/v1/cluster/certificates', {
    certificates: certs,
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const norm = (x: string) => x.toLowerCase().replace(/^0+/, '');
  for (const [i, n] of cluster.nodes.entries())
    assert.equal(norm(serialOnDisk(n, 'dp')), norm(leaves[i].cert.serialNumber), `node ${i + 1} uses its new certificate`);

  // openssl, holding node 2's new certificate, reaches node 1's data plane: both sides verify the 3-level chain.
  const dir = fs.mkdtempSync(path.join(cluster.root, 'cust-'));
  fs.writeFileSync(path.join(dir, 'leaf.pem'), leaves[1].pem);
  fs.writeFileSync(path.join(dir, 'chain.pem'), pem(cas[1]) + pem(cas[0]));
  fs.writeFileSync(path.join(dir, 'key.pem'), certs[1].key);
  fs.writeFileSync(path.join(dir, 'root.pem'), root.pem);
  const out = execFileSync('sh', [
    '-c',
    `printf '' | timeout 5 openssl s_client -connect ${n1.addr}:3342 -cert ${dir}/leaf.pem -cert_chain ${dir}/chain.pem -key ${dir}/key.pem -CAfile ${dir}/root.pem -alpn tessera-dp/1 -servername dp.tessera.internal 2>&1 || true`,
  ]).toString();
  assert.match(out, /Verify return code: 0 \(ok\)/);
  assert.match(out, /subject=CN = node1-dp, O = Tessera Test/);
  assert.match(out, /ALPN protocol: tessera-dp\/1/);

  // Data still crosses nodes, on links made with the new certificates.
  const dbs = await n1.api<{ uid: number; port: number }[]>('GET', '/v1/bdbs');
  const db = dbs.body[0];
  await n1.api('PUT', `/v1/bdbs/${db.uid}`, { data_internode_encryption: false });
  await waitDbStatus(n1, db.uid, 'active');
  await n1.api('PUT', `/v1/bdbs/${db.uid}`, { data_internode_encryption: true });
  await waitDbStatus(n1, db.uid, 'active');
  const c = new Redis({ host: n3.addr, port: db.port, maxRetriesPerRequest: 0 });
  for (let i = 0; i < 30; i++) await c.set(`cust:${i}`, String(i));
  assert.equal(await c.get('cust:29'), '29');
  c.disconnect();
});

test("a removed node's certificates are refused on 3342 of the remaining nodes, and its live links are closed", async () => {
  // Delete the databases first: this test is about certificates (removing a
  // node with shards, which migrate away first, is in shard-ops.test.ts).
  const dbs = await n1.api<{ uid: number }[]>('GET', '/v1/bdbs');
  for (const d of dbs.body) await n1.api('DELETE', `/v1/bdbs/${d.uid}`);
  await waitFor('databases gone', async () => (await n1.api<unknown[]>('GET', '/v1/bdbs')).body.length === 0, 60_000);

  // Keep node 3's credentials: the node wipes them itself once it is removed.
  const creds = cpCreds(n3);
  const live = await connectAs(n1, creds);
  assert.ok(!(live instanceof Error), String(live));
  assert.match(await rpcStatus(live), /"uptime"/, 'a member link works before the removal');
  const closed = new Promise<number>((resolve) => live.once('close', () => resolve(Date.now())));

  const t0 = Date.now();
  const r = await n2.cli(['node', '3', 'remove']);
  assert.equal(r.code, 0, r.stderr);
  const closedAt = await closed;
  assert.ok(closedAt - t0 < 5000, `live link closed after ${closedAt - t0} ms`);
  for (const target of [n1, n2]) {
    const s = await connectAs(target, creds);
    if (s instanceof Error) continue; // refused during the handshake
    assert.equal(await rpcStatus(s), '', `${target.addr} answers nothing to a removed node`);
  }
  const nodes = await n1.api<{ uid: number }[]>('GET', '/v1/nodes');
  assert.deepEqual(
    nodes.body.map((n) => n.uid),
    [1, 2],
  );
  const log1 = fs.readFileSync(n1.logFile, 'utf8');
  assert.match(log1, /revoked|not a member/);
});
