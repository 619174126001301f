// Prometheus metrics over HTTPS (port 8070). `/` (and `/metrics`): the
// expiry of every node's internode certificates, node liveness, the master,
// failovers, and this node's part of each database's traffic (labels `bdb`,
// `node`). `/v2`: Redis Enterprise's v2 scraping endpoint, with its metric and
// label names (`cluster`, `db`, `node`; `logical_name`, `path` for
// certificates): this node's certificates and its part of each database.
//
// Database traffic is counted by the endpoints in the data-plane worker
// (proxy/stats.ts: plain counters on the hot path); each scrape asks the
// worker for one snapshot, and the shards for their memory, and every metric
// of that scrape reads it. RE's names: endpoint_{read,write,other}_requests
// and _responses, endpoint_{read,write,other}_requests_latency_histogram (in
// microseconds, as RE's), endpoint_client_connections,
// endpoint_client_disconnections, endpoint_proxy_disconnections,
// redis_server_used_memory; on `/` also RE v1's bdb_conns (clients connected now).
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { Registry, Gauge, Counter, type Metric } from 'prom-client';
import type { MetricsMember } from './services.js';
import { httpsServerOptions } from '../tls/contexts.js';
import { listenOrExplain } from '../internode/channel.js';
import { PLANES, SERVICE_NAMES, sha256Fingerprint } from '../pki/pki.js';
import { splitPems } from '../pki/ca-list.js';
import { certPath, servicePaths } from '../pki/node-files.js';
import type { NodeTraffic } from '../control/reconcilers/traffic.js';
import { CLASSES, LATENCY_BOUNDS_US, LATENCY_FINITE } from '../proxy/stats.js';
import { nodeIsUp } from '../control/model/node-state.js';
import { rangesOf } from '../control/model/reshard-plan.js';

type Labels = Record<string, string>;
interface Value {
  value: number;
  labels: Labels;
  metricName?: string;
}

/** A metric whose values are computed at scrape time from the scrape's snapshot (prom-client's Registry formats it). */
class Computed {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    private readonly values: () => Promise<Value[]>,
  ) {}
  async get() {
    return { name: this.name, help: this.help, type: this.type, values: await this.values(), aggregator: 'sum' as const };
  }
  reset(): void {}
}

function register(registry: Registry, name: string, help: string, type: Computed['type'], values: () => Promise<Value[]>): void {
  registry.registerMetric(new Computed(name, help, type, values) as unknown as Metric);
}

/** A histogram's series from non-cumulative bucket counts (the last is +Inf). */
function histogramValues(name: string, labels: Labels, buckets: number[], sum: number): Value[] {
  const out: Value[] = [];
  let acc = 0;
  for (let k = 0; k < LATENCY_FINITE; k++) {
    acc += buckets[k];
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: String(LATENCY_BOUNDS_US[k]) }, value: acc });
  }
  acc += buckets[LATENCY_FINITE];
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: acc });
  out.push({ metricName: `${name}_sum`, labels, value: sum });
  out.push({ metricName: `${name}_count`, labels, value: acc });
  return out;
}

/** How the database metrics are labelled: tessera's (`/`) or Redis Enterprise's v2 (`/v2`). */
interface LabelStyle {
  db(bdbUid: number): Labels;
  shard(bdbUid: number, shardUid: number, role: string): Labels;
}

