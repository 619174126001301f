// Nodes: each node's state, role, uptime, shards, resources and control-plane link; refreshed every 5 s.
import { call } from '../api.js';
import { badge, errorMessage, every, fill, fmtBytes, fmtDuration, fmtTime, h, table } from '../dom.js';
import type { ClusterInfo, NodeInfo } from '../types.js';
import { REFRESH_MS, type AppContext, type Page } from './page.js';

export function nodesPage(_ctx: AppContext): Page {
  const list = h('div', { class: 'placeholder' }, 'Loading…');
  const problem = h('div');
  const status = h('p', { class: 'refreshed muted' });
  const version = h('p', { class: 'cluster-version' });
  const el = h('section', { class: 'page' }, h('h1', null, 'Nodes'), problem, version, list, status);
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
          ['Node', 'Address', 'State', 'Role', 'Uptime', 'Shards', 'Cores', 'Memory', 'Version', 'Control plane', 'Last seen'],
          ns.map((n) => [
            `node ${n.uid}`,
            n.addr,
            badge(n.status),
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
      fill(problem);
      status.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (err) {
      fill(problem, errorMessage(err));
    }
  });
  return { title: 'Nodes', el, dispose: stop };
}
