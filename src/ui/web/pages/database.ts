// One database: its configuration with a Security section (`Edit` makes
// them editable; `Save` sends PUT /v1/bdbs/{uid} and shows the change's
// progress until every node has applied it), its endpoints, its shards with
// their nodes and roles, a live chart of its traffic (db-metrics.ts), the
// verify-encryption report in its Security section (verify.ts), and deletion
// with a confirmation.
import { ApiError, call, sleep } from '../api.js';
import { badge, errorMessage, facts, field, fill, fmtBytes, fmtTime, h, note, select, table } from '../dom.js';
import type { ActionRecord, Bdb } from '../types.js';
import { REFRESH_MS, type AppContext, type Page } from './page.js';
import { databaseMetrics } from './db-metrics.js';
import { verifyEncryptionArea } from './verify.js';

const EVICTION = [
  'volatile-lru',
  'volatile-ttl',
  'volatile-random',
  'allkeys-lru',
  'allkeys-random',
  'noeviction',
  'volatile-lfu',
  'allkeys-lfu',
];
const PERSISTENCE: [string, string][] = [
  ['disabled', 'None'],
  ['aof', 'Append-only file (AOF)'],
  ['snapshot', 'Snapshot'],
];
const MB = 1024 * 1024;
const CHANGE_TIMEOUT_MS = 120_000;

const onOff = (b: boolean) => (b ? 'Enabled' : 'Disabled');

