// Cluster: its name, the master, each node's state, uptime and shard count,
// and the raised alerts; refreshed every 5 s.
import { call } from '../api.js';
import { badge, errorMessage, every, facts, fill, fmtDuration, fmtTime, h, table } from '../dom.js';
import type { ClusterInfo, NodeAlertsRecord, NodeInfo } from '../types.js';
import { REFRESH_MS, type AppContext, type Page } from './page.js';
import { alertRows } from './alerts.js';

export function clusterPage(_ctx: AppContext): Page {
  const summary = h('div', { class: 'placeholder' }, 'Loading…');
  const nodes = h('div');
  const alerts = h('div');
  const status = h('p', { class: 'refreshed muted', 'aria-live': 'off' });
  const problem = h('div');
  const el = h(
    'section',
    { class: 'page' },
    h('h1', null, 'Cluster'),
    problem,
    summary,
    h('h2', null, 'Nodes'),
    nodes,
    h('h2', null, 'Raised alerts'),
    alerts,
    status,
  );

  const refresh = async () => {
    try {
      const [c, ns, raised] = await Promise.all([
        call<ClusterInfo>('GET', '/v1/cluster', undefined, { background: true }),
        call<NodeInfo[]>('GET', '/v1/nodes', undefined, { background: true }),
        // Per node (GET /v1/cluster/alerts is keyed by alert name, as the reference); only the raised ones are listed.
        call<Record<string, NodeAlertsRecord>>('GET', '/v1/nodes/alerts', undefined, { background: true }),
      ]);
      const master = ns.find((n) => n.uid === c.master_node_uid);
      fill(
        summary,
        facts([
          ['Name', c.name],
          ['Master', master ? `node ${master.uid} (${master.addr})` : 'none elected'],
          ['Nodes', `${ns.filter((n) => n.status === 'active').length} of ${ns.length} active`],
          ['Cluster version', c.cluster_version],
          ['Software version', c.software_version],
          ['Control-plane encryption', c.control_plane_encryption ? 'always on (mutual TLS)' : 'off'],
          ['Created', fmtTime(c.created_time)],
        ]),
      );
      summary.className = '';
      fill(
        nodes,
        table(
          'Nodes of the cluster',
          ['Node', 'Address', 'State', 'Role', 'Uptime', 'Shards'],
          ns.map((n) => [
            `node ${n.uid}`,
            n.addr,
            badge(n.status),
            n.is_master ? 'master' : '',
            n.status === 'active' ? fmtDuration(n.uptime) : '—',
            String(n.shard_count),
          ]),
        ),
      );
      const rows = alertRows(raised).filter((r) => r.raised);
      fill(
        alerts,
        table(
          'Raised alerts',
          ['Node', 'Alert', 'Severity', 'Since', 'Details'],
          rows.map((r) => [r.node, r.name, r.severity, r.since, r.details]),
          'No alert is raised.',
        ),
      );
      fill(problem);
      status.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (err) {
      fill(problem, errorMessage(err));
    }
  };
  const stop = every(REFRESH_MS, refresh);
  return { title: 'Cluster', el, dispose: stop };
}
