// verify encryption without a cluster: what a link registry records about a
// real TLS and a plaintext connection (on 127.0.18.201), and the verdict
// over reported links: control on TLS, encrypted databases on TLS under the
// policy, certificates neither expired nor denied, --require-all, db scope.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pino from 'pino';
import { makeClusterCerts } from '../support/certs.js';
import { CertStore } from '../../src/pki/certstore.js';
import { certInfo } from '../../src/pki/pki.js';
import { InternodeServer, type PeerPolicy, dial } from '../../src/internode/channel.js';
import { type InternodeLink, LinkRegistry, type NodeLinksReport } from '../../src/internode/links.js';
import { HYBRID_GROUP, sessionPolicyViolation } from '../../src/tls/policy.js';
import { type VerifyBdb, formatVerify, verifyEncryption } from '../../src/cli/verify.js';

const ADDR = '127.0.18.201';

test('the registry records protocol, cipher, group and the peer certificate of each end, and forgets closed links', async () => {
  const cc = await makeClusterCerts('c18', [1, 2], ADDR);
  const policy: PeerPolicy = { clusterId: () => 'c18', isMember: () => true, isDenied: () => false };
  const log = pino({ level: 'silent' });
  const s1 = new CertStore({ cp: cc.nodes[0].cp, dp: cc.nodes[0].dp });
  const s2 = new CertStore({ cp: cc.nodes[1].cp, dp: cc.nodes[1].dp });
  const accepted = new LinkRegistry();
  const dialed = new LinkRegistry();
  let onAccepted!: () => void;
  const acceptedOne = new Promise<void>((r) => (onAccepted = r));
  const srv = new InternodeServer({
    host: ADDR,
    port: 23342,
    certs: s1,
    policy,
    log,
    handlers: {
      dp: (s, peer) => {
        accepted.add(s, { side: 'accepted', purpose: 'proxy', remoteUid: peer.uid, bdbUid: 7, shardUid: 3 });
        onAccepted();
      },
    },
  });
  await srv.listen();
  const plainSrv = net.createServer((s) =>
    accepted.add(s, { side: 'accepted', purpose: 'replication', remoteUid: 2, bdbUid: 8, shardUid: 4, replicaShardUid: 5 }),
  );
  await new Promise<void>((r) => plainSrv.listen({ host: ADDR, port: 23343 }, () => r()));
  try {
    const { socket, peer } = await dial({ host: ADDR, port: 23342, plane: 'dp', certs: s2, policy, localAddress: ADDR });
    dialed.add(socket, { side: 'dialed', purpose: 'proxy', remoteUid: peer.uid, bdbUid: 7, shardUid: 3 });
    const plain = net.connect({ host: ADDR, port: 23343 });
    await new Promise((r) => plain.once('connect', r));
    dialed.add(plain, { side: 'dialed', purpose: 'replication', remoteUid: 1, bdbUid: 8, shardUid: 4, replicaShardUid: 5 });
    await acceptedOne;
    await new Promise((r) => setTimeout(r, 100));

    const d = dialed.list(2, () => false);
    const a = accepted.list(1, (serial) => serial === certInfo(cc.nodes[1].dp.certPem).serial);
    assert.equal(d.length, 2);
    assert.equal(a.length, 2);
    const dTls = d.find((l) => l.purpose === 'proxy')!;
    assert.equal(dTls.protocol, 'TLSv1.3');
    assert.ok(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'].includes(dTls.cipher!), String(dTls.cipher));
    assert.equal(dTls.group, HYBRID_GROUP, 'the dialer learns the group');
    assert.equal(dTls.peer_cert_serial, certInfo(cc.nodes[0].dp.certPem).serial, "the dialer sees the listener's dp certificate");
    assert.equal(dTls.peer_cert_days_left, 0, 'one hour left is 0 whole days');
    assert.equal(dTls.peer_cert_expired, false);
    assert.equal(dTls.peer_cert_denied, false);
    assert.equal(dTls.channel_port, 23342);
    assert.equal(dTls.local_uid, 2);
    const aTls = a.find((l) => l.purpose === 'proxy')!;
    assert.equal(aTls.protocol, 'TLSv1.3');
    assert.equal(aTls.cipher, dTls.cipher);
    assert.equal(aTls.group, null, 'a listener does not learn the group');
    assert.equal(aTls.peer_cert_serial, certInfo(cc.nodes[1].dp.certPem).serial, "the listener sees the dialer's certificate");
    assert.equal(aTls.peer_cert_denied, true, 'the deny list is asked at listing time');
    assert.equal(aTls.local_address, dTls.remote_address);
    assert.equal(aTls.remote_address, dTls.local_address);
    const dPlain = d.find((l) => l.purpose === 'replication')!;
    assert.equal(dPlain.protocol, 'plaintext');
    assert.equal(dPlain.cipher, null);
    assert.equal(dPlain.peer_cert_serial, null);
    assert.equal(dPlain.replica_shard_uid, 5);
    assert.equal(dPlain.channel_port, 23343);

    socket.destroy();
    plain.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(dialed.list(2, () => false).length, 0);
    assert.equal(accepted.list(1, () => false).length, 0);
  } finally {
    await srv.close();
    await new Promise<void>((r) => plainSrv.close(() => r()));
  }
});

test('the TLS policy judges negotiated sessions', () => {
  assert.equal(sessionPolicyViolation({ protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', group: HYBRID_GROUP }), undefined);
  assert.equal(sessionPolicyViolation({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' }), undefined);
  assert.match(sessionPolicyViolation({ protocol: 'TLSv1.1', cipher: 'ECDHE-RSA-AES128-SHA' })!, /TLSv1\.1 is not allowed/);
  assert.match(
    sessionPolicyViolation({ protocol: 'TLSv1.3', cipher: 'TLS_CHACHA20_POLY1305_SHA256' })!,
    /cipher TLS_CHACHA20_POLY1305_SHA256/,
  );
  assert.match(sessionPolicyViolation({ protocol: 'TLSv1.2', cipher: 'TLS_AES_128_GCM_SHA256' })!, /not allowed with TLSv1\.2/);
  assert.match(
    sessionPolicyViolation({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' }, 'hybrid_required')!,
    /hybrid_required/,
  );
  assert.match(
    sessionPolicyViolation({ protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', group: 'X25519' }, 'hybrid_required')!,
    /key exchange X25519/,
  );
  assert.equal(
    sessionPolicyViolation({ protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' }, 'hybrid_required'),
    undefined,
    'a listener does not know the group',
  );
});

// --- the verdict over reported links ---

const NOW = Date.parse('2026-01-01T00:00:00Z');
const nodes = [1, 2].map((uid) => ({ uid, addr: `127.0.18.${uid}` }));
const bdbs: VerifyBdb[] = [
  {
    uid: 1,
    name: 'enc',
    data_internode_encryption: true,
    shards: [{ node_uid: 1 }, { node_uid: 2 }],
    endpoints: [{ addr: ['127.0.18.1', '127.0.18.2'] }],
  },
  {
    uid: 2,
    name: 'plain',
    data_internode_encryption: false,
    shards: [{ node_uid: 2 }],
    endpoints: [{ addr: ['127.0.18.1', '127.0.18.2'] }],
  },
];

let nextPort = 40000;
/** Both ends of one connection from node `from` to node `to`. */
function pair(
  from: number,
  to: number,
  over: Partial<InternodeLink>,
  accepted: Partial<InternodeLink> = {},
): [InternodeLink, InternodeLink] {
  const tls = (over.protocol ?? 'TLSv1.3') !== 'plaintext';
  const port = over.channel_port ?? (tls ? 3342 : 3343);
  const dialerAddr = `127.0.18.${from}:${nextPort++}`;
  const listenerAddr = `127.0.18.${to}:${port}`;
  const base: InternodeLink = {
    local_uid: from,
    remote_uid: to,
    side: 'dialed',
    purpose: 'control',
    bdb_uid: null,
    shard_uid: null,
    replica_shard_uid: null,
    channel_port: port,
    local_address: dialerAddr,
    remote_address: listenerAddr,
    protocol: 'TLSv1.3',
    cipher: tls ? 'TLS_AES_256_GCM_SHA384' : null,
    group: tls ? HYBRID_GROUP : null,
    peer_cert_serial: tls ? `5e${to}` : null,
    peer_cert_not_after: tls ? '2026-03-01T00:00:00.000Z' : null,
    peer_cert_days_left: tls ? 59 : null,
    peer_cert_expired: tls ? false : null,
    peer_cert_denied: tls ? false : null,
    established: '2025-12-31T23:00:00.000Z',
    ...over,
  };
  const far: InternodeLink = {
    ...base,
    local_uid: to,
    remote_uid: from,
    side: 'accepted',
    local_address: listenerAddr,
    remote_address: dialerAddr,
    group: null,
    peer_cert_serial: tls ? `5e${from}` : null,
    ...accepted,
  };
  return [base, far];
}

function reports(...pairs: [InternodeLink, InternodeLink][]): NodeLinksReport[] {
  const ends = pairs.flat();
  return nodes.map((n) => ({
    uid: n.uid,
    addr: n.addr,
    time: new Date(NOW).toISOString(),
    links: ends.filter((l) => l.local_uid === n.uid),
  }));
}

const healthy = () => [
  pair(1, 2, {}),
  pair(2, 1, {}),
  pair(1, 2, { purpose: 'proxy', bdb_uid: 1, shard_uid: 2 }),
  pair(1, 2, { purpose: 'replication', bdb_uid: 1, shard_uid: 2, replica_shard_uid: 3 }),
  pair(1, 2, { purpose: 'proxy', bdb_uid: 2, shard_uid: 5, protocol: 'plaintext' }),
];

test('a healthy cluster passes; --require-all fails naming the plaintext database', () => {
  const r = verifyEncryption(nodes, bdbs, reports(...healthy()), { requireAll: false, now: NOW });
  assert.deepEqual(r.violations, []);
  assert.equal(r.ok, true);
  assert.equal(r.connections, 5);
  assert.equal(r.links.length, 10);
  const acceptedControl = r.links.find((l) => l.side === 'accepted' && l.purpose === 'control')!;
  assert.equal(acceptedControl.group, HYBRID_GROUP, "the listener's end takes the group from the dialer's report");
  assert.equal(acceptedControl.group_from_peer_end, true);
  assert.deepEqual(
    r.databases.map((d) => [d.uid, d.connections, d.tls_connections, d.plaintext_connections]),
    [
      [1, 2, 2, 0],
      [2, 1, 0, 1],
    ],
  );
  const text = formatVerify(r);
  assert.match(text, /VERDICT: OK/);
  assert.match(text, /replication\s+db:1\s+redis:2→redis:3\s+3342\s+TLSv1\.3/);

  const all = verifyEncryption(nodes, bdbs, reports(...healthy()), { requireAll: true, now: NOW });
  assert.equal(all.ok, false);
  assert.deepEqual(
    all.violations.map((v) => v.kind),
    ['plaintext_database'],
  );
  assert.match(all.violations[0].message, /^db:2 \(plain\): data crosses nodes in plaintext/);
  assert.match(formatVerify(all), /VERDICT: FAILED. 1 violation/);

  const scoped = verifyEncryption(nodes, bdbs, reports(...healthy()), { db: 1, requireAll: true, now: NOW });
  assert.equal(scoped.ok, true, 'db 1 alone is encrypted');
  assert.ok(scoped.links.every((l) => l.purpose === 'control' || l.bdb_uid === 1));
  assert.deepEqual(
    scoped.databases.map((d) => d.uid),
    [1],
  );
});

test('--require-all: a plaintext database with no link now still fails when it spans nodes, not when it lives on one', () => {
  const one: VerifyBdb = {
    uid: 3,
    name: 'local',
    data_internode_encryption: false,
    shards: [{ node_uid: 1 }],
    endpoints: [{ addr: ['127.0.18.1'] }],
  };
  const spread: VerifyBdb = {
    uid: 4,
    name: 'spread',
    data_internode_encryption: false,
    shards: [{ node_uid: 1 }],
    endpoints: [{ addr: ['127.0.18.1', '127.0.18.2'] }],
  };
  const r = verifyEncryption(nodes, [one, spread], reports(pair(1, 2, {})), { requireAll: true, now: NOW });
  assert.deepEqual(
    r.violations.map((v) => v.bdb_uid),
    [4],
  );
  assert.match(r.violations[0].message, /span nodes 1, 2/);
});

test('violations: plaintext control, plaintext link of an encrypted database, TLS outside the policy, expired and denied certificates', () => {
  const r = verifyEncryption(
    nodes,
    bdbs,
    reports(
      pair(1, 2, { protocol: 'plaintext', channel_port: 3343 }),
      pair(2, 1, { purpose: 'proxy', bdb_uid: 1, shard_uid: 1, protocol: 'plaintext' }),
      pair(1, 2, { purpose: 'replication', bdb_uid: 1, shard_uid: 2, replica_shard_uid: 3, protocol: 'TLSv1.2', cipher: 'AES128-SHA' }),
      pair(
        1,
        2,
        { peer_cert_not_after: '2025-12-30T00:00:00.000Z', peer_cert_days_left: -2, peer_cert_expired: true },
        { peer_cert_not_after: '2026-03-01T00:00:00.000Z', peer_cert_days_left: 59, peer_cert_expired: false },
      ),
      pair(2, 1, {}, { peer_cert_denied: true, peer_cert_serial: 'dead' }),
    ),
    { requireAll: false, now: NOW },
  );
  assert.equal(r.ok, false);
  assert.deepEqual(r.violations.map((v) => v.kind).sort(), [
    'cert_denied',
    'cert_expired',
    'control_plaintext',
    'data_plaintext',
    'tls_policy',
  ]);
  const msg = (k: string) => r.violations.find((v) => v.kind === k)!.message;
  assert.match(msg('control_plaintext'), /^control link node:1 → node:2 \(127\.0\.18\.1:\d+ → 127\.0\.18\.2:3343\) is plaintext/);
  assert.match(
    msg('data_plaintext'),
    /proxy link to shard 1 of db:1 \(enc\) node:2 → node:1 .* is plaintext, but db:1 has data_internode_encryption enabled/,
  );
  assert.match(msg('tls_policy'), /replication tunnel of shard 3 from shard 2 of db:1 .*cipher AES128-SHA is not allowed with TLSv1\.2/);
  assert.match(msg('cert_expired'), /node:2's certificate 5e2, seen by node:1 .* expired on 2025-12-30/);
  assert.match(msg('cert_denied'), /node:2's certificate dead, seen by node:1 .* deny list/);
  const text = formatVerify(r);
  assert.match(text, /VERDICT: FAILED. 5 violation\(s\)/);
  for (const v of r.violations) assert.ok(text.includes(v.message));
});

test('under hybrid_required, a dialer that reports a classical group is a violation', () => {
  const r = verifyEncryption(nodes, bdbs, reports(pair(1, 2, { group: 'X25519' })), {
    requireAll: false,
    keyExchange: 'hybrid_required',
    now: NOW,
  });
  assert.deepEqual(
    r.violations.map((v) => v.kind),
    ['tls_policy'],
  );
  assert.match(r.violations[0].message, /key exchange X25519 under internode_key_exchange hybrid_required/);
});
