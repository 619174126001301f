// The internode CA rollover as an action (POST /v1/cluster/certificates/ca/rotate):
// the REST handler writes a `rotate_ca` action and a CaRolloverRecord
// (/tessera/ca_rollovers/<action>) in one transaction; this loop on the
// cluster master asks the pure planner (model/ca-rollover.ts) for the one
// thing to do, does it, and notes it in the action's steps. Everything it
// knows is in the store (the record's phase, the CA record, the nodes'
// `ca_trust` reports), so a new master carries on where the old one stopped.
// Each node does its own part (reconcilers/ca-trust.ts): trust, reissue,
// its etcd member's restart when named.
import type { Logger } from 'pino';
import { type ActionRecord, type LiveRecord, type NodeRecord, runningAction } from '../../coord/schema.js';
import type { CaRecord, CaRolloverRecord } from '../../coord/schema-ca.js';
import type { PrefixCache } from '../../coord/watch.js';
import type { ClusterStore, StoreHost } from '../../coord/store.js';
import { createCa, sha256Fingerprint } from '../../pki/pki.js';
import { caEntries } from '../../pki/ca-list.js';
import { MasterLoop, type MasterLoopHost } from './master-loop.js';
import { HEARTBEAT_FRESH_MS, nodeIsUp, type NodeStateHost } from '../model/node-state.js';
import { type RolloverDecision, type RolloverPhase, phaseStep, planRollover, planServicesRollover } from '../model/ca-rollover.js';
import { X509Certificate } from 'node:crypto';

export const CA_ROLLOVER_ACTION = 'rotate_ca';
/**
 * After an etcd member is back, this long before the next restart: a restart
 * may move the etcd leader, and a member's heartbeats can stall through the
 * election while still reaching the others late (so it looks fresh here). Two
 * such gaps back to back outlast a node's write fence (80% of the 5 s TTL).
 */
const ETCD_SETTLE_MS = 3000;

/** Ask for a rollover of a CA: the action and the record, in one transaction; undefined when one is running. */
export async function requestCaRollover(
  store: Pick<ClusterStore, 'seqs' | 'caRollovers' | 'cluster'>,
  which: CaRolloverRecord['ca'] = 'internode',
): Promise<ActionRecord | undefined> {
  const ca = which === 'internode' ? await store.cluster.ca() : await store.cluster.requireServicesCa();
  const uid = String(await store.seqs.next('action'));
  const now = new Date().toISOString();
  const description = `step 1/4: ${phaseStep('make_next', which).text}`;
  const action = runningAction(uid, CA_ROLLOVER_ACTION, 'cluster', description, now);
  const rec: CaRolloverRecord = {
    action_uid: uid,
    ca: which,
    phase: 'make_next',
    old: sha256Fingerprint(ca.cert),
    started_time: now,
    phase_times: { make_next: now },
  };
  return (await store.caRollovers.create(action, rec)) ? action : undefined;
}

/** What the controller needs of its node's membership (src/node/loops.ts builds it). */
export interface CaRolloverHost extends MasterLoopHost, NodeStateHost {
  readonly live: { readonly items: ReadonlyMap<string, LiveRecord> };
  /** The nodes' records: their `ca_trust` reports. */
  readonly nodes: PrefixCache<NodeRecord>;
}

export class CaRolloverController {
  private readonly rollovers: PrefixCache<CaRolloverRecord>;
  private readonly loop: MasterLoop;
  /** The last etcd restart seen done (action, node and ask time), and when this master first saw it so. */
  private settled?: { key: string; at: number };

  constructor(
    private readonly h: CaRolloverHost & StoreHost,
    private readonly log: Logger,
  ) {
    this.rollovers = h.store.caRollovers.cache();
    this.rollovers.on('malformed', (err: Error) => this.log.error({ err: err.message }, 'ignoring a malformed CA rollover record'));
    this.loop = new MasterLoop(h, 500, log, 'CA rollover', () => this.tick());
  }

  async start(): Promise<void> {
    await this.rollovers.start();
    this.rollovers.on('change', this.loop.kick);
    this.h.nodes.on('change', this.loop.kick);
    this.loop.start();
  }

  async close(): Promise<void> {
    this.loop.stop();
    await this.rollovers.stop();
  }

