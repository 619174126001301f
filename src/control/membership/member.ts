// What is left of the cluster member once its parts have their own files
// (cluster-view.ts, liveness.ts, election.ts, peers.ts; src/node builds and
// runs them with the loops): its etcd member's start, the node record it
// publishes, its plane certificates on disk, and what bootstrap
// (control/bootstrap/daemon.ts) needs of a running member.
import fs from 'node:fs';
import type { Logger } from 'pino';
import { EtcdMember, etcdPaths } from '../../coord/etcd.js';
import type { CertMeta, ClusterRecord, NodeRecord } from '../../coord/schema.js';
import type { ClusterStore } from '../../coord/store.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { CertStore } from '../../pki/certstore.js';
import { certPath } from '../../pki/node-files.js';
import { PLANE_CERT_NAME, type Plane, certInfo } from '../../pki/pki.js';
import { type NodeConfig, type NodeIdentity, SOFTWARE_VERSION } from './config.js';

export type { ProbeResult, StatusReply } from './peers.js';

/**
 * A running member, as bootstrap sees it: its etcd member starts first (a
 * join promotes it in between), then it runs until stopped or removed.
 */
export interface BootstrapMember {
  readonly uid: number;
  /** The typed cluster store (the join admission writes through it). */
  readonly store: ClusterStore;
  readonly etcd: { logTail(lines: number): string };
  readonly cluster: ClusterRecord;
  readonly nodes: PrefixCache<NodeRecord>;
  readonly certs: CertStore;
  waitReady(timeoutMs?: number): Promise<void>;
  /** Join the live cluster; `onRemoved` is called if the cluster removes this node. */
  run(onRemoved: () => void): Promise<void>;
  stop(): Promise<void>;
}

/** Builds a member of `identity` whose etcd member is started (src/node provides it). */
export type MemberFactory<M extends BootstrapMember> = (identity: NodeIdentity) => M;

/** Start this node's etcd member; the caller waits for it to serve. */
export function startEtcd(cfg: NodeConfig, identity: NodeIdentity, log: Logger): EtcdMember {
  const etcd = new EtcdMember({
    name: identity.etcd.name,
    addr: cfg.addr,
    peerPort: cfg.ports.etcd_peer,
    clientPort: cfg.ports.etcd_client,
    initialCluster: identity.etcd.initial_cluster,
    state: identity.etcd.state,
    token: identity.etcd.token,
    paths: etcdPaths(cfg.dataDir),
    log: log.child({ component: 'etcd' }),
    etcdBinary: cfg.etcdBinary,
  });
  etcd.start();
  return etcd;
}

export function loadPlaneBundles(dataDir: string): Record<Plane, { certPem: string; keyPem: string; caPem: string }> {
  const caPem = fs.readFileSync(certPath(dataDir, 'ca'), 'utf8');
  return {
    cp: { certPem: fs.readFileSync(certPath(dataDir, 'cp'), 'utf8'), keyPem: fs.readFileSync(certPath(dataDir, 'cpKey'), 'utf8'), caPem },
    dp: { certPem: fs.readFileSync(certPath(dataDir, 'dp'), 'utf8'), keyPem: fs.readFileSync(certPath(dataDir, 'dpKey'), 'utf8'), caPem },
  };
}

function certMeta(plane: Plane, pem: string): CertMeta {
  const i = certInfo(pem);
  return {
    name: PLANE_CERT_NAME[plane],
    serial: i.serial,
    subject: i.subject,
    issuer: i.issuer,
    not_before: i.not_before,
    not_after: i.not_after,
  };
}

/** Write this node's record (possibly over the stub the cluster's creation wrote: only its joined_time is kept). */
export async function publishNodeRecord(
  store: ClusterStore,
  cfg: Pick<NodeConfig, 'addr' | 'ports' | 'capabilities'>,
  uid: number,
  certs: { bundle(plane: Plane): { certPem: string } },
): Promise<void> {
  const prev = await store.nodes.getStub(uid);
  const rec: NodeRecord = {
    uid,
    addr: cfg.addr,
    ports: cfg.ports,
    etcd_member_id: (await store.members.status()).memberId,
    software_version: SOFTWARE_VERSION,
    capabilities: [...cfg.capabilities],
    joined_time: prev?.joined_time ?? new Date().toISOString(),
    certificates: {
      cp: certMeta('cp', certs.bundle('cp').certPem),
      dp: certMeta('dp', certs.bundle('dp').certPem),
    },
  };
  await store.nodes.put(rec);
}
