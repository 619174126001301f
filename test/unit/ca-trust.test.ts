// Trust as a list (pki/ca-list.ts): real internode servers and dialers on
// loopback, real TLS handshakes. A leaf from any CA of a node's list is
// accepted in both directions; one from a CA not in the list is refused; a
// list that drops the CA of the node's own certificate is refused.
//
// Addresses: 127.0.74.x (this helper's unit net).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { createServer } from 'node:https';
import pino from 'pino';
import { CertStore } from '../../src/pki/certstore.js';
import { ServiceCerts } from '../../src/pki/service-certs.js';
import { caEntries, caList, joinPems, splitPems, trustedPems } from '../../src/pki/ca-list.js';
import { createCa, issueLocally, sha256Fingerprint, type Issued, type Plane } from '../../src/pki/pki.js';
import { InternodeServer, dial, type PeerPolicy } from '../../src/internode/channel.js';
import { addTrustedCa, secureContext, type Bundle } from '../../src/tls/policy.js';

const CLUSTER = 'ca-trust-test';
const log = pino({ level: 'silent' });
const policy: PeerPolicy = { clusterId: () => CLUSTER, isMember: () => true, isDenied: () => false };

let caOld: Issued;
let caNext: Issued;
let caOther: Issued; // never in any list
let tmp: string;

async function planes(ca: Issued, uid: number, trust: string[]): Promise<Record<Plane, Bundle>> {
  const out = {} as Record<Plane, Bundle>;
  for (const plane of ['cp', 'dp'] as Plane[]) {
    const i = await issueLocally(ca, { clusterId: CLUSTER, uid, plane, addr: '127.0.74.1', validitySeconds: 3600 });
    out[plane] = { certPem: i.certPem, keyPem: i.keyPem, caPem: joinPems(trust) };
  }
  return out;
}

before(async () => {
  [caOld, caNext, caOther] = await Promise.all([createCa(CLUSTER, CLUSTER), createCa(CLUSTER, CLUSTER), createCa(CLUSTER, CLUSTER)]);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-ca-trust-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function withServer(n: number, certs: CertStore, fn: (port: number) => Promise<void>): Promise<void> {
  const port = 23400 + n;
  const srv = new InternodeServer({
    host: '127.0.74.1',
    port,
    certs,
    policy,
    log,
    handlers: { cp: (s) => s.end('welcome\n'), dp: (s) => s.end('welcome\n') },
  });
  await srv.listen();
  try {
    await fn(port);
  } finally {
    await srv.close();
  }
}

/**
 * Dial and wait for the server's greeting: with TLS 1.3 the dialer finishes
 * its handshake before the server has checked the client's certificate, so
 * only the greeting says the server accepted it.
 */
async function dialWith(port: number, certs: CertStore, plane: Plane = 'cp'): Promise<string> {
  try {
    const { socket, peer } = await dial({ host: '127.0.74.1', port, plane, certs, policy, timeoutMs: 3000 });
    const greeted = await new Promise<boolean>((resolve) => {
      let got = '';
      socket.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.includes('welcome')) resolve(true);
      });
      socket.on('close', () => resolve(got.includes('welcome')));
      socket.on('error', () => resolve(false));
    });
    socket.destroy();
    return greeted ? `ok:${peer.uid}` : 'refused:by the server';
  } catch (err) {
    return `refused:${(err as Error).message}`;
  }
}

test('a server trusting [old, next] accepts leaves of both and refuses a leaf of an unlisted CA', async () => {
  const both = [caOld.certPem, caNext.certPem];
  const server = new CertStore(await planes(caOld, 1, both));
  assert.equal(splitPems(server.trustPem()).length, 2);
  await withServer(1, server, async (port) => {
    // Clients trust both too, so any refusal below is the server's.
    for (const [ca, uid] of [
      [caOld, 2],
      [caNext, 3],
    ] as const) {
      const client = new CertStore(await planes(ca, uid, both));
      assert.equal(await dialWith(port, client, 'cp'), 'ok:1');
      assert.equal(await dialWith(port, client, 'dp'), 'ok:1');
    }
    const stranger = new CertStore(await planes(caOther, 4, [caOther.certPem, caOld.certPem]));
    assert.match(await dialWith(port, stranger), /^refused:/);
  });
});

