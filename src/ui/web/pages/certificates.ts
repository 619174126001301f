// Certificates: one row per node and plane (serial as `openssl x509 -serial`
// prints it, issuer, validity, days left, highlighted under the alert
// threshold), `Rotate certificates` with a confirmation and its progress,
// the rotation and alert settings, and an upload of operator certificates.
import { ApiError, call, sleep } from '../api.js';
import { errorMessage, facts, field, fill, fmtTime, h, note, select, table } from '../dom.js';
import {
  type ActionRecord,
  CERT_NAMES,
  type CertificatesInfo,
  type ClusterInfo,
  type JobSchedulerRecord,
  type NodeInfo,
  type RotateResult,
} from '../types.js';
import type { AppContext, Page } from './page.js';

const ROTATE_WAIT_MS = 60_000;

/** Upper-case hex in whole bytes, as `openssl x509 -serial` prints it. */
export function opensslSerial(hex: string): string {
  const s = hex.toUpperCase();
  return s.length % 2 ? `0${s}` : s;
}

export function certificatesPage(_ctx: AppContext): Page {
  const problem = h('div');
  const list = h('div', { class: 'placeholder' }, 'Loading…');
  const rotateArea = h('div');
  const ca = h('div');
  const cas = h('div');
  const caRotateArea = h('div');
  const settings = h('div');
  const upload = h('div');
  const el = h(
    'section',
    { class: 'page' },
    h('h1', null, 'Certificates'),
    problem,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'certs-nodes' },
      h('h2', { id: 'certs-nodes' }, 'Internode certificates'),
      list,
      rotateArea,
    ),
    h('section', { class: 'card', 'aria-labelledby': 'certs-ca' }, h('h2', { id: 'certs-ca' }, 'Cluster CAs'), cas, ca, caRotateArea),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'certs-settings' },
      h('h2', { id: 'certs-settings' }, 'Rotation and expiry alert'),
      settings,
    ),
    h('section', { class: 'card', 'aria-labelledby': 'certs-upload' }, h('h2', { id: 'certs-upload' }, 'Operator certificates'), upload),
  );

  let threshold = 45;
  let lastSerials = new Map<string, string>();

  const load = async (): Promise<CertificatesInfo | undefined> => {
    try {
      const [info, cluster] = await Promise.all([
        call<CertificatesInfo>('GET', '/v1/cluster/certificates'),
        call<ClusterInfo>('GET', '/v1/cluster'),
      ]);
      threshold = cluster.alert_settings.node_internal_certs_about_to_expire.threshold;
      lastSerials = new Map(info.certificates.map((c) => [`${c.node_uid}/${c.plane}`, c.serial]));
      list.className = '';
      fill(
        list,
        table(
          'Internode certificates of every node',
          ['Node', 'Certificate', 'Serial', 'Issuer', 'Not before', 'Not after', 'Days left'],
          info.certificates.map((c) => {
            const days = Math.floor(c.expires_in_seconds / 86400);
            const low = days < threshold;
            return [
              `node ${c.node_uid}`,
              c.name,
              h('code', { class: 'serial' }, opensslSerial(c.serial)),
              c.issuer,
              fmtTime(c.not_before),
              fmtTime(c.not_after),
              h(
                'span',
                { class: low ? 'days low' : 'days' },
                String(days),
                low ? h('span', { class: 'warn-text' }, ` — under the ${threshold}-day alert threshold`) : null,
              ),
            ];
          }),
          'No node has reported its certificates yet.',
        ),
      );
      fill(
        cas,
        table(
          'The cluster CAs: internode (cp, dp, etcd) and services (REST, UI, metrics, endpoints)',
          ['CA', 'State', 'Subject', 'Not before', 'Not after', 'Days left', 'SHA-256 fingerprint'],
          (info.cas ?? []).map((c) => [
            c.name,
            c.state,
            c.subject,
            fmtTime(c.not_before),
            fmtTime(c.not_after),
            String(Math.floor(c.expires_in_seconds / 86400)),
            h('code', { class: 'wrap' }, c.fingerprint),
          ]),
          'This cluster does not list its CAs (a node older than 0.2 answered).',
        ),
      );
      fill(
        ca,
        facts([
          ['Subject', info.ca.subject],
          ['Serial', h('code', null, opensslSerial(info.ca.serial))],
          ['Not after', fmtTime(info.ca.not_after)],
          ['SHA-256 fingerprint', h('code', { class: 'wrap' }, info.ca.fingerprint256)],
          ['Internode key exchange', `${info.key_exchange.internode_key_exchange} (${info.key_exchange.groups.join(', ')})`],
        ]),
      );
      fill(problem);
      return info;
    } catch (err) {
      fill(problem, errorMessage(err));
      return undefined;
    }
  };

  // Rotate: a confirmation, then progress until every node presents a new serial for each plane.
  const rotateButton = h('button', { type: 'button', class: 'primary' }, 'Rotate certificates');
  const rotateConfirm = h('div');
  const rotateFeedback = h('div');
  rotateButton.addEventListener('click', () => {
    rotateButton.hidden = true;
    fill(rotateFeedback);
    const yes = h('button', { type: 'button', class: 'primary' }, 'Rotate');
    const no = h('button', { type: 'button' }, 'Cancel');
    const done = () => {
      fill(rotateConfirm);
      rotateButton.hidden = false;
    };
    no.addEventListener('click', done);
    yes.addEventListener('click', async () => {
      const before = new Map(lastSerials);
      done();
      rotateButton.disabled = true;
      const bar = h('progress', { max: String(before.size || 1), value: '0', 'aria-label': 'Rotation progress' });
      const text = h('span', null, 'Issuing new certificates on every node…');
      fill(rotateFeedback, h('div', { role: 'status', class: 'note info progress' }, text, bar));
      try {
        try {
          await call<RotateResult>('POST', '/v1/cluster/certificates/rotate', {});
        } catch (err) {
          const failed =
            err instanceof ApiError
              ? (err.body as { failed_nodes?: { node_uid: number; error?: string }[] } | undefined)?.failed_nodes
              : undefined;
          fill(
            rotateFeedback,
            errorMessage(err),
            failed?.length
              ? h(
                  'ul',
                  null,
                  failed.map((f) => h('li', null, `node ${f.node_uid}: ${f.error ?? 'failed'}`)),
                )
              : null,
          );
          return;
        }
        const deadline = Date.now() + ROTATE_WAIT_MS;
        while (Date.now() < deadline) {
          const info = await load();
          const renewed = info ? info.certificates.filter((c) => before.get(`${c.node_uid}/${c.plane}`) !== c.serial).length : 0;
          bar.value = renewed;
          text.textContent = `New certificates: ${renewed} of ${before.size}.`;
          if (info && renewed >= before.size) {
            fill(rotateFeedback, note(`Every node has its new certificates (${renewed} renewed).`, 'good'));
            return;
          }
          await sleep(1000);
        }
        fill(
          rotateFeedback,
          errorMessage(
            new ApiError(
              0,
              'rotation_pending',
              'Not every node reports a new certificate yet; nodes that were unreachable renew when they return.',
            ),
          ),
        );
      } finally {
        rotateButton.disabled = false;
      }
    });
    fill(
      rotateConfirm,
      h('p', { class: 'confirm' }, 'Issue new internode certificates (control and data plane) to every node now?'),
      h('div', { class: 'actions' }, yes, no),
    );
    no.focus();
  });
  fill(rotateArea, h('div', { class: 'toolbar' }, rotateButton), rotateConfirm, rotateFeedback);

  // Rotate CA: the internode CA rollover (an action of four steps), after a confirmation; its steps as they come.
  const caButton = h('button', { type: 'button' }, 'Rotate CA');
  const caConfirm = h('div');
  const caFeedback = h('div');
  caButton.addEventListener('click', () => {
    caButton.hidden = true;
    fill(caFeedback);
    const yes = h('button', { type: 'button', class: 'primary' }, 'Rotate the internode CA');
    const no = h('button', { type: 'button' }, 'Cancel');
    const done = () => {
      fill(caConfirm);
      caButton.hidden = false;
    };
    no.addEventListener('click', done);
    yes.addEventListener('click', async () => {
      done();
      caButton.disabled = true;
      try {
        const r = await call<{ action_uid: string }>('POST', '/v1/cluster/certificates/ca/rotate', { ca: 'internode' });
        for (;;) {
          const a = await call<ActionRecord>('GET', `/v1/actions/${r.action_uid}`);
          const last = (a.steps ?? []).at(-1) ?? a.description ?? '';
          fill(caFeedback, h('div', { role: 'status', class: 'note info' }, `Action ${r.action_uid}: ${last}`));
          if (a.status === 'completed' || a.status === 'failed') {
            if (a.status === 'failed')
              fill(caFeedback, h('p', { role: 'alert', class: 'note error' }, `CA rollover failed: ${a.error ?? a.description ?? ''}`));
            break;
          }
          await sleep(2000);
        }
        await load();
      } catch (err) {
        fill(caFeedback, errorMessage(err));
      } finally {
        caButton.disabled = false;
      }
    });
    fill(
      caConfirm,
      h(
        'div',
        { class: 'note warn', role: 'alertdialog', 'aria-label': 'Confirm the CA rollover' },
        h(
          'p',
          null,
          'Replace the internode CA? Every node trusts the new CA, gets new certificates from it, then stops trusting the old one; etcd members restart one at a time. Databases stay available.',
        ),
        h('div', { class: 'toolbar' }, yes, no),
      ),
    );
  });
  fill(caRotateArea, h('div', { class: 'toolbar' }, caButton), caConfirm, caFeedback);

  const loadSettings = async () => {
    try {
      const [js, cluster] = await Promise.all([
        call<JobSchedulerRecord>('GET', '/v1/job_scheduler'),
        call<ClusterInfo>('GET', '/v1/cluster'),
      ]);
      fill(settings, settingsForms(js, cluster, load));
    } catch (err) {
      fill(settings, errorMessage(err));
    }
  };

  void load();
  void loadSettings();
  void loadNodes(upload, load);
  return { title: 'Certificates', el };
}

