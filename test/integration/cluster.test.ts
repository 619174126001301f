// A real 3-node cluster formed from the CLI on 127.0.1.1-3: membership,
// certificates, REST validation and auth, CLI output, and failure of nodes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { TestCluster, TestNode, waitFor, USER, PASSWORD } from '../support/cluster.js';

interface NodeJson {
  uid: number;
  addr: string;
  status: string;
  is_master: boolean;
  capabilities: string[];
  control_plane_link: string;
}

const cluster = new TestCluster(1, 3);
const [n1, n2, n3] = cluster.nodes;

before(async () => {
  await cluster.startAll();
  await cluster.form('alpha.test');
});
after(async () => {
  await cluster.stop();
});

async function nodesSeenBy(n: TestNode): Promise<NodeJson[]> {
  const r = await n.api<NodeJson[]>('GET', '/v1/nodes');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

test('a 3-node cluster forms from the CLI: every node lists 3 active nodes and the same single master', async () => {
  const views = await waitFor('all nodes see 3 active nodes with live control-plane links', async () => {
    const v = await Promise.all(cluster.nodes.map(nodesSeenBy));
    const ok = v.every((list) => list.length === 3 && list.every((n) => n.status === 'active' && n.control_plane_link !== 'unreachable'));
    return ok ? v : undefined;
  });
  for (const list of views) {
    assert.deepEqual(
      list.map((n) => n.addr),
      [n1.addr, n2.addr, n3.addr],
    );
    assert.equal(list.filter((n) => n.is_master).length, 1);
    assert.ok(list.every((n) => n.capabilities.includes('data_internode_encryption')));
  }
  const masters = new Set(views.map((list) => list.find((n) => n.is_master)!.uid));
  assert.equal(masters.size, 1, 'all nodes agree on the master');
  assert.deepEqual([n1.uidFromDisk, n2.uidFromDisk, n3.uidFromDisk], [1, 2, 3]);
});

test("each node's cp and dp certificates are distinct, chain to the cluster CA and carry the node's identity", async () => {
  const clusterId = (await n1.api<{ cluster_id: string }>('GET', '/v1/cluster')).body.cluster_id;
  const caPem = fs.readFileSync(path.join(n1.dataDir, 'certs/ca.pem'), 'utf8');
  const serials = new Set<string>();
  for (const n of cluster.nodes) {
    const dir = path.join(n.dataDir, 'certs');
    assert.equal(fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8'), caPem, 'one CA for the whole cluster');
    for (const plane of ['cp', 'dp']) {
      const certFile = path.join(dir, `${plane}.pem`);
      const keyFile = path.join(dir, `${plane}.key`);
      assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600, `${keyFile} is 0600`);
      const cert = new X509Certificate(fs.readFileSync(certFile));
      assert.ok(cert.checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(fs.readFileSync(keyFile)))));
      // openssl verifies the chain and the client-auth purpose independently of our code.
      const out = execFileSync('openssl', ['verify', '-CAfile', path.join(dir, 'ca.pem'), '-purpose', 'sslclient', certFile]).toString();
      assert.match(out, /: OK/);
      assert.ok(cert.subjectAltName?.includes(`URI:tessera://${clusterId}/node/${n.uidFromDisk}/${plane}`), cert.subjectAltName);
      assert.ok(cert.subjectAltName?.includes(`IP Address:${n.addr}`));
      serials.add(cert.serialNumber);
    }
  }
  assert.equal(serials.size, 6, 'six distinct certificates');

  const r = await n2.api<{ certificates: { node_uid: number; name: string; serial: string; not_after: string }[] }>(
    'GET',
    '/v1/cluster/certificates',
  );
  assert.equal(r.status, 200);
  assert.equal(r.body.certificates.length, 6);
  assert.deepEqual(new Set(r.body.certificates.map((c) => c.name)), new Set(['ccs_internode_encryption', 'data_internode_encryption']));
  assert.doesNotMatch(JSON.stringify(r.body), /PRIVATE KEY/);
  const days = (Date.parse(r.body.certificates[0].not_after) - Date.now()) / 86_400_000;
  assert.ok(days > 89 && days <= 90.01, `90-day validity, got ${days}`);
});

