// A live database's shape (issue 21): `PUT /v1/bdbs/{uid}` with `replication`
// (true adds a replica of every master, false removes them) or with
// `shards_blueprint` and the `cluster-state-id` header (the shards move
// there), and `GET /v1/bdbs/{uid}/actions/optimize_shards_placement` (RE's
// proposal: the blueprint, and the cluster-state-id response header). Each
// change answers at once with an `action_uid`; the cluster master carries it
// out (control/controllers/shard-ops.ts). bdbs.ts dispatches the PUT here.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiMember, ApiNode } from '../services.js';
import type { BdbRecord } from '../../coord/schema.js';
import { conflict, invalid, notFound, unacceptable } from '../../util/errors.js';
import { uidParams } from '../schemas.js';
import { requireClusterFeature } from '../version-gate.js';
import { checkMemoryFits, placeableActiveNodes } from '../../control/services/bdb-create.js';
import {
  type ReshapeResult,
  optimizeShardsPlacement,
  requestBlueprint,
  requestReplication,
  reshaping,
} from '../../control/controllers/reshape-requests.js';

/** The PUT body's field (its entries are checked in code, each refusal naming the entry). */
export const shardsBlueprintField = { shards_blueprint: { type: 'array', maxItems: 512 } } as const;

/** The header a blueprint is applied with (RE's name). */
export const CLUSTER_STATE_ID = 'cluster-state-id';

/** Is this PUT a change of shape (handled here), rather than of settings? */
export const isShapeChange = (body: object): boolean => 'replication' in body || 'shards_blueprint' in body;

/** Nodes that may take shards: active, and not in maintenance mode. */
const eligibleNodes = async (m: ApiMember): Promise<number[]> => (await placeableActiveNodes(m, m.store)).map((n) => n.uid);

/** A PUT of `replication` or `shards_blueprint`, alone (with other fields it is refused: one change at a time, each with its action). */
export async function shapeChange(
  m: ApiMember,
  req: FastifyRequest,
  uid: number,
  body: { replication?: boolean; shards_blueprint?: unknown },
  dryRun: boolean,
): Promise<ReshapeResult> {
  const keys = Object.keys(body);
  if (keys.length !== 1)
    throw unacceptable(
      'unsupported_change',
      `${keys.filter((k) => k === 'replication' || k === 'shards_blueprint').join(' and ')} must be changed on its own (the request also has ${keys.filter((k) => k !== 'replication' && k !== 'shards_blueprint').join(', ') || 'both'}); send each change separately`,
    );
  const eligible = await eligibleNodes(m);
  if (body.replication !== undefined) {
    await requireClusterFeature(m, 'replication_change');
    const b = await m.store.bdbs.get(uid);
    if (!b) throw notFound('db_not_exist', `database ${uid} does not exist`);
    if (body.replication) {
      if (eligible.length < 2) throw unacceptable('insufficient_resources', 'replication needs at least two active nodes');
      checkMemoryFits(m, eligible, b.memory_size, b.shards_count, true);
    }
    return requestReplication(m, req.log, uid, body.replication, eligible, dryRun);
  }
  const header = req.headers[CLUSTER_STATE_ID];
  if (Array.isArray(header)) throw invalid('invalid_cluster_state_id', `send one ${CLUSTER_STATE_ID} header, not ${header.length}`);
  const known = m.nodes
    .values()
    .filter((n) => n.addr)
    .map((n) => n.uid);
  return requestBlueprint(m, req.log, uid, body.shards_blueprint, header, known, eligible, dryRun);
}

/** Another change of a database while its shape changes: 409 db_busy, as for any change in progress. */
export async function refuseWhileReshaping(m: ApiMember, uid: number): Promise<void> {
  if ((await reshaping(m)).has(uid))
    throw conflict('db_busy', `database ${uid} is busy: its replication or shard placement is changing; change it once it is active`);
}

/** The databases with a shape change under way: their status reads active-change-pending until it is done. */
export async function withShapeStatus<T extends { uid: number; status: BdbRecord['status'] }>(m: ApiMember, views: T[]): Promise<T[]> {
  if (!views.some((v) => v.status === 'active')) return views;
  const busy = await reshaping(m);
  return views.map((v) => (busy.has(v.uid) && v.status === 'active' ? { ...v, status: 'active-change-pending' } : v));
}

const optimizeQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    avoid_nodes: { type: 'string', pattern: '^\\d+(,\\d+)*$' },
    shards_placement: { type: 'string', enum: ['dense', 'sparse'] },
  },
} as const;

/** GET /v1/bdbs/{uid}/actions/optimize_shards_placement (registered by bdbs.ts's plugin). */
export function shapeRoutes(app: FastifyInstance, daemon: ApiNode): void {
  app.get<{ Params: { uid: string }; Querystring: { avoid_nodes?: string; shards_placement?: 'dense' | 'sparse' } }>(
    '/v1/bdbs/:uid/actions/optimize_shards_placement',
    { schema: { params: uidParams, querystring: optimizeQuery } },
    async (req, reply) => {
      const m = daemon.requireMember();
      const avoid = req.query.avoid_nodes?.split(',').map(Number);
      const r = await optimizeShardsPlacement(m, Number(req.params.uid), await eligibleNodes(m), {
        ...(avoid ? { avoid } : {}),
        ...(req.query.shards_placement ? { placement: req.query.shards_placement } : {}),
      });
      reply.header(CLUSTER_STATE_ID, r.clusterStateId);
      return r.blueprint;
    },
  );
}
