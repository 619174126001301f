// The composition root: the only place that builds a node's parts and wires
// them together. The daemon (control/bootstrap) runs bootstrap (create, join,
// resume) and asks for the running member, which is composed here
// (running-member.ts: the membership parts; loops.ts: every loop); the REST
// API and the metrics endpoint (api/) and the web UI (ui/) are built here
// around it, so control/ never depends on api/ or ui/.
import type { Logger } from 'pino';
import { NodeDaemon } from '../control/bootstrap/daemon.js';
import { DEFAULT_PORTS, type NodeConfig } from '../control/membership/config.js';
import { RunningMember } from './running-member.js';
import type { ServiceName } from '../pki/pki.js';
import { RestServer } from '../api/server.js';
import { MetricsServer } from '../api/metrics.js';
import { UiServer } from '../ui/server.js';
import { SessionStore } from '../ui/sessions.js';
import { registerNode } from '../util/run-registry.js';

/** A node's parts, wired. `stop()` may be called at any time, during `start()` too. */
export class TesseraNode {
  readonly daemon: NodeDaemon<RunningMember>;
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
    this.daemon = new NodeDaemon(this.cfg, log, (identity) => new RunningMember(this.cfg, identity, log));
    // Joins become actions only once every member runs 0.2: a 0.1.0 master has no join controller.
    this.daemon.masterRunsJoinActions = () => this.daemon.member?.clusterAtLeast('0.2') ?? false;
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
        memberRunning: async (m) => {
          // Each client-facing listener presents its own certificate of the services CA
          // (api, cm, metrics_exporter) and swaps it when the rotation job renews it.
          const svc = m.services;
          const cert = (name: ServiceName) => {
            const c = svc.get(name);
            if (!c) throw new Error(`this node has no ${name} certificate`);
            return c;
          };
          rest.setCertificate(cert('api'));
          const metrics = new MetricsServer(m, log.child({ component: 'metrics' }), () => m.localTraffic());
          await metrics.listen(cert('metrics_exporter'));
          m.attach(metrics);
          // The web UI lives with the membership: sign-in needs the cluster's users.
          // Its sessions are kept in the cluster store: valid on every node, ended everywhere by a sign-out.
          const ui = new UiServer(
            this.daemon,
            cert('cm'),
            log.child({ component: 'ui' }),
            rest.checkPassword,
            new SessionStore(m.store.uiSessions),
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
        },
      });
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /**
   * Stop the node. With `handOverMs`, a graceful stop: its masters are handed
   * over first, for at most that long (`signal` cuts it short), while it still
   * serves; then everything stops as without it.
   */
  async stop(o: { handOverMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    const m = this.daemon.member;
    if (o.handOverMs && m && !o.signal?.aborted) {
      const r = await m.handOver({ deadlineMs: o.handOverMs, signal: o.signal });
      if (r)
        this.log.info(
          {
            handed_over: r.handedOver,
            left: r.left,
            master_role_to: r.masterRoleTo,
            waited_for_store_ms: r.waitedForStore,
            ms: r.ms,
            cut_short: r.cutShort,
          },
          `graceful stop: ${r.handedOver.length} master(s) handed over in ${r.ms} ms${r.left.length ? `, ${r.left.length} left here` : ''}; stopping`,
        );
      else if (o.signal?.aborted) this.log.warn('graceful stop: the handover was cut short by a second signal; stopping at once');
    }
    this.unregister?.();
    await this.daemon.stop();
    await this.rest?.close().catch((e) => this.log.warn({ err: (e as Error).message }, 'closing the REST API'));
  }
}