test('policy written on one node is read on another; bad input is refused with 400, no credentials with 401', async () => {
  let r = await n1.api('PUT', '/v1/cluster/policy', { data_internode_encryption: true });
  assert.equal(r.status, 200);
  r = await n3.api<{ data_internode_encryption: boolean }>('GET', '/v1/cluster/policy');
  assert.equal((r.body as { data_internode_encryption: boolean }).data_internode_encryption, true);

  for (const bad of [{ data_internode_encryption: 'yes' }, { data_internode_encryption: 1 }, { unknown_field: true }, {}, []]) {
    const b = await n2.api<{ error_code: string; description: string }>('PUT', '/v1/cluster/policy', bad);
    assert.equal(b.status, 400, JSON.stringify(bad));
    assert.equal(typeof b.body.error_code, 'string');
    assert.equal(typeof b.body.description, 'string');
  }
  r = await n3.api<{ data_internode_encryption: boolean }>('GET', '/v1/cluster/policy');
  assert.equal((r.body as { data_internode_encryption: boolean }).data_internode_encryption, true, 'refused writes changed nothing');

  const none = await n2.api<{ error_code: string }>('GET', '/v1/nodes', undefined, null);
  assert.equal(none.status, 401);
  assert.equal(none.body.error_code, 'unauthorized');
  const wrong = await n2.api('GET', '/v1/cluster/policy', undefined, { username: USER, password: 'nope' });
  assert.equal(wrong.status, 401);
  const missing = await n2.api<{ error_code: string }>('GET', '/v1/no-such-thing');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error_code, 'not_found');
  r = await n1.api('PUT', '/v1/cluster/policy', { data_internode_encryption: false });
  assert.equal(r.status, 200);
});

test('CLI: status, info cluster and tune cluster; errors are one line on stderr with a non-zero exit', async () => {
  const s = await n2.cli(['status']);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^CLUSTER:\nOK\. Cluster master: \d \(127\.0\.1\.\d\)/);
  assert.match(s.stdout, /CLUSTER NODES:\nNODE:ID +ROLE +ADDRESS/);
  assert.match(s.stdout, /\*node:2 +(master|slave) +127\.0\.1\.2 /);
  assert.equal((s.stdout.match(/^\*/gm) ?? []).length, 1);

  const t = await n3.cli(['tune', 'cluster', 'data_internode_encryption', 'enabled']);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /Finished successfully/);
  const i = await n1.cli(['info', 'cluster']);
  assert.match(i.stdout, /^data_internode_encryption: enabled$/m);
  assert.match(i.stdout, /^name: alpha\.test$/m);
  await n3.cli(['tune', 'cluster', 'data_internode_encryption', 'disabled']);

  for (const args of [
    ['tune', 'cluster', 'data_internode_encryption', 'maybe'],
    ['tune', 'cluster', 'no_such_setting', 'enabled'],
    ['--password', 'wrong', 'status'],
    ['--node', '127.0.1.99', 'status'],
  ]) {
    const e = await n1.cli(args);
    assert.notEqual(e.code, 0, args.join(' '));
    assert.equal(e.stderr.trim().split('\n').length, 1, `one line: ${e.stderr}`);
    assert.match(e.stderr, /^error: /);
  }
});