/** The per-database metrics of this node, under RE's v2 names. */
function registerDatabaseMetrics(registry: Registry, style: LabelStyle, snapshot: () => Promise<NodeTraffic | undefined>): void {
  const perEndpoint = (f: (e: NodeTraffic['endpoints'][number]) => Value[]) => async () => (await snapshot())?.endpoints.flatMap(f) ?? [];
  CLASSES.forEach((cls, i) => {
    register(
      registry,
      `endpoint_${cls}_requests`,
      `Requests of the ${cls} class received by this node's endpoint of the database`,
      'counter',
      perEndpoint((e) => [{ labels: style.db(e.bdbUid), value: e.requests[i] }]),
    );
    register(
      registry,
      `endpoint_${cls}_responses`,
      `Replies to ${cls} requests sent by this node's endpoint of the database`,
      'counter',
      perEndpoint((e) => [{ labels: style.db(e.bdbUid), value: e.responses[i] }]),
    );
    const h = `endpoint_${cls}_requests_latency_histogram`;
    register(
      registry,
      h,
      `Latency of ${cls} requests through this node's endpoint, in microseconds: from the request's arrival to its reply's write`,
      'histogram',
      perEndpoint((e) => histogramValues(h, style.db(e.bdbUid), e.latencyBuckets[i], e.latencySumUs[i])),
    );
  });
  register(
    registry,
    'endpoint_client_connections',
    "Client connections accepted by this node's endpoint of the database",
    'counter',
    perEndpoint((e) => [{ labels: style.db(e.bdbUid), value: e.connections }]),
  );
  register(
    registry,
    'endpoint_client_disconnections',
    'Client connections closed by the client',
    'counter',
    perEndpoint((e) => [{ labels: style.db(e.bdbUid), value: e.disconnections }]),
  );
  register(
    registry,
    'endpoint_proxy_disconnections',
    'Client connections closed by the endpoint (protocol error, limits, the endpoint closing)',
    'counter',
    perEndpoint((e) => [{ labels: style.db(e.bdbUid), value: e.proxyDisconnections }]),
  );
  register(
    registry,
    'redis_server_used_memory',
    'Memory used by a shard of the database on this node (INFO memory used_memory), bytes',
    'gauge',
    async () =>
      ((await snapshot())?.shards ?? []).map((s) => ({ labels: style.shard(s.bdbUid, s.shardUid, s.role), value: s.used_memory })),
  );
}

export class MetricsServer {
  private server?: https.Server;
  readonly registry = new Registry();
  /** Redis Enterprise's v2 scraping endpoint (`/v2`). */
  readonly registryV2 = new Registry();
  /** The traffic read for the scrape being answered: every metric of the scrape reads this one snapshot. */
  private snap?: Promise<NodeTraffic | undefined>;

  /** Read this node's database traffic now; undefined while the data plane cannot answer. */
  private readTraffic(): Promise<NodeTraffic | undefined> {
    this.snap = this.traffic().catch((err: Error) => {
      this.log.warn({ err: err.message }, 'metrics: no traffic counters from the data plane');
      return undefined;
    });
    return this.snap;
  }

  private snapshot(): Promise<NodeTraffic | undefined> {
    return this.snap ?? this.readTraffic();
  }

