// The composition root: the only place that builds a node's parts and wires
// them together. The daemon (control/) owns membership and bootstrap; the
// REST API and the metrics endpoint (api/) and the web UI (ui/) are built
// here around it, so control/ never depends on api/ or ui/.
import type { Logger } from 'pino';
import { NodeDaemon } from '../control/bootstrap/daemon.js';
import type { ClusterMember } from '../control/membership/member.js';
import { DEFAULT_PORTS, type NodeConfig, SOFTWARE_VERSION } from '../control/membership/config.js';
import { ShardOpsController } from '../control/controllers/shard-ops.js';
import { localTraffic } from '../control/reconcilers/traffic.js';
import { CertRotationController } from '../control/controllers/cert-rotation-action.js';
import { ActionRetention } from '../control/controllers/action-retention.js';
import { ClusterVersionController } from '../control/controllers/cluster-version.js';
import { MasterVersionGuard } from '../control/reconcilers/master-version-guard.js';
import type { ServiceName } from '../pki/pki.js';
import { RestServer } from '../api/server.js';
import { MetricsServer } from '../api/metrics.js';
import { UiServer } from '../ui/server.js';
import { SessionStore } from '../ui/sessions.js';
import { storeOf } from '../coord/store.js';
import { registerNode } from '../util/run-registry.js';

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
        apiCertificate: (c) => rest.setCertificate(c),
        memberRunning: async (m: ClusterMember) => {
          // Each client-facing listener presents its own certificate of the services CA
          // (api, cm, metrics_exporter) and swaps it when the rotation job renews it.
          const svc = m.services;
          const cert = (name: ServiceName) => {
            const c = svc.get(name);
            if (!c) throw new Error(`this node has no ${name} certificate`);
            return c;
          };
          rest.setCertificate(cert('api'));
          const metrics = new MetricsServer(m, log.child({ component: 'metrics' }), () => localTraffic(m));
          await metrics.listen(cert('metrics_exporter'));
          m.attach(metrics);
          // The web UI lives with the membership: sign-in needs the cluster's users.
          // Its sessions are kept in the cluster store: valid on every node, ended everywhere by a sign-out.
          const ui = new UiServer(
            this.daemon,
            cert('cm'),
            log.child({ component: 'ui' }),
            rest.checkPassword,
            new SessionStore(storeOf(m.client).uiSessions),
          );
          this.ui = ui;
          m.attach(ui);
          await ui.listen(cfg.addr, cfg.ports.ui!);
          const swap = (name: ServiceName) => {
            if (name === 'api') rest.setCertificate(cert('api'));
            else if (name === 'cm') ui.setCertificate(cert('cm'));
            else if (name === 'metrics_exporter') metrics.setCertificate(cert('metrics_exporter'));
          };
          svc.on('change', swap);
          m.attach({ close: async () => void svc.off('change', swap) });
          // Operator shard operations (failover, migrate): run by whichever node is the cluster master.
          const shardOps = new ShardOpsController(m, log.child({ component: 'shard-ops' }));
          await shardOps.start();
          m.attach(shardOps);
          // Rotations of every node's certificates (POST /v1/cluster/certificates/rotate): followed by the cluster master.
          const rotations = new CertRotationController(m, log.child({ component: 'cert-rotation-action' }));
          await rotations.start();
          m.attach(rotations);
          // Finished actions beyond the newest 200 are removed by the cluster master.
          const retention = new ActionRetention(m, log.child({ component: 'action-retention' }));
          retention.start();
          m.attach(retention);
          // The cluster version (lowest member version, never lowered): decided by the cluster master.
          const versions = new ClusterVersionController(m, log.child({ component: 'cluster-version' }));
          versions.start();
          m.attach(versions);
          // Every node: a member older than the cluster version (a 0.1.0 node restarted into a 0.2 cluster) is kept from the master role.
          const guard = new MasterVersionGuard(m, SOFTWARE_VERSION, log.child({ component: 'version-guard' }));
          await guard.start();
          m.attach(guard);
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
