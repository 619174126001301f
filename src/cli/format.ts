// Text output of the CLI, laid out as rladmin prints it.
import { admits } from '../control/model/version-gates.js';
import type { bdbView } from '../api/routes/bdbs.js';
import type { nodeView } from '../api/routes/nodes.js';
import type { AlertState, NodeAlertsRecord } from '../coord/schema.js';

// The REST resources' shapes come from the REST layer itself (type-only imports), as the web UI's do.
export type NodeView = ReturnType<typeof nodeView>;
export type BdbView = ReturnType<typeof bdbView>;
export type NodeAlerts = Record<string, NodeAlertsRecord>;

/** Left-aligned columns, two spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

function gib(bytes: number | null): string {
  return bytes == null ? '-' : `${(bytes / 1024 ** 3).toFixed(2)}GB`;
}

function duration(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d ? `${d}d${h}h${m}m` : h ? `${h}h${m}m` : `${m}m${s % 60}s`;
}

/** What `status` shows (rladmin's `status [nodes|databases|endpoints|shards] [extra all] [issues_only]`). */
export interface StatusOptions {
  /** Only these sections (`status databases`); all when absent. */
  sections?: ReadonlySet<StatusSection>;
  /** `extra all`: the extra columns. */
  extra?: boolean;
  /** `issues_only`: rows whose status is not OK (the CLUSTER section is kept). */
  issuesOnly?: boolean;
  /** For `extra all`: the actions (EXEC_STATE, EXEC_STATE_MACHINE of each database's last action). */
  actions?: { action_uid: string; name: string; object_name: string; status: string; progress: number }[];
}
export const STATUS_SECTIONS = ['nodes', 'databases', 'endpoints', 'shards'] as const;
export type StatusSection = (typeof STATUS_SECTIONS)[number];

/** The cluster version, and "upgrade in progress" with each node's version while the members' versions differ. */
export function versionLine(cluster: Record<string, unknown>, nodes: readonly { uid: number; software_version?: string }[]): string {
  const cv = typeof cluster.cluster_version === 'string' ? cluster.cluster_version : '0.1';
  const versions = new Set(nodes.map((n) => n.software_version ?? '?'));
  if (versions.size <= 1) return `Cluster version: ${cv} (every node runs ${[...versions][0] ?? cluster.software_version})`;
  const sorted = [...nodes].sort((a, b) => a.uid - b.uid);
  const each = sorted.map((n) => `node:${n.uid} ${n.software_version ?? '?'}`);
  // A node older than the cluster version is not part of an upgrade: it was started with an older release (kept from the master role).
  const older = sorted.filter((n) => !admits(cv, n.software_version ?? '?'));
  const warn = older.length
    ? `; older than the cluster version: ${older.map((n) => `node:${n.uid}`).join(', ')}, start them with ${cv} or later`
    : '';
  return `Cluster version: ${cv}, upgrade in progress (${each.join(', ')})${warn}`;
}

