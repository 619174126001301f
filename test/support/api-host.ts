// The REST API in-process, for route tests with Fastify's `inject`: the real
// app (newApiApp, installErrorHandling, authHook, the bootstrap, join and
// operator routes: the calls RestServer makes) over a real scratch etcd. What stands for the node
// is `ApiTestMember` (src/api/services.ts's ApiMember): the store is real
// and its caches are the real watched PrefixCaches; only the node's own
// processes are absent (no data plane, no peers to call over RPC: routes that
// need them are left to test/integration).
import os from 'node:os';
import pino from 'pino';
import type { Etcd3 } from 'etcd3';
import { newApiApp, installErrorHandling, registerOperatorRoutes, type Api } from '../../src/api/server.js';
import { authHook, passwordCheck } from '../../src/api/auth.js';
import type { ApiMember, ApiNode, BootstrapNode, JoinAdmission, ShardOpRequests } from '../../src/api/services.js';
import { storeOf, type ClusterStore } from '../../src/coord/store.js';
import { requestFailover, requestMigrate, requestNodeRemoval } from '../../src/control/controllers/shard-ops.js';
import { bootstrapRoutes } from '../../src/api/routes/bootstrap.js';
import { joinRoutes } from '../../src/api/routes/join.js';
import type { BootstrapStatus, JoinGrant } from '../../src/control/bootstrap/daemon.js';
import { PrefixCache } from '../../src/coord/watch.js';
import {
  KEYS,
  BdbRecord,
  LiveRecord,
  NodeRecord,
  ObservedRecord,
  StoredPolicy,
  type ClusterRecord,
  type PolicyRecord,
  type UserRecord,
  policyWithDefaults,
} from '../../src/coord/schema.js';
import { DEFAULT_PORTS, SOFTWARE_VERSION } from '../../src/control/membership/config.js';
import { hashPassword } from '../../src/control/bootstrap/passwords.js';
import { bindablePorts } from '../../src/control/reconcilers/ports.js';
import type { ProbeResult, StatusReply } from '../../src/control/membership/member.js';
import type { NodeLinksReport } from '../../src/internode/links.js';
import type { Issued } from '../../src/pki/pki.js';
import type { Plane } from '../../src/pki/pki.js';
import { startScratchEtcd, type ScratchEtcd } from './etcd.js';
import { waitFor } from './wait.js';

const NOT_IN_PROCESS = 'not available in-process (no data plane, no peers): covered by test/integration';

export class ApiTestMember implements ApiMember {
  readonly masterUid: number;
  readonly nodes: PrefixCache<NodeRecord>;
  readonly live: PrefixCache<LiveRecord>;
  readonly probes = new Map<number, ProbeResult>();
  readonly cfg: { ports: typeof DEFAULT_PORTS; dataDir: string };
  /** The node's own plane certificates (not in the store): the app's certificate stands for both. */
  readonly certs: { isCustomer(p: Plane): boolean; bundle(p: Plane): { certPem: string } };
  readonly store: ClusterStore;
  /** The real request functions of control/controllers/shard-ops.ts, on this host. */
  readonly shardOps: ShardOpRequests;
  private readonly bdbs: PrefixCache<BdbRecord>;
  private readonly observed: PrefixCache<ObservedRecord>;
  private readonly clusterPolicy: PrefixCache<StoredPolicy>;

  constructor(
    readonly uid: number,
    readonly client: Etcd3,
    readonly cluster: ClusterRecord,
    dataDir: string,
    cert: Issued,
  ) {
    this.masterUid = uid;
    this.cfg = { ports: DEFAULT_PORTS, dataDir };
    this.certs = { isCustomer: () => false, bundle: () => ({ certPem: cert.certPem }) };
    this.nodes = new PrefixCache(client, KEYS.nodesPrefix, NodeRecord);
    this.live = new PrefixCache(client, KEYS.livePrefix, LiveRecord);
    this.store = storeOf(client);
    this.bdbs = new PrefixCache(client, KEYS.bdbsPrefix, BdbRecord);
    this.observed = new PrefixCache(client, KEYS.observedPrefix, ObservedRecord);
    this.clusterPolicy = new PrefixCache(client, KEYS.policy, StoredPolicy);
    // This object is their ShardOpsHost, with no shard process of its own (a shard here answers as unreachable).
    this.shardOps = {
      requestFailover: (log, uids, o) => requestFailover(this, log, uids, o),
      requestMigrate: (log, uids, target) => requestMigrate(this, log, uids, target),
      requestNodeRemoval: (log, node) => requestNodeRemoval(this, log, node),
    };
  }

  databases(): BdbRecord[] {
    return this.bdbs.values();
  }
  observedOf(bdbUid: number): Map<number, ObservedRecord> {
    const out = new Map<number, ObservedRecord>();
    for (const [k, v] of this.observed.items) if (k.startsWith(`${bdbUid}/`)) out.set(v.node_uid, v);
    return out;
  }

  private caches() {
    return [this.nodes, this.live, this.bdbs, this.observed, this.clusterPolicy];
  }
  async start(): Promise<void> {
    for (const c of this.caches()) await c.start();
  }
  async stop(): Promise<void> {
    for (const c of this.caches()) await c.stop();
  }