function settingsForms(js: JobSchedulerRecord, cluster: ClusterInfo, reload: () => Promise<unknown>): HTMLElement {
  const r = js.cert_rotation_job_settings;
  const enabled = h('input', { type: 'checkbox', checked: r.enabled });
  const validity = h('input', { type: 'number', min: '0.001', step: 'any', value: String(r.validity_days), required: true });
  const before = h('input', { type: 'number', min: '0.001', step: 'any', value: String(r.expiry_days_before_rotation), required: true });
  const saveRotation = h('button', { type: 'submit' }, 'Save rotation settings');
  const rotationFeedback = h('div');
  const rotation = h(
    'form',
    { class: 'form-grid' },
    field('Automatic rotation', enabled),
    field('Validity (days)', validity),
    field('Rotate this many days before expiry', before),
    rotationFeedback,
    h('div', { class: 'actions' }, saveRotation),
  );
  rotation.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(rotationFeedback);
    try {
      const next = await call<JobSchedulerRecord>('PUT', '/v1/job_scheduler', {
        cert_rotation_job_settings: {
          enabled: enabled.checked,
          validity_days: Number(validity.value),
          expiry_days_before_rotation: Number(before.value),
        },
      });
      const s = next.cert_rotation_job_settings;
      fill(
        rotationFeedback,
        note(
          `Saved: rotation ${s.enabled ? 'on' : 'off'}, ${s.validity_days}-day certificates renewed ${s.expiry_days_before_rotation} days before expiry.`,
          'good',
        ),
      );
    } catch (err) {
      fill(rotationFeedback, errorMessage(err));
    }
  });

  const a = cluster.alert_settings.node_internal_certs_about_to_expire;
  const alertOn = h('input', { type: 'checkbox', checked: a.enabled });
  const threshold = h('input', { type: 'number', min: '0.001', step: 'any', value: String(a.threshold), required: true });
  const saveAlert = h('button', { type: 'submit' }, 'Save alert settings');
  const alertFeedback = h('div');
  const alert = h(
    'form',
    { class: 'form-grid' },
    field('Expiry alert', alertOn),
    field('Alert threshold (days left)', threshold),
    alertFeedback,
    h('div', { class: 'actions' }, saveAlert),
  );
  alert.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(alertFeedback);
    try {
      await call('PUT', '/v1/cluster', {
        alert_settings: { node_internal_certs_about_to_expire: { enabled: alertOn.checked, threshold: Number(threshold.value) } },
      });
      fill(alertFeedback, note('Saved.', 'good'));
      await reload();
    } catch (err) {
      fill(alertFeedback, errorMessage(err));
    }
  });
  return h('div', { class: 'two-col' }, rotation, alert);
}

