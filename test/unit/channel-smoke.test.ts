import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { makeClusterCerts } from '../support/certs.js';
import { CertStore } from '../../src/pki/certstore.js';
import { InternodeServer, dial, type PeerPolicy } from '../../src/internode/channel.js';
import { serveRpc, RpcClient } from '../../src/internode/rpc.js';

test('cp rpc round trip between two members', async () => {
  const cc = await makeClusterCerts('c1', [1, 2]);
  const policy: PeerPolicy = { clusterId: () => 'c1', isMember: (u) => u === 1 || u === 2, isDenied: () => false };
  const log = pino({ level: 'silent' });
  const s1 = new CertStore({ cp: cc.nodes[0].cp, dp: cc.nodes[0].dp });
  const s2 = new CertStore({ cp: cc.nodes[1].cp, dp: cc.nodes[1].dp });
  const srv = new InternodeServer({
    host: '127.0.9.1',
    port: 13342,
    certs: s1,
    policy,
    log,
    handlers: { cp: (s, p) => serveRpc(s, p, async (m, params, peer) => ({ m, params, from: peer.uid })) },
  });
  await srv.listen();
  const c = new RpcClient({ uid: 1, host: '127.0.9.1', port: 13342 }, s2, policy);
  const r = await c.call('status', { a: 1 });
  assert.deepEqual(r, { m: 'status', params: { a: 1 }, from: 2 });
  const d = await dial({ host: '127.0.9.1', port: 13342, plane: 'dp', certs: s2, policy });
  assert.equal(d.peer.uid, 1);
  assert.equal(d.peer.plane, 'dp');
  d.socket.destroy();
  c.close();
  await srv.close();
});
