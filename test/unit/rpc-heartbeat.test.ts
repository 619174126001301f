// The control links' own heartbeats (internode/rpc.ts): a link that stops
// answering is closed within LINK_SILENCE_MS plus a beat, its calls failed; a
// quiet but healthy link is never closed; a 0.1.0 peer is only sent methods it
// knows. Real TLS over loopback (127.0.94.x).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type tls from 'node:tls';
import pino from 'pino';
import { makeClusterCerts } from '../support/certs.js';
import { CertStore } from '../../src/pki/certstore.js';
import { InternodeServer, type PeerPolicy } from '../../src/internode/channel.js';
import { HEARTBEAT_MS, LINK_SILENCE_MS, PING_METHOD, RpcClient, readLines, serveRpc } from '../../src/internode/rpc.js';

const HOST = '127.0.94.1';
const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fixture(port: number, serve: (s: tls.TLSSocket) => void) {
  const cc = await makeClusterCerts('c1', [1, 2]);
  const policy: PeerPolicy = { clusterId: () => 'c1', isMember: (u) => u === 1 || u === 2, isDenied: () => false };
  const srv = new InternodeServer({
    host: HOST,
    port,
    certs: new CertStore({ cp: cc.nodes[0].cp, dp: cc.nodes[0].dp }),
    policy,
    log,
    handlers: { cp: (s) => serve(s) },
  });
  await srv.listen();
  const client = new RpcClient({ uid: 1, host: HOST, port }, new CertStore({ cp: cc.nodes[1].cp, dp: cc.nodes[1].dp }), policy);
  return { srv, client };
}

test('a control link that stops answering is closed by its heartbeat, its calls failed, well before TCP gives up', async () => {
  let cut = false;
  const { srv, client } = await fixture(13401, (s) =>
    // Once "cut", nothing is answered any more (a black hole: the socket stays open).
    serveRpc(s, { uid: 2, plane: 'cp', serial: '1' }, (m) =>
      cut ? new Promise(() => {}) : Promise.resolve(m === PING_METHOD ? 'pong' : m),
    ),
  );
  try {
    assert.equal(await client.call('status'), 'status');
    // Idle but healthy for several silences' worth: the heartbeats keep it up.
    await sleep(LINK_SILENCE_MS + 3 * HEARTBEAT_MS);
    assert.ok(client.connected, 'a quiet healthy link stays up');
    assert.ok(Date.now() - client.lastHeardAt < LINK_SILENCE_MS);
    cut = true;
    const t0 = Date.now();
    await assert.rejects(client.call('slow', {}, 30_000), /silent|closed/);
    const took = Date.now() - t0;
    assert.ok(took <= LINK_SILENCE_MS + 2 * HEARTBEAT_MS + 300, `detected in ${took} ms`);
    assert.ok(took >= LINK_SILENCE_MS - HEARTBEAT_MS, `not before the silence: ${took} ms`);
    assert.equal(client.connected, false);
  } finally {
    client.close();
    await srv.close();
  }
});

test('a 0.1.0 peer (no `v` in replies) is heartbeaten with `status`, a method it knows; a 0.2 peer with `ping`', async () => {
  const seen: string[] = [];
  let v1 = true;
  const { srv, client } = await fixture(13402, (s) =>
    // 0.1.0's serveRpc (git show 6b874a5:src/internode/rpc.ts): replies without `v`.
    readLines(s, (line) => {
      const msg = JSON.parse(line) as { id: number; method: string };
      seen.push(msg.method);
      s.write(JSON.stringify(v1 ? { id: msg.id, result: {} } : { id: msg.id, result: {}, v: 2 }) + '\n');
    }),
  );
  try {
    await client.call('status');
    await sleep(4 * HEARTBEAT_MS);
    assert.ok(seen.length >= 3, `heartbeats sent: ${seen.length}`);
    assert.deepEqual(new Set(seen), new Set(['status']), '0.1.0 sees only methods it has');
    assert.ok(client.connected);
    v1 = false;
    seen.length = 0;
    await client.call('status');
    await sleep(4 * HEARTBEAT_MS);
    assert.ok(seen.includes(PING_METHOD), `a 0.2 peer gets ping: ${seen.join(',')}`);
  } finally {
    client.close();
    await srv.close();
  }
});