test('bad bootstrap input: wrong credentials, a node already in a cluster, a member that is not Tessera, a used data dir, a taken port', async (t) => {
  // A small cluster of its own, so that the main one keeps exactly three members.
  const small = new TestCluster(3, 3);
  t.after(() => small.stop());
  const [s1, extra, blank] = small.nodes;
  await small.startAll();
  const c = await s1.cli(['cluster', 'create', 'name', 'small.test', 'username', USER, 'password', PASSWORD]);
  assert.equal(c.code, 0, c.stderr);

  const wrong = await extra.cli(['cluster', 'join', 'nodes', s1.addr, 'username', USER, 'password', 'bad-password']);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /rejected the credentials/);
  assert.equal((await nodesSeenBy(s1)).length, 1, 'the cluster is as it was');
  const again = await extra.cli(['cluster', 'join', 'nodes', s1.addr, 'username', USER, 'password', PASSWORD]);
  assert.equal(again.code, 0, `a failed join leaves the node blank, so it can join afterwards: ${again.stderr}`);
  assert.equal(extra.uidFromDisk, 2, 'the refused join consumed no node uid');
  assert.equal((await nodesSeenBy(s1)).length, 2);

  const already = await n2.cli(['cluster', 'join', 'nodes', n1.addr, 'username', USER, 'password', PASSWORD]);
  assert.notEqual(already.code, 0);
  assert.match(already.stderr, /already belongs to a cluster/);
  const dup = await n2.cli(['cluster', 'create', 'name', 'other', 'username', USER, 'password', PASSWORD]);
  assert.match(dup.stderr, /already belongs to a cluster/);

  // A blank node pointed at things that are not Tessera members.
  const nothing = await blank.cli(['cluster', 'join', 'nodes', '127.0.3.77', 'username', USER, 'password', PASSWORD]);
  assert.notEqual(nothing.code, 0);
  assert.match(nothing.stderr, /127\.0\.3\.77.*connection refused/);
  const impostor = net.createServer((sock) => sock.end('HTTP/1.0 200 OK\r\n\r\nhello\n'));
  await new Promise<void>((r) => impostor.listen(9443, '127.0.3.78', () => r()));
  try {
    const notTessera = await blank.cli(['cluster', 'join', 'nodes', '127.0.3.78', 'username', USER, 'password', PASSWORD]);
    assert.notEqual(notTessera.code, 0);
    assert.match(notTessera.stderr, /127\.0\.3\.78.*not speak the Tessera REST API/);
  } finally {
    impostor.close();
  }
  const notMember = await blank.cli(['cluster', 'join', 'nodes', blank.addr, 'username', USER, 'password', PASSWORD]);
  assert.notEqual(notMember.code, 0);
  assert.match(notMember.stderr, /does not belong to a cluster/);
  assert.equal((await nodesSeenBy(s1)).length, 2, 'failed joins changed nothing');
  const bs = await blank.api<{ bootstrap_status: { state: string } }>('GET', '/v1/bootstrap', undefined, null);
  assert.equal(bs.body.bootstrap_status.state, 'error');
  assert.equal(fs.existsSync(path.join(blank.dataDir, 'node.json')), false);

  // The data dir of a running node cannot be used by a second daemon, nor can its ports.
  const twin = new TestNode('127.0.3.6', extra.dataDir);
  assert.match(await twin.startFails(), /in use by a running node/);
  const portTwin = new TestNode(s1.addr, path.join(small.root, 'twin'));
  assert.match(await portTwin.startFails(), /port 127\.0\.3\.1:9443 \(REST API\) is already in use/);
});

test('internode channel of a running node: a member certificate is accepted; another cluster is refused', async () => {
  const dir = path.join(n2.dataDir, 'certs');
  const sclient = (certDir: string, alpn: string, servername: string) =>
    execFileSync('sh', [
      '-c',
      `echo | timeout 5 openssl s_client -connect ${n1.addr}:3342 -cert ${certDir}/cp.pem -key ${certDir}/cp.key -CAfile ${dir}/ca.pem -alpn ${alpn} -servername ${servername} 2>&1 || true`,
    ]).toString();
  const ok = sclient(dir, 'tessera-cp/1', 'cp.tessera.internal');
  assert.match(ok, /ALPN protocol: tessera-cp\/1/);
  assert.match(ok, /Verify return code: 0 \(ok\)/);
  assert.match(ok, /Cipher is (TLS_AES_(128|256)_GCM_SHA(256|384)|ECDHE-RSA-AES(128|256)-GCM-SHA(256|384))/);

  const other = new TestCluster(2, 1);
  try {
    await other.startAll();
    await other.form('beta.test');
    const otherDir = path.join(other.nodes[0].dataDir, 'certs');
    assert.notEqual(
      fs.readFileSync(path.join(otherDir, 'ca.pem'), 'utf8'),
      fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8'),
      'two clusters, two CAs',
    );
    // A Node client holding the other cluster's certificate (and trusting our CA, so any
    // refusal is the server's): over TLS 1.2 and 1.3, no control-plane answer ever comes back.
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const outcome = await new Promise<string>((resolve) => {
        const s = tls.connect({
          host: n1.addr,
          port: 3342,
          cert: fs.readFileSync(path.join(otherDir, 'cp.pem')),
          key: fs.readFileSync(path.join(otherDir, 'cp.key')),
          ca: fs.readFileSync(path.join(dir, 'ca.pem')),
          servername: 'cp.tessera.internal',
          ALPNProtocols: ['tessera-cp/1'],
          maxVersion,
          checkServerIdentity: () => undefined,
        });
        let answer = '';
        s.on('secureConnect', () => s.write(JSON.stringify({ id: 1, method: 'status', params: {} }) + '\n'));
        s.on('data', (d) => (answer += d));
        s.on('error', (e) => resolve(`error: ${e.message}`));
        s.on('close', () => resolve(answer ? `answered: ${answer}` : 'closed'));
        setTimeout(() => (s.destroy(), resolve(answer ? `answered: ${answer}` : 'timeout')), 3000);
      });
      assert.match(outcome, /^(error|closed)/, `${maxVersion}: ${outcome}`);
    }
  } finally {
    await other.stop();
  }
});

