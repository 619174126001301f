// The verdict of `verify encryption`: every node's live internode connections
// (GET /v1/nodes/{uid}/internode_links), checked against what each
// database's data_internode_encryption setting and the TLS policy say. A pure
// function of what was gathered, so it can be tested without a cluster; the
// CLI (cli/verify.ts) and the web UI's Security page (ui/server.ts) both judge with it.
import { DEFAULT_KEY_EXCHANGE, type KeyExchange, sessionPolicyViolation } from '../tls/policy.js';
import type { InternodeLink, NodeLinksReport } from './links.js';

export interface VerifyNode {
  uid: number;
  addr: string;
}

export interface VerifyBdb {
  uid: number;
  name: string;
  data_internode_encryption: boolean;
  shards: { node_uid: number }[];
  endpoints: { addr: string[] }[];
}

export interface VerifyOptions {
  /** Check only this database's data links (control links are always checked). */
  db?: number;
  /** Also fail when any database's data crosses nodes in plaintext. */
  requireAll: boolean;
  keyExchange?: KeyExchange;
  now?: number;
}

/** One end of a connection, as its node reported it, with what the other end adds. */
export interface ReportedLink extends InternodeLink {
  /** The key-exchange group came from the dialing end's report (a listener does not learn it). */
  group_from_peer_end: boolean;
  /** The other end of this connection was reported too. */
  peer_end_reported: boolean;
}

export interface Violation {
  kind: 'control_plaintext' | 'data_plaintext' | 'tls_policy' | 'cert_expired' | 'cert_denied' | 'cert_untrusted_ca' | 'plaintext_database';
  message: string;
  bdb_uid: number | null;
  /** The connection's ends as `addr:port`, dialer first, when the violation is about one connection. */
  connection: { from: string; to: string } | null;
}

export interface DatabaseSummary {
  uid: number;
  name: string;
  data_internode_encryption: boolean;
  connections: number;
  tls_connections: number;
  plaintext_connections: number;
  /** Nodes that hold its shards or serve its endpoint: its data crosses nodes when there are several. */
  nodes: number[];
}

export interface VerifyReport {
  ok: boolean;
  checked_at: string;
  scope: { db: number | null; require_all: boolean };
  internode_key_exchange: KeyExchange;
  nodes: { uid: number; addr: string; links: number }[];
  databases: DatabaseSummary[];
  connections: number;
  links: ReportedLink[];
  violations: Violation[];
}

const PURPOSE_ORDER = { control: 0, proxy: 1, replication: 2, migration: 3, unknown: 4 } as const;

export const nodeName = (uid: number | null, addr: string) => (uid === null ? addr : `node:${uid}`);
export const hostOf = (addrPort: string) => addrPort.replace(/:\d+$/, '');

/** The dialer's and the listener's address of a connection: the same key from both ends. */
function connectionKey(l: InternodeLink): string {
  return l.side === 'dialed' ? `${l.local_address}>${l.remote_address}` : `${l.remote_address}>${l.local_address}`;
}

function what(l: InternodeLink, bdbs: Map<number, VerifyBdb>): string {
  const db = l.bdb_uid === null ? '' : ` of db:${l.bdb_uid}${bdbs.has(l.bdb_uid) ? ` (${bdbs.get(l.bdb_uid)!.name})` : ''}`;
  switch (l.purpose) {
    case 'control':
      return 'control link';
    case 'proxy':
      return `proxy link to shard ${l.shard_uid}${db}`;
    case 'replication':
      return `replication tunnel of shard ${l.replica_shard_uid} from shard ${l.shard_uid}${db}`;
    case 'migration':
      return `key migration link to shard ${l.shard_uid}${db}`;
    default:
      return `data link to shard ${l.shard_uid}${db}`;
  }
}

