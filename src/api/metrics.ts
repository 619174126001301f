// Prometheus metrics over HTTPS (port 8070): the expiry of every node's
// internode certificates, node liveness, and the master.
import https from 'node:https';
import { Registry, Gauge } from 'prom-client';
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

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
