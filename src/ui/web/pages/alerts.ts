// Alerts: every node's alerts (raised first), with the time each changed.
import { call } from '../api.js';
import { badge, errorMessage, every, fill, fmtTime, h, table } from '../dom.js';
import type { AlertState, NodeAlertsRecord } from '../types.js';
import { REFRESH_MS, type AppContext, type Page } from './page.js';

const ALERT_TITLES: Record<string, string> = {
  node_internal_certs_about_to_expire: 'Internal certificates about to expire',
  node_persistent_storage: 'Persistent storage nearly full',
  node_insufficient_disk_aofrw: 'Shards cannot write to disk (AOF, snapshot or AOF rewrite)',
};

export interface AlertRow {
  node: string;
  name: string;
  state: HTMLElement;
  raised: boolean;
  severity: string;
  since: string;
  details: string;
}

function details(a: AlertState): string {
  const v = a.change_value;
  const parts: string[] = [];
  if (v.certificate) parts.push(`certificate ${v.certificate}`);
  if (v.days_left !== undefined) parts.push(`${v.days_left} days left`);
  if (v.used_percent !== undefined) parts.push(`${v.used_percent}% used`);
  for (const s of v.shards ?? []) parts.push(`shard ${s.uid} (${s.role}): ${s.reason}`);
  if (v.days_left !== undefined || v.certificate) parts.push(`threshold ${a.threshold} days`);
  else if (a.threshold) parts.push(`threshold ${a.threshold}%`);
  return parts.join(', ');
}

/** One row per alert of each node, raised ones first. */
export function alertRows(byNode: Record<string, NodeAlertsRecord>): AlertRow[] {
  const rows: AlertRow[] = [];
  for (const [uid, alerts] of Object.entries(byNode)) {
    for (const [name, a] of Object.entries(alerts) as [string, AlertState | undefined][]) {
      if (!a) continue;
      rows.push({
        node: `node ${uid}`,
        name: ALERT_TITLES[name] ?? name,
        state: badge(a.state ? 'raised' : 'clear'),
        raised: a.state,
        severity: a.severity,
        since: fmtTime(a.change_time),
        details: details(a),
      });
    }
  }
  return rows.sort((x, y) => Number(y.raised) - Number(x.raised));
}

export function alertsPage(_ctx: AppContext): Page {
  const list = h('div', { class: 'placeholder' }, 'Loading…');
  const problem = h('div');
  const status = h('p', { class: 'refreshed muted' });
  const el = h('section', { class: 'page' }, h('h1', null, 'Alerts'), problem, list, status);
  const stop = every(REFRESH_MS, async () => {
    try {
      const rows = alertRows(await call<Record<string, NodeAlertsRecord>>('GET', '/v1/nodes/alerts', undefined, { background: true }));
      const raised = rows.filter((r) => r.raised).length;
      list.className = '';
      fill(
        list,
        h('p', null, raised ? `${raised} alert${raised > 1 ? 's are' : ' is'} raised.` : 'No alert is raised.'),
        table(
          'Alerts of every node',
          ['Node', 'Alert', 'State', 'Severity', 'Since', 'Details'],
          rows.map((r) => [r.node, r.name, r.state, r.severity, r.since, r.details]),
          'No node has reported alerts yet.',
        ),
      );
      fill(problem);
      status.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    } catch (err) {
      fill(problem, errorMessage(err));
    }
  });
  return { title: 'Alerts', el, dispose: stop };
}