/** `control link node:1 → node:2 (127.0.18.1:40112 → 127.0.18.2:3342)`, dialer first. */
function describe(l: InternodeLink, bdbs: Map<number, VerifyBdb>): string {
  const here = nodeName(l.local_uid, hostOf(l.local_address));
  const there = nodeName(l.remote_uid, hostOf(l.remote_address));
  const [from, to, fromA, toA] =
    l.side === 'dialed' ? [here, there, l.local_address, l.remote_address] : [there, here, l.remote_address, l.local_address];
  return `${what(l, bdbs)} ${from} → ${to} (${fromA} → ${toA})`;
}

function connectionOf(l: InternodeLink): { from: string; to: string } {
  return l.side === 'dialed' ? { from: l.local_address, to: l.remote_address } : { from: l.remote_address, to: l.local_address };
}

/** Judge what the nodes reported. */
export function verifyEncryption(nodes: VerifyNode[], bdbList: VerifyBdb[], reports: NodeLinksReport[], o: VerifyOptions): VerifyReport {
  const now = o.now ?? Date.now();
  const kx = o.keyExchange ?? DEFAULT_KEY_EXCHANGE;
  const bdbs = new Map(bdbList.map((b) => [b.uid, b]));
  const inScope = (l: InternodeLink) => l.purpose === 'control' || o.db === undefined || l.bdb_uid === o.db;

  const all = reports.flatMap((r) => r.links).filter(inScope);
  const byKey = new Map<string, InternodeLink[]>();
  for (const l of all) {
    const k = connectionKey(l);
    byKey.set(k, [...(byKey.get(k) ?? []), l]);
  }
  // Fill in what only the other end knows: the group (dialer), the purpose (an older far side cannot say).
  const links: ReportedLink[] = all.map((l) => {
    const other = byKey.get(connectionKey(l))!.find((x) => x.side !== l.side);
    const r: ReportedLink = { ...l, group_from_peer_end: false, peer_end_reported: !!other };
    if (other) {
      if (r.group === null && other.group !== null && other.protocol === l.protocol) {
        r.group = other.group;
        r.group_from_peer_end = true;
      }
      if (r.purpose === 'unknown' && other.purpose !== 'unknown') {
        r.purpose = other.purpose;
        r.shard_uid ??= other.shard_uid;
        r.replica_shard_uid ??= other.replica_shard_uid;
        r.bdb_uid ??= other.bdb_uid;
      }
    }
    return r;
  });
  links.sort(
    (a, b) =>
      a.local_uid - b.local_uid ||
      PURPOSE_ORDER[a.purpose] - PURPOSE_ORDER[b.purpose] ||
      (a.bdb_uid ?? 0) - (b.bdb_uid ?? 0) ||
      (a.shard_uid ?? 0) - (b.shard_uid ?? 0) ||
      (a.replica_shard_uid ?? 0) - (b.replica_shard_uid ?? 0) ||
      a.side.localeCompare(b.side) ||
      (a.remote_uid ?? 0) - (b.remote_uid ?? 0) ||
      a.local_address.localeCompare(b.local_address),
  );

  const violations: Violation[] = [];
  // One verdict per connection for what both ends share (protocol, cipher); each end judges the certificate it was shown.
  const judged = new Set<string>();
  for (const l of links) {
    const key = connectionKey(l);
    const conn = connectionOf(l);
    if (!judged.has(key)) {
      judged.add(key);
      const bdb = l.bdb_uid === null ? undefined : bdbs.get(l.bdb_uid);
      const plaintext = l.protocol === 'plaintext';
      if (l.purpose === 'control' && plaintext) {
        violations.push({
          kind: 'control_plaintext',
          message: `${describe(l, bdbs)} is plaintext; control links must be TLS`,
          bdb_uid: null,
          connection: conn,
        });
      } else if (plaintext && bdb?.data_internode_encryption) {
        violations.push({
          kind: 'data_plaintext',
          message: `${describe(l, bdbs)} is plaintext, but db:${bdb.uid} has data_internode_encryption enabled`,
          bdb_uid: bdb.uid,
          connection: conn,
        });
      }
      if (!plaintext) {
        const why = sessionPolicyViolation({ protocol: l.protocol, cipher: l.cipher ?? undefined, group: l.group ?? undefined }, kx);
        if (why) violations.push({ kind: 'tls_policy', message: `${describe(l, bdbs)}: ${why}`, bdb_uid: l.bdb_uid, connection: conn });
      }
    }
    if (l.peer_cert_serial !== null) {
      const owner = nodeName(l.remote_uid, hostOf(l.remote_address));
      const seen = `${owner}'s certificate ${l.peer_cert_serial}, seen by node:${l.local_uid} on the ${describe(l, bdbs)},`;
      const expired = l.peer_cert_not_after !== null && Date.parse(l.peer_cert_not_after) < now;
      if (expired)
        violations.push({
          kind: 'cert_expired',
          message: `${seen} expired on ${l.peer_cert_not_after}`,
          bdb_uid: l.bdb_uid,
          connection: conn,
        });
      if (l.peer_cert_denied)
        violations.push({
          kind: 'cert_denied',
          message: `${seen} is on the cluster's deny list (revoked, or of a removed node)`,
          bdb_uid: l.bdb_uid,
          connection: conn,
        });
      if (l.untrusted_ca)
        violations.push({
          kind: 'cert_untrusted_ca',
          message: `${seen} or its own, is from a CA node:${l.local_uid} no longer trusts (set up before a CA rollover's step 4)`,
          bdb_uid: l.bdb_uid,
          connection: conn,
        });
    }
  }

  const addrToUid = new Map(nodes.map((n) => [n.addr, n.uid]));
  const databases: DatabaseSummary[] = bdbList
    .filter((b) => o.db === undefined || b.uid === o.db)
    .sort((a, b) => a.uid - b.uid)
    .map((b) => {
      const conns = new Map<string, ReportedLink>();
      for (const l of links) if (l.bdb_uid === b.uid && l.purpose !== 'control') conns.set(connectionKey(l), l);
      const placed = new Set<number>(b.shards.map((s) => s.node_uid));
      for (const e of b.endpoints) for (const a of e.addr) if (addrToUid.has(a)) placed.add(addrToUid.get(a)!);
      const plain = [...conns.values()].filter((l) => l.protocol === 'plaintext').length;
      return {
        uid: b.uid,
        name: b.name,
        data_internode_encryption: b.data_internode_encryption,
        connections: conns.size,
        tls_connections: conns.size - plain,
        plaintext_connections: plain,
        nodes: [...placed].sort((x, y) => x - y),
      };
    });

  if (o.requireAll) {
    for (const d of databases) {
      if (d.data_internode_encryption) continue; // its plaintext links, if any, are violations already
      if (!d.data_internode_encryption && d.plaintext_connections === 0 && d.nodes.length < 2) continue; // all on one node: nothing crosses
      const why = [
        'data_internode_encryption is disabled',
        d.plaintext_connections
          ? `${d.plaintext_connections} plaintext connection(s) now`
          : `its shards and endpoints span nodes ${d.nodes.join(', ')}`,
      ];
      violations.push({
        kind: 'plaintext_database',
        message: `db:${d.uid} (${d.name}): data crosses nodes in plaintext (${why.join('; ')})`,
        bdb_uid: d.uid,
        connection: null,
      });
    }
  }

  return {
    ok: violations.length === 0,
    checked_at: new Date(now).toISOString(),
    scope: { db: o.db ?? null, require_all: o.requireAll },
    internode_key_exchange: kx,
    nodes: reports.map((r) => ({ uid: r.uid, addr: r.addr, links: r.links.filter(inScope).length })).sort((a, b) => a.uid - b.uid),
    databases,
    connections: byKey.size,
    links,
    violations,
  };
}
