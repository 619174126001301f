// The member's side of a join (POST /v1/cluster/join_node and its promote and
// abort): admit a node (add its store member as an etcd learner, sign its
// certificates), promote its store member once caught up, or undo the join.
// The join is followed as a `join_node` action by the cluster master
// (control/controllers/join-controller.ts), which finishes it or undoes it at
// its deadline whoever admitted it; while the master is a 0.1.0 node (no such
// controller), this member keeps the 0.1.0 in-memory watchdog instead.
import type { Logger } from 'pino';
import { ConstantBackoff, handleWhen, retry } from 'cockatiel';
import { type ClusterRecord, type JoinRecord, type NodePorts, runningAction } from '../../coord/schema.js';
import type { ClusterStore } from '../../coord/store.js';
import { peerUrl } from '../../coord/etcd.js';
import { type Plane, SERVICE_NAMES, type ServiceName, issueFromCsr } from '../../pki/pki.js';
import { OperatorError, conflict } from '../../util/errors.js';
import { DEFAULT_JOIN_TIMEOUT_MS, JOIN_ACTION, retryWhileUnhealthy, undoJoin } from '../controllers/join-controller.js';

/** Validity of the first certificates (internode and client-facing); renewals follow the rotation settings. */
export const INTERNODE_CERT_SECONDS = 90 * 86400;

/** What a member answers a joining node. */
export interface JoinGrant {
  uid: number;
  cluster: ClusterRecord;
  /** The internode CA: signs cp and dp. */
  ca_cert: string;
  /** The services CA: signs the client-facing certificates (the member's REST certificate among them). */
  services_ca_cert: string;
  certificates: Record<Plane, string> & Partial<Record<ServiceName, string>>;
  etcd: { name: string; initial_cluster: string; token: string };
}

export interface JoinNodeRequest {
  addr: string;
  ports: NodePorts;
  /** cp and dp are signed by the internode CA; api (required), cm, proxy, metrics_exporter by the services CA. */
  csrs: Record<Plane | 'api', string> & Partial<Record<ServiceName, string>>;
}

/** What admission needs of the running member (ClusterMember provides it). */
export interface AdmittingMember {
  readonly store: ClusterStore;
  readonly cluster: ClusterRecord;
  readonly nodes: { values(): Iterable<{ addr?: string }> };
  readonly certs: { caPem(): string };
}

export interface AdmissionOptions {
  /** From admission to the node running; past it, the join is undone. */
  joinTimeoutMs?: number;
  /**
   * Whether the cluster master runs the join controller (0.2): then the join
   * is an action; otherwise (a 0.1.0 master, during a rolling upgrade) this
   * member keeps the join's watchdog in memory, as 0.1.0 does.
   */
  masterRunsJoinActions?: () => boolean;
}

/** A learner is refused promotion until it has caught up: retried for 30 s, unless it is gone. */
const untilCaughtUp = retry(
  handleWhen((e) => !/not.*learner|member not found/i.test(e.message)),
  { maxAttempts: 100, backoff: new ConstantBackoff(300) },
);

export class Admission {
  /** The 0.1.0 path's watchdogs, by node uid. */
  private readonly watchdogs = new Map<number, NodeJS.Timeout>();
  private readonly joinTimeoutMs: number;
  private readonly masterRunsJoinActions: () => boolean;

  constructor(
    private readonly member: () => AdmittingMember,
    private readonly log: Logger,
    opts: AdmissionOptions = {},
  ) {
    this.joinTimeoutMs = opts.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS;
    this.masterRunsJoinActions = opts.masterRunsJoinActions ?? (() => true);
  }

  stop(): void {
    for (const t of this.watchdogs.values()) clearTimeout(t);
    this.watchdogs.clear();
  }

