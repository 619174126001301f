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

export function formatStatus(cluster: Record<string, unknown>, nodes: NodeView[], askedAddr: string): string {
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
  return out;
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