test("etcd: peer port enforces the two TLS 1.2 suites; client port trusts only the node's own daemon", () => {
  const dir = path.join(n2.dataDir, 'certs');
  const probe = (port: number, extra: string) =>
    execFileSync('sh', [
      '-c',
      `echo | timeout 5 openssl s_client -connect ${n1.addr}:${port} -cert ${dir}/cp.pem -key ${dir}/cp.key -CAfile ${dir}/ca.pem ${extra} 2>&1 || true`,
    ]).toString();
  // A member's cp certificate gets through on the peer port with an allowed suite...
  assert.match(probe(3340, '-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256'), /Cipher is ECDHE-RSA-AES128-GCM-SHA256/);
  // ...and not with any other TLS 1.2 suite, nor TLS 1.1.
  for (const c of ['ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-CHACHA20-POLY1305', 'AES256-GCM-SHA384']) {
    const out = probe(3340, `-tls1_2 -cipher ${c}`);
    assert.doesNotMatch(out, /Cipher is [A-Z]/, c);
    assert.match(out, /alert handshake failure|no shared cipher|handshake failure/, c);
  }
  assert.doesNotMatch(probe(3340, "-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'"), /Cipher is [A-Z]/);
  // The client port refuses even a member's certificate: only the local daemon's own one is trusted.
  const client = probe(3341, '-tls1_2');
  assert.match(client, /alert bad certificate|alert unknown ca|certificate verify failed|alert/i);
  assert.doesNotMatch(client, /Verify return code: 0 \(ok\)[\s\S]*read R BLOCK[\s\S]*HTTP/);
  const clientCheck = execFileSync('sh', [
    '-c',
    `printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | timeout 5 openssl s_client -quiet -connect ${n1.addr}:3341 -cert ${dir}/cp.pem -key ${dir}/cp.key -CAfile ${dir}/ca.pem -tls1_2 2>&1 || true`,
  ]).toString();
  assert.doesNotMatch(clientCheck, /etcdserver/, 'no etcd answer for a foreign certificate');
});

test('a killed node shows down on the others; killing the master elects another; REST keeps answering', async () => {
  // Kill a node that is not the master first.
  const views = await nodesSeenBy(n1);
  const masterUid = views.find((n) => n.is_master)!.uid;
  const victim = cluster.nodes.find((n) => n.uidFromDisk !== masterUid)!;
  const survivors = cluster.nodes.filter((n) => n !== victim);
  const t0 = Date.now();
  await victim.kill('SIGKILL');
  await waitFor(
    'victim down on every survivor',
    async () => {
      const v = await Promise.all(survivors.map(nodesSeenBy));
      return v.every((list) => list.find((n) => n.addr === victim.addr)?.status === 'down');
    },
    20_000,
  );
  const downAfter = (Date.now() - t0) / 1000;
  assert.ok(downAfter < 12, `seen down after ${downAfter}s`);

  // It comes back by itself from its data directory.
  await victim.start();
  await waitFor('victim active again', async () => (await nodesSeenBy(n1)).every((n) => n.status === 'active'), 30_000);

  // Now the master.
  const master = cluster.nodes.find((n) => n.uidFromDisk === masterUid)!;
  const rest = cluster.nodes.filter((n) => n !== master);
  const t1 = Date.now();
  await master.kill('SIGKILL');
  const newMaster = await waitFor(
    'a new master',
    async () => {
      const v = await Promise.all(rest.map(nodesSeenBy));
      const m = v.map((list) => list.find((n) => n.is_master)?.uid);
      return m[0] !== undefined && m[0] !== masterUid && m.every((x) => x === m[0]) ? m[0] : undefined;
    },
    30_000,
  );
  const failover = (Date.now() - t1) / 1000;
  assert.notEqual(newMaster, masterUid);
  // Each node judges the old master's silence on its own clock and view, so the one that took the role
  // over may see it a moment before the other: every node shows it down within a few seconds.
  for (const n of rest) {
    await waitFor(
      `the old master down on node ${n.addr}`,
      async () => {
        const r = await n.api<NodeJson[]>('GET', '/v1/nodes');
        assert.equal(r.status, 200);
        return r.body.find((x) => x.uid === masterUid)?.status === 'down';
      },
      5_000,
    );
  }
  const s = await rest[0].cli(['status']);
  assert.match(s.stdout, new RegExp(`Cluster master: ${newMaster} `));
  console.log(`# node seen down after ${downAfter.toFixed(1)} s; master failover after ${failover.toFixed(1)} s`);
});
