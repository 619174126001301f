// GET /v1/nodes, GET /v1/nodes/{uid}: every node's live state as this node sees it
// (liveness lease in the store, and a control-plane probe over the internode channel).
import type { FastifyPluginAsync } from 'fastify';
import type { NodeDaemon } from '../../control/daemon.js';
import type { ClusterMember } from '../../control/member.js';
import type { NodeRecord } from '../../coord/schema.js';
import type { NodeLinksReport } from '../../internode/links.js';
import { OperatorError, invalid, notFound } from '../../util/errors.js';
import { KEYS, DenyRecord, MasterRecord } from '../../coord/schema.js';
import { readRecord } from '../../coord/records.js';
import { PLANES } from '../../pki/pki.js';
import { uidParams } from '../schemas.js';

export function nodeView(m: ClusterMember, n: NodeRecord) {
  const live = m.live.items.get(String(n.uid));
  const self = n.uid === m.uid;
  const probe = self ? { ok: true, at: Date.now(), status: m.statusReply() } : m.probes.get(n.uid);
  const status = probe?.status;
  const shardList = (m.reconciler?.bdbs.values() ?? [])
    .flatMap((b) => b.shards)
    .filter((s) => s.node_uid === n.uid)
    .map((s) => s.uid)
    .sort((a, b) => a - b);
  return {
    uid: n.uid,
    addr: n.addr,
    status: live ? 'active' : 'down',
    is_master: m.masterUid === n.uid,
    software_version: status?.software_version ?? n.software_version,
    capabilities: n.capabilities,
    shard_count: shardList.length,
    shard_list: shardList,
    uptime: live ? Math.max(0, Math.round((Date.now() - Date.parse(live.started_time)) / 1000)) : 0,
    cores: status?.cores ?? null,
    total_memory: status?.total_memory ?? null,
    control_plane_link: self ? 'local' : probe?.ok ? 'ok' : 'unreachable',
    last_seen: probe?.at ? new Date(probe.at).toISOString() : null,
    ports: n.ports,
  };
}


export const nodesRoutes: FastifyPluginAsync<{ daemon: NodeDaemon }> = async (app, { daemon }) => {
  app.get('/v1/nodes', async () => {
    const m = daemon.requireMember();
    return m.nodes
      .values()
      .filter((n) => n.addr)
      .sort((a, b) => a.uid - b.uid)
      .map((n) => nodeView(m, n));
  });

  app.get<{ Params: { uid: string } }>('/v1/nodes/:uid', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const n = m.nodes.items.get(String(Number(req.params.uid)));
    if (!n || !n.addr) throw notFound('node_not_found', `node ${req.params.uid} does not exist`);
    return nodeView(m, n);
  });

  // The node's live internode connections (tessera verify encryption): this
  // node answers for itself; for another it asks that node over control RPC.
  app.get<{ Params: { uid: string } }>('/v1/nodes/:uid/internode_links', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const uid = Number(req.params.uid);
    const n = m.nodes.items.get(String(uid));
    if (!n || !n.addr) throw notFound('node_not_found', `node ${req.params.uid} does not exist`);
    if (uid === m.uid) return m.internodeLinks();
    try {
      return await m.rpc(uid)!.call<NodeLinksReport>('internode_links', {}, 10_000);
    } catch (err) {
      throw new OperatorError('upstream', 'node_unreachable', `node ${uid} (${n.addr}) is unreachable: ${(err as Error).message}`);
    }
  });

  // Remove a node: refuse while it hosts shards; otherwise deny its certificates
  // everywhere (live internode connections using them are closed), drop its
  // records and its etcd member.
  app.post<{ Params: { uid: string } }>('/v1/nodes/:uid/actions/remove', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const uid = Number(req.params.uid);
    const n = m.nodes.items.get(String(uid));
    if (!n || !n.addr) throw notFound('node_not_found', `node ${uid} does not exist`);
    if (uid === m.uid) throw invalid('cannot_remove_self', `node ${uid} is the node answering this request; ask another node to remove it`);
    const hosted = (m.reconciler?.bdbs.values() ?? []).filter((b) => b.shards.some((s) => s.node_uid === uid));
    if (hosted.length) {
      throw invalid('node_has_shards', `node ${uid} hosts shards of database(s) ${hosted.map((b) => `${b.uid} (${b.name})`).join(', ')}; delete or move them first`);
    }
    if (m.nodes.values().filter((x) => x.addr).length <= 1) throw invalid('last_node', 'the last node of a cluster cannot be removed');
    const now = new Date().toISOString();
    const denied: string[] = [];
    const c = m.client;
    const ops = [];
    for (const plane of PLANES) {
      const meta = n.certificates?.[plane];
      if (!meta) continue;
      const rec: DenyRecord = { serial: meta.serial, node_uid: uid, plane, time: now };
      ops.push(c.put(KEYS.deny(meta.serial)).value(JSON.stringify(rec)));
      denied.push(meta.serial);
    }
    ops.push(c.delete().key(KEYS.node(uid)), c.delete().key(KEYS.live(uid)), c.delete().key(KEYS.alerts(uid)));
    const r = await c.if(KEYS.node(uid), 'Create', '>', 0).then(...ops).commit();
    if (!r.succeeded) throw notFound('node_not_found', `node ${uid} does not exist`);
    const master = await readRecord(c, KEYS.master, MasterRecord);
    if (master?.uid === uid) await c.delete().key(KEYS.master);
    if (n.etcd_member_id) {
      try {
        await c.cluster.memberRemove({ ID: n.etcd_member_id });
      } catch (err) {
        throw new OperatorError('internal', 'store_member_not_removed', `node ${uid} is removed and denied, but its etcd member could not be removed: ${(err as Error).message}`);
      }
    }
    req.log.warn({ node: uid, denied }, 'node removed from the cluster; its certificates are denied');
    return { uid, status: 'removed', denied_serials: denied };
  });
};
