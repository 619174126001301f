// The verify-encryption report in a database's Security section: what
// `tessera verify encryption db <uid>` says, judged on the server by the same
// code (internode/verify.ts) from every node's live internode connections.
import { call } from '../api.js';
import type { VerifyEncryptionView } from '../../views.js';
import { errorMessage, fill, h, note, table } from '../dom.js';

const nodeName = (uid: number | null, addr: string) => (uid === null ? addr.replace(/:\d+$/, '') : `node ${uid}`);

export function verifyEncryptionArea(uid: number): HTMLElement {
  const button = h('button', { type: 'button' }, 'Verify encryption');
  const out = h('div', { class: 'verify' });
  button.addEventListener('click', async () => {
    button.disabled = true;
    fill(out, note('Asking every node for its live internode connections…'));
    try {
      const { report: r, unreachable } = await call<VerifyEncryptionView>('GET', `/ui/verify_encryption?db=${uid}`);
      const d = r.databases.find((x) => x.uid === uid);
      const counted = `${r.connections} connection(s) reported by ${r.nodes.length} node(s)`;
      const verdict = r.ok
        ? note(
            `Verdict: OK. Every link carries what this database's setting says: ${counted}${d ? `; ${d.tls_connections} TLS and ${d.plaintext_connections} plaintext data connection(s) of this database` : ''}.`,
            'good',
          )
        : h(
            'div',
            { role: 'alert', class: 'error' },
            h('p', null, `Verdict: FAILED. ${r.violations.length} violation(s) in ${counted}:`),
            h(
              'ul',
              null,
              r.violations.map((v) => h('li', null, v.message)),
            ),
          );
      const links = r.links.filter((l) => l.purpose !== 'control' || r.links.length < 40);
      fill(
        out,
        verdict,
        unreachable.length
          ? errorMessage(
              new Error(`Not covered: ${unreachable.map((n) => `node ${n.uid} (${n.addr}) did not answer: ${n.error}`).join('; ')}`),
            )
          : null,
        table(
          'Internode connections',
          ['Node', 'Side', 'Peer', 'Purpose', 'Shard', 'Protocol', 'Cipher', 'Key exchange', 'Peer certificate'],
          links.map((l) => [
            `node ${l.local_uid}`,
            l.side,
            nodeName(l.remote_uid, l.remote_address),
            l.purpose,
            l.shard_uid === null ? '—' : l.purpose === 'replication' ? `${l.shard_uid} → ${l.replica_shard_uid}` : String(l.shard_uid),
            l.protocol,
            l.cipher ?? '—',
            l.group ?? '—',
            l.peer_cert_serial
              ? `${l.peer_cert_serial}${l.peer_cert_days_left === null ? '' : ` (${l.peer_cert_days_left} days left)`}`
              : '—',
          ]),
          'No internode connection carries this database now (its shards and endpoints are on one node, or idle).',
        ),
        h(
          'p',
          { class: 'muted' },
          `Checked ${new Date(r.checked_at).toLocaleTimeString()}; key exchange rule ${r.internode_key_exchange}.`,
        ),
      );
    } catch (err) {
      fill(out, errorMessage(err));
    } finally {
      button.disabled = false;
    }
  });
  return h(
    'div',
    { class: 'verify-area' },
    h('h3', null, 'Verify encryption'),
    h(
      'p',
      { class: 'hint' },
      'Lists every live connection between nodes that carries this database or the control plane, and checks each against this setting and the TLS policy.',
    ),
    button,
    out,
  );
}