  constructor(
    private readonly m: MetricsMember,
    private readonly log: Logger,
    /** This node's traffic counters (control/reconcilers/traffic.ts `localTraffic`), read once per scrape. */
    private readonly traffic: () => Promise<NodeTraffic>,
  ) {
    const nodes = () => m.nodes.values().filter((n) => n.addr);
    new Gauge({
      name: 'node_cert_expires_in_seconds',
      help: 'Seconds until an internode certificate of a node expires',
      labelNames: ['node', 'name'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const n of nodes()) {
          for (const plane of PLANES) {
            const c = n.certificates?.[plane];
            if (c) this.set({ node: String(n.uid), name: c.name }, Math.round((Date.parse(c.not_after) - Date.now()) / 1000));
          }
        }
      },
    });
    new Gauge({
      name: 'tessera_node_up',
      help: '1 while the node is up: it holds its liveness lease and its heartbeats are not silent for the failover timeout',
      labelNames: ['node'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const n of nodes()) this.set({ node: String(n.uid) }, nodeIsUp(m, n.uid) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tessera_slots_without_master',
      help: 'Hash slots of a database whose master shard is on a node that is down (not writable until failover)',
      labelNames: ['bdb'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const b of m.databases()) {
          let n = 0;
          for (const s of b.shards) if (s.role === 'master' && !nodeIsUp(m, s.node_uid)) for (const [a, z] of rangesOf(s)) n += z - a + 1;
          this.set({ bdb: String(b.uid) }, n);
        }
      },
    });
    new Counter({
      name: 'tessera_shard_failovers_total',
      help: 'Replicas promoted to master by this node, as cluster master (node down, or a master refusing writes for its disk) or for a shard process of its own that died',
      labelNames: ['bdb', 'reason'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [bdb, n] of m.failover?.promotions ?? []) this.inc({ bdb: String(bdb), reason: 'node_down' }, n);
        // A master that refused writes for its disk (MISCONF), its replica promoted by this node as cluster master.
        for (const [bdb, n] of m.failover?.refusalPromotions ?? []) this.inc({ bdb: String(bdb), reason: 'write_refused' }, n);
        for (const [bdb, n] of m.reconciler?.promotions ?? []) this.inc({ bdb: String(bdb), reason: 'shard_down' }, n);
      },
    });
    const node = () => String(m.uid);
    registerDatabaseMetrics(
      this.registry,
      {
        db: (bdb) => ({ bdb: String(bdb), node: node() }),
        shard: (bdb, shard, role) => ({ bdb: String(bdb), node: node(), shard: String(shard), role }),
      },
      () => this.snapshot(),
    );
    register(this.registry, 'bdb_conns', "Clients connected now to this node's endpoint of the database", 'gauge', async () =>
      ((await this.snapshot())?.endpoints ?? []).map((e) => ({ labels: { bdb: String(e.bdbUid), node: node() }, value: e.clients })),
    );

    // /v2: Redis Enterprise's names and labels.
    const cluster = () => m.cluster.name;
    registerDatabaseMetrics(
      this.registryV2,
      {
        db: (bdb) => ({ cluster: cluster(), db: String(bdb), node: node() }),
        shard: (bdb, shard, role) => ({ cluster: cluster(), db: String(bdb), node: node(), redis: String(shard), role }),
      },
      () => this.snapshot(),
    );
    register(this.registryV2, 'node_cert_expires_in_seconds', 'Seconds until a certificate of this node expires', 'gauge', async () => {
      const out: Value[] = [];
      const rec = m.nodes.items.get(String(m.uid));
      for (const plane of PLANES) {
        const c = rec?.certificates?.[plane];
        if (c)
          out.push({
            labels: { cluster: cluster(), node: node(), logical_name: c.name, path: certPath(m.cfg.dataDir, plane) },
            value: Math.round((Date.parse(c.not_after) - Date.now()) / 1000),
          });
      }
      // The client-facing certificates (services CA), as RE lists its proxy/api/cm/metrics_exporter ones.
      for (const name of SERVICE_NAMES) {
        const c = m.services.get(name);
        if (!c) continue;
        const file = servicePaths(m.cfg.dataDir, name).cert;
        try {
          const validTo = Date.parse(new X509Certificate(c.certPem).validTo);
          out.push({
            labels: { cluster: cluster(), node: node(), logical_name: name, path: file },
            value: Math.round((validTo - Date.now()) / 1000),
          });
        } catch (err) {
          log.warn({ err: (err as Error).message, name }, 'metrics: cannot read a client-facing certificate');
        }
      }
      return out;
    });

    // The cluster's CAs this node trusts (two during a rollover), as `cluster_ca_expiring` watches them.
    register(this.registryV2, 'tessera_ca_expiry_seconds', 'Seconds until a cluster CA this node trusts expires', 'gauge', async () => {
      const lists: Array<[string, string[]]> = [
        ['internode', m.certs?.casPem() ?? []],
        ['services', splitPems(m.services.caPem?.() ?? '')],
      ];
      return lists.flatMap(([ca, pems]) =>
        pems.map((pem) => ({
          labels: { cluster: cluster(), node: node(), ca, fingerprint: sha256Fingerprint(pem) },
          value: Math.round((Date.parse(new X509Certificate(pem).validTo) - Date.now()) / 1000),
        })),
      );
    });

    register(
      this.registry,
      'tessera_endpoint_refused_connections_total',
      'Client connections a database endpoint of this node refused: plaintext_on_tls, tls_on_plaintext, client_cert (not listed), tls_handshake (only the first per client address is logged)',
      'counter',
      async () =>
        ((await this.snapshot())?.endpoints ?? []).flatMap((e) =>
          Object.entries(e.refusals).map(([reason, n]) => ({ labels: { bdb: String(e.bdbUid), reason }, value: n })),
        ),
    );
    new Gauge({
      name: 'tessera_cluster_master',
      help: 'uid of the cluster master node as seen by this node',
      registers: [this.registry],
      collect() {
        this.set(m.masterUid ?? 0);
      },
    });
  }

  async listen(cert: { certPem: string; keyPem: string }): Promise<void> {
    this.server = https.createServer(httpsServerOptions(cert), (req, res) => {
      const p = (req.url ?? '').split('?')[0];
      const registry = p === '/' || p === '/metrics' ? this.registry : p === '/v2' || p === '/v2/' ? this.registryV2 : undefined;
      if (req.method !== 'GET' || !registry) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      void this.readTraffic(); // one snapshot for this scrape
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.message),
      );
    });
    await listenOrExplain(this.server, this.m.cfg.addr, this.m.cfg.ports.metrics, 'metrics');
  }

  /** Swap the certificate for new connections; open ones are not touched. */
  setCertificate(cert: { certPem: string; keyPem: string }): void {
    this.server?.setSecureContext(httpsServerOptions(cert));
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