async function loadNodes(into: HTMLElement, reload: () => Promise<unknown>): Promise<void> {
  let nodes: NodeInfo[] = [];
  try {
    nodes = await call<NodeInfo[]>('GET', '/v1/nodes');
  } catch (err) {
    fill(into, errorMessage(err));
    return;
  }
  const name = select(
    CERT_NAMES.map((n) => [n, n]),
    CERT_NAMES[1],
  );
  const node = select([['', 'Every node'], ...nodes.map((n): [string, string] => [String(n.uid), `node ${n.uid} (${n.addr})`])], '');
  const cert = h('textarea', { rows: '6', required: true, spellcheck: 'false', placeholder: '-----BEGIN CERTIFICATE-----' });
  const key = h('textarea', { rows: '4', required: true, spellcheck: 'false', placeholder: '-----BEGIN PRIVATE KEY-----' });
  const submit = h('button', { type: 'submit' }, 'Upload certificate');
  const feedback = h('div');
  const form = h(
    'form',
    { class: 'form-grid' },
    h(
      'p',
      { class: 'hint' },
      'Replace a plane’s cluster-issued certificate with your own (PEM: the certificate followed by its chain, and its private key). Every check runs before anything changes.',
    ),
    field('Certificate name', name),
    field('Node', node),
    field('Certificate chain (PEM)', cert),
    field('Private key (PEM)', key),
    feedback,
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(feedback);
    submit.disabled = true;
    try {
      const entry: Record<string, unknown> = { name: name.value, certificate: cert.value.trim() + '\n', key: key.value.trim() + '\n' };
      if (node.value) entry.node_uid = Number(node.value);
      await call('PUT', '/v1/cluster/certificates', { certificates: [entry] });
      key.value = '';
      fill(feedback, note('The certificate is applied on every node it names.', 'good'));
      await reload();
    } catch (err) {
      // The REST refusal names the failing check: "… [check: eku_client_auth]".
      const check = err instanceof Error ? /\[check: ([a-z0-9_]+)\]/.exec(err.message)?.[1] : undefined;
      fill(feedback, errorMessage(err), check ? h('p', { class: 'error' }, 'Failed check: ', h('code', null, check)) : null);
    } finally {
      submit.disabled = false;
    }
  });
  fill(into, form);
}
