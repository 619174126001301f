// The composition root: the only place that builds a node's parts and wires
// them together. The daemon (control/) owns membership and bootstrap; the
// REST API and the metrics endpoint (api/) are built here around it, so
// control/ never depends on api/.
import fs from 'node:fs';
import type { Logger } from 'pino';
import { NodeDaemon } from '../control/daemon.js';
import type { ClusterMember } from '../control/member.js';
import { NodeConfig } from '../control/config.js';
import { certPath } from '../pki/node-files.js';
import { RestServer } from '../api/server.js';
import { MetricsServer } from '../api/metrics.js';

function apiCertOnDisk(dataDir: string) {
  return { certPem: fs.readFileSync(certPath(dataDir, 'api'), 'utf8'), keyPem: fs.readFileSync(certPath(dataDir, 'apiKey'), 'utf8') };
}

/** A node's parts, wired. `stop()` may be called at any time, during `start()` too. */
export class TesseraNode {
  readonly daemon: NodeDaemon;
  private rest?: RestServer;

  constructor(
    private readonly cfg: NodeConfig,
    private readonly log: Logger,
  ) {
    this.daemon = new NodeDaemon(cfg, log);
  }

  /** REST first (a blank node is bootstrapped through it), then the membership the data directory holds, if any. */
  async start(): Promise<void> {
    const { cfg, log } = this;
    try {
      const cert = await this.daemon.open();
      this.rest = new RestServer(this.daemon, cert, log.child({ component: 'rest' }));
      await this.rest.listen(cfg.addr, cfg.ports.rest);
      const rest = this.rest;
      await this.daemon.resume({
        apiCertificate: (c) => rest.setCertificate(c),
        memberRunning: async (m: ClusterMember) => {
          const metrics = new MetricsServer(m);
          await metrics.listen(apiCertOnDisk(cfg.dataDir));
          m.attach(metrics);
        },
      });
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    await this.daemon.stop();
    await this.rest?.close().catch((e) => this.log.warn({ err: (e as Error).message }, 'closing the REST API'));
  }
}