test('a dialer refuses a server whose leaf is from a CA not in its list; adding the CA lets it in', async () => {
  const server = new CertStore(await planes(caNext, 1, [caOld.certPem, caNext.certPem]));
  await withServer(2, server, async (port) => {
    const client = new CertStore(await planes(caOld, 2, [caOld.certPem]));
    assert.match(await dialWith(port, client), /^refused:/);
    client.setCas([caOld.certPem, caNext.certPem]);
    assert.equal(await dialWith(port, client), 'ok:1');
  });
});

test('dropping the old CA: its leaves are refused afterwards, while the next CA still works', async () => {
  const server = new CertStore(await planes(caNext, 1, [caOld.certPem, caNext.certPem]));
  const oldClient = new CertStore(await planes(caOld, 2, [caOld.certPem, caNext.certPem]));
  const newClient = new CertStore(await planes(caNext, 3, [caNext.certPem]));
  await withServer(3, server, async (port) => {
    assert.equal(await dialWith(port, oldClient), 'ok:1');
    server.setCas([caNext.certPem]);
    assert.equal(splitPems(server.trustPem()).length, 1);
    assert.match(await dialWith(port, oldClient), /^refused:/);
    assert.equal(await dialWith(port, newClient), 'ok:1');
  });
});

test('a node never drops the CA of a certificate it presents; the list travels with a bundle', async () => {
  const store = new CertStore(await planes(caOld, 1, [caOld.certPem, caNext.certPem]));
  assert.throws(() => store.setCas([caNext.certPem]), /not signed by any CA of the new list/);
  assert.equal(store.casPem().length, 2, 'nothing changed');
  assert.throws(() => store.setCas([]), /at least one/);
  // The data plane's copy gets the list with a bundle: a new cp leaf from the next CA, with the list [next, old].
  const fresh = await planes(caNext, 1, [caNext.certPem, caOld.certPem]);
  store.set('cp', fresh.cp);
  assert.deepEqual(store.casPem().map(sha256Fingerprint).sort(), [caNext.certPem, caOld.certPem].map(sha256Fingerprint).sort());
  // dp is still from the old CA: a list of the next CA alone is refused in a bundle too.
  const nextOnly = await planes(caNext, 1, [caNext.certPem]);
  assert.throws(() => store.set('cp', nextOnly.cp), /dp certificate in force/);
  store.set('dp', fresh.dp);
  store.set('cp', nextOnly.cp);
  assert.deepEqual(store.casPem().map(sha256Fingerprint), [sha256Fingerprint(caNext.certPem)]);
  // A leaf from an unlisted CA is refused whatever list it brings along with it... unless the list names its CA.
  const foreign = await planes(caOther, 1, [caNext.certPem]);
  assert.throws(() => store.set('dp', foreign.dp), /not signed/);
});

