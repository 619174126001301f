// A node that belongs to a cluster: runs its etcd member, keeps a live view of
// the cluster (nodes, liveness, deny list, master), holds its liveness lease,
// campaigns for master, serves the internode channel and probes its peers
// over the control plane.
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from 'pino';
import { Etcd3, Lease } from 'etcd3';
import { EtcdMember, etcdClient, etcdPaths, waitReady } from '../coord/etcd.js';
import { KEYS, ClusterRecord, NodeRecord, LiveRecord, DenyRecord, CertMeta, MasterRecord } from '../coord/schema.js';
import { PrefixCache } from '../coord/watch.js';
import { CertStore } from '../tls/certstore.js';
import { InternodeServer, PeerPolicy, PeerIdentity } from '../internode/channel.js';
import { RpcClient, serveRpc } from '../internode/rpc.js';
import { NodeConfig, NodeIdentity, SOFTWARE_VERSION, certPath } from './config.js';
import { PLANE_CERT_NAME, Plane, certInfo } from '../pki/pki.js';

/** What a node tells its peers about itself over the control plane. */
export interface StatusReply {
  uid: number;
  uptime: number;
  cores: number;
  total_memory: number;
  software_version: string;
  master_uid?: number;
}

export interface ProbeResult {
  ok: boolean;
  at: number;
  status?: StatusReply;
  error?: string;
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
  return { name: PLANE_CERT_NAME[plane], serial: i.serial, subject: i.subject, issuer: i.issuer, not_before: i.not_before, not_after: i.not_after };
}

export class ClusterMember implements PeerPolicy {
  readonly client: Etcd3;
  readonly certs: CertStore;
  readonly nodes: PrefixCache<NodeRecord>;
  readonly live: PrefixCache<LiveRecord>;
  readonly deny: PrefixCache<DenyRecord>;
  private readonly master: PrefixCache<MasterRecord>;
  cluster!: ClusterRecord;
  masterUid?: number;
  readonly probes = new Map<number, ProbeResult>();

  private internode?: InternodeServer;
  private lease?: Lease;
  private masterTimer?: NodeJS.Timeout;
  private rpcClients = new Map<number, RpcClient>();
  private probeTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly startedAt = Date.now();

  private constructor(
    readonly cfg: NodeConfig,
    readonly identity: NodeIdentity,
    readonly etcd: EtcdMember,
    private readonly log: Logger,
  ) {
    this.client = etcdClient(cfg.addr, cfg.ports.etcd_client, etcdPaths(cfg.dataDir));
    this.certs = new CertStore(loadPlaneBundles(cfg.dataDir));
    this.nodes = new PrefixCache(this.client, KEYS.nodesPrefix);
    this.live = new PrefixCache(this.client, KEYS.livePrefix);
    this.deny = new PrefixCache(this.client, KEYS.denyPrefix);
    this.master = new PrefixCache(this.client, KEYS.master);
  }

  get uid(): number {
    return this.identity.uid;
  }

  /** Start etcd and wait for it to serve; the caller finishes with `run()` (joins promote in between). */
  static startEtcd(cfg: NodeConfig, identity: NodeIdentity, log: Logger): ClusterMember {
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
    return new ClusterMember(cfg, identity, etcd, log);
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    await waitReady(this.client, this.etcd, timeoutMs);
  }

  /** Join the live cluster: caches, own record, liveness, election, internode channel, probes. */
  async run(): Promise<void> {
    await this.waitReady();
    const c = await this.client.get(KEYS.cluster).json();
    if (!c) throw new Error('coordination store holds no cluster record');
    this.cluster = c as ClusterRecord;
    await Promise.all([this.nodes.start(), this.live.start(), this.deny.start()]);
    const recheck = () => this.internode?.recheck();
    this.nodes.on('change', recheck);
    this.deny.on('change', recheck);

    await this.publishNodeRecord();
    await this.holdLiveness();
    this.internode = new InternodeServer({
      host: this.cfg.addr,
      port: this.cfg.ports.internode,
      certs: this.certs,
      policy: this,
      log: this.log.child({ component: 'internode' }),
      handlers: { cp: (s, peer) => serveRpc(s, peer, (m, p, who) => this.handleRpc(m, p, who)) },
    });
    await this.internode.listen();
    await this.master.start();
    this.master.on('change', () => this.onMasterChange());
    this.onMasterChange();
    this.masterTimer = setInterval(() => void this.claimMaster(), 1000);
    this.masterTimer.unref();
    await this.claimMaster();
    this.probeTimer = setInterval(() => void this.probePeers(), this.cfg.timings.probeIntervalMs);
    this.probeTimer.unref();
    this.log.info({ uid: this.uid, cluster: this.cluster.name }, 'node is a running cluster member');
  }

  // --- PeerPolicy: who may use the internode channel ---
  clusterId(): string {
    return this.identity.cluster_id;
  }
  isMember(uid: number): boolean {
    return this.nodes.items.has(String(uid));
  }
  isDenied(serial: string): boolean {
    return this.deny.items.has(serial);
  }

