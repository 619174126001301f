// Internode CA rollover on a real 3-node cluster (net 64, or TESSERA_TEST_NET),
// under a steady writer to a database with data_internode_encryption on:
// POST /v1/cluster/certificates/ca/rotate {"ca":"internode"}; node 3 is stopped
// once it presents certificates of the next CA (before step 4 can finish) and
// started again while step 4 waits for it. Then: no failed command, no lost
// key, every node's cp/dp from the new CA, node 2's old cp certificate refused
// on 3342 (openssl s_client) and by etcd's peer port, etcd healthy with 3
// voting members, `verify encryption` clean. The time of each step is printed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { Redis } from 'ioredis';
import { TestCluster, type TestNode, createDb, waitFor, sleep } from '../support/cluster.js';
import { sClient } from '../support/tls-tools.js';
import { etcdClient, etcdPaths } from '../../src/coord/etcd.js';
import { storeOf } from '../../src/coord/store.js';
import type { ActionRecord } from '../../src/coord/schema.js';
import { readBack } from '../support/load.js';
import { certFile, pemsOf, fp, phaseDurations, signedBy } from '../support/ca-files.js';

const cluster = new TestCluster(64, 3);
const [n1, n2, n3] = cluster.nodes;

before(async () => {
  await cluster.startAll();
  await cluster.form('ca.test');
});
after(async () => {
  await cluster.stop();
});

/** A TLS handshake to a node's etcd peer port with these credentials: 'ok' or the error. */
function etcdPeerHandshake(target: TestNode, cert: string, key: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: target.addr, port: 3340, cert, key, rejectUnauthorized: false }, () => {
      // TLS 1.3: the server checks the client certificate after the client's Finished; wait for its verdict.
      s.once('data', () => undefined);
      const t = setTimeout(() => {
        resolve('ok');
        s.destroy();
      }, 1000);
      s.once('error', (e) => {
        clearTimeout(t);
        resolve(`refused: ${e.message}`);
      });
      s.write('GET /version HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    s.once('error', (e) => resolve(`refused: ${e.message}`));
  });
}