export function formatStatus(
  cluster: Record<string, unknown>,
  nodes: NodeView[],
  askedAddr: string,
  bdbs: BdbView[] = [],
  alerts: NodeAlerts = {},
  o: StatusOptions = {},
): string {
  const want = (s: StatusSection) => !o.sections || o.sections.has(s);
  const keep = <T>(rows: T[], ok: (r: T) => boolean) => (o.issuesOnly ? rows.filter((r) => !ok(r)) : rows);
  const master = nodes.find((n) => n.is_master);
  const down = nodes.filter((n) => n.status !== 'active');
  const health = !master
    ? 'No cluster master'
    : down.length
      ? `OK. Cluster master: ${master.uid} (${master.addr}); nodes down: ${down.map((n) => n.uid).join(', ')}`
      : `OK. Cluster master: ${master.uid} (${master.addr})`;
  const maint = nodes.filter((n) => n.maintenance_mode);
  const inMaint = maint.length ? `; in maintenance mode: ${maint.map((n) => `node ${n.uid}`).join(', ')}` : '';
  let out = o.sections ? '' : `CLUSTER:\n${health}${inMaint}\nCluster name: ${cluster.name}\n${versionLine(cluster, nodes)}\n\n`;
  const section = (title: string, text: string) => {
    out += `${out && !out.endsWith('\n\n') ? '\n' : ''}${title}:\n${text}`;
  };
  const roleCount = (uid: number, role: string) =>
    bdbs.reduce((k, b) => k + b.shards.filter((s) => s.node_uid === uid && s.role === role).length, 0);
  if (want('nodes')) {
    section(
      'CLUSTER NODES',
      table(
        [
          'NODE:ID',
          'ROLE',
          'ADDRESS',
          ...(o.extra ? ['MASTERS', 'SLAVES'] : []),
          'SHARDS',
          'CORES',
          'RAM',
          'CP_LINK',
          'UPTIME',
          'VERSION',
          'STATUS',
        ],
        keep(nodes, (n) => n.status === 'active').map((n) => [
          `${n.addr === askedAddr ? '*' : ''}node:${n.uid}`,
          n.is_master ? 'master' : 'slave',
          n.addr,
          ...(o.extra ? [String(roleCount(n.uid, 'master')), String(roleCount(n.uid, 'slave'))] : []),
          String(n.shard_count),
          n.cores == null ? '-' : String(n.cores),
          gib(n.total_memory),
          n.control_plane_link,
          n.status === 'active' ? duration(n.uptime) : '-',
          n.software_version,
          (n.status === 'active' ? 'OK' : 'DOWN') + maintenanceText(n),
        ]),
      ),
    );
  }
  if (want('databases')) {
    const last = (uid: number) => o.actions?.filter((a) => a.object_name === `bdb:${uid}`).at(-1);
    section(
      'DATABASES',
      table(
        [
          'DB:ID',
          'NAME',
          'TYPE',
          'STATUS',
          'SHARDS',
          'PLACEMENT',
          'REPLICATION',
          'PERSISTENCE',
          'ENCRYPTION',
          'ENDPOINT',
          ...(o.extra ? ['EXEC_STATE', 'EXEC_STATE_MACHINE'] : []),
        ],
        keep(bdbs, (b) => b.status === 'active' && !refusing(b)).map((b) => [
          `db:${b.uid}`,
          b.name,
          b.type,
          b.status + (refusing(b) ? ` (writes refused: ${refusing(b)})` : ''),
          String(b.shards_count),
          b.shards_placement,
          b.replication ? 'enabled' : 'disabled',
          b.data_persistence,
          b.data_internode_encryption ? 'enabled' : 'disabled',
          b.endpoints[0]?.addr.map((a) => `${a}:${b.port}`).join(',') ?? '-',
          ...(o.extra
            ? [last(b.uid) ? `${last(b.uid)!.status.toUpperCase()} ${last(b.uid)!.progress}%` : 'N/A', last(b.uid)?.name ?? 'N/A']
            : []),
        ]),
      ),
    );
  }
  if (want('endpoints')) {
    // An endpoint is listed while its database is; it has no state of its own here.
    section(
      'ENDPOINTS',
      table(
        ['DB:ID', 'NAME', 'ID', 'NODE', 'ROLE', 'SSL'],
        keep(bdbs, (b) => b.status === 'active').flatMap((b) =>
          (b.endpoints[0]?.addr ?? []).map((a) => {
            const node = nodes.find((n) => n.addr === a);
            return [
              `db:${b.uid}`,
              b.name,
              `endpoint:${b.uid}:1`,
              node ? `node:${node.uid}` : a,
              b.proxy_policy,
              b.tls_mode === 'enabled' ? 'Yes' : 'No',
            ];
          }),
        ),
      ),
    );
  }
  if (want('shards')) {
    const rows = bdbs.flatMap((b) => b.shards.map((s) => ({ b, s, status: shardStatus(s) })));
    section(
      'SHARDS',
      table(
        ['DB:ID', 'NAME', 'ID', 'NODE', 'ROLE', 'SLOTS', ...(o.extra ? ['MASTER', 'SYNC'] : []), 'STATUS'],
        keep(rows, (r) => r.status === 'OK').map(({ b, s, status }) => [
          `db:${b.uid}`,
          b.name,
          `redis:${s.uid}`,
          `node:${s.node_uid}`,
          s.role,
          s.assigned_slots,
          ...(o.extra
            ? [s.master_uid !== undefined ? `redis:${s.master_uid}` : '-', s.sync ? `${s.sync.status} ${s.sync.progress}%` : '-']
            : []),
          status,
        ]),
      ),
    );
  }
  if (o.sections) return out;
  const raised = Object.entries(alerts).flatMap(([uid, as]) =>
    Object.entries(as)
      .filter(([, a]) => a.state)
      .map(([name, a]) => [`node:${uid}`, name, a.severity, a.change_value.certificate ?? '-', alertValue(a.change_value), a.change_time]),
  );
  if (raised.length) out += '\nALERTS:\n' + table(['NODE', 'ALERT', 'SEVERITY', 'CERTIFICATE', 'VALUE', 'SINCE'], raised);
  return out;
}

/** An alert's figure: time left on a certificate, disk use, or the shards that cannot write. */
function alertValue(v: AlertState['change_value']): string {
  if (v.seconds_left !== undefined) return `${v.seconds_left}s left`;
  if (v.used_percent !== undefined) return `${v.used_percent}% used`;
  if (v.shards?.length) return v.shards.map((s) => `redis:${s.uid} ${s.reason}`).join('; ');
  return '-';
}

/** The master shards of a database that refuse writes, as `redis:3 MISCONF` (empty when none). */
function refusing(b: BdbView): string {
  return b.shards
    .filter((s) => s.role === 'master' && s.write_refused)
    .map((s) => `redis:${s.uid} ${shardStatus(s)}`)
    .join(', ');
}

/** rladmin's STATUS column: OK, DOWN, …; a replica copying its master shows the progress; MISCONF or OOM: it refuses writes. */
function shardStatus(s: { status: string; sync?: { status: string; progress: number }; write_refused?: { reason: string } }): string {
  if (s.status !== 'active') return s.status.toUpperCase();
  if (s.write_refused) return s.write_refused.reason === 'oom' ? 'OOM' : 'MISCONF';
  if (s.sync?.status === 'in_progress') return `SYNCING ${s.sync.progress}%`;
  if (s.sync?.status === 'link_down') return 'LINKING'; // a replica not (yet) connected to its master
  return 'OK';
}

function flat(v: unknown): string {
  if (v === true) return 'enabled';
  if (v === false) return 'disabled';
  if (v === null || v === undefined) return '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** `key: value` lines, as `rladmin info` prints them. */
export function formatInfo(obj: Record<string, unknown>): string {
  return (
    Object.entries(obj)
      .map(([k, v]) => `${k}: ${flat(v)}`)
      .join('\n') + '\n'
  );
}

/** A node in maintenance mode, in the STATUS column: ` (maintenance)`, or the move under way. */
function maintenanceText(n: NodeView): string {
  if (!n.maintenance_mode) return '';
  return n.maintenance_state === 'on' ? ' (maintenance)' : ` (maintenance: ${n.maintenance_state})`;
}