  policy(): PolicyRecord {
    return policyWithDefaults(this.clusterPolicy.values()[0]);
  }
  isMaster(): boolean {
    return true;
  }
  storeIsCurrent(): boolean {
    return true;
  }
  /** No heartbeats in this host: the liveness records alone say who is up. */
  silentMs(): number | undefined {
    return undefined;
  }
  deadAfterMs(): number {
    return 5000;
  }
  statusReply(): StatusReply {
    // This machine, as the member reports it (database memory is checked against it).
    return {
      uid: this.uid,
      uptime: 0,
      cores: os.cpus().length,
      total_memory: os.totalmem(),
      software_version: SOFTWARE_VERSION,
      master_uid: this.masterUid,
    };
  }
  rpc(): undefined {
    return undefined;
  }
  call<T>(_uid: number, method: string): Promise<T> {
    return Promise.reject(new Error(`control RPC ${method}: ${NOT_IN_PROCESS}`));
  }
  internodeLinks(): Promise<NodeLinksReport> {
    return Promise.reject(new Error(`internode links: ${NOT_IN_PROCESS}`));
  }
  /** Real: binds on this node's address, as the member does. */
  async portsFree(ports: number[]): Promise<{ free: number[] }> {
    return { free: await bindablePorts(this.nodes.items.get(String(this.uid))!.addr, ports) };
  }
  changeMaster(): Promise<void> {
    return Promise.reject(new Error(`master change: ${NOT_IN_PROCESS}`));
  }
  resignMaster(): Promise<void> {
    return Promise.reject(new Error(`master resignation: ${NOT_IN_PROCESS}`));
  }
}

/**
 * Bootstrap and join admission start etcd members and sign certificates:
 * that is test/integration's. Here they only record what reached them, so a
 * route test can check that validation let a body through, or did not.
 */
export class BootstrapRecorder implements BootstrapNode, JoinAdmission {
  readonly calls: Array<{ method: string; arg: unknown }> = [];
  readonly bootstrap: BootstrapStatus = { state: 'completed' };
  constructor(readonly cfg: { addr: string }) {}
  localNodeInfo(): object {
    return { addr: this.cfg.addr };
  }
  restTrust(): undefined {
    return undefined;
  }
  private record(method: string, arg: unknown): Promise<void> {
    this.calls.push({ method, arg });
    return Promise.resolve();
  }
  createCluster(req: unknown): Promise<void> {
    return this.record('createCluster', req);
  }
  joinCluster(req: unknown): Promise<void> {
    return this.record('joinCluster', req);
  }
  async admitNode(req: unknown): Promise<JoinGrant> {
    await this.record('admitNode', req);
    return {} as JoinGrant; // the grant's content is not under test here
  }
  promoteJoin(uid: number): Promise<void> {
    return this.record('promoteJoin', uid);
  }
  abortJoin(uid: number): Promise<void> {
    return this.record('abortJoin', uid);
  }
}

export interface ApiHarness {
  etcd: ScratchEtcd;
  member: ApiTestMember;
  bootstrap: BootstrapRecorder;
  app: Api;
  /** `Authorization` of the seeded admin. */
  auth: string;
  /** Until `cache` has caught up with what was just written (the routes read the caches). */
  settle(what: string, cond: () => boolean): Promise<void>;
  close(): Promise<void>;
}

export const API_USER = 'admin@test.local';
export const API_PASSWORD = 'api-test-password';

export const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** A node record as a member publishes it. */
export function nodeRecord(uid: number, addr: string, over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    uid,
    addr,
    ports: DEFAULT_PORTS,
    etcd_member_id: '',
    software_version: SOFTWARE_VERSION,
    capabilities: ['data_internode_encryption'],
    joined_time: new Date().toISOString(),
    certificates: {},
    ...over,
  };
}

/**
 * etcd on `host`, a cluster record, node `uid` (live, at `host`) and the
 * admin user in it, and the REST app over it. `cert` is the HTTPS app's
 * certificate (inject never opens a socket, but the app builds its context).
 */
export async function startApiHarness(host: string, cert: Issued, uid = 1): Promise<ApiHarness> {
  const etcd = await startScratchEtcd(host);
  const c = etcd.client;
  const cluster: ClusterRecord = { name: 'api-test.local', cluster_id: 'c-api-test', created_time: new Date().toISOString() };
  const user: UserRecord = { username: API_USER, password_hash: await hashPassword(API_PASSWORD), role: 'admin' };
  await c.put(KEYS.cluster).value(JSON.stringify(cluster));
  await c.put(KEYS.user(API_USER)).value(JSON.stringify(user));
  await c.put(KEYS.node(uid)).value(JSON.stringify(nodeRecord(uid, host)));
  await c.put(KEYS.live(uid)).value(JSON.stringify({ uid, started_time: new Date().toISOString(), pid: process.pid } satisfies LiveRecord));
  const member = new ApiTestMember(uid, c, cluster, etcd.dir, cert);
  await member.start();
  const node: ApiNode = { requireMember: () => member };
  const bootstrap = new BootstrapRecorder({ addr: host });
  // As RestServer does: errors, basic auth, bootstrap and join, the operator routes.
  const app = newApiApp(cert, pino({ level: 'silent' }));
  installErrorHandling(app);
  app.addHook('onRequest', authHook(node, passwordCheck(node)));
  app.register(bootstrapRoutes, { daemon: bootstrap });
  app.register(joinRoutes, { daemon: bootstrap });
  registerOperatorRoutes(app, node);
  await app.ready();
  return {
    etcd,
    member,
    bootstrap,
    app,
    auth: basic(API_USER, API_PASSWORD),
    settle: async (what, cond) => {
      await waitFor(what, cond, 5000, 10);
    },
    close: async () => {
      await app.close();
      await member.stop();
      await etcd.stop();
    },
  };
}
