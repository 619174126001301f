// Live internode links and a CA rollover's step 4 (internode/links.ts
// `untrusted`, `followTrust`): real internode servers and dialers on loopback.
// A link set up with a certificate of a CA that has left the trust (the
// peer's, or this node's own) is cut after the grace; a link set up with
// certificates of the CAs still trusted stays. The links list the peer
// certificate's issuer, and until the cut `verify encryption` flags the link.
//
// Addresses: 127.0.95.x (this helper's unit net).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import pino from 'pino';
import { CertStore } from '../../src/pki/certstore.js';
import { joinPems } from '../../src/pki/ca-list.js';
import { createCa, issueLocally, type Issued, type Plane } from '../../src/pki/pki.js';
import { InternodeServer, dial, type PeerPolicy } from '../../src/internode/channel.js';
import { LinkRegistry } from '../../src/internode/links.js';
import { verifyEncryption } from '../../src/internode/verify.js';
import type { Bundle } from '../../src/tls/policy.js';

const CLUSTER = 'ca-links-test';
const ADDR = '127.0.95.1';
const log = pino({ level: 'silent' });
const policy: PeerPolicy = { clusterId: () => CLUSTER, isMember: () => true, isDenied: () => false };
const GRACE = { dialedMs: 150, acceptedMs: 300 };

let caOld: Issued;
let caNext: Issued;

async function planes(ca: Issued, uid: number, trust: string[]): Promise<Record<Plane, Bundle>> {
  const out = {} as Record<Plane, Bundle>;
  for (const plane of ['cp', 'dp'] as Plane[]) {
    const i = await issueLocally(ca, { clusterId: CLUSTER, uid, plane, addr: ADDR, validitySeconds: 3600 });
    out[plane] = { certPem: i.certPem, keyPem: i.keyPem, caPem: joinPems(trust) };
  }
  return out;
}

/** Renew both planes of a store from `ca` (the rollover's step 3). */
async function reissue(store: CertStore, ca: Issued, uid: number): Promise<void> {
  const p = await planes(ca, uid, store.casPem());
  for (const plane of ['cp', 'dp'] as Plane[]) store.set(plane, p[plane]);
}

const subjectOf = (pem: string) => new X509Certificate(pem).subject.replace(/\n/g, ', ');
const closed = (s: tls.TLSSocket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

before(async () => {
  [caOld, caNext] = await Promise.all([createCa(CLUSTER, CLUSTER, 'internode', 'old'), createCa(CLUSTER, CLUSTER, 'internode', 'next')]);
});

test('after the old CA leaves the trust, links set up under it are cut (dialer first), the others stay', async () => {
  const both = [caOld.certPem, caNext.certPem];
  const server = new CertStore(await planes(caOld, 1, both));
  const accepted = new LinkRegistry();
  let relinks = 0;
  accepted.followTrust(server, log, () => relinks++, GRACE);
  const srv = new InternodeServer({
    host: ADDR,
    port: 23501,
    certs: server,
    policy,
    log,
    handlers: { cp: (s, peer) => accepted.add(s, { side: 'accepted', purpose: 'control', remoteUid: peer.uid }) },
  });
  await srv.listen();
  try {
    // Link A: both ends with certificates of the old CA.
    const clientA = new CertStore(await planes(caOld, 2, both));
    const dialedA = new LinkRegistry();
    dialedA.followTrust(clientA, log, undefined, GRACE);
    const a = await dial({ host: ADDR, port: 23501, plane: 'cp', certs: clientA, policy });
    dialedA.add(a.socket, { side: 'dialed', purpose: 'control', remoteUid: 1 });
    // Step 3: the server presents a certificate of the next CA; link B is set up with the next CA's on both ends.
    await reissue(server, caNext, 1);
    const clientB = new CertStore(await planes(caNext, 3, both));
    const b = await dial({ host: ADDR, port: 23501, plane: 'cp', certs: clientB, policy });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(accepted.size, 2);
    const issuers = accepted
      .list(1, () => false)
      .map((l) => [l.remote_uid, l.peer_cert_issuer])
      .sort();
    assert.deepEqual(issuers, [
      [2, subjectOf(caOld.certPem)],
      [3, subjectOf(caNext.certPem)],
    ]);
    assert.equal(accepted.untrusted(both).length, 0, 'both links are trusted while both CAs are');
    assert.equal(accepted.untrusted([caNext.certPem]).length, 1, 'only link A was set up under the old CA');

    // Step 4 on the dialer of A: it renewed, then drops the old CA; its link A (its own old certificate) goes first.
    await reissue(clientA, caNext, 2);
    const t0 = Date.now();
    clientA.setCas([caNext.certPem]);
    await closed(a.socket);
    const dialerCut = Date.now() - t0;
    assert.ok(dialerCut >= GRACE.dialedMs - 20, `the dialer waited for the grace: ${dialerCut} ms`);

    // Step 4 on the server, with a link under the old CA still up (C): the acceptor cuts it after its grace.
    const clientC = new CertStore(await planes(caOld, 4, both));
    const c = await dial({ host: ADDR, port: 23501, plane: 'cp', certs: clientC, policy });
    await new Promise((r) => setTimeout(r, 100));
    server.setCas([caNext.certPem]);
    // Until the cut, the listing flags it and verify encryption says so.
    const listed = accepted.list(1, () => false);
    assert.deepEqual(listed.map((l) => [l.remote_uid, l.untrusted_ca]).sort(), [
      [3, false],
      [4, true],
    ]);
    const verdict = verifyEncryption(
      [{ uid: 1, addr: ADDR }],
      [],
      [{ uid: 1, addr: ADDR, time: new Date().toISOString(), links: listed }],
      {
        requireAll: false,
      },
    );
    assert.deepEqual(
      verdict.violations.map((v) => v.kind),
      ['cert_untrusted_ca'],
    );
    await closed(c.socket);
    assert.equal(relinks, 1, 'the owner was told once, before the cut');
    await new Promise((r) => setTimeout(r, GRACE.acceptedMs));
    assert.ok(!b.socket.destroyed, 'link B (the next CA on both ends) stays');
    assert.deepEqual(
      accepted.list(1, () => false).map((l) => l.remote_uid),
      [3],
    );
    b.socket.destroy();
  } finally {
    await srv.close();
  }
});
