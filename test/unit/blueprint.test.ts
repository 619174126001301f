// A database's shape (issue 21): the pure planner and checks of
// control/model/blueprint.ts (optimize_shards_placement's proposal, replicas
// placed when replication is turned on, a blueprint turned into migrations,
// the cluster-state-id), then the REST routes in-process over a real scratch
// etcd (test/support/api-host.ts): every refusal is its status with
// `{error_code, description}` and an unchanged store; the accepted changes
// queue one shard operation with its action.
//
// Address: etcd listens on 127.0.73.1 (the harness's node 1); nodes 2-4 are records at 127.0.73.2-4.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  type BlueprintEntry,
  blueprintMoves,
  blueprintOf,
  clusterStateId,
  optimizePlacement,
  placeReplicas,
} from '../../src/control/model/blueprint.js';
import { placeShards } from '../../src/control/model/placement.js';
import { family, familyMaster } from '../../src/control/model/shard-plans.js';
import { OperatorError } from '../../src/util/errors.js';
import { createCa } from '../../src/pki/pki.js';
import { KEYS, ShardOpRecord, type BdbRecord, type NodeRecord, type ShardPlacement } from '../../src/coord/schema.js';
import { readRecords } from '../../src/coord/records.js';
import { startApiHarness, nodeRecord, type ApiHarness } from '../support/api-host.js';
import type { Api } from '../../src/api/server.js';
import { bdbRecord } from '../support/bdb-record.js';

const nodes = (...uids: number[]) => uids.map((uid) => ({ uid }) as NodeRecord);
const perNode = (shards: readonly ShardPlacement[]) => {
  const m = new Map<number, number>();
  for (const s of shards) m.set(s.node_uid, (m.get(s.node_uid) ?? 0) + 1);
  return m;
};
/** No master shares a node with one of its replicas. */
function assertApart(shards: readonly ShardPlacement[]): void {
  for (const s of shards) {
    const fam = family(shards, familyMaster(shards, s) ?? s);
    assert.equal(new Set(fam.map((x) => x.node_uid)).size, fam.length, `slots ${s.slots} share a node: ${JSON.stringify(fam)}`);
  }
}
const db = (shards: ShardPlacement[], placement: 'dense' | 'sparse' = 'sparse') => ({ uid: 1, shards, shards_placement: placement });
/** The placement a list of migrations leads to (each keeps its role). */
const applied = (shards: readonly ShardPlacement[], moves: { shard_uid: number; target_node_uid: number }[]) =>
  shards.map((s) => ({ ...s, node_uid: moves.find((m) => m.shard_uid === s.uid)?.target_node_uid ?? s.node_uid }));
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof OperatorError, String(e));
    return `${e.kind}:${e.code}`;
  }
  assert.fail('expected a refusal');
};

