// The database reconciler as a unit, against a real etcd (127.0.47.1) and a
// real redis-server: given the view's caches and a data-plane host (built,
// its worker not started: the configuration it is handed is kept), a
// database record written in the store makes it start this node's shard and
// report the generation it converged to (naming the node's run); deleting the
// record stops the shard. Its run's old handover reports are cleared at start.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { storeOf } from '../../src/coord/store.js';
import { DEFAULT_ALERT_SETTINGS, KEYS, type BdbRecord, type ObservedRecord } from '../../src/coord/schema.js';
import { ClusterView } from '../../src/control/membership/cluster-view.js';
import { BdbReconciler } from '../../src/control/reconcilers/bdb-reconciler.js';
import { DataplaneHost } from '../../src/dataplane/host.js';
import { DEFAULT_PORTS, DEFAULT_TIMINGS, type NodeConfig } from '../../src/control/membership/config.js';
import { startScratchEtcd, type ScratchEtcd } from '../support/etcd.js';
import { waitFor } from '../support/wait.js';
import { bdbRecord } from '../support/bdb-record.js';

const log = pino({ level: 'silent' });
const ADDR = '127.0.47.1';
/** This run of the node (its live record's started_time). */
const INCARNATION = '2026-01-01T00:00:00.000Z';

let etcd: ScratchEtcd;
let dataDir: string;
before(async () => {
  etcd = await startScratchEtcd(ADDR, 24700);
  dataDir = mkdtempSync(join(tmpdir(), 'tessera-reconciler-'));
});
after(async () => {
  await etcd?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const bdb = (uid: number): BdbRecord =>
  bdbRecord(uid, [{ uid: 7, role: 'master', node_uid: 1, slots: [0, 16383] }], {
    port: 14700 + uid,
    memory_size: 1 << 24,
    sharding: false,
    proxy_policy: 'single',
    internal_secret: 'reconciler-test-secret',
    status: 'pending',
  });

test('a database record in the store: the reconciler starts its shard, reports the generation, and stops it once deleted', async () => {
  const cfg: NodeConfig = { addr: ADDR, dataDir, ports: DEFAULT_PORTS, timings: DEFAULT_TIMINGS, capabilities: [], etcdBinary: 'etcd' };
  const store = storeOf(etcd.client);
  const view = new ClusterView(store, 1, { clusterId: 'test', liveTtlSeconds: 5 }, log);
  // The worker is not started: what the reconciler hands it is only kept (setConfig), which is what is checked here.
  const dataplane = new DataplaneHost({
    node: { uid: 1, addr: ADDR, ports: DEFAULT_PORTS },
    certs: () => {
      throw new Error('no worker in this test');
    },
    proxyCert: () => undefined,
    policy: () => view.policySnapshot('hybrid_preferred'),
    rpc: async () => undefined,
    log,
    logLevel: 'silent',
  });
  const configs: number[][] = [];
  const setConfig = dataplane.setConfig.bind(dataplane);
  // The node's watched databases: node/loops.ts builds and starts one cache that its loops share.
  const bdbs = store.bdbs.cache();
  const host = {
    uid: 1,
    cfg,
    store,
    nodes: view.nodes,
    live: view.live,
    bdbs,
    dataplane: {
      on: dataplane.on.bind(dataplane),
      tunnelPorts: dataplane.tunnelPorts,
      endpoints: dataplane.endpoints,
      setConfig: (c: Parameters<DataplaneHost['setConfig']>[0]) => {
        configs.push(c.localShards.map((s) => s.shardUid));
        setConfig(c);
      },
    },
    failoverTimeoutSeconds: () => view.failoverTimeoutSeconds(),
    alertSettings: () => DEFAULT_ALERT_SETTINGS,
    incarnation: INCARNATION,
  };
  await view.start();
  await bdbs.start();
  // This node's run before a restart asked for a handover of a master shard: that process is gone, the report is cleared at start.
  const stale: ObservedRecord = {
    node_uid: 1,
    generation: 4,
    incarnation: '2025-12-31T00:00:00.000Z',
    converged: false,
    shards: [{ uid: 90, role: 'master', status: 'down', handover: 'crashed' }],
    time: new Date().toISOString(),
  };
  await etcd.client.put(KEYS.observed(9, 1)).value(JSON.stringify(stale));
  const r = new BdbReconciler(host, log);
  await r.start();
  try {
    const cleared = (await etcd.client.get(KEYS.observed(9, 1)).json()) as ObservedRecord;
    assert.deepEqual(cleared.shards, [{ uid: 90, role: 'master', status: 'down' }], 'the old handover is cleared at start');
    await etcd.client.put(KEYS.bdb(3)).value(JSON.stringify(bdb(3)));
    // `running` is true from the spawn; the socket comes a moment later (the reconciler itself waits for PONG).
    const pong = async () =>
      (await r
        .shardProcess(7)
        ?.command(['PING'])
        .catch(() => undefined)) === '+PONG\r\n';
    await waitFor('shard 7 answers PING', pong, 20_000);
    await waitFor('the data plane is told the shard is local', () => configs.some((c) => c.includes(7)), 10_000);
    await waitFor(
      'the node reports generation 1',
      async () => ((await etcd.client.get(KEYS.observed(3, 1)).json()) as { generation?: number } | null)?.generation === 1,
      10_000,
    );
    const report = (await etcd.client.get(KEYS.observed(3, 1)).json()) as ObservedRecord;
    assert.equal(report.incarnation, INCARNATION, 'a report names the run of the node that wrote it');
    await etcd.client.delete().key(KEYS.bdb(3));
    await waitFor('shard 7 is stopped', () => r.shardProcess(7) === undefined, 20_000);
  } finally {
    await r.stop();
    await bdbs.stop();
    await view.stop();
  }
});
