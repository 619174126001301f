// Network partitions, tested as Jepsen would (needs iptables and cgroup v2;
// skipped with the reason otherwise). One 3-node cluster runs a replicated,
// sharded, encrypted database; each scenario runs a writer through an
// endpoint on each side of the cut, every SET followed by `WAIT 1 200`, and
// records every acknowledged and every WAIT-confirmed key with its times:
//   - isolate a node holding master shards for 15 s, then heal;
//   - isolate the cluster master's node;
//   - an asymmetric cut (the majority cannot reach the node, the node can reach them);
//   - flapping: cut and heal the node every 3 s for 60 s.
// In each: the cut-off side stops acknowledging writes within the fence time
// (2 s after its last landed heartbeat was sent: control/membership/fence-rule.ts);
// no majority node's write fence ever closes (its log says so); the majority serves every slot within
// the failover time; after the heal the cluster converges (status OK, one
// master per slot range, the old master demoted and in sync, the returning
// node's endpoint writing again); the majority's endpoint never fails a
// command; no WAIT-confirmed key is lost; no slot range took acknowledged
// writes on two masters at once. A table of the figures is printed.
import fs from 'node:fs';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { TestCluster, type TestNode, type BdbJson, createDb, waitFor, shardCli, sleep } from '../support/cluster.js';
import { NetworkCuts, cutsUnavailable } from '../support/partition.js';
import { keySlot } from '../../src/proxy/slots.js';

const skip = cutsUnavailable();
const cluster = new TestCluster(69, 3);
const NET = Number(cluster.nodes[0].addr.split('.')[2]);
let cuts: NetworkCuts | undefined;
/**
 * TESSERA_MIN_REPLICAS=1: the database runs Redis's own guard
 * (min_replicas_to_write 1, min_replicas_max_lag 1), to measure what it
 * saves (plain writes lost on the cut-off master) and what it costs (the
 * majority's writes to a promoted master refused, -NOREPLICAS, until its new
 * replica is in sync: reported, not failed on).
 */
const MIN_REPLICAS = process.env.TESSERA_MIN_REPLICAS === '1';
let db: BdbJson;

/**
 * A cut-off node fences its writes 2 s (Timings.fenceMs) after its last landed
 * heartbeat was sent; that heartbeat went out up to 0.5 s before the cut.
 */
const FENCE_MS = 2000;
/** How late past the fence an acknowledgement may still arrive: timers and the reply's trip under a loaded 2-core machine. */
const FENCE_SLACK_MS = 1000;
/** failover_timeout (5 s), the master's tick, the promotion and the new map reaching the endpoint. */
const FAILOVER_BOUND_MS = 10_000;
/** After the heal: status OK, old masters in sync and the returning endpoint writing (issue 23: within 10 s). */
const CONVERGE_BOUND_MS = 10_000;
const CUT_MS = 15_000;
/** A link's own detection of a cut path (proxy/shard-link.ts: 2 s quiet, then a 1.5 s probe), with slack for load. */
const LINK_DETECT_MS = 4500;
/** Per scenario: majority commands written to the cut-off master before its link could tell (outcome unknown). */
const unknownOutcome = new Map<string, string>();

before(async () => {
  if (skip) return;
  await cluster.startAll();
  cuts = new NetworkCuts(NET, cluster.nodes);
  for (const n of cluster.nodes) cuts.attach(n);
  await cluster.form('partitions.test');
  db = await createDb(cluster.nodes[0], {
    name: 'cut',
    memory_size: 200 << 20,
    shards_count: 3,
    sharding: true,
    replication: true,
    proxy_policy: 'all-nodes',
    port: 12690,
    data_internode_encryption: true,
    ...(MIN_REPLICAS ? { min_replicas_to_write: 1, min_replicas_max_lag: 1 } : {}),
  });
});
after(async () => {
  cuts?.close();
  if (!skip) await cluster.stop();
  if (rows.length > 0) printTable();
});

