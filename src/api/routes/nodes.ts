// GET /v1/nodes, GET /v1/nodes/{uid}: every node's live state as this node sees it
// (liveness lease in the store, and a control-plane probe over the internode channel).
import type { FastifyPluginAsync } from 'fastify';
import type { ApiMember, ApiNode } from '../services.js';
import type { MaintenanceRecord, NodeRecord } from '../../coord/schema.js';
import type { NodeLinksReport } from '../../internode/links.js';
import { OperatorError, invalid, notFound } from '../../util/errors.js';
import { queueNodeRemoval } from '../../control/services/node-removal.js';
import { uidParams } from '../schemas.js';
import { nodeIsUp } from '../../control/model/node-state.js';
import {
  type MaintenanceOffRequest,
  type MaintenanceOnRequest,
  requestMaintenanceOff,
  requestMaintenanceOn,
} from '../../control/services/maintenance.js';

/** RE's maintenance_on body, the fields that apply (max_concurrent_actions is accepted and ignored: one move at a time). */
const maintenanceOnBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    demote_node: { type: 'boolean' },
    evict_ha_replica: { type: 'boolean' },
    keep_slave_shards: { type: 'boolean' },
    evict_active_active_replica: { type: 'boolean' },
    evict_dbs: {
      type: 'array',
      maxItems: 1024,
      items: {
        anyOf: [
          { type: 'integer', minimum: 0 },
          { type: 'string', minLength: 1, maxLength: 256 },
        ],
      },
    },
    overwrite_snapshot: { type: 'boolean' },
    max_concurrent_actions: { type: 'integer', minimum: 1 },
  },
} as const;

const maintenanceOffBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    snapshot_name: { type: 'string', minLength: 1, maxLength: 256 },
    skip_shards_restore: { type: 'boolean' },
    max_concurrent_actions: { type: 'integer', minimum: 1 },
  },
} as const;

/** A POST without a body is an empty one (RE's clients send none when there is nothing to say). */
const noBodyIsEmpty = async (req: { body: unknown }) => {
  if (req.body === undefined || req.body === null) req.body = {};
};

/** A node's maintenance mode as GET /v1/nodes shows it (optional fields: absent on a node that is not in it). */
function maintenanceView(rec: MaintenanceRecord | undefined) {
  if (!rec) return { maintenance_mode: false, accept_servers: true };
  return {
    maintenance_mode: true,
    /** entering: its shards are moving off; on: it holds none; leaving: they are moving back. */
    maintenance_state: rec.state,
    maintenance_snapshot: rec.snapshot_name,
    maintenance_action_uid: rec.action_uid,
    /** RE's field: a node in maintenance mode takes no new shard. */
    accept_servers: false,
  };
}

export function nodeView(m: ApiMember, n: NodeRecord, maintenance?: MaintenanceRecord) {
  const live = m.live.items.get(String(n.uid));
  const self = n.uid === m.uid;
  const probe = self ? { ok: true, at: Date.now(), status: m.statusReply() } : m.probes.get(n.uid);
  const status = probe?.status;
  const shardList = m
    .databases()
    .flatMap((b) => b.shards)
    .filter((s) => s.node_uid === n.uid)
    .map((s) => s.uid)
    .sort((a, b) => a - b);
  return {
    uid: n.uid,
    addr: n.addr,
    status: nodeIsUp(m, n.uid) ? 'active' : 'down',
    is_master: m.masterUid === n.uid,
    // The last probe's answer only while the node answers: a restarted node's old process answered for the old release.
    software_version: (probe?.ok ? status?.software_version : undefined) ?? n.software_version,
    capabilities: n.capabilities,
    shard_count: shardList.length,
    shard_list: shardList,
    uptime: live ? Math.max(0, Math.round((Date.now() - Date.parse(live.started_time)) / 1000)) : 0,
    cores: status?.cores ?? null,
    total_memory: status?.total_memory ?? null,
    control_plane_link: self ? 'local' : probe?.ok ? 'ok' : 'unreachable',
    last_seen: probe?.at ? new Date(probe.at).toISOString() : null,
    ports: n.ports,
    ...maintenanceView(maintenance),
  };
}

