// Per-database metrics, sessions across nodes, and the web UI's live traffic
// chart and verify-encryption report, on a real 3-node cluster (127.0.24.1-3):
// - 8070 `/` counts this node's endpoint traffic exactly (reads, writes,
//   others, the latency histogram, connections, clients now, shard memory);
//   `/v2` has Redis Enterprise's names and labels (cluster, db, node;
//   node_cert_expires_in_seconds with logical_name and path);
// - a session signed in on one node works on the others, and signing out on
//   any node ends it on all of them (sessions are kept in etcd);
// - in Debian's Chromium, through a TCP front (127.0.24.100:8443) that sends
//   each new connection to the first node that answers, as a DNS name or a
//   load balancer over the nodes would: the database page's chart shows the
//   operations per second and latency under load (uPlot, within the CSP), its
//   Security section shows the verify-encryption verdict; then the node the
//   front was using is killed, and the open page keeps working through
//   another node, showing the killed node as down; sign-out ends the session
//   on every node.
// Screenshots go to $TESSERA_UI_SCREENSHOTS (default: dist/ui-screenshots).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { Redis } from 'ioredis';
import { TestCluster, type TestNode, type BdbJson, REPO, USER, PASSWORD, createDb, waitFor, sleep } from '../support/cluster.js';
import { servicesRequest, type RawResponse, type RequestOptions } from '../support/https.js';

const NET = 24;
const UI_PORT = 8443;
const METRICS_PORT = 8070;
const FRONT = { host: `127.0.${NET}.100`, port: UI_PORT };
const CHROMIUM = process.env.TESSERA_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.TESSERA_UI_SCREENSHOTS ?? path.join(REPO, 'dist/ui-screenshots');
const STEP_MS = 60_000;

const cluster = new TestCluster(NET, 3);
const [n1, n2, n3] = cluster.nodes;
let db: BdbJson;
let front: net.Server | undefined;
const frontSockets = new Set<net.Socket>();
let browser: Browser | undefined;
let context: BrowserContext;
let page: Page;
const cspViolations: string[] = [];

/** A TCP front over the nodes' 8443: each new connection goes to the first node that accepts it, in order. */
function startFront(backends: TestNode[]): Promise<net.Server> {
  const srv = net.createServer((client) => {
    frontSockets.add(client);
    client.once('close', () => frontSockets.delete(client));
    client.pause();
    const tryNext = (i: number) => {
      if (i >= backends.length) return client.destroy();
      const up = net.connect({ host: backends[i].addr, port: UI_PORT });
      let connected = false;
      up.once('connect', () => {
        connected = true;
        frontSockets.add(up);
        up.once('close', () => frontSockets.delete(up));
        client.pipe(up).pipe(client);
        client.resume();
        up.on('error', () => client.destroy());
        client.on('error', () => up.destroy());
        up.once('close', () => client.destroy());
        client.once('close', () => up.destroy());
      });
      up.once('error', () => {
        if (!connected) tryNext(i + 1);
      });
    };
    tryNext(0);
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(FRONT.port, FRONT.host, () => resolve(srv));
  });
}

before(async () => {
  await cluster.startAll();
  await cluster.form('metrics.test');
  db = await createDb(n1, {
    name: 'traffic',
    memory_size: 64 << 20,
    shards_count: 2,
    sharding: true,
    port: 12024,
    proxy_policy: 'all-nodes',
    data_internode_encryption: false,
  });
  fs.mkdirSync(SHOTS, { recursive: true });
});
after(async () => {
  await browser?.close().catch(() => undefined);
  for (const s of frontSockets) s.destroy();
  await new Promise<void>((r) => (front ? front.close(() => r()) : r()));
  await cluster.stop();
});

type Raw = RawResponse;