describe('optimize_shards_placement (pure)', () => {
  test('a sparse replicated database created on 3 nodes gets shards on a 4th node that joined; masters stay apart from their replicas', () => {
    const shards = placeShards(nodes(1, 2, 3), new Map(), 2, true, 1, 'sparse');
    assert.equal(perNode(shards).get(4), undefined);
    const next = optimizePlacement(db(shards), [1, 2, 3, 4]);
    const counts = perNode(next);
    assert.ok((counts.get(4) ?? 0) >= 1, `node 4 gets a shard: ${JSON.stringify(next)}`);
    assert.deepEqual([...counts.values()].sort(), [1, 1, 1, 1], 'four shards, one per node');
    assertApart(next);
    assert.deepEqual(
      next.filter((s) => s.role === 'master'),
      shards.filter((s) => s.role === 'master'),
      'a replica moves rather than a master (no write pause)',
    );
    assert.deepEqual(
      next.map((s) => [s.uid, s.role, s.slots]),
      shards.map((s) => [s.uid, s.role, s.slots]),
      'moves keep every shard, role and slot range',
    );
    // The proposal is stable: asked again of its own result, nothing moves.
    assert.deepEqual(optimizePlacement(db(next), [1, 2, 3, 4]), next);
  });

  test('sparse: a 4-master database all on node 1 spreads over the nodes, masters too', () => {
    const shards = placeShards(nodes(1), new Map(), 4, false, 1, 'dense');
    const next = optimizePlacement(db(shards), [1, 2, 3, 4]);
    assert.deepEqual([...perNode(next).values()], [1, 1, 1, 1]);
  });

  test('dense: unchanged when nothing has to move; sparse already balanced: unchanged', () => {
    const dense = placeShards(nodes(1, 2, 3), new Map(), 3, true, 1, 'dense');
    assert.deepEqual(optimizePlacement(db(dense, 'dense'), [1, 2, 3, 4]), dense);
    const sparse: ShardPlacement[] = [
      { uid: 1, role: 'master', node_uid: 1, slots: [0, 8191] },
      { uid: 2, role: 'slave', node_uid: 2, slots: [0, 8191], master_uid: 1 },
      { uid: 3, role: 'master', node_uid: 3, slots: [8192, 16383] },
      { uid: 4, role: 'slave', node_uid: 4, slots: [8192, 16383], master_uid: 3 },
    ];
    assert.deepEqual(optimizePlacement(db(sparse), [1, 2, 3, 4]), sparse);
    const two = placeShards(nodes(1, 2, 3), new Map(), 2, false, 1, 'sparse');
    assert.deepEqual(optimizePlacement(db(two), [1, 2, 3, 4]), two, 'two shards on two nodes are as spread as they get');
  });

  test('a node that is not eligible is emptied (dense too), never onto a node of the same slots; no room: 406', () => {
    const shards = placeShards(nodes(1, 2, 3), new Map(), 2, true, 1, 'dense');
    for (const placement of ['dense', 'sparse'] as const) {
      const next = optimizePlacement(db(shards, placement), [1, 3]);
      assert.ok(!next.some((s) => s.node_uid === 2), JSON.stringify(next));
      assertApart(next);
    }
    assert.equal(
      code(() => optimizePlacement(db(shards), [1])),
      'not_acceptable:insufficient_resources',
    );
  });

  test('never a master beside its replica, whatever the start (every 3-shard replicated placement on 3 nodes, to 3, 4 and 5 nodes)', () => {
    let checked = 0;
    for (let a = 1; a <= 3; a++)
      for (let b = 1; b <= 3; b++)
        for (let c = 1; c <= 3; c++) {
          const shards: ShardPlacement[] = [
            { uid: 1, role: 'master', node_uid: a, slots: [0, 5460] },
            { uid: 2, role: 'slave', node_uid: (a % 3) + 1, slots: [0, 5460], master_uid: 1 },
            { uid: 3, role: 'master', node_uid: b, slots: [5461, 10922] },
            { uid: 4, role: 'slave', node_uid: (b % 3) + 1, slots: [5461, 10922], master_uid: 3 },
            { uid: 5, role: 'master', node_uid: c, slots: [10923, 16383] },
            { uid: 6, role: 'slave', node_uid: ((c + 1) % 3) + 1, slots: [10923, 16383], master_uid: 5 },
          ];
          for (const eligible of [
            [1, 2, 3],
            [1, 2, 3, 4],
            [1, 2, 3, 4, 5],
          ]) {
            const next = optimizePlacement(db(shards), eligible, new Map([[4, 3]]));
            assertApart(next);
            const counts = [...perNode(next).values()];
            assert.ok(Math.max(...counts) - Math.min(...counts) <= 1 || counts.length < eligible.length, JSON.stringify(next));
            checked++;
          }
        }
    assert.equal(checked, 81);
  });

  test('placeReplicas: never beside the master; sparse spreads, dense packs; one node: 406', () => {
    const shards = placeShards(nodes(1, 2, 3), new Map(), 2, false, 1, 'sparse'); // masters on 1 and 2
    const sparse = placeReplicas(db(shards), [1, 2, 3], new Map(), 10);
    assert.deepEqual(
      sparse.map((r) => r.new_shard_uid),
      [10, 11],
    );
    for (const r of sparse) assert.notEqual(r.target_node_uid, shards.find((s) => s.uid === r.shard_uid)!.node_uid);
    assert.equal(sparse.find((r) => r.shard_uid === 1)!.target_node_uid, 3, 'the emptiest node first');
    const dense = placeShards(nodes(1, 2, 3), new Map(), 2, false, 1, 'dense'); // both masters on node 1
    const packed = placeReplicas(db(dense, 'dense'), [1, 2, 3], new Map([[2, 5]]), 10);
    assert.deepEqual(
      packed.map((r) => r.target_node_uid),
      [3, 3],
      'dense: both replicas on one node (the less loaded one)',
    );
    const withReplica: ShardPlacement[] = [...shards, { uid: 9, role: 'slave', node_uid: 3, slots: shards[0].slots, master_uid: 1 }];
    assert.deepEqual(
      placeReplicas(db(withReplica), [1, 2, 3], new Map(), 10).map((r) => r.shard_uid),
      [2],
      'a master with a replica keeps it',
    );
    assert.equal(
      code(() => placeReplicas(db(dense), [1], new Map(), 10)),
      'not_acceptable:insufficient_resources',
    );
  });
});

