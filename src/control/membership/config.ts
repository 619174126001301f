// A node's settings (from the command line) and its on-disk identity.
import fs from 'node:fs';
import path from 'node:path';
import type { NodePorts } from '../../coord/schema.js';
import { CERT_FILES, certsDir } from '../../pki/node-files.js';
import { processAlive, writeFileAtomic } from '../../util/files.js';

/** This build's version: package.json's, the one source (from dist/src/control/membership/ it is four levels up). */
export const SOFTWARE_VERSION: string = (
  JSON.parse(fs.readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** What this build can do; a database feature is refused while any node lacks it. */
export const CAPABILITIES = ['internode_channel', 'data_internode_encryption'] as const;

export const DEFAULT_PORTS: Required<NodePorts> = {
  rest: 9443,
  internode: 3342,
  dp_plain: 3343,
  etcd_peer: 3340,
  etcd_client: 3341,
  metrics: 8070,
  ui: 8443,
};

export interface Timings {
  /** TTL of the liveness lease: a node that stops renewing it is down (and loses mastership) after about this long. */
  liveTtlSeconds: number;
  /** How often each node probes its peers over the control plane. */
  probeIntervalMs: number;
  /**
   * A cut-off node stops taking writes this long after its last landed
   * heartbeat was sent (extended, up to 80% of the TTL, only during an etcd
   * election a majority of the nodes is heard through: fence-rule.ts).
   */
  fenceMs: number;
  /** From a node's admission to it running: past it, the cluster master undoes the join. */
  joinTimeoutSeconds: number;
}

export const DEFAULT_TIMINGS: Timings = {
  liveTtlSeconds: 5,
  probeIntervalMs: 1000,
  fenceMs: 2000,
  joinTimeoutSeconds: 60,
};

export interface NodeConfig {
  addr: string;
  dataDir: string;
  ports: NodePorts;
  timings: Timings;
  capabilities: string[];
  etcdBinary: string;
}

/** Written once the node belongs to a cluster. */
export interface NodeIdentity {
  cluster_id: string;
  cluster_name: string;
  uid: number;
  addr: string;
  etcd: { name: string; initial_cluster: string; token: string; state: 'new' | 'existing' };
}

const IDENTITY_FILE = 'node.json';

export function readIdentity(dataDir: string): NodeIdentity | undefined {
  const f = path.join(dataDir, IDENTITY_FILE);
  if (!fs.existsSync(f)) return undefined;
  return JSON.parse(fs.readFileSync(f, 'utf8')) as NodeIdentity;
}

export function writeIdentity(dataDir: string, id: NodeIdentity): void {
  writeFileAtomic(path.join(dataDir, IDENTITY_FILE), JSON.stringify(id, null, 2) + '\n', 0o600);
}

/** Forget cluster membership: used to undo a failed create or join. */
export function wipeMembership(dataDir: string): void {
  fs.rmSync(path.join(dataDir, IDENTITY_FILE), { force: true });
  emptyDir(path.join(dataDir, 'etcd'));
  for (const f of Object.values(CERT_FILES)) fs.rmSync(path.join(certsDir(dataDir), f), { force: true });
  fs.rmSync(path.join(certsDir(dataDir), 'etcd-peer'), { recursive: true, force: true });
  emptyDir(path.join(dataDir, 'shards'));
}

/**
 * Remove what a directory holds, not the directory: an operator may mount a
 * disk of its own there (the shards' or etcd's), and removing a mount point
 * fails (EBUSY).
 */
function emptyDir(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir)) fs.rmSync(path.join(dir, e), { recursive: true, force: true });
}

/**
 * One running daemon per data directory: a pid file, taken over only when the
 * process it names is gone.
 */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const f = path.join(dataDir, 'tessera.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(f, String(process.pid), { flag: 'wx' });
      return () => {
        try {
          if (fs.readFileSync(f, 'utf8') === String(process.pid)) fs.rmSync(f);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(fs.readFileSync(f, 'utf8'));
      if (pid && pid !== process.pid && processAlive(pid)) {
        throw new Error(`data directory ${dataDir} is in use by a running node (pid ${pid})`);
      }
      fs.rmSync(f, { force: true }); // stale
    }
  }
  throw new Error(`cannot lock data directory ${dataDir}`);
}
