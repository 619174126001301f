// The composition root: the only place that builds a node's parts and wires
// them together. The daemon (control/) owns membership and bootstrap; the
// REST API and the metrics endpoint (api/) and the web UI (ui/) are built
// here around it, so control/ never depends on api/ or ui/.
import fs from 'node:fs';
import type { Logger } from 'pino';
import { NodeDaemon } from '../control/daemon.js';
import type { ClusterMember } from '../control/member.js';
import { DEFAULT_PORTS, NodeConfig } from '../control/config.js';
import { ShardOpsController } from '../control/shard-ops.js';
import { certPath } from '../pki/node-files.js';
import { RestServer } from '../api/server.js';
import { MetricsServer } from '../api/metrics.js';
import { UiServer } from '../ui/server.js';
import { registerNode } from '../util/run-registry.js';

function apiCertOnDisk(dataDir: string) {
  return { certPem: fs.readFileSync(certPath(dataDir, 'api'), 'utf8'), keyPem: fs.readFileSync(certPath(dataDir, 'apiKey'), 'utf8') };
}

/** A node's parts, wired. `stop()` may be called at any time, during `start()` too. */
export class TesseraNode {
  readonly daemon: NodeDaemon;
  private readonly cfg: NodeConfig;
  private rest?: RestServer;
  private ui?: UiServer;
  private unregister?: () => void;

  constructor(
    cfg: NodeConfig,
    private readonly log: Logger,
  ) {
    // A caller that names no UI port gets the default one (the daemon checks it is free like the others).
    this.cfg = { ...cfg, ports: { ...cfg.ports, ui: cfg.ports.ui ?? DEFAULT_PORTS.ui } };
    this.daemon = new NodeDaemon(this.cfg, log);
  }

  /** REST first (a blank node is bootstrapped through it), then the membership the data directory holds, if any. */
  async start(): Promise<void> {
    const { cfg, log } = this;
    try {
      const cert = await this.daemon.open();
      this.rest = new RestServer(this.daemon, cert, log.child({ component: 'rest' }));
      await this.rest.listen(cfg.addr, cfg.ports.rest);
      // So that a CLI on this host finds this node's certificates (util/run-registry.ts).
      try {
        this.unregister = registerNode({ pid: process.pid, addr: cfg.addr, rest_port: cfg.ports.rest, data_dir: cfg.dataDir });
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'not in the run-file registry: a CLI on this host needs --ca to trust this node');
      }
      const rest = this.rest;
      await this.daemon.resume({
        apiCertificate: (c) => {
          rest.setCertificate(c);
          this.ui?.setCertificate(c);
        },
        memberRunning: async (m: ClusterMember) => {
          const metrics = new MetricsServer(m);
          await metrics.listen(apiCertOnDisk(cfg.dataDir));
          m.attach(metrics);
          // The web UI lives with the membership: sign-in needs the cluster's users. It presents
          // the REST API's certificate until the client-facing services CA exists (issue #11).
          this.ui = new UiServer(this.daemon, apiCertOnDisk(cfg.dataDir), log.child({ component: 'ui' }), rest.checkPassword);
          m.attach(this.ui);
          await this.ui.listen(cfg.addr, cfg.ports.ui!);
          // Operator shard operations (failover, migrate): run by whichever node is the cluster master.
          const shardOps = new ShardOpsController(m, log.child({ component: 'shard-ops' }));
          await shardOps.start();
          m.attach(shardOps);
        },
      });
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.unregister?.();
    await this.daemon.stop();
    await this.rest?.close().catch((e) => this.log.warn({ err: (e as Error).message }, 'closing the REST API'));
  }
}