describe('shards_blueprint checks (pure)', () => {
  const shards = placeShards(nodes(1, 2, 3), new Map(), 2, true, 1, 'sparse');
  const b = db(shards);
  const known = [1, 2, 3, 4];
  const bp = (): BlueprintEntry[] => blueprintOf(shards);

  test('the current placement as a blueprint moves nothing; an optimized one leads exactly to its placement', () => {
    assert.deepEqual(blueprintMoves(b, bp(), known, known), []);
    const next = optimizePlacement(b, known);
    const moves = blueprintMoves(b, blueprintOf(next), known, known);
    assert.ok(moves.length >= 1);
    assert.deepEqual(applied(shards, moves), next);
    // RE writes node uids as strings; numbers are taken too.
    const numeric = blueprintOf(next).map((e) => ({ ...e, nodes: e.nodes.map((n) => ({ ...n, node_uid: Number(n.node_uid) })) }));
    assert.deepEqual(blueprintMoves(b, numeric, known, known), moves);
  });

  test('moves are ordered so that no step puts two shards of one range on a node (replica out first, then the master in)', () => {
    // Range 0-8191: master on 1, replica on 2. Wanted: master on 2, replica on 4: the replica must leave node 2 first.
    const want = bp();
    want[0] = {
      slot_range: want[0].slot_range,
      nodes: [
        { node_uid: '2', role: 'master' },
        { node_uid: '4', role: 'slave' },
      ],
    };
    const moves = blueprintMoves(b, want, known, known);
    assert.deepEqual(moves, [
      { shard_uid: 2, target_node_uid: 4 },
      { shard_uid: 1, target_node_uid: 2 },
    ]);
  });

  test('refusals: another database, master beside replica, unknown node, node not eligible, wrong counts, two masters, a swap', () => {
    const other = blueprintOf(placeShards(nodes(1, 2, 3), new Map(), 3, true, 1, 'sparse'));
    const cases: [string, unknown, string, RegExp][] = [
      ['not an array', { nodes: [] }, 'invalid:invalid_shards_blueprint', /non-empty array/],
      ['another database (3 ranges)', other, 'invalid:invalid_shards_blueprint', /not a slot range of database 1/],
      [
        'master beside its replica',
        [
          {
            ...bp()[0],
            nodes: [
              { node_uid: '3', role: 'master' },
              { node_uid: '3', role: 'slave' },
            ],
          },
          bp()[1],
        ],
        'invalid:invalid_shards_blueprint',
        /never on one node/,
      ],
      [
        'an unknown node',
        [{ ...bp()[0], nodes: [{ node_uid: '9', role: 'master' }, bp()[0].nodes[1]] }, bp()[1]],
        'invalid:invalid_shards_blueprint',
        /node 9 is not a node of this cluster/,
      ],
      ['a range missing', [bp()[0]], 'invalid:invalid_shards_blueprint', /missing from the blueprint/],
      ['a range twice', [bp()[0], bp()[0]], 'invalid:invalid_shards_blueprint', /listed twice/],
      [
        'a replica dropped',
        [{ ...bp()[0], nodes: [bp()[0].nodes[0]] }, bp()[1]],
        'invalid:invalid_shards_blueprint',
        /does not add or remove/,
      ],
      [
        'two masters',
        [{ ...bp()[0], nodes: [bp()[0].nodes[0], { ...bp()[0].nodes[1], role: 'master' }] }, bp()[1]],
        'invalid:invalid_shards_blueprint',
        /exactly one master/,
      ],
      [
        'roles swapped',
        [
          {
            ...bp()[0],
            nodes: [
              { ...bp()[0].nodes[1], role: 'master' },
              { ...bp()[0].nodes[0], role: 'slave' },
            ],
          },
          bp()[1],
        ],
        'invalid:invalid_shards_blueprint',
        /that is a failover/,
      ],
      [
        'a bad role',
        [{ ...bp()[0], nodes: [{ node_uid: '1', role: 'boss' }, bp()[0].nodes[1]] }, bp()[1]],
        'invalid:invalid_shards_blueprint',
        /role/,
      ],
    ];
    for (const [what, blueprint, want, why] of cases) {
      let err: unknown;
      try {
        blueprintMoves(b, blueprint, known, known);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof OperatorError, `${what}: refused`);
      assert.equal(`${err.kind}:${err.code}`, want, what);
      assert.match(err.message, why, what);
    }
    const toFour = [{ ...bp()[0], nodes: [{ node_uid: '4', role: 'master' }, bp()[0].nodes[1]] }, bp()[1]] as BlueprintEntry[];
    assert.equal(
      code(() => blueprintMoves(b, toFour, known, [1, 2, 3])),
      'conflict:node_not_available',
    );
    assert.equal(blueprintMoves(b, toFour, known, known).length, 1);
  });

  test('cluster-state-id: the same for the same state; changes with the generation, the eligible nodes, another database', () => {
    const rec = { uid: 1, generation: 5, status: 'active' } as BdbRecord;
    const other = { uid: 2, generation: 3, status: 'active' } as BdbRecord;
    const id = clusterStateId(rec, [1, 2, 3], [rec, other]);
    assert.match(id, /^[0-9a-f]{16}$/);
    assert.equal(clusterStateId(rec, [3, 2, 1], [other, rec]), id, 'order does not matter');
    assert.notEqual(clusterStateId({ ...rec, generation: 6 }, [1, 2, 3], [rec, other]), id);
    assert.notEqual(clusterStateId(rec, [1, 2, 3, 4], [rec, other]), id);
    assert.notEqual(clusterStateId(rec, [1, 2, 3], [rec, { ...other, generation: 4 }]), id);
    assert.notEqual(clusterStateId({ ...rec, uid: 2 }, [1, 2, 3], [rec, other]), id, 'another database, another id');
  });
});

