// Rotation of every node's internode certificates, as an action
// (POST /v1/cluster/certificates/rotate):
//   1. the REST handler validates, then writes in one transaction an action
//      (`rotate_certificates`, GET /v1/actions/{uid}) and the desired state,
//      a CertRotationRequest naming the planes and the nodes;
//   2. each named node's certificate reconciler (cert-rotation.ts) renews its
//      own certificates of those planes and records what it did (a
//      CertRotatedRecord: the new serials, or why not);
//   3. the CertRotationController on the cluster master follows the reports
//      into the action's progress and steps, and finishes it: completed when
//      every node renewed; failed, naming the nodes, when one reported an
//      error, is down (no liveness lease: reported, not waited for), or is up
//      but did not report within ROTATION_REPORT_MS;
//   4. the REST call waits on the action (`waitRotation`) and answers as
//      before, with `action_uid`.
// The controller keeps nothing that is not in the store, so a master elected
// in the middle finishes the action. Finished requests and their reports are
// removed RETAIN_MS later (nodes no longer act on a finished one).
import type { Logger } from 'pino';
import {
  isFinished,
  runningAction,
  type ActionRecord,
  type CertRotationRequest,
  type CertRotatedRecord,
  type LiveRecord,
} from '../../coord/schema.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore, StoreHost } from '../../coord/store.js';
import { PLANE_CERT_NAME, type Plane } from '../../pki/pki.js';
import { MasterLoop, type MasterLoopHost } from './master-loop.js';
import { nodeIsUp, type NodeStateHost } from '../model/node-state.js';

export const ROTATION_ACTION = 'rotate_certificates';
/** How long a live node may take to report its renewal (the old synchronous RPC's timeout was 30 s). */
export const ROTATION_REPORT_MS = 45_000;
/** How long a finished request and its reports are kept before the master removes them. */
const RETAIN_MS = 10 * 60_000;

/** Ask every node in `nodes` to renew `planes`: the action and the request, in one transaction. */
export async function requestRotation(
  store: Pick<ClusterStore, 'seqs' | 'certRotations'>,
  planes: Plane[],
  nodes: number[],
): Promise<ActionRecord> {
  const uid = String(await store.seqs.next('action'));
  const now = new Date().toISOString();
  const description = `renewing ${planes.map((p) => PLANE_CERT_NAME[p]).join(' and ')} on node(s) ${nodes.join(', ')}`;
  const action = runningAction(uid, ROTATION_ACTION, 'cluster', description, now);
  const request: CertRotationRequest = { action_uid: uid, planes, nodes, requested_time: now };
  if (!(await store.certRotations.create(action, request))) throw new Error(`action ${uid} exists already`);
  return action;
}

export interface RotationOutcome {
  /** The action as last read: finished, unless the wait ran out first. */
  action: ActionRecord;
  request?: CertRotationRequest;
  /** What each node reported, by node uid. */
  reports: Map<number, CertRotatedRecord>;
}

/** Wait (polling the action) until the rotation's action is finished or `timeoutMs` passed. */
export async function waitRotation(
  store: Pick<ClusterStore, 'actions' | 'certRotations'>,
  actionUid: string,
  timeoutMs = ROTATION_REPORT_MS + 15_000,
): Promise<RotationOutcome> {
  const deadline = Date.now() + timeoutMs;
  let action: ActionRecord | null;
  for (;;) {
    action = await store.actions.get(actionUid);
    if (!action) throw new Error(`action ${actionUid} disappeared`);
    if (isFinished(action) || Date.now() >= deadline) break;
    await sleep(150);
  }
  const request = (await store.certRotations.request(actionUid)) ?? undefined;
  const reports = new Map<number, CertRotatedRecord>();
  for (const r of await store.certRotations.reports(actionUid)) reports.set(r.node_uid, r);
  return { action, request, reports };
}

/** What the controller needs of its node's membership (src/node/loops.ts builds it from the membership parts). */
export interface RotationHost extends MasterLoopHost, NodeStateHost {
  readonly live: { readonly items: ReadonlyMap<string, LiveRecord> };
}

type Resolved = { node: number; text: string } | { node: number; error: string };
type NodeState = Resolved | { node: number; pending: true };

export class CertRotationController {
  private readonly requests: PrefixCache<CertRotationRequest>;
  private readonly reports: PrefixCache<CertRotatedRecord>;
  private readonly loop: MasterLoop;

