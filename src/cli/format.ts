// Text output of the CLI, laid out as rladmin prints it.

export interface NodeView {
  uid: number;
  addr: string;
  status: string;
  is_master: boolean;
  software_version: string;
  shard_count: number;
  cores: number | null;
  total_memory: number | null;
  uptime: number;
  control_plane_link: string;
}

/** Left-aligned columns, two spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
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

export interface BdbView {
  uid: number;
  name: string;
  type: string;
  status: string;
  shards_count: number;
  replication: boolean;
  data_persistence: string;
  data_internode_encryption: boolean;
  tls_mode?: string;
  proxy_policy: string;
  shards_placement: string;
  port: number;
  memory_size: number;
  endpoints: { uid: string; dns_name: string; port: number; addr: string[]; proxy_policy: string }[];
  shards: { uid: number; role: string; node_uid: number; assigned_slots: string; status: string; sync?: { status: string; progress: number } }[];
}

export type NodeAlerts = Record<string, Record<string, { state: boolean; severity: string; change_time: string; change_value: { certificate?: string; seconds_left?: number } }>>;

export function formatStatus(cluster: Record<string, unknown>, nodes: NodeView[], askedAddr: string, bdbs: BdbView[] = [], alerts: NodeAlerts = {}): string {
  const master = nodes.find((n) => n.is_master);
  const down = nodes.filter((n) => n.status !== 'active');
  const health = !master ? 'No cluster master' : down.length ? `OK. Cluster master: ${master.uid} (${master.addr}); nodes down: ${down.map((n) => n.uid).join(', ')}` : `OK. Cluster master: ${master.uid} (${master.addr})`;
  let out = `CLUSTER:\n${health}\nCluster name: ${cluster.name}\n\nCLUSTER NODES:\n`;
  out += table(
    ['NODE:ID', 'ROLE', 'ADDRESS', 'SHARDS', 'CORES', 'RAM', 'CP_LINK', 'UPTIME', 'VERSION', 'STATUS'],
    nodes.map((n) => [
      `${n.addr === askedAddr ? '*' : ''}node:${n.uid}`,
      n.is_master ? 'master' : 'slave',
      n.addr,
      String(n.shard_count),
      n.cores == null ? '-' : String(n.cores),
      gib(n.total_memory),
      n.control_plane_link,
      n.status === 'active' ? duration(n.uptime) : '-',
      n.software_version,
      n.status === 'active' ? 'OK' : 'DOWN',
    ]),
  );
  out += '\nDATABASES:\n';
  out += table(
    ['DB:ID', 'NAME', 'TYPE', 'STATUS', 'SHARDS', 'PLACEMENT', 'REPLICATION', 'PERSISTENCE', 'ENCRYPTION', 'ENDPOINT'],
    bdbs.map((b) => [
      `db:${b.uid}`,
      b.name,
      b.type,
      b.status,
      String(b.shards_count),
      b.shards_placement,
      b.replication ? 'enabled' : 'disabled',
      b.data_persistence,
      b.data_internode_encryption ? 'enabled' : 'disabled',
      b.endpoints[0]?.addr.map((a) => `${a}:${b.port}`).join(',') ?? '-',
    ]),
  );
  out += '\nENDPOINTS:\n';
  out += table(
    ['DB:ID', 'NAME', 'ID', 'NODE', 'ROLE', 'SSL'],
    bdbs.flatMap((b) =>
      (b.endpoints[0]?.addr ?? []).map((a) => {
        const node = nodes.find((n) => n.addr === a);
        return [`db:${b.uid}`, b.name, `endpoint:${b.uid}:1`, node ? `node:${node.uid}` : a, b.proxy_policy, b.tls_mode === 'enabled' ? 'Yes' : 'No'];
      }),
    ),
  );
  out += '\nSHARDS:\n';
  out += table(
    ['DB:ID', 'NAME', 'ID', 'NODE', 'ROLE', 'SLOTS', 'STATUS'],
    bdbs.flatMap((b) => b.shards.map((s) => [`db:${b.uid}`, b.name, `redis:${s.uid}`, `node:${s.node_uid}`, s.role, s.assigned_slots, shardStatus(s)])),
  );
  const raised = Object.entries(alerts).flatMap(([uid, as]) =>
    Object.entries(as)
      .filter(([, a]) => a.state)
      .map(([name, a]) => [`node:${uid}`, name, a.severity, a.change_value.certificate ?? '-', a.change_value.seconds_left !== undefined ? `${a.change_value.seconds_left}s left` : '-', a.change_time]),
  );
  if (raised.length) out += '\nALERTS:\n' + table(['NODE', 'ALERT', 'SEVERITY', 'CERTIFICATE', 'VALUE', 'SINCE'], raised);
  return out;
}

/** rladmin's STATUS column: OK, DOWN, …; a replica copying its master shows the progress. */
function shardStatus(s: { status: string; sync?: { status: string; progress: number } }): string {
  if (s.status !== 'active') return s.status.toUpperCase();
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
  return Object.entries(obj)
    .map(([k, v]) => `${k}: ${flat(v)}`)
    .join('\n') + '\n';
}
