// Databases: the list (refreshed every 5 s), the `Create database` form and
// the `Database defaults` (the cluster policy's data_internode_encryption,
// changed as Redis Enterprise's UI does it: Change → Enabled → Change → Save).
import { call } from '../api.js';
import { badge, errorMessage, every, field, fill, fmtBytes, h, note, select, table } from '../dom.js';
import type { Bdb, PolicyRecord } from '../types.js';
import { REFRESH_MS, type AppContext, type Page } from './page.js';

const onOff = (b: boolean) => (b ? 'Enabled' : 'Disabled');

export function endpointText(b: Bdb): string {
  return b.endpoints.map((e) => (e.addr.length ? e.addr.map((a) => `${a}:${e.port}`).join(', ') : `${e.dns_name}:${e.port}`)).join('; ');
}

export function databasesPage(ctx: AppContext): Page {
  const createButton = h('button', { type: 'button', class: 'primary' }, 'Create database');
  const defaultsButton = h('button', { type: 'button' }, 'Database defaults');
  const panel = h('div');
  const message = h('div');
  const problem = h('div');
  const list = h('div', { class: 'placeholder' }, 'Loading…');
  const status = h('p', { class: 'refreshed muted' });
  const el = h(
    'section',
    { class: 'page' },
    h('h1', null, 'Databases'),
    h('div', { class: 'toolbar' }, createButton, defaultsButton),
    panel,
    message,
    problem,
    list,
    status,
  );

  const closePanel = () => {
    fill(panel);
    createButton.hidden = false;
    defaultsButton.hidden = false;
  };

  const refresh = async () => {
    try {
      const dbs = await call<Bdb[]>('GET', '/v1/bdbs', undefined, { background: true });
      list.className = '';
      fill(
        list,
        table(
          'Databases',
          ['Name', 'Status', 'Endpoints', 'Shards', 'Replication', 'Internode encryption', 'Memory limit'],
          dbs.map((b) => [
            h('a', { href: `#/databases/${b.uid}` }, b.name),
            badge(b.status),
            endpointText(b),
            String(b.shards_count),
            onOff(b.replication),
            onOff(b.data_internode_encryption),
            fmtBytes(b.memory_size),
          ]),
          'There is no database yet. Create one with “Create database”.',
        ),
      );
      fill(problem);
      status.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (err) {
      fill(problem, errorMessage(err));
    }
  };

  createButton.addEventListener('click', async () => {
    closePanel();
    fill(message);
    createButton.hidden = true;
    let policy: PolicyRecord | undefined;
    try {
      policy = await call<PolicyRecord>('GET', '/v1/cluster/policy');
    } catch (err) {
      fill(message, errorMessage(err));
    }
    fill(
      panel,
      createForm(policy, closePanel, (name) => {
        closePanel();
        fill(message, note(`Database ${name} is being created.`, 'good'));
        void refresh();
      }),
    );
    panel.querySelector('input')?.focus();
  });

  defaultsButton.addEventListener('click', async () => {
    closePanel();
    fill(message);
    defaultsButton.hidden = true;
    try {
      const policy = await call<PolicyRecord>('GET', '/v1/cluster/policy');
      fill(panel, defaultsPanel(policy, closePanel));
    } catch (err) {
      defaultsButton.hidden = false;
      fill(message, errorMessage(err));
    }
  });

  void ctx;
  const stop = every(REFRESH_MS, refresh);
  return { title: 'Databases', el, dispose: stop };
}

function createForm(policy: PolicyRecord | undefined, close: () => void, created: (name: string) => void): HTMLElement {
  const name = h('input', {
    type: 'text',
    required: true,
    maxlength: '63',
    pattern: '[A-Za-z0-9][A-Za-z0-9_\\-]{0,62}',
    autocomplete: 'off',
  });
  const memory = h('input', { type: 'number', min: '1', step: '1', value: '100', required: true });
  const shards = h('input', { type: 'number', min: '1', max: '512', step: '1', value: '1', required: true });
  const replication = h('input', { type: 'checkbox' });
  const encryption = h('input', { type: 'checkbox', checked: policy?.data_internode_encryption ?? false });
  const persistence = select(
    [
      ['disabled', 'None'],
      ['aof', 'Append-only file (AOF)'],
      ['snapshot', 'Snapshot'],
    ],
    'disabled',
  );
  const port = h('input', { type: 'number', min: '10000', max: '19999', step: '1', placeholder: 'automatic' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create');
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const feedback = h('div');
  cancel.addEventListener('click', close);
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'create-db-title' },
    h('h2', { id: 'create-db-title' }, 'New database'),
    field('Name', name, 'Letters, digits, - and _; up to 63.'),
    field('Memory limit (MB)', memory),
    field('Number of shards', shards),
    field('Replication', replication, 'A replica of every shard on another node.'),
    field(
      'Internode encryption',
      encryption,
      `The cluster default for new databases is ${onOff(policy?.data_internode_encryption ?? false).toLowerCase()}.`,
    ),
    field('Data persistence', persistence),
    field('Port', port, 'Leave empty to pick a free port.'),
    feedback,
    h('div', { class: 'actions' }, submit, cancel),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(feedback);
    const n = Number(shards.value);
    const body: Record<string, unknown> = {
      name: name.value.trim(),
      memory_size: Math.round(Number(memory.value) * 1024 * 1024),
      shards_count: n,
      sharding: n > 1,
      replication: replication.checked,
      data_internode_encryption: encryption.checked,
      data_persistence: persistence.value,
    };
    if (port.value) body.port = Number(port.value);
    submit.disabled = true;
    try {
      const b = await call<Bdb>('POST', '/v1/bdbs', body);
      created(b.name);
    } catch (err) {
      fill(feedback, errorMessage(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/**
 * The defaults for new databases. `Internode Encryption` shows the current
 * value and a `Change` button; Change offers `Enabled`/`Disabled` and a
 * `Change` button that takes the choice (nothing is sent yet); `Save` sends
 * it (PUT /v1/cluster/policy).
 */
function defaultsPanel(policy: PolicyRecord, close: () => void): HTMLElement {
  let saved = policy.data_internode_encryption;
  let pending: boolean | undefined;
  const value = h('output', { class: 'setting-value' });
  const changeButton = h('button', { type: 'button' }, 'Change');
  const chooser = h('div', { class: 'chooser' });
  const save = h('button', { type: 'button', class: 'primary', disabled: true }, 'Save');
  const closeButton = h('button', { type: 'button' }, 'Close');
  const feedback = h('div');
  const show = () => {
    const v = pending ?? saved;
    fill(value, onOff(v), pending !== undefined && pending !== saved ? h('span', { class: 'muted' }, ' (not saved)') : null);
    save.disabled = pending === undefined || pending === saved;
  };

  changeButton.addEventListener('click', () => {
    changeButton.hidden = true;
    const current = pending ?? saved;
    const name = 'defaults-internode-encryption';
    const enabled = h('input', { type: 'radio', name, value: 'enabled', id: 'defaults-ie-enabled', checked: current });
    const disabled = h('input', { type: 'radio', name, value: 'disabled', id: 'defaults-ie-disabled', checked: !current });
    const confirm = h('button', { type: 'button', class: 'primary' }, 'Change');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const done = () => {
      fill(chooser);
      changeButton.hidden = false;
      changeButton.focus();
    };
    confirm.addEventListener('click', () => {
      pending = enabled.checked;
      done();
      show();
    });
    cancel.addEventListener('click', done);
    fill(
      chooser,
      h(
        'div',
        { role: 'radiogroup', 'aria-label': 'New value', class: 'radios' },
        h('span', { class: 'field check' }, enabled, h('label', { for: enabled.id }, 'Enabled')),
        h('span', { class: 'field check' }, disabled, h('label', { for: disabled.id }, 'Disabled')),
      ),
      h('div', { class: 'actions' }, confirm, cancel),
    );
    (current ? enabled : disabled).focus();
  });

  save.addEventListener('click', async () => {
    if (pending === undefined) return;
    save.disabled = true;
    fill(feedback);
    try {
      const next = await call<PolicyRecord>('PUT', '/v1/cluster/policy', { data_internode_encryption: pending });
      saved = next.data_internode_encryption;
      pending = undefined;
      fill(feedback, note(`Saved: new databases get internode encryption ${onOff(saved).toLowerCase()}.`, 'good'));
    } catch (err) {
      fill(feedback, errorMessage(err));
    } finally {
      show();
    }
  });
  closeButton.addEventListener('click', close);

  show();
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'db-defaults-title' },
    h('h2', { id: 'db-defaults-title' }, 'Defaults for new databases'),
    h(
      'div',
      { class: 'setting', role: 'group', 'aria-label': 'Internode Encryption' },
      h('span', { class: 'setting-name' }, 'Internode Encryption'),
      value,
      changeButton,
      chooser,
    ),
    h(
      'p',
      { class: 'hint' },
      'Encrypts the traffic between a new database’s shards and endpoints on different nodes. Existing databases keep their own setting.',
    ),
    feedback,
    h('div', { class: 'actions' }, save, closeButton),
  );
}