async function maintenanceByNode(m: ApiMember): Promise<Map<number, MaintenanceRecord>> {
  return new Map((await m.store.maintenanceMode.list()).map((r) => [r.node_uid, r]));
}

export const nodesRoutes: FastifyPluginAsync<{ daemon: ApiNode }> = async (app, { daemon }) => {
  app.get('/v1/nodes', async () => {
    const m = daemon.requireMember();
    const maint = await maintenanceByNode(m);
    return m.nodes
      .values()
      .filter((n) => n.addr)
      .sort((a, b) => a.uid - b.uid)
      .map((n) => nodeView(m, n, maint.get(n.uid)));
  });

  app.get<{ Params: { uid: string } }>('/v1/nodes/:uid', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const n = m.nodes.items.get(String(Number(req.params.uid)));
    if (!n?.addr) throw notFound('node_not_found', `node ${req.params.uid} does not exist`);
    return nodeView(m, n, (await maintenanceByNode(m)).get(n.uid));
  });

  // The node's live internode connections (tessera verify encryption): this
  // node answers for itself; for another it asks that node over control RPC.
  app.get<{ Params: { uid: string } }>('/v1/nodes/:uid/internode_links', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const uid = Number(req.params.uid);
    const n = m.nodes.items.get(String(uid));
    if (!n?.addr) throw notFound('node_not_found', `node ${req.params.uid} does not exist`);
    if (uid === m.uid) return m.internodeLinks();
    try {
      return await m.rpc(uid)!.call<NodeLinksReport>('internode_links', {}, 10_000);
    } catch (err) {
      throw new OperatorError('upstream', 'node_unreachable', `node ${uid} (${n.addr}) is unreachable: ${(err as Error).message}`);
    }
  });

  // Remove a node, always as a `remove_node` action that the cluster master runs
  // (control/controllers/shard-ops.ts): its shards (if any) migrate to the other
  // nodes first; then its certificates are denied everywhere (live internode
  // connections using them are closed), and its records and etcd member go.
  // The answer names the action (`GET /v1/actions/{uid}` follows it).
  app.post<{ Params: { uid: string } }>('/v1/nodes/:uid/actions/remove', { schema: { params: uidParams } }, async (req) => {
    const m = daemon.requireMember();
    const uid = Number(req.params.uid);
    const n = m.nodes.items.get(String(uid));
    if (!n?.addr) throw notFound('node_not_found', `node ${uid} does not exist`);
    if (uid === m.uid) throw invalid('cannot_remove_self', `node ${uid} is the node answering this request; ask another node to remove it`);
    if (m.nodes.values().filter((x) => x.addr).length <= 1) throw invalid('last_node', 'the last node of a cluster cannot be removed');
    // Refused (409 no_placement, node_down, db_busy) when its shards cannot move.
    const action = (await m.shardOps.requestNodeRemoval(req.log, uid)) ?? (await queueNodeRemoval(m.store, uid, req.log));
    return { uid, status: 'removing', action_uid: action.action_uid };
  });

  // Maintenance mode (RE's POST /v1/nodes/{uid}/actions/maintenance_on|maintenance_off):
  // validated and written as the node's maintenance record and an action at once;
  // the cluster master's MaintenanceController moves the shards
  // (control/controllers/maintenance.ts). `GET /v1/actions/{uid}` follows it.
  app.post<{ Params: { uid: string }; Body: MaintenanceOnRequest }>(
    '/v1/nodes/:uid/actions/maintenance_on',
    { preValidation: noBodyIsEmpty, schema: { params: uidParams, body: maintenanceOnBody } },
    async (req) => {
      const uid = Number(req.params.uid);
      const a = await requestMaintenanceOn(daemon.requireMember(), req.log, uid, req.body ?? {});
      return { status: 'ok', uid, action_uid: a.action_uid };
    },
  );
  app.post<{ Params: { uid: string }; Body: MaintenanceOffRequest }>(
    '/v1/nodes/:uid/actions/maintenance_off',
    { preValidation: noBodyIsEmpty, schema: { params: uidParams, body: maintenanceOffBody } },
    async (req) => {
      const uid = Number(req.params.uid);
      const a = await requestMaintenanceOff(daemon.requireMember(), req.log, uid, req.body ?? {});
      return { status: 'ok', uid, action_uid: a.action_uid };
    },
  );
};