  private async tick(): Promise<void> {
    for (const r of this.rollovers.values()) {
      if (this.loop.isStopped || !this.h.isMaster()) return;
      if (r.finished_time) continue;
      await this.follow(r);
    }
  }

  private async decide(r: CaRolloverRecord): Promise<RolloverDecision> {
    if (r.ca === 'services') {
      const rec = await this.h.store.cluster.requireServicesCa();
      const subject = (fp?: string) => {
        const e = fp ? caEntries(rec).find((c) => sha256Fingerprint(c.cert) === fp) : undefined;
        return e ? new X509Certificate(e.cert).subject.replace(/\n/g, ', ') : undefined;
      };
      const oldSubject = subject(r.old);
      const members = this.h.nodes
        .values()
        .filter((n) => n.addr)
        .map((n) => ({
          uid: n.uid,
          up: nodeIsUp(this.h, n.uid),
          services: n.ca_trust?.services,
          // An operator's certificate (another issuer) is the operator's to replace: only the old CA's count.
          onNext: Object.values(n.service_certificates ?? {}).every((c) => !oldSubject || c.issuer !== oldSubject),
        }));
      return planServicesRollover({
        phase: r.phase,
        old: r.old,
        next: r.next,
        now: Date.now(),
        activateAfter: r.activate_after ? Date.parse(r.activate_after) : undefined,
        retireAfter: r.retire_after ? Date.parse(r.retire_after) : undefined,
        members,
      });
    }
    const members = this.h.nodes
      .values()
      .filter((n) => n.addr)
      .map((n) => ({
        uid: n.uid,
        up: nodeIsUp(this.h, n.uid),
        fresh: (this.h.silentMs(n.uid) ?? Number.POSITIVE_INFINITY) < HEARTBEAT_FRESH_MS,
        stopping: !!this.h.live.items.get(String(n.uid))?.stopping,
        internode: n.ca_trust?.internode,
        etcd: n.ca_trust?.etcd,
        issuedBy: n.ca_trust?.issued_by,
      }));
    return planRollover({ phase: r.phase, old: r.old, next: r.next, etcdRestart: r.etcd_restart, members });
  }

  private async follow(r: CaRolloverRecord): Promise<void> {
    const store = this.h.store;
    const uid = r.action_uid;
    const d = await this.decide(r);
    const overlapMs = () => this.h.store.cluster.policy().then((p) => p.services_ca_overlap_seconds * 1000);
    const later = (ms: number) => new Date(Date.now() + ms).toISOString();
    switch (d.kind) {
      case 'make_next': {
        const next = await this.makeNext(r.ca);
        await this.toPhase(r, 'trust_both', {
          next,
          ...(r.ca === 'services' ? { activate_after: r.activate_after ?? later(await overlapMs()) } : {}),
        });
        return;
      }
      case 'promote_next':
        await store.cluster.updateCa(r.ca, (cur) => (cur ? promote(cur, r.next!) : undefined));
        await this.toPhase(r, 'reissue', r.ca === 'services' ? { retire_after: later(await overlapMs()) } : {});
        return;
      case 'drop_old':
        await store.cluster.updateCa(r.ca, (cur) => (cur ? dropOld(cur, r.next!) : undefined));
        await this.toPhase(r, 'drop_old');
        return;
      case 'restart_etcd': {
        // The planner moved past the restart asked before: let the cluster settle first.
        if (r.etcd_restart !== undefined) {
          const key = `${uid}:${r.etcd_restart}@${r.etcd_restart_time ?? ''}`;
          if (this.settled?.key !== key) this.settled = { key, at: Date.now() };
          if (Date.now() - this.settled.at < ETCD_SETTLE_MS) {
            await this.note(
              uid,
              r.phase,
              `waiting: node ${r.etcd_restart}'s etcd member is back; the cluster settles before the next restart`,
            );
            return;
          }
        }
        await store.caRollovers.update(uid, (cur) =>
          cur && !cur.finished_time ? { ...cur, etcd_restart: d.node, etcd_restart_time: new Date().toISOString() } : undefined,
        );
        await this.note(uid, r.phase, `node ${d.node}: restarting its etcd member (one at a time)`);
        this.log.info({ action: uid, node: d.node, phase: r.phase }, 'CA rollover: restarting an etcd member');
        return;
      }
      case 'wait':
        await this.note(uid, r.phase, `waiting: ${d.why}`);
        return;
      case 'done':
        await this.finish(r);
        return;
    }
  }