/** An HTTPS request to a node's port, verified against the services CA. */
function request(n: TestNode, port: number, method: string, p: string, o: RequestOptions = {}): Promise<Raw> {
  return servicesRequest(n, port, method, p, o);
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

async function scrape(n: TestNode, p = '/'): Promise<Sample[]> {
  const r = await request(n, METRICS_PORT, 'GET', p);
  assert.equal(r.status, 200, r.text);
  const out: Sample[] = [];
  for (const line of r.text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The one sample of `name` whose labels include `want` (0 when absent). */
function value(samples: Sample[], name: string, want: Record<string, string>): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
  assert.ok(hits.length <= 1, `${name} ${JSON.stringify(want)}: ${hits.length} samples`);
  return hits[0]?.value ?? 0;
}

test('8070 counts this node’s endpoint traffic by class, with a latency histogram, connections, clients now and shard memory; /v2 has RE’s names and labels', async () => {
  const uid1 = String(n1.uidFromDisk);
  const bdb = String(db.uid);
  const mine = { bdb, node: uid1 };
  const client = new Redis({ host: n1.addr, port: db.port, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0 });
  await client.connect();
  await client.ping();
  const before = await scrape(n1);
  assert.equal(value(before, 'bdb_conns', mine), 1, 'one client connected to node 1’s endpoint');
  for (let i = 0; i < 200; i++) await client.set(`k${i}`, 'v'.repeat(100));
  for (let i = 0; i < 300; i++) await client.get(`k${i}`);
  for (let i = 0; i < 50; i++) await client.ping();
  const mid = await scrape(n1);
  const d = (name: string, labels: Record<string, string> = mine) => value(mid, name, labels) - value(before, name, labels);
  assert.equal(d('endpoint_write_requests'), 200);
  assert.equal(d('endpoint_read_requests'), 300);
  assert.equal(d('endpoint_other_requests'), 50);
  assert.equal(d('endpoint_read_responses'), 300);
  for (const cls of ['read', 'write', 'other']) {
    const h = `endpoint_${cls}_requests_latency_histogram`;
    assert.equal(d(`${h}_count`), d(`endpoint_${cls}_responses`), `${h}: one observation per reply`);
    assert.equal(d(`${h}_bucket`, { ...mine, le: '+Inf' }), d(`${h}_count`));
    assert.ok(d(`${h}_sum`) > 0, `${h}: latencies add up to something`);
    // Cumulative buckets never decrease along le.
    const buckets = mid.filter((s) => s.name === `${h}_bucket` && s.labels.bdb === bdb);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, `${h} buckets are cumulative`);
  }
  const avgUs = d('endpoint_read_requests_latency_histogram_sum') / d('endpoint_read_requests_latency_histogram_count');
  assert.ok(avgUs > 1 && avgUs < 1_000_000, `average read latency ${avgUs} µs`);
  assert.ok(value(mid, 'endpoint_client_connections', mine) >= 1);

  // Memory of the database's shards, where they are.
  const shardNodes = new Set(db.shards.map((s) => s.node_uid));
  for (const n of cluster.nodes) {
    const samples = await scrape(n);
    const mem = samples.filter((s) => s.name === 'redis_server_used_memory' && s.labels.bdb === bdb);
    const here = db.shards.filter((s) => s.node_uid === n.uidFromDisk);
    assert.equal(mem.length, here.length, `node ${n.uidFromDisk}: one figure per shard of its own`);
    for (const s of mem) assert.ok(s.value > 100_000 && here.some((x) => String(x.uid) === s.labels.shard), JSON.stringify(s));
  }
  assert.ok(shardNodes.size >= 1);

  // The client closes: clients now drops to 0, and the close counts as the client's.
  client.disconnect();
  await waitFor('bdb_conns back to 0', async () => value(await scrape(n1), 'bdb_conns', mine) === 0);
  const after = await scrape(n1);
  assert.equal(value(after, 'endpoint_client_disconnections', mine) - value(before, 'endpoint_client_disconnections', mine), 1);

  // /v2: Redis Enterprise's names and labels.
  const v2 = await scrape(n1, '/v2');
  const v2labels = { cluster: 'metrics.test', db: bdb, node: uid1 };
  assert.equal(value(v2, 'endpoint_read_requests', v2labels), value(after, 'endpoint_read_requests', mine));
  assert.ok(value(v2, 'endpoint_read_requests_latency_histogram_count', v2labels) >= 300);
  assert.ok(!v2.some((s) => s.labels.bdb !== undefined), '/v2 uses db, not bdb');
  const certs = v2.filter((s) => s.name === 'node_cert_expires_in_seconds');
  const names = certs.map((s) => s.labels.logical_name).sort();
  // The internode pair and the four client-facing certificates of the services CA.
  assert.deepEqual(names, ['api', 'ccs_internode_encryption', 'cm', 'data_internode_encryption', 'metrics_exporter', 'proxy']);
  for (const s of certs) {
    assert.equal(s.labels.cluster, 'metrics.test');
    assert.equal(s.labels.node, uid1);
    assert.ok(fs.existsSync(s.labels.path), `path ${s.labels.path} is the certificate's file on the node`);
    assert.ok(s.labels.path.startsWith(n1.dataDir));
    // Every one is issued for 90 days (cert_rotation_job_settings) and was issued just now.
    assert.ok(s.value > 80 * 86400 && s.value <= 90 * 86400 + 60, `${s.labels.logical_name}: ${s.value} s`);
  }
  assert.equal((await request(n1, METRICS_PORT, 'GET', '/v3')).status, 404);
});

async function signIn(n: TestNode): Promise<{ cookie: string; csrf: string }> {
  const r = await request(n, UI_PORT, 'POST', '/ui/session', { body: { username: USER, password: PASSWORD } });
  assert.equal(r.status, 200, r.text);
  const set = String(r.headers['set-cookie']);
  const m = /^(__Host-tessera_session=[A-Za-z0-9_-]+);/.exec(set);
  assert.ok(m, set);
  return { cookie: m[1], csrf: (r.json as { csrf_token: string }).csrf_token };
}

test('a session signed in on one node works on every node; signing out on any node ends it on all of them', async () => {
  const s = await signIn(n1);
  for (const n of cluster.nodes) {
    const r = await request(n, UI_PORT, 'GET', '/v1/cluster', { cookie: s.cookie });
    assert.equal(r.status, 200, `${n.addr}: ${r.text}`);
    const who = await request(n, UI_PORT, 'GET', '/ui/session', { cookie: s.cookie });
    assert.equal((who.json as { csrf_token: string }).csrf_token, s.csrf, 'the same session, with its CSRF token');
  }
  // A state-changing call on another node: the session's CSRF token is needed there too.
  assert.equal((await request(n2, UI_PORT, 'PUT', '/v1/cluster/policy', { cookie: s.cookie, body: { failover_timeout: 5 } })).status, 403);
  assert.equal(
    (await request(n2, UI_PORT, 'PUT', '/v1/cluster/policy', { cookie: s.cookie, csrf: s.csrf, body: { failover_timeout: 5 } })).status,
    200,
  );
  // The database's traffic, gathered from every node, through this same session.
  const m = await request(n2, UI_PORT, 'GET', `/ui/bdbs/${db.uid}/metrics`, { cookie: s.cookie });
  assert.equal(m.status, 200, m.text);
  const metrics = m.json as { nodes: { uid: number; ok: boolean; endpoint: boolean; requests: number }[] };
  assert.equal(metrics.nodes.length, 3);
  assert.ok(
    metrics.nodes.every((x) => x.ok && x.endpoint),
    JSON.stringify(metrics.nodes),
  );
  assert.ok(metrics.nodes.find((x) => x.uid === n1.uidFromDisk)!.requests >= 550, 'node 1 counted the traffic of the previous test');
  assert.equal((await request(n2, UI_PORT, 'GET', '/ui/bdbs/999/metrics', { cookie: s.cookie })).status, 404);
  assert.equal((await request(n2, UI_PORT, 'GET', `/ui/bdbs/${db.uid}/metrics`)).status, 401, 'no session, no metrics');

  // Sign out on node 3: the session is gone on 1 and 2 at once.
  const out = await request(n3, UI_PORT, 'DELETE', '/ui/session', { cookie: s.cookie, csrf: s.csrf });
  assert.equal(out.status, 204, out.text);
  for (const n of cluster.nodes) {
    const r = await request(n, UI_PORT, 'GET', '/v1/cluster', { cookie: s.cookie });
    assert.equal(r.status, 401, `${n.addr} after sign-out on ${n3.addr}`);
  }
});

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

const button = (name: string) => page.getByRole('button', { name, exact: true });
const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });
const fact = (label: string) => page.locator(`dt:text-is("${label}") + dd`);