  private async publishNodeRecord(): Promise<void> {
    const prev = (await this.client.get(KEYS.node(this.uid)).json()) as NodeRecord | null;
    const own = await this.client.maintenance.status();
    const rec: NodeRecord = {
      uid: this.uid,
      addr: this.cfg.addr,
      ports: this.cfg.ports,
      etcd_member_id: String(own.header.member_id),
      software_version: SOFTWARE_VERSION,
      capabilities: [...this.cfg.capabilities],
      joined_time: prev?.joined_time ?? new Date().toISOString(),
      certificates: {
        cp: certMeta('cp', this.certs.bundle('cp').certPem),
        dp: certMeta('dp', this.certs.bundle('dp').certPem),
      },
    };
    await this.client.put(KEYS.node(this.uid)).value(JSON.stringify(rec));
  }

  /** A lease that lapses when this process stops renewing it: how the others see us go down. */
  private async holdLiveness(): Promise<void> {
    if (this.stopped) return;
    const lease = this.client.lease(this.cfg.timings.liveTtlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    lease.on('lost', (err) => {
      if (this.stopped) return;
      this.log.warn({ err: err.message }, 'liveness lease lost; taking a new one');
      setTimeout(() => void this.holdLiveness().catch((e) => this.log.error({ err: (e as Error).message }, 'cannot renew liveness')), 500);
    });
    const rec: LiveRecord = { uid: this.uid, started_time: new Date(this.startedAt).toISOString(), pid: process.pid };
    await lease.put(KEYS.live(this.uid)).value(JSON.stringify(rec));
  }

  /**
   * Master election: the master key exists while its holder's liveness lease
   * does. Whoever finds it absent creates it (a create-only transaction, so one
   * wins); when the master stops renewing, the key goes with its lease.
   */
  private async claimMaster(): Promise<void> {
    if (this.stopped || this.master.items.size > 0 || !this.lease) return;
    try {
      const rec: MasterRecord = { uid: this.uid, since: new Date().toISOString() };
      const r = await this.client
        .if(KEYS.master, 'Create', '==', 0)
        .then(this.client.put(KEYS.master).value(JSON.stringify(rec)).lease(await this.lease.grant()))
        .commit();
      if (r.succeeded) this.log.info({ uid: this.uid }, 'elected cluster master');
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'master claim failed');
    }
  }

  private onMasterChange(): void {
    const rec = this.master.values()[0];
    const uid = rec?.uid;
    if (uid !== this.masterUid) this.log.info({ master: uid }, 'cluster master changed');
    this.masterUid = uid;
    if (uid === undefined) void this.claimMaster();
  }

  isMaster(): boolean {
    return this.masterUid === this.uid;
  }

  statusReply(): StatusReply {
    return {
      uid: this.uid,
      uptime: Math.round((Date.now() - this.startedAt) / 1000),
      cores: os.cpus().length,
      total_memory: os.totalmem(),
      software_version: SOFTWARE_VERSION,
      master_uid: this.masterUid,
    };
  }

  private async handleRpc(method: string, _params: unknown, _peer: PeerIdentity): Promise<unknown> {
    switch (method) {
      case 'status':
        return this.statusReply();
      default:
        throw new Error(`unknown method ${method}`);
    }
  }

  rpc(uid: number): RpcClient | undefined {
    const rec = this.nodes.items.get(String(uid));
    if (!rec) return undefined;
    let c = this.rpcClients.get(uid);
    if (!c) {
      c = new RpcClient({ uid, host: rec.addr, port: rec.ports.internode }, this.certs, this);
      this.rpcClients.set(uid, c);
    }
    return c;
  }

  private async probePeers(): Promise<void> {
    for (const [id, c] of this.rpcClients) {
      if (!this.nodes.items.has(id.toString())) {
        c.close();
        this.rpcClients.delete(id);
        this.probes.delete(id);
      }
    }
    await Promise.all(
      this.nodes.values().map(async (n) => {
        if (n.uid === this.uid) return;
        const client = this.rpc(n.uid);
        if (!client) return;
        try {
          const status = await client.call<StatusReply>('status', {}, Math.max(500, this.cfg.timings.probeIntervalMs));
          this.probes.set(n.uid, { ok: true, at: Date.now(), status });
        } catch (err) {
          const prev = this.probes.get(n.uid);
          this.probes.set(n.uid, { ok: false, at: prev?.at ?? 0, status: prev?.status, error: (err as Error).message });
        }
      }),
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.masterTimer) clearInterval(this.masterTimer);
    for (const c of this.rpcClients.values()) c.close();
    await this.internode?.close().catch(() => undefined);
    // Give mastership and liveness back at once, so the others need not wait for a TTL.
    await Promise.race([
      Promise.all([
        // Revoking the lease also drops the master key if we held it.
        this.lease?.revoke().catch(() => undefined),
        this.master.stop(),
        this.nodes.stop(),
        this.live.stop(),
        this.deny.stop(),
      ]),
      new Promise((r) => setTimeout(r, 3000)),
    ]);
    this.client.close();
    await this.etcd.stop();
  }
}
