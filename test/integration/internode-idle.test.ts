// The internode channel keeps an authenticated connection that says nothing:
// a member's control link and an external s_client on the data plane both
// idle for 31 seconds and are still open (and the control link still answers)
// afterwards. Moved here from test/unit/internode-security.test.ts (its case
// 10) because it must wait those 31 seconds; the harness is the same
// (test/support/internode-harness.ts).
//
// Address: 127.0.10.11:13353.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ALPN, SERVERNAME } from '../../src/tls/contexts.js';
import { sClient, probe, type ProbeResult } from '../support/tls-tools.js';
import { sleep, waitFor } from '../support/wait.js';
import { InternodeFixture, rpc, reply, assertAccepted } from '../support/internode-harness.js';

let fx: InternodeFixture;
before(async () => {
  fx = await InternodeFixture.create();
});
after(() => fx?.cleanup());

test('10. an authenticated idle connection stays open for at least 31 seconds', { timeout: 90_000 }, async () => {
  const { cc, f } = fx;
  const h = await fx.startServer(11);
  let n: ProbeResult | undefined;
  try {
    n = await probe(fx.client(h, cc.nodes[1].cp, 'cp', { keepOpen: true, untilReply: true, watchMs: 3000 }));
    assertAccepted(n, 'cp', 2, 'idle cp');
    // An external client idles alongside, with stdin open and nothing sent.
    const ext = sClient(fx.sArgs(h, f.m2dp, '-alpn', ALPN.dp, '-servername', SERVERNAME.dp), { holdMs: 31_500 });
    await sleep(31_000);
    assert.equal(n.closed, false, `closed by the server after ${n.closedAfterMs} ms idle`);
    assert.deepEqual(
      h.srv
        .connections()
        .map((p) => p.plane)
        .sort(),
      ['cp', 'dp'],
    );
    n.socket!.write(rpc(2));
    await waitFor('a reply after 31 s idle', () => n!.replies.length === 2, 2000, 20);
    assert.deepEqual(JSON.parse(n.replies[1]), reply(2, 'cp', 2));
    const e = await ext;
    assert.equal(e.aliveAfterHold, true, `s_client was disconnected while idle:\n${e.stderr}`);
    assert.match(e.stdout, /ALPN protocol: tessera-dp\/1/);
  } finally {
    n?.socket?.destroy();
    await h.srv.close();
  }
});