  /** The next CA, listed beside the active one (reused if a former master made it already). */
  private async makeNext(which: CaRolloverRecord['ca']): Promise<string> {
    const store = this.h.store;
    const current = which === 'internode' ? await store.cluster.ca() : await store.cluster.requireServicesCa();
    const listed = caEntries(current).find((c) => c.state === 'next' && c.key);
    if (listed) return sha256Fingerprint(listed.cert);
    const cluster = await store.cluster.get();
    const ca = await createCa(cluster.name, cluster.cluster_id, which, `g${Math.floor(Date.now() / 1000).toString(36)}`);
    const saved = await store.cluster.updateCa(which, (cur) => {
      if (!cur || caEntries(cur).some((c) => c.state === 'next')) return undefined;
      return {
        ...cur,
        cas: [...caEntries(cur), { cert: ca.certPem, key: ca.keyPem, state: 'next' as const, added_time: new Date().toISOString() }],
      };
    });
    const next = caEntries(saved!).find((c) => c.state === 'next')!;
    this.log.info({ ca: which, fingerprint: sha256Fingerprint(next.cert) }, 'CA rollover: next CA made');
    return sha256Fingerprint(next.cert);
  }

  private async toPhase(r: CaRolloverRecord, phase: RolloverPhase, extra: Partial<CaRolloverRecord> = {}): Promise<void> {
    const now = new Date().toISOString();
    await this.h.store.caRollovers.update(r.action_uid, (cur) => {
      if (!cur || cur.finished_time || cur.phase !== r.phase) return undefined;
      const { etcd_restart: _a, etcd_restart_time: _b, ...rest } = cur;
      return { ...rest, ...extra, phase, phase_times: { ...cur.phase_times, [phase]: now } };
    });
    const step = phaseStep(phase, r.ca);
    await this.h.store.actions.update(r.action_uid, { progress: step.progress, description: `step ${step.n}/4: ${step.text}` });
    this.log.info({ action: r.action_uid, phase }, `CA rollover: ${step.text}`);
  }

  /** A step line, unless the action says it already. */
  private async note(uid: string, phase: RolloverPhase, text: string): Promise<void> {
    const action = await this.h.store.actions.get(uid);
    const step = phaseStep(phase, this.rollovers.items.get(uid)?.ca);
    const description = `step ${step.n}/4: ${text}`;
    if (!action || action.description === description) return;
    await this.h.store.actions.update(uid, { progress: step.progress, description });
  }

  private async finish(r: CaRolloverRecord): Promise<void> {
    const now = new Date().toISOString();
    await this.h.store.caRollovers.update(r.action_uid, (cur) =>
      cur && !cur.finished_time ? { ...cur, phase: 'done', finished_time: now, phase_times: { ...cur.phase_times, done: now } } : undefined,
    );
    await this.h.store.actions.update(r.action_uid, {
      status: 'completed',
      progress: 100,
      description: `the ${r.ca} CA was replaced: every node ${r.ca === 'internode' ? 'trusts and presents' : 'presents and publishes'} ${r.next} only`,
    });
    this.log.info({ action: r.action_uid, next: r.next, phase_times: r.phase_times }, 'CA rollover finished');
  }
}

/** The next CA issues; the old one stays trusted, retiring (its key is no longer kept). */
function promote(cur: CaRecord, nextFp: string): CaRecord | undefined {
  const e = caEntries(cur);
  const next = e.find((c) => sha256Fingerprint(c.cert) === nextFp);
  if (!next?.key) return undefined;
  if (sha256Fingerprint(cur.cert) === nextFp) return undefined; // done before
  return {
    cert: next.cert,
    key: next.key,
    cas: e.map((c) =>
      sha256Fingerprint(c.cert) === nextFp ? { ...c, state: 'active' as const } : { cert: c.cert, state: 'retiring' as const },
    ),
  };
}

/** Only the next CA (now the issuer) is left. */
function dropOld(cur: CaRecord, nextFp: string): CaRecord | undefined {
  if (sha256Fingerprint(cur.cert) !== nextFp) return undefined;
  const e = caEntries(cur);
  if (e.length === 1) return undefined;
  return { ...cur, cas: e.filter((c) => sha256Fingerprint(c.cert) === nextFp) };
}
