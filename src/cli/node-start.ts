// `tessera node start`: one node in the foreground, its settings from flags
// and the config file (flags win), and its stop on SIGTERM/SIGINT: masters
// handed over first, within --stop-timeout; a second signal stops at once.
import path from 'node:path';
import { type Command, Option } from 'commander';
import pino from 'pino';
import { TesseraNode } from '../node/node.js';
import { CAPABILITIES, DEFAULT_PORTS, DEFAULT_TIMINGS, type NodeConfig } from '../control/membership/config.js';
import { ConfigFileError, applyConfigFile } from './config-file.js';

/** `--stop-timeout` by default: a graceful stop (masters handed over, then the plain stop) takes at most this long. */
const DEFAULT_STOP_TIMEOUT_S = 20;
/** The part of the stop timeout kept for the plain stop after the handover (shards, endpoints, the store member). */
const STOP_RESERVE_MS = 5000;

/** A positive number option; anything else is refused in one line. */
function intOpt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`invalid ${name}: ${v}`);
    return n;
  };
}

/** Add `start` to the `node` command. */
export function addNodeStart(node: Command): void {
  node
    .command('start')
    .description('run one node in the foreground')
    .option('--config <file>', 'read settings from this file (key = value, keys are these flags without dashes; flags win)')
    .option('--addr <ip>', 'the address this node binds every port on (required)')
    .option('--data-dir <dir>', 'where the node keeps its files (required)')
    .option('--rest-port <port>', 'REST API port', intOpt('rest port'), DEFAULT_PORTS.rest)
    .option('--internode-port <port>', 'internode TLS channel port', intOpt('internode port'), DEFAULT_PORTS.internode)
    .option('--dp-plain-port <port>', 'plaintext data-plane port', intOpt('dp plain port'), DEFAULT_PORTS.dp_plain)
    .option('--etcd-peer-port <port>', 'coordination store peer port', intOpt('etcd peer port'), DEFAULT_PORTS.etcd_peer)
    .option('--etcd-client-port <port>', 'coordination store client port', intOpt('etcd client port'), DEFAULT_PORTS.etcd_client)
    .option('--metrics-port <port>', 'Prometheus metrics port', intOpt('metrics port'), DEFAULT_PORTS.metrics)
    .option('--live-ttl <seconds>', 'liveness lease TTL', intOpt('live ttl'), DEFAULT_TIMINGS.liveTtlSeconds)
    .option(
      '--fence-ms <ms>',
      'a cut-off node stops taking writes this long after its last heartbeat (at most 80% of the TTL)',
      intOpt('fence ms'),
      DEFAULT_TIMINGS.fenceMs,
    )
    .option(
      '--join-timeout <seconds>',
      'how long a node this one admits may take to join',
      intOpt('join timeout'),
      DEFAULT_TIMINGS.joinTimeoutSeconds,
    )
    .option(
      '--stop-timeout <seconds>',
      'on SIGTERM/SIGINT, how long the node may take to hand its masters over and stop (a second signal stops it at once)',
      intOpt('stop timeout'),
      DEFAULT_STOP_TIMEOUT_S,
    )
    .addOption(
      new Option('--without-capability <name...>', 'pretend this build lacks a capability (testing mixed-version clusters)').default([]),
    )
    .option('--log-level <level>', 'log level', 'info')
    .action(async (_o, cmd: Command) => {
      if (cmd.opts().config) {
        try {
          applyConfigFile(cmd, cmd.opts().config);
        } catch (err) {
          if (err instanceof ConfigFileError) throw new Error(err.message);
          throw err;
        }
      }
      const o = cmd.opts();
      for (const [key, flag] of [
        ['addr', 'addr'],
        ['dataDir', 'data-dir'],
      ]) {
        if (!o[key]) throw new Error(`--${flag} is required (a flag, or '${flag}' in the config file)`);
      }
      const log = pino({ level: o.logLevel, base: { node: o.addr } });
      const cfg: NodeConfig = {
        addr: o.addr,
        dataDir: path.resolve(o.dataDir),
        ports: {
          rest: o.restPort,
          internode: o.internodePort,
          dp_plain: o.dpPlainPort,
          etcd_peer: o.etcdPeerPort,
          etcd_client: o.etcdClientPort,
          metrics: o.metricsPort,
        },
        timings: { ...DEFAULT_TIMINGS, liveTtlSeconds: o.liveTtl, joinTimeoutSeconds: o.joinTimeout, fenceMs: o.fenceMs },
        capabilities: CAPABILITIES.filter((c) => !(o.withoutCapability as string[]).includes(c)),
        etcdBinary: process.env.TESSERA_ETCD ?? 'etcd',
      };
      const node = new TesseraNode(cfg, log);
      let stopping = false;
      const cut = new AbortController();
      const stop = (sig: string) => {
        if (stopping) {
          if (!cut.signal.aborted) log.warn({ signal: sig }, 'second signal: stopping at once, without waiting for the handover');
          cut.abort();
          return;
        }
        stopping = true;
        // The handover gets the stop timeout less what the plain stop takes (shards, store member), so the whole stop fits in it.
        const handOverMs = Math.max(0, o.stopTimeout * 1000 - STOP_RESERVE_MS);
        log.info({ signal: sig, stop_timeout_s: o.stopTimeout, hand_over_ms: handOverMs }, 'stopping');
        const t0 = Date.now();
        node
          .stop({ handOverMs, signal: cut.signal })
          .catch((err) => log.error({ err: (err as Error).message }, 'stopping the node'))
          .finally(() => {
            log.info({ ms: Date.now() - t0 }, 'stopped');
            process.exit(0);
          });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      try {
        await node.start();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'node failed to start');
        throw new Error((err as Error).message);
      }
    });
}