interface Row {
  test: string;
  fence: string;
  failover: string;
  convergence: string;
  waitLost: number;
  plainLost: string;
}
const rows: Row[] = [];
function printTable(): void {
  const head = ['test', 'fence time', 'failover time', 'convergence time', 'WAIT-confirmed lost', 'plain-acked lost'];
  const lines = [head, ...rows.map((r) => [r.test, r.fence, r.failover, r.convergence, String(r.waitLost), r.plainLost])];
  const w = head.map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  for (const l of lines) console.log(`# | ${l.map((c, i) => c.padEnd(w[i])).join(' | ')} |`);
  console.log(
    `# majority commands failed with an unknown outcome (on the wire to the cut-off master): ${JSON.stringify([...unknownOutcome])}`,
  );
}

const nodeByUid = (uid: number) => cluster.nodes.find((n) => n.uidFromDisk === uid)!;
async function bdb(n: TestNode): Promise<BdbJson> {
  return (await n.api<BdbJson>('GET', `/v1/bdbs/${db.uid}`)).body;
}

interface Range {
  lo: number;
  hi: number;
  /** The master at the start of the scenario. */
  master: number;
  node: number;
}
function ranges(b: BdbJson): Range[] {
  return b.shards
    .filter((s) => s.role === 'master')
    .map((s) => {
      const [lo, hi] = s.assigned_slots.split('-').map(Number);
      return { lo, hi: hi ?? lo, master: s.uid, node: s.node_uid };
    });
}
const rangeOf = (rs: Range[], key: string) => {
  const s = keySlot(key);
  return rs.findIndex((r) => s >= r.lo && s <= r.hi);
};
function probeKey(r: Range, prefix: string): string {
  for (let i = 0; ; i++) {
    const s = keySlot(`${prefix}:${i}`);
    if (s >= r.lo && s <= r.hi) return `${prefix}:${i}`;
  }
}

interface Ack {
  key: string;
  range: number;
  sentAt: number;
  ackAt: number;
  /** WAIT 1 200 answered 1: a replica has it. */
  confirmed: boolean;
}

/**
 * SET then WAIT 1 200, one after the other, through one node's endpoint, on
 * one connection per slot range (a command held for an unreachable master
 * then stalls only its own range); records what was acknowledged.
 */
class Writer {
  readonly acks: Ack[] = [];
  readonly errors: { sentAt: number; at: number; range: number; cmd: string; msg: string }[] = [];
  maxLatencyMs = 0;
  private running = true;
  private readonly conns: Redis[] = [];
  private readonly lanes: Promise<void>[];

  constructor(
    readonly name: string,
    readonly node: TestNode,
    rs: Range[],
    commandTimeout: number,
  ) {
    this.lanes = rs.map((_, ri) => this.lane(ri, rs, commandTimeout));
  }