test('internode CA rollover under load, with a node down before step 4: no failed command, no lost key, the old CA refused', async () => {
  const db = await createDb(n1, {
    name: 'carot',
    memory_size: 100 << 20,
    shards_count: 3,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    data_internode_encryption: true,
    port: 12400,
  });
  // Node 3 is stopped in the middle: its master shards hand over first (a planned failover loses no command),
  // so that what is measured is the rollover, not a node's crash.
  for (const sh of db.shards.filter((x) => x.role === 'master' && x.node_uid === 3)) {
    const f = await n1.cli(['failover', 'db', String(db.uid), 'shard', String(sh.uid)]);
    assert.equal(f.code, 0, f.stderr);
  }
  const oldCa = pemsOf(fs.readFileSync(certFile(n1, 'ca.pem'), 'utf8'));
  assert.equal(oldCa.length, 1);
  // Node 2's cp certificate as it is now (from the old CA), kept for the end.
  const oldCp = { cert: fs.readFileSync(certFile(n2, 'cp.pem'), 'utf8'), key: fs.readFileSync(certFile(n2, 'cp.key'), 'utf8') };
  const tmp = fs.mkdtempSync(path.join(cluster.root, 'old-cp-'));
  fs.writeFileSync(path.join(tmp, 'cp.pem'), oldCp.cert);
  fs.writeFileSync(path.join(tmp, 'cp.key'), oldCp.key, { mode: 0o600 });

  // The steady writer: clients on nodes 1 and 2 (node 3 is stopped in the middle), unique keys, every ack recorded.
  const clients = [n1, n2].map(
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
  await Promise.all(clients.map((c) => c.connect()));
  let failed = 0;
  const acked: string[] = [];
  let running = true;
  const loops = clients.map(async (c, i) => {
    let n = 0;
    while (running) {
      const key = `ca:${i}:${n++}`;
      try {
        await c.set(key, key);
        acked.push(key);
      } catch (err) {
        if (failed++ < 5) console.log(`# write failed on client ${i}: ${(err as Error).message}`);
        await sleep(20);
      }
    }
  });

  const t0 = Date.now();
  const r = await n1.api<{ action_uid: string }>('POST', '/v1/cluster/certificates/ca/rotate', { ca: 'internode' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const uid = r.body.action_uid;
  const again = await n1.api<{ error_code: string }>('POST', '/v1/cluster/certificates/ca/rotate', { ca: 'internode' });
  assert.equal(again.status, 409);
  assert.equal(again.body.error_code, 'ca_rollover_in_progress');

  // Node 3 presents certificates of the next CA: stop it.
  let nextCa: X509Certificate | undefined;
  await waitFor(
    'node 3 presents cp and dp of the next CA',
    () => {
      const listed = pemsOf(fs.readFileSync(certFile(n3, 'ca.pem'), 'utf8'));
      nextCa = listed.find((c) => fp(c) !== fp(oldCa[0]));
      if (!nextCa) return false;
      return ['cp.pem', 'dp.pem'].every((f) => signedBy(new X509Certificate(fs.readFileSync(certFile(n3, f))), nextCa!));
    },
    180_000,
    200,
  );
  const stoppedAt = Date.now();
  await n3.kill('SIGTERM');
  console.log(`# node 3 stopped ${((stoppedAt - t0) / 1000).toFixed(1)} s into the rollover`);
  // Step 4 cannot finish without it, and says so.
  await waitFor(
    'the action waits for node 3',
    async () => {
      const a = (await n1.api<ActionRecord>('GET', `/v1/actions/${uid}`)).body;
      return a.status === 'active' && /node 3 is down/.test(a.description ?? '');
    },
    60_000,
    500,
  );
  const waiting = (await n1.api<ActionRecord>('GET', `/v1/actions/${uid}`)).body;
  console.log(`# while node 3 is down: ${waiting.description}`);
  await sleep(3000);
  await n3.start();
  await waitFor(
    'the rollover action completes',
    async () => {
      const a = (await n1.api<ActionRecord>('GET', `/v1/actions/${uid}`)).body;
      assert.notEqual(a.status, 'failed', a.error);
      return a.status === 'completed';
    },
    240_000,
    500,
  );
  const total = Date.now() - t0;
  running = false;
  await Promise.all(loops);

  const action = (await n1.api<ActionRecord>('GET', `/v1/actions/${uid}`)).body;
  console.log(`# steps:\n${(action.steps ?? []).map((s) => `#   ${s}`).join('\n')}`);
  const store = etcdClient(n1.addr, 3341, etcdPaths(n1.dataDir));
  try {
    const rec = await storeOf(store).caRollovers.get(uid);
    for (const [phase, s] of rec ? phaseDurations(rec) : []) console.log(`# phase ${phase}: ${s.toFixed(1)} s`);
    console.log(
      `# rollover: ${(total / 1000).toFixed(1)} s in all (node 3 down ${((Date.now() - stoppedAt) / 1000).toFixed(0)} s of it); ${acked.length} writes, ${failed} failed`,
    );

    // etcd: 3 voting members, every one answering.
    const members = await store.cluster.memberList({});
    assert.equal(members.members.length, 3);
    assert.ok(
      members.members.every((m) => !m.isLearner),
      'every member votes',
    );
  } finally {
    store.close();
  }

  assert.equal(failed, 0, 'no failed command');
  assert.ok(acked.length > 200, `the writer ran: ${acked.length}`);
  try {
    // Each key was written with itself as its value.
    const lost = await readBack(n1, db.port, new Map(acked.map((k) => [k, k])));
    assert.equal(lost.length, 0, 'no acknowledged key lost');
  } finally {
    clients.forEach((c) => c.disconnect());
  }

  // Every node trusts the next CA alone and presents cp/dp from it.
  for (const n of cluster.nodes) {
    const listed = pemsOf(fs.readFileSync(certFile(n, 'ca.pem'), 'utf8'));
    assert.deepEqual(listed.map(fp), [fp(nextCa!)], `node ${n.addr} trusts the next CA only`);
    for (const f of ['cp.pem', 'dp.pem'])
      assert.ok(signedBy(new X509Certificate(fs.readFileSync(certFile(n, f))), nextCa!), `${n.addr} ${f} from the next CA`);
  }
  const certs = (await n1.api<{ cas: { name: string; state: string; fingerprint: string }[] }>('GET', '/v1/cluster/certificates')).body;
  assert.deepEqual(
    certs.cas.filter((c) => c.name === 'internode').map((c) => [c.state, c.fingerprint]),
    [['active', fp(nextCa!)]],
  );

  // Node 2's old cp certificate: refused on 3342 and by etcd; its new one accepted (the control).
  const newCaFile = path.join(tmp, 'next-ca.pem');
  fs.writeFileSync(newCaFile, nextCa!.toString());
  const sArgs = (cert: string, key: string) => [
    '-connect',
    `${n1.addr}:3342`,
    '-cert',
    cert,
    '-key',
    key,
    '-CAfile',
    newCaFile,
    '-servername',
    'cp.tessera.internal',
    '-alpn',
    'tessera-cp/1',
  ];
  const refused = await sClient(sArgs(path.join(tmp, 'cp.pem'), path.join(tmp, 'cp.key')), {
    send: '{"id":1,"method":"ping","params":{}}\n',
    holdMs: 1500,
  });
  assert.equal(refused.aliveAfterHold, false, `old cp still connected:\n${refused.stdout}\n${refused.stderr}`);
  assert.doesNotMatch(refused.stdout, /"id":1/, 'no RPC answer through the old certificate');
  const accepted = await sClient(sArgs(certFile(n2, 'cp.pem'), certFile(n2, 'cp.key')), {
    send: '{"id":1,"method":"ping","params":{}}\n',
    holdMs: 1500,
  });
  // The node answers (an unknown method, but an answer): the connection was accepted.
  assert.match(accepted.stdout, /"id":1,/, `new cp refused:\n${accepted.stdout.slice(0, 2000)}\n${accepted.stderr}`);
  assert.match(await etcdPeerHandshake(n1, oldCp.cert, oldCp.key), /^refused/, 'etcd refuses the old CA');
  assert.equal(
    await etcdPeerHandshake(n1, fs.readFileSync(certFile(n2, 'cp.pem'), 'utf8'), fs.readFileSync(certFile(n2, 'cp.key'), 'utf8')),
    'ok',
  );

  const v = await n1.cli(['verify', 'encryption']);
  assert.equal(v.code, 0, `${v.stdout}\n${v.stderr}`);
});
