// One node's daemon: before it belongs to a cluster it serves only the
// bootstrap API; creating or joining a cluster turns it into a running member.
// Bootstrap is all-or-nothing: a failed create or join leaves this node blank
// and the cluster as it was.
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import os from 'node:os';
import { randomUUID, X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import {
  type NodeConfig,
  type NodeIdentity,
  SOFTWARE_VERSION,
  lockDataDir,
  readIdentity,
  wipeMembership,
  writeIdentity,
} from '../membership/config.js';
import { BOOTSTRAP_CERT_FILE, certPath, certsDir, restTrustAnchorFile } from '../../pki/node-files.js';
import { writeFileAtomic } from '../../util/files.js';
import type { BootstrapMember, MemberFactory } from '../membership/member.js';
import { DEFAULT_POLICY, type ClusterRecord, type NodePorts, type NodeStubRecord, type UserRecord } from '../../coord/schema.js';
import { peerUrl } from '../../coord/etcd.js';
import {
  type Issued,
  type Plane,
  SERVICE_NAMES,
  type ServiceName,
  sha256Fingerprint,
  createCa,
  createCsr,
  generateKeyPair,
  issueLocally,
  selfSigned,
  validateBundle,
} from '../../pki/pki.js';
import { hashPassword } from './passwords.js';
import { joinNodeCall, requireAdmitted } from './version-check.js';
import { installPlaneFiles, installServiceFiles } from '../../pki/node-files.js';
import { OperatorError, conflict } from '../../util/errors.js';
import { requestJson, errorText, ConnectError } from '../../util/https-json.js';

export type BootstrapState = 'idle' | 'creating_cluster' | 'joining_cluster' | 'error' | 'completed';

export interface BootstrapStatus {
  state: BootstrapState;
  start_time?: string;
  end_time?: string;
  error_code?: string;
  error_details?: { description: string };
}

export interface CreateClusterRequest {
  name: string;
  username: string;
  password: string;
}

export interface JoinClusterRequest {
  nodes: string[];
  /** `sha256:<hex>` of the cluster's REST CA, as `cluster create` printed it: a member that presents another is refused before any credential is sent. */
  caFingerprint?: string;
  username: string;
  password: string;
}

import { Admission, INTERNODE_CERT_SECONDS, type JoinGrant, type JoinNodeRequest } from './admission.js';

export type { JoinGrant, JoinNodeRequest } from './admission.js';

/**
 * What the daemon needs from the services built around it (src/node wires
 * them): the REST server takes a new certificate when the node joins a
 * cluster, and services that exist only on a member start with it.
 */
export interface DaemonHooks<M> {
  apiCertificate(cert: { certPem: string; keyPem: string }): void;
  /** Called once a member runs; a rejection fails the start, create or join. */
  memberRunning(m: M): Promise<void>;
}

/** Bootstrap (create, join, resume) of a node whose running member src/node builds (`newMember`). */
export class NodeDaemon<M extends BootstrapMember = BootstrapMember> {
  member?: M;
  bootstrap: BootstrapStatus = { state: 'idle' };
  readonly startedAt = Date.now();
  private unlock?: () => void;
  private busy = false;
  /** Whether the cluster master runs join actions (0.2); src/node wires the cluster's version in. */
  masterRunsJoinActions: () => boolean = () => true;
  private readonly admission: Admission;
  private hooks: DaemonHooks<M> = { apiCertificate: () => undefined, memberRunning: async () => undefined };

  constructor(
    readonly cfg: NodeConfig,
    readonly log: Logger,
    /** Builds the running member of an identity, its etcd member started (src/node: the parts and the loops). */
    private readonly newMember: MemberFactory<M>,
  ) {
    this.admission = new Admission(() => this.requireMember(), log, {
      joinTimeoutMs: cfg.timings.joinTimeoutSeconds * 1000,
      masterRunsJoinActions: () => this.masterRunsJoinActions(),
    });
  }

  /**
   * Lock the data directory, check it and the ports; returns the certificate
   * the REST API starts with (the cluster's, or a throwaway self-signed one
   * on a blank node). `resume()` follows once the REST server listens.
   */
  async open(): Promise<{ certPem: string; keyPem: string }> {
    this.unlock = lockDataDir(this.cfg.dataDir);
    try {
      const identity = readIdentity(this.cfg.dataDir);
      if (identity && identity.addr !== this.cfg.addr) {
        throw new Error(`data directory ${this.cfg.dataDir} belongs to node ${identity.uid} at ${identity.addr}, not ${this.cfg.addr}`);
      }
      await checkPortsFree(this.cfg.addr, this.cfg.ports);
      if (identity) return readApiCert(this.cfg.dataDir);
      // A blank node's throwaway certificate, kept on disk so a CLI on this host can trust it.
      const boot = await selfSigned(this.cfg.addr);
      fs.mkdirSync(certsDir(this.cfg.dataDir), { recursive: true, mode: 0o700 });
      writeFileAtomic(path.join(certsDir(this.cfg.dataDir), BOOTSTRAP_CERT_FILE), boot.certPem);
      return boot;
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Rejoin the cluster this data directory belongs to, if any. */
  async resume(hooks: DaemonHooks<M>): Promise<void> {
    this.hooks = hooks;
    try {
      const identity = readIdentity(this.cfg.dataDir);
      if (identity) {
        this.bootstrap = { state: 'completed' };
        this.member = this.newMember(identity);
        await requireAdmitted(this.member, `this node (${this.cfg.addr})`, SOFTWARE_VERSION); // a newer cluster's data dir
        await this.runMember(this.member);
      }
      // The fingerprint is for operators of a remote blank node: `tessera --fingerprint <it>` trusts that node.
      const anchor = this.restTrust();
      this.log.info(
        { addr: this.cfg.addr, rest: this.cfg.ports.rest, member: !!identity, rest_ca_fingerprint: anchor?.fingerprint },
        'node started',
      );
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async runMember(m: M): Promise<void> {
    await m.run(() => void this.leaveCluster());
    await this.hooks.memberRunning(m);
  }

  async stop(): Promise<void> {
    this.admission.stop();
    await this.member?.stop().catch((e) => this.log.error({ err: (e as Error).message }, 'stopping member'));
    this.unlock?.();
    this.unlock = undefined;
  }

  /** What a client checks this node's REST certificate against (pki/node-files.ts), and its fingerprint. */
  restTrust(): { certPem: string; fingerprint: string } | undefined {
    const f = restTrustAnchorFile(this.cfg.dataDir);
    if (!f) return undefined;
    try {
      const certPem = fs.readFileSync(f, 'utf8');
      return { certPem, fingerprint: sha256Fingerprint(certPem) };
    } catch (e) {
      this.log.warn({ file: f, err: (e as Error).message }, 'cannot read the REST trust anchor');
      return undefined;
    }
  }

  localNodeInfo() {
    return {
      uid: this.member?.uid,
      addr: this.cfg.addr,
      software_version: SOFTWARE_VERSION,
      capabilities: this.cfg.capabilities,
      cores: os.cpus().length,
      total_memory: os.totalmem(),
      uptime: Math.round((Date.now() - this.startedAt) / 1000),
    };
  }

  private beginBootstrap(state: BootstrapState): void {
    if (this.member || readIdentity(this.cfg.dataDir))
      throw conflict('node_already_in_cluster', `node ${this.cfg.addr} already belongs to a cluster`);
    if (this.busy) throw conflict('busy', 'a bootstrap operation is already running on this node');
    this.busy = true;
    this.bootstrap = { state, start_time: new Date().toISOString() };
    try {
      wipeMembership(this.cfg.dataDir); // leftovers of an attempt that died half way
    } catch (err) {
      // Not busy after all (a data directory that cannot be cleared: a read-only disk, say): the next attempt must not get 409 busy forever.
      const failed = new OperatorError(
        'internal',
        'bootstrap_failed',
        // rmSync's message for some errors (EBUSY) is "Unknown error: Device or resource busy '<path>'", with an empty code.
        `cannot clear ${this.cfg.dataDir} for a new membership: ${((err as Error).message || String(err)).replace(/^Unknown error: /, '')}`,
      );
      this.endBootstrap(failed);
      throw failed;
    }
  }

  private endBootstrap(err?: unknown): void {
    this.busy = false;
    const end_time = new Date().toISOString();
    if (!err) {
      this.bootstrap = { ...this.bootstrap, state: 'completed', end_time };
      return;
    }
    const e = err as Error;
    this.bootstrap = {
      ...this.bootstrap,
      state: 'error',
      end_time,
      error_code: err instanceof OperatorError ? err.code : 'bootstrap_failed',
      error_details: { description: e.message },
    };
  }

  private async undoMembership(): Promise<void> {
    await this.member?.stop().catch((e) => this.log.warn({ err: (e as Error).message }, 'stopping member while undoing membership'));
    this.member = undefined;
    wipeMembership(this.cfg.dataDir);
  }

  /** Bootstrap a new cluster with this node as node 1. */
  async createCluster(req: CreateClusterRequest): Promise<void> {
    this.beginBootstrap('creating_cluster');
    try {
      await checkPortsFree(this.cfg.addr, this.cfg.ports, ['rest']);
      const clusterId = randomUUID();
      const ca = await createCa(req.name, clusterId);
      // Clients trust the services CA only; the internode CA stays inside the cluster.
      const servicesCa = await createCa(req.name, clusterId, 'services');
      const uid = 1;
      const certs = {} as Record<Plane, Issued>;
      for (const plane of ['cp', 'dp'] as Plane[])
        certs[plane] = await issueLocally(ca, { clusterId, uid, plane, addr: this.cfg.addr, validitySeconds: INTERNODE_CERT_SECONDS });
      const services = {} as Record<ServiceName, Issued>;
      for (const name of SERVICE_NAMES)
        services[name] = await issueLocally(servicesCa, {
          clusterId,
          uid,
          plane: name,
          addr: this.cfg.addr,
          validitySeconds: INTERNODE_CERT_SECONDS,
        });
      await this.writeCertFiles(ca.certPem, certs, servicesCa.certPem, services);

      const identity: NodeIdentity = {
        cluster_id: clusterId,
        cluster_name: req.name,
        uid,
        addr: this.cfg.addr,
        etcd: {
          name: `n${uid}`,
          initial_cluster: `n${uid}=${peerUrl(this.cfg.addr, this.cfg.ports.etcd_peer)}`,
          token: clusterId,
          state: 'new',
        },
      };
      this.member = this.newMember(identity);
      await this.member.waitReady();
      const store = this.member.store;
      const cluster: ClusterRecord = { name: req.name, cluster_id: clusterId, created_time: new Date().toISOString() };
      const user: UserRecord = {
        uid: 1,
        username: req.username,
        password_hash: await hashPassword(req.password),
        role: 'admin',
        password_issue_date: new Date().toISOString(),
      };
      const members = await store.members.list();
      const node: NodeStubRecord = { uid, etcd_member_id: String(members.members[0]?.ID ?? ''), joined_time: new Date().toISOString() };
      await store.cluster.create({
        cluster,
        ca: { cert: ca.certPem, key: ca.keyPem },
        servicesCa: { cert: servicesCa.certPem, key: servicesCa.keyPem },
        admin: user,
        policy: DEFAULT_POLICY,
        node,
      });
      await this.runMember(this.member);
      writeIdentity(this.cfg.dataDir, { ...identity, etcd: { ...identity.etcd, state: 'existing' } });
      this.hooks.apiCertificate(services.api);
      this.endBootstrap();
      this.log.info({ cluster: req.name, cluster_id: clusterId }, 'cluster created');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cluster creation failed');
      await this.undoMembership();
      this.endBootstrap(err);
      throw err;
    }
  }

  private async writeCertFiles(
    caPem: string,
    certs: Record<Plane, Issued>,
    servicesCaPem: string,
    services: Partial<Record<ServiceName, Issued>>,
  ): Promise<void> {
    const dd = this.cfg.dataDir;
    writeFileAtomic(certPath(dd, 'ca'), caPem.trim() + '\n');
    writeFileAtomic(certPath(dd, 'servicesCa'), servicesCaPem.trim() + '\n');
    installPlaneFiles(dd, 'cp', certs.cp.certPem, certs.cp.keyPem);
    installPlaneFiles(dd, 'dp', certs.dp.certPem, certs.dp.keyPem);
    // The ones a member did not sign (an older member) are issued once this node runs (CertRotator).
    for (const [name, c] of Object.entries(services) as [ServiceName, Issued][]) installServiceFiles(dd, name, c.certPem, c.keyPem);
    // etcd's client port trusts only this node-local certificate: only this daemon reaches its store.
    const local = await selfSigned(this.cfg.addr, 3650);
    writeFileAtomic(certPath(dd, 'etcdClient'), local.certPem);
    writeFileAtomic(certPath(dd, 'etcdClientKey'), local.keyPem, 0o600);
    writeFileAtomic(certPath(dd, 'etcdClientCa'), local.certPem);
  }

  /** Join an existing cluster through one of its members. Keys are made here; only CSRs leave. */
  async joinCluster(req: JoinClusterRequest): Promise<void> {
    this.beginBootstrap('joining_cluster');
    let grant: JoinGrant | undefined;
    let via: { host: string; port: number } | undefined;
    try {
      await checkPortsFree(this.cfg.addr, this.cfg.ports, ['rest']);
      const keys = {} as Record<Plane | ServiceName, Awaited<ReturnType<typeof generateKeyPair>>>;
      const csrs = {} as JoinNodeRequest['csrs'];
      for (const k of ['cp', 'dp', ...SERVICE_NAMES] as const) {
        keys[k] = await generateKeyPair();
        csrs[k] = await createCsr(keys[k], `join-${k}`);
      }
      const body: JoinNodeRequest = { addr: this.cfg.addr, ports: this.cfg.ports, csrs };
      let lastErr: Error | undefined;
      for (const n of req.nodes) {
        const target = parseHostPort(n, this.cfg.ports.rest);
        try {
          // Pinned: learn the member's CA without credentials, compare, then speak only to a server that CA vouches for.
          const caPem = req.caFingerprint ? await pinnedCa(n, target, req.caFingerprint) : undefined;
          if (!caPem)
            this.log.warn({ member: n }, 'joining without ca_fingerprint: the member is not authenticated before the credentials are sent');
          const res = await requestJson<JoinGrant>({
            method: 'POST',
            ...target,
            ...joinNodeCall(body),
            username: req.username,
            password: req.password,
            caPem,
            timeoutMs: 30_000,
          });
          if (res.status === 401)
            throw new OperatorError('forbidden', 'join_unauthorized', `the cluster at ${n} rejected the credentials of ${req.username}`);
          if (res.status === 404 && typeof res.body === 'object')
            throw new OperatorError('invalid', 'not_a_cluster_member', `${n} is a Tessera node but not a cluster member`);
          if (res.status !== 200) {
            const b = res.body as { error_code?: string } | undefined;
            if (typeof b !== 'object' || !b?.error_code)
              throw new OperatorError('invalid', 'not_a_tessera_node', `${n} is not a Tessera node (HTTP ${res.status})`);
            const d = (b as { description?: string }).description ?? `HTTP ${res.status}`;
            throw new OperatorError(
              res.status >= 500 ? 'upstream' : res.status === 409 ? 'conflict' : 'invalid',
              b.error_code,
              `join refused by ${n}: ${d}`,
            );
          }
          checkGrant(res.body, res.peerCertRaw, keys);
          grant = res.body;
          via = target;
          break;
        } catch (err) {
          if (err instanceof ConnectError && err.code === 'CERT')
            throw new OperatorError(
              'forbidden',
              'ca_fingerprint_mismatch',
              `${n}: ${err.message}; it is not the cluster pinned by ca_fingerprint, no credentials were sent`,
            );
          if (err instanceof ConnectError) lastErr = new OperatorError('invalid', 'not_a_tessera_node', `${n}: ${err.message}`);
          else throw err;
        }
      }
      if (!grant || !via) throw lastErr ?? new OperatorError('invalid', 'no_member_reachable', 'no cluster member given');

      const issued = {
        cp: { certPem: grant.certificates.cp, keyPem: keys.cp.keyPem },
        dp: { certPem: grant.certificates.dp, keyPem: keys.dp.keyPem },
      };
      const services: Partial<Record<ServiceName, Issued>> = {};
      for (const name of SERVICE_NAMES) {
        const pem = grant.certificates[name];
        if (pem) services[name] = { certPem: pem, keyPem: keys[name].keyPem };
      }
      await this.writeCertFiles(grant.ca_cert, issued, grant.services_ca_cert, services);
      const identity: NodeIdentity = {
        cluster_id: grant.cluster.cluster_id,
        cluster_name: grant.cluster.name,
        uid: grant.uid,
        addr: this.cfg.addr,
        etcd: { ...grant.etcd, state: 'existing' },
      };
      this.member = this.newMember(identity);
      const promoted = await requestJson({
        method: 'POST',
        ...via,
        path: `/v1/cluster/join_node/${grant.uid}/promote`,
        body: {},
        username: req.username,
        password: req.password,
        caPem: grant.services_ca_cert,
        timeoutMs: 45_000,
      });
      if (promoted.status !== 200)
        throw new OperatorError(
          'upstream',
          'join_failed',
          `the cluster could not admit this node's store member: ${errorText(promoted)}; ${this.member.etcd.logTail(2)}`,
        );
      await this.runMember(this.member);
      writeIdentity(this.cfg.dataDir, identity);
      this.hooks.apiCertificate(services.api!);
      this.endBootstrap();
      this.log.info({ uid: grant.uid, cluster: grant.cluster.name }, 'joined cluster');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'join failed');
      await this.undoMembership();
      if (grant && via) {
        await requestJson({
          method: 'POST',
          ...via,
          path: `/v1/cluster/join_node/${grant.uid}/abort`,
          body: {},
          username: req.username,
          password: req.password,
          caPem: grant.services_ca_cert,
          timeoutMs: 10_000,
        }).catch((e) =>
          this.log.warn(
            { err: (e as Error).message },
            "cannot abort the join on the cluster; its watchdog removes this node's store member",
          ),
        );
      }
      this.endBootstrap(err);
      throw err;
    }
  }

  /** The cluster removed this node: stop being a member and go back to a blank node. */
  private async leaveCluster(): Promise<void> {
    await this.undoMembership();
    this.bootstrap = { state: 'idle' };
    this.log.warn('left the cluster; this node is blank again');
  }

  // --- the member's side of a join ---

  requireMember(): M {
    if (!this.member)
      throw new OperatorError('unavailable', 'node_not_in_cluster', `node ${this.cfg.addr} does not belong to a cluster yet`);
    return this.member;
  }

  async admitNode(req: JoinNodeRequest, softwareVersion?: string): Promise<JoinGrant> {
    // A joiner older than the cluster version is refused before anything changes.
    await requireAdmitted(this.requireMember(), `node ${req.addr}`, softwareVersion, this.log);
    return this.admission.admitNode(req);
  }

  promoteJoin(uid: number): Promise<void> {
    return this.admission.promoteJoin(uid);
  }

  abortJoin(uid: number): Promise<void> {
    return this.admission.abortJoin(uid);
  }
}

function checkGrant(g: JoinGrant, peerCertRaw: Buffer | undefined, keys: Record<Plane | ServiceName, { keyPem: string }>): void {
  if (!g || typeof g.uid !== 'number' || !g.ca_cert || !g.services_ca_cert || !g.certificates?.api)
    throw new OperatorError('upstream', 'join_failed', 'the member answered without certificates');
  for (const p of ['cp', 'dp'] as const) validateBundle(g.certificates[p], keys[p].keyPem, g.ca_cert);
  for (const name of SERVICE_NAMES) {
    const pem = g.certificates[name];
    if (pem) validateBundle(pem, keys[name].keyPem, g.services_ca_cert, 'the services CA');
  }
  // The member's REST certificate must come from the services CA it hands us.
  if (peerCertRaw) {
    const server = new X509Certificate(peerCertRaw);
    if (!server.checkIssued(new X509Certificate(g.services_ca_cert)))
      throw new OperatorError('upstream', 'join_failed', 'the member does not hold a certificate of the services CA it sent');
  }
}

/**
 * The REST CA of the member at `target`, fetched without credentials and
 * accepted only if its fingerprint is the pinned one; else the join is refused
 * and nothing but that unauthenticated request has reached the member.
 */
async function pinnedCa(n: string, target: { host: string; port: number }, pin: string): Promise<string> {
  const res = await requestJson<{ rest_ca_cert?: string }>({ method: 'GET', ...target, path: '/v1/bootstrap', timeoutMs: 10_000 }).catch(
    (e: Error) => {
      throw new OperatorError('invalid', 'not_a_tessera_node', `${n}: ${e.message}`);
    },
  );
  const pem = res.status === 200 && typeof res.body === 'object' ? res.body?.rest_ca_cert : undefined;
  let got: string | undefined;
  try {
    got = pem ? sha256Fingerprint(pem) : undefined;
  } catch {
    got = undefined; // not a certificate: refused below like any other mismatch
  }
  if (got !== pin) {
    throw new OperatorError(
      'forbidden',
      'ca_fingerprint_mismatch',
      `${n} presents ${got ? `CA ${got}` : 'no cluster CA'}, not the pinned ${pin}; join refused before any credential was sent`,
    );
  }
  return pem!;
}

function parseHostPort(s: string, defPort: number): { host: string; port: number } {
  const m = /^([^:]+)(?::(\d+))?$/.exec(s.trim());
  if (!m) throw new OperatorError('invalid', 'invalid_address', `invalid member address ${s}`);
  return { host: m[1], port: m[2] ? Number(m[2]) : defPort };
}

function readApiCert(dataDir: string): Issued {
  return { certPem: fs.readFileSync(certPath(dataDir, 'api'), 'utf8'), keyPem: fs.readFileSync(certPath(dataDir, 'apiKey'), 'utf8') };
}

const PORT_NAMES: Record<keyof NodePorts, string> = {
  rest: 'REST API',
  internode: 'internode channel',
  dp_plain: 'plaintext data-plane channel',
  etcd_peer: 'coordination store peer',
  etcd_client: 'coordination store client',
  metrics: 'metrics',
  ui: 'web UI',
};

/** Fail early and clearly when a port this node needs is taken. */
export async function checkPortsFree(addr: string, ports: NodePorts, skip: (keyof NodePorts)[] = []): Promise<void> {
  for (const [k, port] of Object.entries(ports) as [keyof NodePorts, number][]) {
    if (skip.includes(k)) continue;
    await new Promise<void>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE')
          reject(new OperatorError('conflict', 'port_unavailable', `port ${addr}:${port} (${PORT_NAMES[k]}) is already in use`));
        else if (err.code === 'EADDRNOTAVAIL')
          reject(new OperatorError('invalid', 'invalid_address', `address ${addr} is not available on this host`));
        else reject(err);
      });
      s.listen({ host: addr, port, exclusive: true }, () => s.close(() => resolve()));
    });
  }
}