export function databasePage(ctx: AppContext, uid: number): Page {
  const title = h('h1', null, `Database ${uid}`);
  const statusBadge = h('span');
  const problem = h('div');
  const progress = h('div', { class: 'progress-slot' });
  const editButton = h('button', { type: 'button' }, 'Edit');
  const save = h('button', { type: 'button', class: 'primary', hidden: true }, 'Save');
  const cancel = h('button', { type: 'button', hidden: true }, 'Cancel');
  const config = h('div', { class: 'placeholder' }, 'Loading…');
  const security = h('div');
  const endpoints = h('div');
  const shards = h('div');
  const editFeedback = h('div');
  const deleteArea = h('div');
  const traffic = databaseMetrics(uid);
  const el = h(
    'section',
    { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/databases' }, '← Back to the list')),
    h('div', { class: 'title-row' }, title, statusBadge),
    problem,
    progress,
    h(
      'section',
      { class: 'card', 'aria-labelledby': `cfg-${uid}` },
      h('div', { class: 'section-head' }, h('h2', { id: `cfg-${uid}` }, 'Configuration'), editButton),
      config,
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': `sec-${uid}` },
      h('h2', { id: `sec-${uid}` }, 'Security'),
      security,
      verifyEncryptionArea(uid),
    ),
    editFeedback,
    h('div', { class: 'actions' }, save, cancel),
    h('section', { class: 'card', 'aria-labelledby': `tr-${uid}` }, h('h2', { id: `tr-${uid}` }, 'Traffic'), traffic.el),
    h('section', { class: 'card', 'aria-labelledby': `ep-${uid}` }, h('h2', { id: `ep-${uid}` }, 'Endpoints'), endpoints),
    h('section', { class: 'card', 'aria-labelledby': `sh-${uid}` }, h('h2', { id: `sh-${uid}` }, 'Shards'), shards),
    h('section', { class: 'card danger', 'aria-labelledby': `del-${uid}` }, h('h2', { id: `del-${uid}` }, 'Delete'), deleteArea),
  );

  let db: Bdb | undefined;
  let editing = false;
  let busy = false;
  let disposed = false;
  let timer: number | undefined;
  // The controls of the edit form, rebuilt from the database each time Edit is pressed.
  let controls:
    | {
        memory: HTMLInputElement;
        shardsCount: HTMLInputElement;
        eviction: HTMLSelectElement;
        persistence: HTMLSelectElement;
        encryption: HTMLInputElement;
        clientTls: HTMLInputElement;
        replication: HTMLInputElement;
      }
    | undefined;

  const render = () => {
    if (!db) return;
    const b = db;
    title.textContent = b.name;
    fill(statusBadge, badge(b.status));
    const memory = h('input', { type: 'number', min: '1', step: '1', value: String(Math.round(b.memory_size / MB)), disabled: !editing });
    // Resharding (PUT shards_count): moves slots live, a chunk at a time; changed alone.
    const shardsCount = h('input', { type: 'number', min: '1', max: '512', step: '1', value: String(b.shards_count), disabled: !editing });
    const eviction = select(
      EVICTION.map((e) => [e, e]),
      b.eviction_policy,
      { disabled: !editing },
    );
    const persistence = select(PERSISTENCE, b.data_persistence, { disabled: !editing });
    const encryption = h('input', {
      type: 'checkbox',
      role: 'switch',
      id: `ie-${uid}`,
      checked: b.data_internode_encryption,
      disabled: !editing,
    });
    const tlsOn = b.tls_mode === 'enabled';
    const clientTls = h('input', { type: 'checkbox', role: 'switch', id: `tls-${uid}`, checked: tlsOn, disabled: !editing });
    const replication = h('input', { type: 'checkbox', checked: b.replication, disabled: !editing });
    controls = { memory, shardsCount, eviction, persistence, encryption, clientTls, replication };
    const listed = b.authentication_ssl_client_certs.length;
    const clientAuth =
      b.enforce_client_authentication === 'enabled' && listed
        ? `only clients presenting one of the ${listed} listed certificate${listed === 1 ? '' : 's'} (or one issued by them) are served`
        : 'any TLS client is served (no client certificate is required)';
    fill(
      config,
      editing
        ? h(
            'div',
            { class: 'form-grid' },
            field('Memory limit (MB)', memory),
            field('Shards (master shards; resharding is live, and is changed alone)', shardsCount),
            field('Eviction policy', eviction),
            field('Data persistence', persistence),
            field('Replication', replication, 'A replica of every shard on another node; turned on or off live, shard by shard.'),
          )
        : facts([
            ['Memory limit', fmtBytes(b.memory_size)],
            ['Eviction policy', b.eviction_policy],
            ['Data persistence', PERSISTENCE.find(([v]) => v === b.data_persistence)?.[1] ?? b.data_persistence],
            ['Shards', `${b.shards_count}${b.sharding ? ' (sharded)' : ''}`],
            ['Replication', onOff(b.replication)],
            ['Proxy policy', b.proxy_policy],
            ['Shard placement', b.shards_placement],
            ['Port', String(b.port)],
            ['Password', b.authentication_redis_pass_set ? 'set' : 'none'],
            ['Created', fmtTime(b.created_time)],
            ['Last changed', fmtTime(b.last_changed_time)],
          ]),
    );
    fill(
      security,
      h(
        'div',
        { class: 'switch-row' },
        encryption,
        h('label', { for: encryption.id }, 'Internode Encryption'),
        h('span', { class: 'switch-state', 'aria-hidden': 'true' }, onOff(b.data_internode_encryption)),
      ),
      h(
        'p',
        { class: 'hint', id: `ie-${uid}-hint` },
        'Encrypts the traffic between this database’s shards and endpoints on different nodes (TLS on the internode channel). Switching it is live: clients stay connected.',
      ),
      h(
        'div',
        { class: 'switch-row' },
        clientTls,
        h('label', { for: clientTls.id }, 'TLS for clients'),
        h('span', { class: 'switch-state', 'aria-hidden': 'true' }, onOff(tlsOn)),
      ),
      h(
        'p',
        { class: 'hint', id: `tls-${uid}-hint` },
        `Clients must connect to the endpoint with TLS (tls_mode); it presents the node’s proxy certificate, issued by the cluster’s services CA. With TLS on, ${clientAuth}; the client certificates are set through the REST API (authentication_ssl_client_certs). Switching it closes the connections the new setting does not admit.`,
      ),
    );
    encryption.setAttribute('aria-describedby', `ie-${uid}-hint`);
    clientTls.setAttribute('aria-describedby', `tls-${uid}-hint`);
    fill(
      endpoints,
      table(
        'Endpoints',
        ['Endpoint', 'Addresses', 'Proxy policy'],
        b.endpoints.map((e) => [`${e.dns_name}:${e.port}`, e.addr.map((a) => `${a}:${e.port}`).join(', ') || '—', e.proxy_policy]),
        'No endpoint.',
      ),
    );
    fill(
      shards,
      table(
        'Shards',
        ['Shard', 'Role', 'Node', 'Hash slots', 'Status'],
        b.shards.map((s) => [
          String(s.uid),
          s.role === 'slave' ? `replica of ${s.master_uid}` : 'master',
          `node ${s.node_uid}`,
          s.assigned_slots,
          shardBadge(s),
        ]),
        'No shard.',
      ),
    );
    editButton.hidden = editing;
    editButton.disabled = busy || b.status === 'delete-pending';
    save.hidden = !editing;
    cancel.hidden = !editing;
    config.className = '';
  };

  const load = async (background: boolean) => {
    try {
      db = await call<Bdb>('GET', `/v1/bdbs/${uid}`, undefined, { background });
      fill(problem);
      if (!editing) render();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && !busy) {
        fill(config, 'This database does not exist (any more).');
        config.className = '';
      }
      fill(problem, errorMessage(err));
    }
  };
  const schedule = () => {
    if (disposed) return;
    timer = window.setTimeout(async () => {
      if (!editing && !busy) await load(true);
      schedule();
    }, REFRESH_MS);
  };

  editButton.addEventListener('click', () => {
    editing = true;
    fill(editFeedback);
    fill(progress);
    render();
    controls?.memory.focus();
  });
  cancel.addEventListener('click', () => {
    editing = false;
    fill(editFeedback);
    render();
  });

  save.addEventListener('click', async () => {
    if (!db || !controls) return;
    const b = db;
    const body: Record<string, unknown> = {};
    const memory = Math.round(Number(controls.memory.value) * MB);
    if (memory !== b.memory_size) body.memory_size = memory;
    if (controls.eviction.value !== b.eviction_policy) body.eviction_policy = controls.eviction.value;
    if (controls.persistence.value !== b.data_persistence) body.data_persistence = controls.persistence.value;
    if (controls.encryption.checked !== b.data_internode_encryption) body.data_internode_encryption = controls.encryption.checked;
    if (controls.clientTls.checked !== (b.tls_mode === 'enabled')) body.tls_mode = controls.clientTls.checked ? 'enabled' : 'disabled';
    // Replication is a change of its own (PUT with that field alone), sent after the others are applied.
    const replication = controls.replication.checked !== b.replication ? controls.replication.checked : undefined;
    const shardsCount = Number(controls.shardsCount.value);
    fill(editFeedback);
    if (shardsCount !== b.shards_count) {
      if (Object.keys(body).length || replication !== undefined) {
        fill(editFeedback, errorMessage(new ApiError(0, 'unsupported_change', 'Change the shard count alone, then the other settings.')));
        return;
      }
      body.shards_count = shardsCount;
      if (shardsCount > 1) body.sharding = true;
    }
    if (!Object.keys(body).length && replication === undefined) {
      editing = false;
      render();
      fill(progress, note('Nothing was changed.'));
      return;
    }
    save.disabled = true;
    try {
      for (const change of [body, replication === undefined ? {} : { replication }]) {
        if (!Object.keys(change).length) continue;
        const next = await call<Bdb>('PUT', `/v1/bdbs/${uid}`, change);
        db = next;
        editing = false;
        busy = true;
        render();
        if (!(await follow(next, change))) break;
      }
    } catch (err) {
      fill(editFeedback, errorMessage(err)); // the form stays open, with what the user typed
    } finally {
      busy = false;
      save.disabled = false;
      if (db) render();
    }
  });

  /** Show the change's progress until the database is active again at (or past) that change; true once it is. */
  const follow = async (changed: Bdb, body: Record<string, unknown>): Promise<boolean> => {
    const bar = h('progress', { 'aria-label': 'Change progress' });
    const text = h('span', null, 'Applying the change on every node…');
    fill(progress, h('div', { role: 'status', class: 'note info progress' }, text, bar));
    const deadline = Date.now() + CHANGE_TIMEOUT_MS;
    while (!disposed && Date.now() < deadline) {
      await sleep(700);
      try {
        const [b, action] = await Promise.all([
          call<Bdb>('GET', `/v1/bdbs/${uid}`),
          // Without its action (removed, or not readable now) the progress bar just waits; the database's status decides.
          changed.action_uid
            ? call<ActionRecord>('GET', `/v1/actions/${changed.action_uid}`).catch(() => undefined)
            : Promise.resolve(undefined),
        ]);
        db = b;
        render();
        if (action && action.progress > 0) {
          bar.max = 100;
          bar.value = action.progress;
        }
        text.textContent = `Applying the change on every node… (${b.status}${action ? `, action ${action.status}` : ''})${action?.description ? `: ${action.description}` : ''}`;
        // Done when the database is active again: the controller marks it so once every live node has
        // converged to this change. (Its action is shown, but not waited for: an action can stay
        // pending after its change converged, when it was attached to the record just after that.)
        if (b.status === 'active') {
          const lines = ['The change was applied on every node.'];
          if ('data_internode_encryption' in body) {
            lines.push(
              `Internode encryption is now ${onOff(b.data_internode_encryption).toLowerCase()}; the switch was live and client connections were kept.`,
            );
          }
          if ('shards_count' in body) lines.push(`The database now has ${b.shards_count} shard${b.shards_count === 1 ? '' : 's'}.`);
          if ('tls_mode' in body) lines.push(`TLS for clients is now ${onOff(b.tls_mode === 'enabled').toLowerCase()}.`);
          if ('replication' in body) lines.push(`Replication is now ${onOff(b.replication).toLowerCase()}.`);
          fill(progress, note(lines.join(' '), 'good'));
          return true;
        }
        if (action?.status === 'failed' || b.error) {
          fill(progress, errorMessage(new ApiError(0, 'change_failed', `The change failed: ${action?.error ?? b.error}`)));
          return false;
        }
      } catch (err) {
        text.textContent = `Applying the change… (cannot read its progress: ${(err as Error).message})`;
      }
    }
    if (!disposed)
      fill(
        progress,
        errorMessage(
          new ApiError(
            0,
            'change_timeout',
            `The change is not applied everywhere after ${CHANGE_TIMEOUT_MS / 1000} s; it goes on in the background.`,
          ),
        ),
      );
    return false;
  };

  // Delete, with a confirmation that replaces the button while it is asked.
  const deleteButton = h('button', { type: 'button', class: 'danger' }, 'Delete database');
  const deleteFeedback = h('div');
  const confirmArea = h('div');
  deleteButton.addEventListener('click', () => {
    if (!db) return;
    deleteButton.hidden = true;
    const yes = h('button', { type: 'button', class: 'danger' }, 'Delete');
    const no = h('button', { type: 'button' }, 'Cancel');
    no.addEventListener('click', () => {
      fill(confirmArea);
      deleteButton.hidden = false;
      deleteButton.focus();
    });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      no.disabled = true;
      busy = true;
      fill(
        deleteFeedback,
        h('div', { role: 'status', class: 'note info progress' }, 'Deleting…', h('progress', { 'aria-label': 'Deletion progress' })),
      );
      const name = db?.name ?? String(uid);
      try {
        await call('DELETE', `/v1/bdbs/${uid}`);
        const deadline = Date.now() + CHANGE_TIMEOUT_MS;
        while (!disposed && Date.now() < deadline) {
          await sleep(700);
          try {
            await call('GET', `/v1/bdbs/${uid}`);
          } catch (err) {
            if (err instanceof ApiError && err.status === 404) {
              ctx.navigate('#/databases', `Database ${name} was deleted.`);
              return;
            }
            throw err;
          }
        }
        if (!disposed) fill(deleteFeedback, errorMessage(new ApiError(0, 'delete_timeout', 'The deletion goes on in the background.')));
      } catch (err) {
        fill(deleteFeedback, errorMessage(err));
        fill(confirmArea);
        deleteButton.hidden = false;
      } finally {
        busy = false;
      }
    });
    fill(
      confirmArea,
      h('p', { class: 'confirm' }, `Delete database ${db.name}? Its data is lost and its endpoint closes.`),
      h('div', { class: 'actions' }, yes, no),
    );
    no.focus();
  });
  fill(deleteArea, deleteButton, confirmArea, deleteFeedback);

  void load(false).then(schedule);
  return {
    title: `Database ${uid}`,
    el,
    dispose: () => {
      disposed = true;
      window.clearTimeout(timer);
      traffic.dispose();
    },
  };
}

/** A running shard that refuses writes shows why (MISCONF: its disk; OOM: full with noeviction), as `status` does. */
function shardBadge(s: { status: string; write_refused?: { reason: string; message: string } }): HTMLElement {
  if (s.status !== 'active' || !s.write_refused) return badge(s.status);
  const b = badge(s.write_refused.reason === 'oom' ? 'OOM: refuses writes' : 'MISCONF: refuses writes (disk)');
  b.className = 'badge bad';
  b.title = s.write_refused.message;
  return b;
}