test('the database page charts operations per second and latency, and shows the verify-encryption verdict; after its node dies the open page keeps working through another node', async () => {
  front = await startFront([n1, n2, n3]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 1000 } });
  page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('console', (m) => {
    if (/Content.Security.Policy|Refused to (load|apply|execute)/i.test(m.text())) cspViolations.push(m.text());
  });

  // Load on the endpoints of nodes 2 and 3 while the page watches.
  let stop = false;
  const clients = [n2, n3].map((n) => new Redis({ host: n.addr, port: db.port, maxRetriesPerRequest: 0, retryStrategy: () => 200 }));
  const load = Promise.all(
    clients.map(async (c, i) => {
      let k = 0;
      while (!stop) {
        await Promise.all(Array.from({ length: 20 }, () => c.set(`load:${i}:${k++ % 1000}`, 'x').catch(() => undefined)));
        await sleep(20);
      }
    }),
  );
  try {
    await page.goto(`https://${FRONT.host}:${FRONT.port}/`);
    await page.getByLabel('Email', { exact: true }).fill(USER);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await button('Sign in').click();
    await page.getByRole('heading', { level: 1, name: 'Cluster', exact: true }).waitFor();
    await page.goto(`https://${FRONT.host}:${FRONT.port}/#/databases/${db.uid}`);
    await page.getByRole('heading', { level: 1, name: 'traffic', exact: true }).waitFor();

    // The chart: a uPlot canvas, and the current figures beside it.
    await page
      .getByRole('img', { name: /Operations per second and average latency/ })
      .locator('canvas')
      .first()
      .waitFor();
    await waitFor('operations per second above 0', async () => Number(await fact('Operations/s').textContent()) > 0, STEP_MS, 500);
    assert.match((await fact('Average latency').textContent()) ?? '', /^\d+(\.\d+)? (µs|ms)$/);
    assert.match((await fact('Connected clients').textContent()) ?? '', /^[1-9]\d*$/);
    assert.match((await fact('Used memory').textContent()) ?? '', /^\d+(\.\d)? (KB|MB)$/);
    await sleep(6000); // a few points on the chart
    await shot('database-traffic');

    // Security: verify encryption for this database (plaintext links, as its setting says: OK).
    await button('Verify encryption').click();
    await page.getByText(/^Verdict: OK\./).waitFor();
    const linkRows = page.getByRole('table', { name: 'Internode connections' }).getByRole('row');
    await waitFor(
      'a proxy link listed',
      async () => (await linkRows.filter({ hasText: 'proxy' }).filter({ hasText: 'plaintext' }).count()) > 0,
      STEP_MS,
    );
    await page.getByRole('heading', { name: 'Security' }).scrollIntoViewIfNeeded();
    await shot('database-verify-encryption');

    // The node the front sends the page to dies: the open page goes on through another node, and says so.
    await n1.kill('SIGKILL');
    await page.getByText(new RegExp(`Node ${n1.uidFromDisk} \\(${n1.addr.replace(/\./g, '\\.')}\\) is down`)).waitFor({ timeout: STEP_MS });
    const before = Number(await fact('Operations/s').textContent());
    assert.ok(before >= 0);
    await waitFor(
      'operations per second above 0 after the node died',
      async () => Number(await fact('Operations/s').textContent()) > 0,
      STEP_MS,
      500,
    );
    await shot('database-node-down');
    await nav('Cluster').click();
    const row = page.getByRole('table', { name: 'Nodes of the cluster' }).getByRole('row').filter({ hasText: n1.addr });
    await row.getByText('down', { exact: true }).waitFor({ timeout: STEP_MS });
    await page.getByText('2 of 3 active').waitFor();
    assert.equal(await page.getByRole('heading', { level: 1, name: 'Sign in' }).count(), 0, 'still signed in');
    await shot('cluster-through-another-node');
  } finally {
    stop = true;
    await load;
    for (const c of clients) c.disconnect();
  }

  // Sign out (now through node 2): the cookie is refused by every node left.
  const [c] = await context.cookies(`https://${FRONT.host}:${FRONT.port}`);
  const cookie = `${c.name}=${c.value}`;
  assert.equal(
    (await request(n3, UI_PORT, 'GET', '/v1/cluster', { cookie })).status,
    200,
    'the browser’s session works on node 3 directly',
  );
  await button('Sign out').click();
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  for (const n of [n2, n3]) assert.equal((await request(n, UI_PORT, 'GET', '/v1/cluster', { cookie })).status, 401, n.addr);
  assert.deepEqual(cspViolations, [], 'the pages (uPlot included) keep to their CSP');
});