  private async lane(ri: number, rs: Range[], commandTimeout: number): Promise<void> {
    const c = new Redis({
      host: this.node.addr,
      port: db.port,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => 100,
      commandTimeout,
    });
    this.conns.push(c);
    c.on('error', () => undefined); // failed commands are recorded one by one below
    await new Promise<void>((r) => c.once('ready', () => r()));
    for (let i = 0; this.running; i++) {
      const key = `${this.name}:${i}`;
      if (rangeOf(rs, key) !== ri) continue;
      const sentAt = Date.now();
      let cmd = { name: 'SET', at: sentAt };
      try {
        await c.set(key, key);
        const ackAt = Date.now();
        const ack: Ack = { key, range: ri, sentAt, ackAt, confirmed: false };
        this.acks.push(ack); // acknowledged, whatever WAIT says
        this.maxLatencyMs = Math.max(this.maxLatencyMs, ackAt - sentAt);
        cmd = { name: 'WAIT', at: ackAt };
        ack.confirmed = (await c.wait(1, 200)) >= 1;
      } catch (e) {
        this.errors.push({ sentAt: cmd.at, at: Date.now(), range: ri, cmd: cmd.name, msg: (e as Error).message });
        this.maxLatencyMs = Math.max(this.maxLatencyMs, Date.now() - cmd.at);
        await sleep(50);
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.lanes);
    for (const c of this.conns) c.disconnect();
  }
}

/** Every master has a replica on another node, in sync; every node and shard is active. */
async function healthy(through: TestNode): Promise<BdbJson> {
  return waitFor(
    'the database is healthy (every master replicated and in sync)',
    async () => {
      const b = await bdb(through);
      const nodes = (await through.api<{ status: string }[]>('GET', '/v1/nodes')).body;
      if (b.status !== 'active' || nodes.length !== 3 || nodes.some((n) => n.status !== 'active')) return undefined;
      if (b.shards.some((s) => s.status !== 'active')) return undefined;
      const ms = b.shards.filter((s) => s.role === 'master');
      if (ms.length !== 3 || !ms.every((m) => b.shards.some((s) => s.master_uid === m.uid && s.node_uid !== m.node_uid))) return undefined;
      for (const rep of b.shards.filter((s) => s.role === 'slave')) {
        const info = await shardCli(nodeByUid(rep.node_uid), rep.uid, ['INFO', 'replication']).catch(() => '');
        if (!/master_link_status:up/.test(info)) return undefined;
      }
      return b;
    },
    120_000,
    500,
  );
}

/**
 * After a heal, ms until: every node and shard active, one master per slot
 * range covering every slot, the victim's old masters replicas in sync, and
 * a write to every range through the victim's endpoint succeeds.
 */
async function msUntilConverged(
  through: TestNode,
  victim: TestNode,
  rs: Range[],
  healAt: number,
): Promise<{ status: number; endpoint: number }> {
  const victimUid = victim.uidFromDisk!;
  const oldMasters = rs.filter((r) => r.node === victimUid).map((r) => r.master);
  const probe = new Redis({
    host: victim.addr,
    port: db.port,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => 100,
    commandTimeout: 2000,
  });
  probe.on('error', () => undefined); // the loop waits the failures out
  let status = 0;
  let endpoint = 0;
  let why = '';
  let lastEndpointError = '';
  const not = (reason: string) => {
    why = reason;
    return false;
  };
  try {
    await waitFor(
      'the cluster converges after the heal',
      async () => {
        if (!endpoint) {
          let all = true;
          for (const r of rs) {
            const res = await probe.set(probeKey(r, 'probe'), 'x').catch((e: Error) => e.message);
            if (res !== 'OK') {
              all = false;
              why = `endpoint: ${r.lo}-${r.hi}: ${res}`;
              lastEndpointError = `+${Date.now() - healAt} ms ${why}`;
            }
          }
          if (all) endpoint = Date.now() - healAt;
        }
        if (!status) {
          const b = await bdb(through);
          const nodes = (await through.api<{ status: string }[]>('GET', '/v1/nodes')).body;
          if (b.status !== 'active' || nodes.some((n) => n.status !== 'active') || b.shards.some((s) => s.status !== 'active'))
            return not(`status: db ${b.status}, nodes ${nodes.map((n) => n.status)}, shards ${JSON.stringify(b.shards)}`);
          const now = ranges(b).sort((x, y) => x.lo - y.lo);
          const covered =
            now.length === rs.length && now.every((r, i) => r.lo === (i === 0 ? 0 : now[i - 1].hi + 1)) && now.at(-1)?.hi === 16383;
          if (!covered) return not(`masters: ${JSON.stringify(now)}`);
          for (const uid of oldMasters) {
            const s = b.shards.find((x) => x.uid === uid);
            if (s && s.role === 'master') continue; // kept its role: nothing to demote (no failover happened)
            if (!s) return not(`old master ${uid} left the map: ${JSON.stringify(b.shards)}`);
            const info = await shardCli(nodeByUid(s.node_uid), uid, ['INFO', 'replication']).catch((e: Error) => e.message);
            if (!/role:slave/.test(info) || !/master_link_status:up/.test(info))
              return not(`old master ${uid}: ${info.replace(/\s+/g, ' ').slice(0, 200)}`);
          }
          status = Date.now() - healAt;
        }
        return endpoint > 0 && status > 0;
      },
      120_000,
      200,
    ).catch((e: Error) => assert.fail(`${e.message}: ${why} (status after ${status} ms, endpoint after ${endpoint} ms)`));
  } finally {
    probe.disconnect();
  }
  if (lastEndpointError) console.log(`# the returning endpoint's last failure after the heal: ${lastEndpointError}`);
  return { status, endpoint };
}

/** Per node: its log's lines so far, and how many say its write fence closed / was extended after that point. */
function logMarks(): Map<TestNode, number> {
  return new Map(cluster.nodes.map((n) => [n, fs.readFileSync(n.logFile, 'utf8').length]));
}
function fenceLines(n: TestNode, from: number, cutAt = 0): { closed: number; extended: number; at?: string[] } {
  const text = fs.readFileSync(n.logFile, 'utf8').slice(from);
  const closed = text.split('\n').filter((l) => l.includes('write fence closed'));
  return {
    closed: closed.length,
    extended: text.split('fence extended').length - 1,
    // When (ms from the first cut) and what the node saw: to tell a cut's election from a heal's.
    ...(closed.length && cutAt
      ? {
          at: closed.map((l) => {
            const j = JSON.parse(l) as { time: number; silent_ms: number; last_sense?: unknown };
            return `+${j.time - cutAt} ms silent ${j.silent_ms} ms ${JSON.stringify(j.last_sense ?? null)}`;
          }),
        }
      : {}),
  };
}

/** Which acknowledged keys are missing now, read through `through`'s endpoint. */
async function lost(through: TestNode, acks: Ack[]): Promise<{ waitLost: Ack[]; plainLost: Ack[] }> {
  const c = new Redis({ host: through.addr, port: db.port, maxRetriesPerRequest: 0 });
  const missing: Ack[] = [];
  try {
    for (let i = 0; i < acks.length; i += 500) {
      const part = acks.slice(i, i + 500);
      const vals = await c.mget(...part.map((a) => a.key));
      part.forEach((a, j) => {
        if (vals[j] !== a.key) missing.push(a);
      });
    }
  } finally {
    c.disconnect();
  }
  return { waitLost: missing.filter((a) => a.confirmed), plainLost: missing.filter((a) => !a.confirmed) };
}

interface Cut {
  at: number;
  healAt: number;
}

/**
 * One scenario: writers on both sides, `cutFor` makes the cuts (and heals
 * them), then the heal, convergence, and every assertion.
 */
async function scenario(name: string, victim: TestNode, cutFor: (cuts: NetworkCuts) => Promise<Cut[]>): Promise<void> {
  const majority = cluster.nodes.filter((n) => n !== victim);
  const through = majority[0];
  const b0 = await healthy(through);
  const rs = ranges(b0);
  const victimUid = victim.uidFromDisk!;
  const victimRanges = rs.map((r, i) => (r.node === victimUid ? i : -1)).filter((i) => i >= 0);

  const maj = new Writer(`${name}-maj`, through, rs, 20_000);
  const iso = new Writer(`${name}-iso`, victim, rs, 25_000);
  await sleep(2000);
  const marks = logMarks();
  const windows = await cutFor(cuts!);
  const lastHeal = windows.at(-1)!.healAt;
  const conv = await msUntilConverged(through, victim, rs, lastHeal);
  await sleep(2000);
  await Promise.all([maj.stop(), iso.stop()]);
  const fences = majority.map((n) => ({ node: n.uidFromDisk, ...fenceLines(n, marks.get(n)!, windows[0].at) }));
  const victimFences = fenceLines(victim, marks.get(victim)!);

  // The cut-off side's last acknowledgement in each cut, from the cut.
  const fenceMs = windows.map((w) => {
    const inCut = iso.acks.filter((a) => a.ackAt > w.at && a.sentAt < w.healAt);
    return inCut.length ? Math.max(...inCut.map((a) => a.ackAt)) - w.at : 0;
  });
  // The majority's first acknowledgement, per range the victim mastered, of a SET sent after the first cut.
  const first = windows[0];
  const failoverMs = victimRanges.map((ri) => {
    const a = maj.acks.find((x) => x.range === ri && x.sentAt >= first.at);
    return a ? a.ackAt - first.at : Number.POSITIVE_INFINITY;
  });
  const { waitLost, plainLost } = await lost(through, [...maj.acks, ...iso.acks]);
  const plainIso = plainLost.filter((a) => a.key.includes('-iso:')).length;
  const longCut = windows.some((w) => w.healAt - w.at > 4000);
  const bEnd = await bdb(through);
  const failedOver = victimRanges.some((ri) => !bEnd.shards.some((x) => x.uid === rs[ri].master && x.role === 'master'));
  rows.push({
    test: MIN_REPLICAS ? `${name} (min_replicas 1)` : name,
    fence: `${Math.max(...fenceMs)} ms`,
    failover:
      victimRanges.length === 0
        ? 'no master cut off'
        : longCut
          ? `${Math.max(...failoverMs)} ms`
          : `${failedOver ? 'failed over in a 3 s cut' : 'none'}; first majority ack after the 1st cut ${Math.max(...failoverMs)} ms`,
    convergence: `${Math.max(conv.status, conv.endpoint)} ms (status ${conv.status}, endpoint ${conv.endpoint})`,
    waitLost: waitLost.length,
    plainLost: `${plainLost.length} (${plainIso} through the cut-off endpoint) of ${maj.acks.length + iso.acks.length}`,
  });
  console.log(
    `# ${name}: majority ${maj.acks.length} acked (${maj.acks.filter((a) => a.confirmed).length} WAIT-confirmed), ${maj.errors.length} failed, max latency ${maj.maxLatencyMs} ms; ` +
      `cut-off ${iso.acks.length} acked, ${iso.errors.length} failed, max latency ${iso.maxLatencyMs} ms; ` +
      `fence per cut ${JSON.stringify(fenceMs)} ms; failover per range ${JSON.stringify(failoverMs)} ms; convergence ${JSON.stringify(conv)}; ` +
      `fences closed/extended: cut-off node ${JSON.stringify(victimFences)}, majority ${JSON.stringify(fences)}`,
  );
  if (maj.errors.length)
    console.log(
      `# ${name}: majority errors (first 5): ${JSON.stringify(maj.errors.slice(0, 5).map((e) => ({ ...e, sentAt: e.sentAt - first.at, at: e.at - first.at })))}`,
    );

  assert.deepEqual(waitLost.map((a) => a.key).slice(0, 10), [], `${waitLost.length} WAIT-confirmed keys lost`);
  // A healthy node never fences itself: not during the cut, not at the heal (an etcd election it rides out).
  assert.deepEqual(
    fences.filter((f) => f.closed > 0),
    [],
    'a majority node closed its write fence',
  );
  assert.ok(victimFences.closed >= 1, `the cut-off node's fence closed (${JSON.stringify(victimFences)})`);
  // A command written to the cut-off master, during the cut, before its link can tell the path is cut (the link's
  // stall check: 2 s without a reply, then 1.5 s for a fresh connection) has an unknown outcome (the master may
  // have run it): it fails as on a lost connection, and is counted apart. Every other command must succeed.
  const onWireAtCut = (e: { sentAt: number; at: number; range: number; cmd: string }) =>
    victimRanges.includes(e.range) && windows.some((w) => e.sentAt < Math.min(w.at + LINK_DETECT_MS, w.healAt) && e.at >= w.at);
  const noReplicas = MIN_REPLICAS ? maj.errors.filter((e) => /^NOREPLICAS/.test(e.msg)) : [];
  if (MIN_REPLICAS) console.log(`# ${name}: min_replicas cost: ${noReplicas.length} majority commands refused with NOREPLICAS`);
  const onWire = maj.errors.filter((e) => onWireAtCut(e) && !noReplicas.includes(e));
  const failed = maj.errors.filter((e) => !onWireAtCut(e) && !noReplicas.includes(e));
  unknownOutcome.set(name, `${onWire.length} (${onWire.filter((e) => e.cmd === 'WAIT').length} of them WAIT)`);
  assert.deepEqual(
    failed.slice(0, 5).map((e) => `${e.cmd} +${e.sentAt - first.at} ms: ${e.msg}`),
    [],
    `the majority's endpoint failed ${failed.length} commands`,
  );
  for (const [i, f] of fenceMs.entries())
    assert.ok(
      f <= FENCE_MS + FENCE_SLACK_MS,
      `cut ${i}: the cut-off endpoint acknowledged a write ${f} ms after the cut (fence ${FENCE_MS} ms)`,
    );
  if (longCut)
    for (const f of failoverMs) assert.ok(f <= FAILOVER_BOUND_MS, `the majority served the cut-off master's slots only after ${f} ms`);
  // One writer per range at a time: the cut-off side's last ack for a range precedes the majority's first ack on its new master.
  for (const ri of victimRanges) {
    const lastIso = Math.max(0, ...iso.acks.filter((a) => a.range === ri && a.ackAt > first.at && a.sentAt < lastHeal).map((a) => a.ackAt));
    const newMaster = Math.min(
      ...maj.acks.filter((a) => a.range === ri && a.sentAt >= first.at && a.sentAt < lastHeal).map((a) => a.ackAt),
    );
    if (longCut && Number.isFinite(newMaster))
      assert.ok(
        lastIso < newMaster,
        `range ${ri}: acked on the cut-off master at +${lastIso - first.at} ms, on the majority at +${newMaster - first.at} ms`,
      );
  }
  assert.ok(
    Math.max(conv.status, conv.endpoint) <= CONVERGE_BOUND_MS,
    `converged ${JSON.stringify(conv)} ms after the heal (bound ${CONVERGE_BOUND_MS} ms)`,
  );
}

/** One cut of `ms`, healed at its end. */
async function cutOnce(c: NetworkCuts, make: () => void, ms: number): Promise<Cut[]> {
  make();
  const at = Date.now(); // the whole cut is in force from here
  await sleep(ms);
  c.heal();
  return [{ at, healAt: Date.now() }];
}

async function clusterMaster(): Promise<TestNode> {
  const r = await cluster.nodes[0].api<{ master_node_uid: number | null }>('GET', '/v1/cluster');
  assert.ok(r.body.master_node_uid, JSON.stringify(r.body));
  return nodeByUid(r.body.master_node_uid);
}
async function aMasterHolder(notCm: boolean): Promise<TestNode> {
  const b = await healthy(cluster.nodes[0]);
  const cm = await clusterMaster();
  const holders = [...new Set(b.shards.filter((s) => s.role === 'master').map((s) => s.node_uid))].map(nodeByUid);
  return holders.find((n) => !notCm || n !== cm) ?? holders[0];
}

test('isolate a node holding master shards for 15 s', { skip }, async () => {
  const victim = await aMasterHolder(true);
  await scenario('isolate master holder', victim, (c) => cutOnce(c, () => c.isolate(victim), CUT_MS));
});

test("isolate the cluster master's node for 15 s", { skip }, async () => {
  const victim = await clusterMaster();
  await scenario('isolate cluster master', victim, (c) => cutOnce(c, () => c.isolate(victim), CUT_MS));
});

test('asymmetric cut for 15 s: the majority cannot reach a master holder, it can reach them', { skip }, async () => {
  const victim = await aMasterHolder(true);
  const others = cluster.nodes.filter((n) => n !== victim);
  await scenario('asymmetric', victim, (c) => cutOnce(c, () => c.oneWay(others, victim), CUT_MS));
});

test('flapping: a master holder cut and healed every 3 s for 60 s', { skip }, async () => {
  const victim = await aMasterHolder(true);
  await scenario('flapping', victim, async (c) => {
    const out: Cut[] = [];
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
      c.isolate(victim);
      const at = Date.now();
      await sleep(3000);
      c.heal();
      out.push({ at, healAt: Date.now() });
      await sleep(3000);
    }
    return out;
  });
});