test('CA records: a record without a list is the one-CA list of 0.1.0; a list keeps the issuer active and first', () => {
  const one = { cert: caOld.certPem, key: caOld.keyPem };
  assert.deepEqual(
    caEntries(one).map((e) => e.state),
    ['active'],
  );
  assert.equal(trustedPems(one).length, 1);
  const rollover = {
    cert: caNext.certPem,
    key: caNext.keyPem,
    cas: [
      { cert: caOld.certPem, state: 'active' as const },
      { cert: caNext.certPem, key: caNext.keyPem, state: 'next' as const },
    ],
  };
  // The issuer is what `cert` says, whatever a stale list says of it.
  assert.deepEqual(
    caList(rollover).map((c) => [c.fingerprint, c.state]),
    [
      [sha256Fingerprint(caOld.certPem), 'active'],
      [sha256Fingerprint(caNext.certPem), 'active'],
    ],
  );
  assert.equal(sha256Fingerprint(trustedPems(rollover)[0]), sha256Fingerprint(caOld.certPem));
  const v = caList({ cert: caOld.certPem, key: caOld.keyPem, cas: [{ cert: caNext.certPem, state: 'next' }] });
  assert.deepEqual(
    v.map((c) => c.state),
    ['active', 'next'],
  );
  assert.match(v[0].fingerprint, /^sha256:[0-9a-f]{64}$/);
  assert.ok(Date.parse(v[0].not_after) > Date.parse(v[0].not_before));
});

test('services: a bundle is served to clients; a client holding the bundle verifies certificates of either CA', async () => {
  const dir = path.join(tmp, 'svc');
  fs.mkdirSync(path.join(dir, 'certs'), { recursive: true });
  const services = new ServiceCerts(dir, undefined);
  services.setCa(joinPems([caOld.certPem, caNext.certPem]));
  assert.equal(splitPems(fs.readFileSync(path.join(dir, 'certs', 'services-ca.pem'), 'utf8')).length, 2);
  const oldLeaf = await issueLocally(caOld, { clusterId: CLUSTER, uid: 1, plane: 'api', addr: '127.0.74.1', validitySeconds: 3600 });
  const nextLeaf = await issueLocally(caNext, { clusterId: CLUSTER, uid: 1, plane: 'api', addr: '127.0.74.1', validitySeconds: 3600 });
  services.set('api', oldLeaf);
  assert.equal(services.isCurrent('api'), true, 'issued by the bundle issuer (first)');
  services.set('api', nextLeaf);
  assert.equal(services.isCurrent('api'), false, 'the next CA is not the issuer yet');
  const bundle = fs.readFileSync(path.join(dir, 'certs', 'services-ca.pem'), 'utf8');
  for (const [leaf, n] of [
    [oldLeaf, 1],
    [nextLeaf, 2],
  ] as const) {
    const srv = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (_q, r) => r.end('ok'));
    await new Promise<void>((r) => srv.listen(23410 + n, '127.0.74.1', r));
    try {
      const ok = await new Promise<boolean>((resolve) => {
        const s = tls.connect({ host: '127.0.74.1', port: 23410 + n, ca: bundle }, () => {
          resolve(s.authorized);
          s.destroy();
        });
        s.on('error', () => resolve(false));
      });
      assert.equal(ok, true, `leaf ${n} verified with the bundle`);
      const refused = await new Promise<boolean>((resolve) => {
        const s = tls.connect({ host: '127.0.74.1', port: 23410 + n, ca: caOther.certPem }, () => {
          resolve(false);
          s.destroy();
        });
        s.on('error', () => resolve(true));
      });
      assert.equal(refused, true);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  }
});

test('a live context (the etcd client) takes a CA it did not have: the next handshake verifies', async () => {
  const leaf = await issueLocally(caNext, { clusterId: CLUSTER, uid: 1, plane: 'cp', addr: '127.0.74.1', validitySeconds: 3600 });
  const srv = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end());
  await new Promise<void>((r) => srv.listen(23420, '127.0.74.1', r));
  const ctx = secureContext({ certPem: caOld.certPem, keyPem: caOld.keyPem, caPem: caOld.certPem });
  const connect = () =>
    new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.74.1', port: 23420, secureContext: ctx, checkServerIdentity: () => undefined }, () => {
        resolve('ok');
        s.destroy();
      });
      s.on('error', (e) => resolve(`refused:${e.message}`));
    });
  try {
    assert.match(await connect(), /^refused:/);
    addTrustedCa(ctx, caNext.certPem);
    assert.equal(await connect(), 'ok');
  } finally {
    await new Promise((r) => srv.close(r));
  }
});
