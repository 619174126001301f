// Nodes: each node's state, role, uptime, shards, resources and control-plane link; refreshed every 5 s.
// Maintenance mode: a node's state in the table, and the two buttons (on, off) with a confirmation; the
// action they start is followed until it finishes.
import { call } from '../api.js';
import { badge, errorMessage, every, fill, fmtBytes, fmtDuration, fmtTime, h, note, select, table } from '../dom.js';
import type { ClusterInfo, NodeInfo } from '../types.js';
import { REFRESH_MS, type AppContext, type Page } from './page.js';

export function nodesPage(_ctx: AppContext): Page {
  const list = h('div', { class: 'placeholder' }, 'Loading…');
  const problem = h('div');
  const status = h('p', { class: 'refreshed muted' });
  const version = h('p', { class: 'cluster-version' });
  const maint = maintenancePanel();
  const el = h('section', { class: 'page' }, h('h1', null, 'Nodes'), problem, version, list, status, maint.el);
  const stop = every(REFRESH_MS, async () => {
    try {
      const [ns, c] = await Promise.all([
        call<NodeInfo[]>('GET', '/v1/nodes', undefined, { background: true }),
        call<ClusterInfo>('GET', '/v1/cluster', undefined, { background: true }),
      ]);
      // While the members run different versions (a rolling upgrade), say so: gated features wait for the last one.
      const mixed = new Set(ns.map((n) => n.software_version)).size > 1;
      version.textContent = `Cluster version ${c.cluster_version}${mixed ? ': upgrade in progress (nodes run different versions)' : ''}`;
      list.className = '';
      fill(
        list,
        table(
          'Nodes',
          [
            'Node',
            'Address',
            'State',
            'Maintenance',
            'Role',
            'Uptime',
            'Shards',
            'Cores',
            'Memory',
            'Version',
            'Control plane',
            'Last seen',
          ],
          ns.map((n) => [
            `node ${n.uid}`,
            n.addr,
            badge(n.status),
            n.maintenance_mode ? badge(n.maintenance_state === 'on' ? 'maintenance' : `maintenance: ${n.maintenance_state}`) : '—',
            n.is_master ? 'master' : 'member',
            n.status === 'active' ? fmtDuration(n.uptime) : '—',
            n.shard_list.length ? `${n.shard_count} (${n.shard_list.join(', ')})` : '0',
            n.cores === null ? '—' : String(n.cores),
            fmtBytes(n.total_memory),
            n.software_version,
            badge(n.control_plane_link),
            fmtTime(n.last_seen),
          ]),
          'This cluster has no node yet.',
        ),
      );
      maint.update(ns);
      fill(problem);
      status.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (err) {
      fill(problem, errorMessage(err));
    }
  });
  return {
    title: 'Nodes',
    el,
    dispose: () => {
      stop();
      maint.dispose();
    },
  };
}

interface ActionInfo {
  status: string;
  progress: number;
  description?: string;
  error?: string;
}

/** A node picker and the two maintenance buttons, each asking for a confirmation, then following the action. */
function maintenancePanel() {
  let disposed = false;
  let nodes: NodeInfo[] = [];
  const picker = select([], '', { 'aria-label': 'Node' });
  const on = h('button', { type: 'button' }, 'Maintenance mode on');
  const off = h('button', { type: 'button' }, 'Maintenance mode off');
  const confirmArea = h('div');
  const feedback = h('div');
  const el = h(
    'section',
    { class: 'maintenance' },
    h('h2', null, 'Maintenance mode'),
    h(
      'p',
      { class: 'muted' },
      'A node in maintenance mode holds no shard and takes none: its shards move to the other nodes, and back when it is turned off.',
    ),
    h('div', { class: 'actions' }, picker, on, off),
    confirmArea,
    feedback,
  );
  const chosen = () => nodes.find((n) => String(n.uid) === picker.value);
  const buttons = () => {
    const n = chosen();
    on.disabled = !n || (n.maintenance_mode && n.maintenance_state !== 'entering');
    off.disabled = !n?.maintenance_mode;
  };
  picker.addEventListener('change', buttons);
  const ask = (mode: 'on' | 'off') => {
    const n = chosen();
    if (!n) return;
    const yes = h('button', { type: 'button', class: 'danger' }, mode === 'on' ? 'Turn on' : 'Turn off');
    const no = h('button', { type: 'button' }, 'Cancel');
    no.addEventListener('click', () => fill(confirmArea));
    yes.addEventListener('click', async () => {
      fill(confirmArea);
      fill(feedback, h('div', { role: 'status', class: 'note info progress' }, 'Starting…', h('progress', { 'aria-label': 'Progress' })));
      try {
        const r = await call<{ action_uid: string }>('POST', `/v1/nodes/${n.uid}/actions/maintenance_${mode}`, {});
        for (;;) {
          if (disposed) return;
          const a = await call<ActionInfo>('GET', `/v1/actions/${r.action_uid}`, undefined, { background: true });
          if (a.status === 'completed') {
            fill(feedback, note(a.description ?? 'Done.', 'good'));
            return;
          }
          if (a.status === 'failed') throw new Error(a.error ?? 'the action failed');
          fill(
            feedback,
            h(
              'div',
              { role: 'status', class: 'note info progress' },
              `${a.progress}% ${a.description ?? ''}`,
              h('progress', { max: '100', value: String(a.progress) }),
            ),
          );
          await new Promise((res) => setTimeout(res, 1000));
        }
      } catch (err) {
        fill(feedback, errorMessage(err));
      }
    });
    fill(
      confirmArea,
      h(
        'p',
        { class: 'confirm' },
        mode === 'on'
          ? `Turn maintenance mode on for node ${n.uid}? Its shards move to the other nodes; then it can be stopped.`
          : `Turn maintenance mode off for node ${n.uid}? Its shards move back as they were.`,
      ),
      h('div', { class: 'actions' }, yes, no),
    );
    no.focus();
  };
  on.addEventListener('click', () => ask('on'));
  off.addEventListener('click', () => ask('off'));
  return {
    el,
    update(ns: NodeInfo[]) {
      nodes = ns;
      const keep = picker.value;
      fill(picker, ...ns.map((n) => h('option', { value: String(n.uid) }, `node ${n.uid}`)));
      if (ns.some((n) => String(n.uid) === keep)) picker.value = keep;
      buttons();
    },
    dispose() {
      disposed = true;
    },
  };
}