  async admitNode(req: JoinNodeRequest): Promise<JoinGrant> {
    const m = this.member();
    const store = m.store;
    if ([...m.nodes.values()].some((n) => n.addr === req.addr))
      throw conflict('node_already_member', `a node with address ${req.addr} is already a member`);
    // A join whose action finished is over (its record goes at the master's next tick); any other is in progress.
    for (const j of await store.joins.list()) {
      const a = j.action_uid ? await store.actions.get(j.action_uid) : null;
      if (!a || (a.status !== 'completed' && a.status !== 'failed'))
        throw conflict('busy', 'another node is joining; try again in a minute');
    }
    const asAction = this.masterRunsJoinActions();

    // The store member first: it is the step most likely to be refused, and the
    // one undone if anything after it fails, so a refused join consumes no uid.
    const added = await retryWhileUnhealthy(() => store.members.addLearner(peerUrl(req.addr, req.ports.etcd_peer)));
    const memberId = String(added.member.ID);
    let uid: number;
    const certificates = {} as JoinGrant['certificates'];
    let servicesCaPem: string;
    try {
      uid = await store.seqs.next('node');
      const caRec = await store.cluster.ca();
      const ca = { certPem: caRec.cert, keyPem: caRec.key };
      const servicesRec = await store.cluster.requireServicesCa();
      const servicesCa = { certPem: servicesRec.cert, keyPem: servicesRec.key };
      servicesCaPem = servicesRec.cert;
      for (const plane of ['cp', 'dp', ...SERVICE_NAMES] as const) {
        const csrPem = req.csrs[plane];
        if (!csrPem) continue; // a client-facing certificate not asked for is issued once the node runs
        try {
          certificates[plane] = await issueFromCsr(plane === 'cp' || plane === 'dp' ? ca : servicesCa, {
            csrPem,
            clusterId: m.cluster.cluster_id,
            uid,
            plane,
            addr: req.addr,
            validitySeconds: INTERNODE_CERT_SECONDS,
          });
        } catch (err) {
          throw new OperatorError(
            'invalid',
            'invalid_csr',
            `cannot sign the node's ${plane} certificate request: ${(err as Error).message}`,
          );
        }
      }
      await this.record(m.store, { uid, addr: req.addr, etcd_member_id: memberId, started_time: new Date().toISOString() }, asAction);
    } catch (err) {
      await store.members
        .remove(memberId)
        .catch((e) => this.log.warn({ member: memberId, err: (e as Error).message }, 'cannot remove the store learner of a refused join'));
      throw err;
    }
    const name = `n${uid}`;
    const initial = added.members
      .map((mm) => (String(mm.ID) === memberId ? `${name}=${mm.peerURLs[0]}` : mm.name ? `${mm.name}=${mm.peerURLs[0]}` : ''))
      .filter(Boolean)
      .join(',');
    this.log.info({ uid, addr: req.addr, member: memberId, as_action: asAction }, 'admitting a node (store learner added)');
    return {
      uid,
      cluster: m.cluster,
      ca_cert: m.certs.caPem(),
      services_ca_cert: servicesCaPem,
      certificates,
      etcd: { name, initial_cluster: initial, token: m.cluster.cluster_id },
    };
  }

  /** The join record: with its action (the master follows it), or alone with this member's watchdog (0.1.0 master). */
  private async record(store: ClusterStore, join: JoinRecord, asAction: boolean): Promise<void> {
    if (!asAction) {
      await store.joins.put(join);
      // If the new node never comes up, take its store member out again.
      const t = setTimeout(
        () =>
          void this.abortJoin(join.uid).catch((e) =>
            this.log.warn({ uid: join.uid, err: (e as Error).message }, 'cannot abort a join that timed out'),
          ),
        this.joinTimeoutMs,
      );
      t.unref();
      this.watchdogs.set(join.uid, t);
      return;
    }
    const actionUid = String(await store.seqs.next('action'));
    const description = `admitted node ${join.uid} (${join.addr}): its store member is a learner; waiting for it to catch up`;
    const action = runningAction(actionUid, JOIN_ACTION, `node:${join.uid}`, description, join.started_time);
    const deadline = new Date(Date.parse(join.started_time) + this.joinTimeoutMs).toISOString();
    if (!(await store.joins.createWithAction({ ...join, action_uid: actionUid, deadline }, action)))
      throw new Error(`join of node ${join.uid} or action ${actionUid} exists already`);
  }

  /** Promote the joining node's etcd learner once it has caught up. */
  async promoteJoin(uid: number): Promise<void> {
    const store = this.member().store;
    const join = await store.joins.get(uid);
    if (!join) throw new OperatorError('not_found', 'join_not_found', `no join in progress for node ${uid}`);
    try {
      await untilCaughtUp.execute(() => store.members.promote(join.etcd_member_id));
    } catch (err) {
      throw new OperatorError('timeout', 'join_failed', `store member of node ${uid} did not catch up: ${(err as Error).message}`);
    }
    if (join.action_uid) {
      // The master finishes the action (and drops the record) once the node holds its liveness lease.
      await store.actions.update(join.action_uid, {
        progress: 50,
        description: `store member of node ${uid} promoted; waiting for the node to come up`,
      });
    } else {
      clearTimeout(this.watchdogs.get(uid));
      this.watchdogs.delete(uid);
      await store.joins.delete(uid);
    }
    this.log.info({ uid }, 'joining node promoted to a voting store member');
  }

  /** Undo a join that did not finish (the joining node asks, or the watchdog): remove the store member and any record of the node. */
  async abortJoin(uid: number): Promise<void> {
    const store = this.member().store;
    clearTimeout(this.watchdogs.get(uid));
    this.watchdogs.delete(uid);
    const join: JoinRecord = (await store.joins.get(uid)) ?? {
      // No record (a 0.1.0 join already promoted): the node's own record names its store member.
      uid,
      addr: '',
      etcd_member_id: '',
      started_time: new Date().toISOString(),
    };
    try {
      await undoJoin(store, join, `node ${uid} gave up joining (it asked the cluster to abort)`, this.log);
    } catch (e) {
      // An orphan learner would block the next join: keep the record and have it undone again.
      this.log.error({ uid, err: (e as Error).message }, 'cannot remove the store member of an aborted join; retrying');
      if (join.action_uid) {
        // The master undoes it at its next tick.
        await store.joins.put({ ...join, deadline: new Date().toISOString() });
      } else {
        const t = setTimeout(
          () => void this.abortJoin(uid).catch((err) => this.log.warn({ uid, err: (err as Error).message }, 'cannot abort a join')),
          10_000,
        );
        t.unref();
        this.watchdogs.set(uid, t);
      }
    }
  }
}