// ------------------------------------------------------------------ REST

type InjectResponse = Awaited<ReturnType<Api['inject']>>;
const HOST = '127.0.73.1';
const SECRET = 'x'.repeat(32);
let h: ApiHarness;

function record(uid: number, shards: ShardPlacement[], over: Partial<BdbRecord> = {}): BdbRecord {
  return bdbRecord(uid, shards, { internal_secret: SECRET, ...over });
}
async function putBdb(b: BdbRecord): Promise<void> {
  await h.etcd.client.put(KEYS.bdb(b.uid)).value(JSON.stringify(b));
  await h.settle(`bdb ${b.uid} in the cache`, () => h.member.databases().some((x) => x.uid === b.uid && x.generation === b.generation));
}
function call(method: 'GET' | 'PUT', url: string, body?: unknown, headers: Record<string, string> = {}): Promise<InjectResponse> {
  return h.app.inject({
    method,
    url,
    headers: { authorization: h.auth, ...headers },
    remoteAddress: '127.0.0.1',
    ...(body === undefined ? {} : { payload: body as object }),
  });
}
async function snapshot(): Promise<Record<string, string>> {
  return h.etcd.client.getAll().prefix('/tessera/').strings();
}
async function refused(r: Promise<InjectResponse>, status: number, errorCode: string, why?: RegExp): Promise<void> {
  const before = await snapshot();
  const res = await r;
  assert.equal(res.statusCode, status, res.body);
  const j = res.json() as Record<string, unknown>;
  assert.deepEqual(Object.keys(j).sort(), ['description', 'error_code'], res.body);
  assert.equal(j.error_code, errorCode, res.body);
  if (why) assert.match(j.description as string, why);
  assert.deepEqual(await snapshot(), before, `${errorCode}: a refused request changed the store`);
}
async function ops(): Promise<ShardOpRecord[]> {
  return [...(await readRecords(h.etcd.client, KEYS.shardOpsPrefix, ShardOpRecord)).values()];
}

