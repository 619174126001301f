// `tessera verify encryption`: the report of internode/verify.ts (every
// node's live internode connections judged against each database's
// data_internode_encryption setting and the TLS policy), as tables.
import type { InternodeLink } from '../internode/links.js';
import { type VerifyReport, hostOf, nodeName } from '../internode/verify.js';
import { table } from './format.js';

export * from '../internode/verify.js';

function shardCell(l: InternodeLink): string {
  if (l.shard_uid === null) return '-';
  return l.purpose === 'replication' ? `redis:${l.shard_uid}→redis:${l.replica_shard_uid}` : `redis:${l.shard_uid}`;
}

/** The table of every reported end, the databases, and the verdict. */
export function formatVerify(r: VerifyReport): string {
  let out = 'INTERNODE LINKS:\n';
  out += table(
    ['NODE', 'SIDE', 'PEER', 'PURPOSE', 'DB', 'SHARD', 'PORT', 'PROTOCOL', 'CIPHER', 'GROUP', 'PEER_CERT', 'DAYS_LEFT'],
    r.links.map((l) => [
      `node:${l.local_uid}`,
      l.side,
      nodeName(l.remote_uid, hostOf(l.remote_address)),
      l.purpose,
      l.bdb_uid === null ? '-' : `db:${l.bdb_uid}`,
      shardCell(l),
      l.channel_port === null ? '-' : String(l.channel_port),
      l.protocol,
      l.cipher ?? '-',
      l.group ?? '-',
      l.peer_cert_serial ?? '-',
      l.peer_cert_days_left === null ? '-' : String(l.peer_cert_days_left),
    ]),
  );
  if (r.databases.length) {
    out += '\nDATABASES:\n';
    out += table(
      ['DB:ID', 'NAME', 'ENCRYPTION', 'CONNECTIONS', 'TLS', 'PLAINTEXT'],
      r.databases.map((d) => [
        `db:${d.uid}`,
        d.name,
        d.data_internode_encryption ? 'enabled' : 'disabled',
        String(d.connections),
        String(d.tls_connections),
        String(d.plaintext_connections),
      ]),
    );
  }
  const scope = r.scope.db === null ? '' : ` (control links, and data links of db:${r.scope.db})`;
  const counted = `${r.connections} connection(s), ${r.links.length} end(s) reported by ${r.nodes.length} node(s)${scope}`;
  out += '\n';
  if (r.ok) {
    out += `VERDICT: OK. Every link carries what its database's setting says: ${counted}.\n`;
    if (r.scope.require_all) out += "No database's data crosses nodes in plaintext.\n";
  } else {
    out += `VERDICT: FAILED. ${r.violations.length} violation(s) in ${counted}:\n`;
    for (const v of r.violations) out += `  - ${v.message}\n`;
  }
  return out;
}
