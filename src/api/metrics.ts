// Prometheus metrics over HTTPS (port 8070): the expiry of every node's
// internode certificates, node liveness, and the master.
import https from 'node:https';
import { Registry, Gauge, Counter } from 'prom-client';
import type { ClusterMember } from '../control/member.js';
import { httpsServerOptions } from '../tls/contexts.js';
import { listenOrExplain } from '../internode/channel.js';
import { PLANES } from '../pki/pki.js';

export class MetricsServer {
  private server?: https.Server;
  readonly registry = new Registry();

  constructor(private readonly m: ClusterMember) {
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
      help: '1 while the node holds its liveness lease',
      labelNames: ['node'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const n of nodes()) this.set({ node: String(n.uid) }, m.live.items.has(String(n.uid)) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tessera_slots_without_master',
      help: 'Hash slots of a database whose master shard is on a node without its liveness lease (not writable until failover)',
      labelNames: ['bdb'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const b of m.databases()) {
          let n = 0;
          for (const s of b.shards) if (s.role === 'master' && !m.live.items.has(String(s.node_uid))) n += s.slots[1] - s.slots[0] + 1;
          this.set({ bdb: String(b.uid) }, n);
        }
      },
    });
    new Counter({
      name: 'tessera_shard_failovers_total',
      help: 'Replicas promoted to master by this node, as cluster master (node down) or for a shard process of its own that died',
      labelNames: ['bdb', 'reason'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [bdb, n] of m.failover?.promotions ?? []) this.inc({ bdb: String(bdb), reason: 'node_down' }, n);
        for (const [bdb, n] of m.reconciler?.promotions ?? []) this.inc({ bdb: String(bdb), reason: 'shard_down' }, n);
      },
    });
    new Counter({
      name: 'tessera_endpoint_refused_connections_total',
      help: "Client connections a database endpoint of this node refused: plaintext_on_tls, tls_on_plaintext, client_cert (not listed), tls_handshake (only the first per client address is logged)",
      labelNames: ['bdb', 'reason'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const e of m.dataplane?.refusals ?? []) for (const [reason, n] of Object.entries(e.refusals)) this.inc({ bdb: String(e.bdbUid), reason }, n);
      },
    });
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
      if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
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