describe('REST: replication and shards_blueprint', () => {
  // Database 1: 2 masters with replicas on nodes 1-3 (sparse); database 2: 3 masters, no replication.
  const shards1 = placeShards(nodes(1, 2, 3), new Map(), 2, true, 1, 'sparse');
  const shards2 = placeShards(nodes(1, 2, 3), new Map(), 3, false, 11, 'sparse');

  before(async () => {
    h = await startApiHarness(HOST, await createCa('shape-test', 'c-shape-test'));
    const c = h.etcd.client;
    for (const uid of [2, 3, 4]) await c.put(KEYS.node(uid)).value(JSON.stringify(nodeRecord(uid, `127.0.73.${uid}`)));
    // Nodes 2 and 3 are up; node 4 is a member that is down (no liveness record).
    for (const uid of [2, 3])
      await c.put(KEYS.live(uid)).value(JSON.stringify({ uid, started_time: new Date().toISOString(), pid: process.pid }));
    await h.settle('nodes in the cache', () => h.member.nodes.items.size === 4 && h.member.live.items.size === 3);
    await h.member.store.seqs.next('shard', 20); // the shard uids seeded here, as creation would have taken them
    await putBdb(record(1, shards1));
    await putBdb(record(2, shards2));
  });
  after(async () => {
    await h?.close();
  });

  test('GET optimize_shards_placement: the blueprint and a cluster-state-id header; unknown database 404; bad query 400', async () => {
    const r = await call('GET', '/v1/bdbs/1/actions/optimize_shards_placement');
    assert.equal(r.statusCode, 200, r.body);
    assert.match(String(r.headers['cluster-state-id']), /^[0-9a-f]{16}$/);
    const bp = r.json() as BlueprintEntry[];
    assert.deepEqual(
      bp.map((e) => e.slot_range),
      ['0-8191', '8192-16383'],
    );
    assert.deepEqual(bp, blueprintOf(shards1), 'node 4 is down: the placement on 1-3 is already the best');
    const avoid = await call('GET', '/v1/bdbs/1/actions/optimize_shards_placement?avoid_nodes=3');
    assert.equal(avoid.statusCode, 200, avoid.body);
    assert.ok(!(avoid.json() as BlueprintEntry[]).some((e) => e.nodes.some((n) => n.node_uid === '3')));
    assert.equal(avoid.headers['cluster-state-id'], r.headers['cluster-state-id'], 'the id is the cluster state, not the query');
    await refused(call('GET', '/v1/bdbs/99/actions/optimize_shards_placement'), 404, 'db_not_exist');
    await refused(call('GET', '/v1/bdbs/1/actions/optimize_shards_placement?avoid_nodes=x'), 400, 'invalid_schema');
    await refused(call('GET', '/v1/bdbs/1/actions/optimize_shards_placement?avoid_nodes=1,2,3'), 406, 'insufficient_resources');
  });

  test('PUT shards_blueprint refusals: nothing moves', async () => {
    const g = await call('GET', '/v1/bdbs/1/actions/optimize_shards_placement');
    const id = String(g.headers['cluster-state-id']);
    const bp = g.json() as BlueprintEntry[];
    const other = await call('GET', '/v1/bdbs/2/actions/optimize_shards_placement');
    const put = (body: unknown, headers: Record<string, string> = { 'cluster-state-id': id }) => call('PUT', '/v1/bdbs/1', body, headers);
    await refused(put({ shards_blueprint: bp }, {}), 400, 'missing_cluster_state_id');
    await refused(
      put({ shards_blueprint: other.json() }, { 'cluster-state-id': String(other.headers['cluster-state-id']) }),
      400,
      'invalid_shards_blueprint',
      /not a slot range of database 1/,
    );
    const beside = [{ ...bp[0], nodes: [bp[0].nodes[0], { ...bp[0].nodes[0], role: 'slave' }] }, bp[1]];
    await refused(put({ shards_blueprint: beside }), 400, 'invalid_shards_blueprint', /never on one node/);
    const unknown = [{ ...bp[0], nodes: [{ node_uid: '7', role: 'master' }, bp[0].nodes[1]] }, bp[1]];
    await refused(put({ shards_blueprint: unknown }), 400, 'invalid_shards_blueprint', /node 7 is not a node/);
    const down = [{ ...bp[0], nodes: [{ node_uid: '4', role: 'master' }, bp[0].nodes[1]] }, bp[1]];
    await refused(put({ shards_blueprint: down }), 409, 'node_not_available', /node 4/);
    await refused(put({ shards_blueprint: 'all on node 1' }), 400, 'invalid_schema');
    await refused(put({ shards_blueprint: bp, memory_size: 200 << 20 }), 406, 'unsupported_change');
    await refused(put({ shards_blueprint: bp }, { 'cluster-state-id': 'not-the-id' }), 409, 'cluster_state_changed', /stale/);
    await refused(call('PUT', '/v1/bdbs/99', { shards_blueprint: bp }, { 'cluster-state-id': id }), 404, 'db_not_exist');
  });

  test('PUT replication while the cluster version is 0.1: 409 cluster_version_too_old', async () => {
    await refused(call('PUT', '/v1/bdbs/2', { replication: true }), 409, 'cluster_version_too_old', /replication_change/);
  });

  test('PUT shards_blueprint: one migrate action with a target per shard; the database reads change-pending; a stale id is refused after', async () => {
    // Node 4 comes up: the proposal moves a shard of database 1 onto it.
    await h.etcd.client.put(KEYS.live(4)).value(JSON.stringify({ uid: 4, started_time: new Date().toISOString(), pid: process.pid }));
    await h.settle('node 4 live', () => h.member.live.items.has('4'));
    const g = await call('GET', '/v1/bdbs/1/actions/optimize_shards_placement');
    const bp = g.json() as BlueprintEntry[];
    assert.ok(
      bp.some((e) => e.nodes.some((n) => n.node_uid === '4')),
      JSON.stringify(bp),
    );
    const r = await call('PUT', '/v1/bdbs/1', { shards_blueprint: bp }, { 'cluster-state-id': String(g.headers['cluster-state-id']) });
    assert.equal(r.statusCode, 200, r.body);
    const j = r.json() as { action_uid: string; status: string };
    assert.equal(j.status, 'active-change-pending');
    const op = (await ops()).find((o) => o.action_uid === j.action_uid)!;
    assert.equal(op.kind, 'migrate');
    assert.ok(op.items.every((i) => i.target_node_uid !== undefined && i.new_shard_uid !== undefined));
    assert.deepEqual(
      applied(
        shards1,
        op.items.map((i) => ({ shard_uid: i.shard_uid, target_node_uid: i.target_node_uid! })),
      ).map((s) => s.node_uid),
      shards1
        .map((s) => bp.find((e) => e.slot_range === `${s.slots[0]}-${s.slots[1]}`)!.nodes.find((n) => n.role === s.role)!.node_uid)
        .map(Number),
    );
    const a = await call('GET', `/v1/actions/${j.action_uid}`);
    assert.equal(a.json().name, 'shards_blueprint');
    assert.equal((await call('GET', '/v1/bdbs/1')).json().status, 'active-change-pending');
    assert.equal(
      ((await call('GET', '/v1/bdbs')).json() as { uid: number; status: string }[]).find((x) => x.uid === 1)?.status,
      'active-change-pending',
    );
    // A second change while it runs: busy.
    await refused(
      call('PUT', '/v1/bdbs/1', { shards_blueprint: bp }, { 'cluster-state-id': String(g.headers['cluster-state-id']) }),
      409,
      'db_busy',
    );
    // The operation ends (as the cluster master would finish it) and the placement moved on: the old id is stale.
    await h.member.store.actions.finish(j.action_uid, 'completed');
    await h.member.store.shardOps.delete(j.action_uid);
    await putBdb(record(1, shards1, { generation: 2 }));
    assert.equal((await call('GET', '/v1/bdbs/1')).json().status, 'active');
    await refused(
      call('PUT', '/v1/bdbs/1', { shards_blueprint: bp }, { 'cluster-state-id': String(g.headers['cluster-state-id']) }),
      409,
      'cluster_state_changed',
    );
  });

  test('PUT replication at cluster version 0.2: true queues a replica per master, never beside it; as it is already: no action', async () => {
    await h.etcd.client.put(KEYS.clusterVersion).value(JSON.stringify({ version: '0.2', updated_time: new Date().toISOString() }));
    const dry = await call('PUT', '/v1/bdbs/2?dry_run=1', { replication: true });
    assert.equal(dry.statusCode, 200, dry.body);
    assert.equal(dry.json().dry_run, true);
    assert.equal((await ops()).length, 0, 'a dry run queues nothing');
    await refused(call('PUT', '/v1/bdbs/2', { replication: true, eviction_policy: 'noeviction' }), 406, 'unsupported_change');
    const r = await call('PUT', '/v1/bdbs/2', { replication: true });
    assert.equal(r.statusCode, 200, r.body);
    const j = r.json() as { action_uid: string; status: string; replication: boolean };
    assert.equal(j.status, 'active-change-pending');
    assert.equal(j.replication, true);
    const op = (await ops()).find((o) => o.action_uid === j.action_uid)!;
    assert.equal(op.kind, 'replication');
    assert.equal(op.replication, true);
    assert.deepEqual(op.items.map((i) => i.shard_uid).sort(), [11, 12, 13]);
    for (const i of op.items) {
      assert.notEqual(i.target_node_uid, shards2.find((s) => s.uid === i.shard_uid)!.node_uid, 'never beside its master');
      assert.ok(![...shards1, ...shards2].some((s) => s.uid === i.new_shard_uid), 'a new shard uid');
    }
    assert.equal((await call('GET', `/v1/actions/${j.action_uid}`)).json().name, 'enable_replication');
    await refused(call('PUT', '/v1/bdbs/2', { replication: false }), 409, 'db_busy');
    await refused(call('PUT', '/v1/bdbs/2', { eviction_policy: 'noeviction' }), 409, 'db_busy', /replication or shard placement/);
    // Database 1 is replicated already: asking again changes nothing and queues nothing.
    const same = await call('PUT', '/v1/bdbs/1', { replication: true });
    assert.equal(same.statusCode, 200, same.body);
    assert.equal(same.json().action_uid, undefined);
  });
});