  constructor(
    private readonly h: RotationHost & StoreHost,
    private readonly log: Logger,
    /** How long a live node may take to report (tests shorten it). */
    private readonly reportMs = ROTATION_REPORT_MS,
  ) {
    this.requests = h.store.certRotations.requestsCache();
    this.reports = h.store.certRotations.reportsCache();
    for (const c of [this.requests, this.reports])
      c.on('malformed', (err: Error) => this.log.error({ err: err.message }, 'ignoring a malformed certificate rotation record'));
    this.loop = new MasterLoop(h, 500, log, 'certificate rotation bookkeeping', () => this.tick());
  }

  async start(): Promise<void> {
    await Promise.all([this.requests.start(), this.reports.start()]);
    this.requests.on('change', this.loop.kick);
    this.reports.on('change', this.loop.kick);
    this.loop.start();
  }

  async close(): Promise<void> {
    this.loop.stop();
    await Promise.all([this.requests.stop(), this.reports.stop()]);
  }

  private async tick(): Promise<void> {
    for (const req of this.requests.values()) {
      if (this.loop.isStopped || !this.h.isMaster()) return;
      await this.follow(req);
    }
  }

  private stateOf(req: CertRotationRequest, node: number): NodeState {
    const r = this.reports.items.get(`${req.action_uid}/${node}`);
    if (r?.error) return { node, error: `node ${node}: ${r.error}` };
    if (r) {
      const what = r.renewed.map((x) => `${PLANE_CERT_NAME[x.plane]} (serial ${x.serial})`).join(', ');
      return { node, text: `node ${node} renewed ${what || 'nothing: its certificates are operator-provided'}` };
    }
    if (!nodeIsUp(this.h, node))
      return { node, error: `node ${node} is down (no liveness lease, or no heartbeat for the failover timeout); it was not renewed` };
    if (Date.now() - Date.parse(req.requested_time) > this.reportMs)
      return { node, error: `node ${node} is up but did not report a renewal within ${this.reportMs / 1000} s` };
    return { node, pending: true };
  }

  private async follow(req: CertRotationRequest): Promise<void> {
    const store = this.h.store;
    const uid = req.action_uid;
    const action = await store.actions.get(uid);
    if (req.finished_time) {
      // A former master may have stopped between recording the outcome and finishing the action.
      if (action && !isFinished(action)) await this.finish(req, action);
      else if (Date.now() - Date.parse(req.finished_time) > RETAIN_MS) await this.forget(uid);
      return;
    }
    if (!action || isFinished(action)) {
      // The action went (or was finished elsewhere): nodes must stop acting on the request.
      await store.certRotations.finishRequest(uid);
      return;
    }
    const states = req.nodes.map((n) => this.stateOf(req, n));
    const resolved = states.filter((s): s is Resolved => !('pending' in s));
    const progress = Math.min(99, Math.floor((resolved.length / Math.max(1, req.nodes.length)) * 100));
    for (const s of resolved) {
      const text = 'text' in s ? s.text : `not renewed: ${s.error}`;
      // Each node's outcome is one step; a new master does not repeat the ones already there.
      if ((action.steps ?? []).some((x) => x.endsWith(`% ${text}`))) continue;
      await store.actions.update(uid, { progress, description: text });
      this.log.info({ action: uid, node: s.node }, text);
    }
    if (resolved.length < req.nodes.length) return;
    const failed = states.flatMap((s) => ('error' in s ? [{ node_uid: s.node, error: s.error }] : []));
    // The outcome first (what the REST call answers with), then the action.
    const done = await store.certRotations.finishRequest(uid, failed);
    if (done) await this.finish(done, action);
  }

  private async finish(req: CertRotationRequest, action: ActionRecord): Promise<void> {
    const failed = req.failed ?? [];
    if (!failed.length) {
      await this.h.store.actions.update(action.action_uid, {
        status: 'completed',
        progress: 100,
        description: `certificates renewed on every node (${req.nodes.join(', ')})`,
      });
      this.log.info({ action: action.action_uid, planes: req.planes, nodes: req.nodes }, 'internode certificates rotated on every node');
    } else {
      const error = `certificates were not renewed on node(s) ${failed.map((f) => f.node_uid).join(', ')}; they renew when reachable: ${failed.map((f) => f.error).join('; ')}`;
      await this.h.store.actions.update(action.action_uid, { status: 'failed', error, description: error });
      this.log.warn({ action: action.action_uid, failed }, 'certificate rotation incomplete');
    }
  }

  private async forget(uid: string): Promise<void> {
    await this.h.store.certRotations.forget(uid);
  }
}
