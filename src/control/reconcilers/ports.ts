// Which TCP ports are free for a new database endpoint, on every live node at
// once: each node answers the `ports_free` control RPC with the candidates it
// can bind on its address, and the asker intersects the answers, so a
// creation asks each node once, whatever the number of candidates.
//
// This is a query, not an action: POST /v1/bdbs answers with the port
// synchronously (as Redis Enterprise does, or `port_unavailable`), the check
// lasts one round trip per node, and it decides nothing lasting: the
// database's record, written next by compare-and-swap, is what reserves the
// port; a foreign listener that takes it afterwards is reported by the
// endpoint's node (its observed status), as before.
import net from 'node:net';
import type { NodeRecord } from '../../coord/schema.js';
import type { RpcClient } from '../../internode/rpc.js';
import { nodeIsUp, type NodeStateHost } from '../model/node-state.js';

export const PORTS_FREE_RPC = 'ports_free';
/** The most candidates one call may ask about (the creation asks in batches of this many). */
export const MAX_PORTS_ASKED = 256;

/** Which of `ports` this node can bind on `addr` now (each is bound exclusively and closed at once). */
export async function bindablePorts(addr: string, ports: readonly number[]): Promise<number[]> {
  const free = await Promise.all(
    ports.map(
      (port) =>
        new Promise<boolean>((resolve) => {
          const s = net.createServer();
          // In use (EADDRINUSE) or not ours to bind (EACCES): not free; either way nothing to log.
          s.once('error', () => resolve(false));
          s.listen({ host: addr, port, exclusive: true }, () => s.close(() => resolve(true)));
        }),
    ),
  );
  return ports.filter((_, i) => free[i]);
}

/** The `ports_free` parameters, checked: `{ports: [...]}`, each a TCP port, at most MAX_PORTS_ASKED. */
export function portsParam(params: unknown): number[] {
  const ports = (params as { ports?: unknown } | null)?.ports;
  if (!Array.isArray(ports) || ports.length > MAX_PORTS_ASKED || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
    throw new Error(`invalid ports: a list of at most ${MAX_PORTS_ASKED} TCP ports is expected`);
  }
  return ports as number[];
}

/** What the cluster-wide check needs of the node (src/node's RunningMember provides it). */
export interface PortsHost extends NodeStateHost {
  readonly uid: number;
  readonly nodes: { values(): NodeRecord[] };
  rpc(uid: number): RpcClient | undefined;
  /** This node's own answer (without a round trip to itself). */
  portsFree(ports: number[]): Promise<{ free: number[] }>;
}

/**
 * For each of `ports` that some live node cannot bind, the first such node
 * (by uid). One call per live node, in parallel. A node that does not answer
 * is not a reason to refuse a port: its reconciler reports the endpoint's
 * failure if the port turns out to be taken there.
 */
export async function portsInUse(
  h: PortsHost,
  ports: number[],
  log?: { warn(o: object, msg: string): void },
  timeoutMs = 3000,
): Promise<Map<number, number>> {
  const nodes = h.nodes
    .values()
    .filter((n) => n.addr && nodeIsUp(h, n.uid))
    .sort((a, b) => a.uid - b.uid);
  const answers = await Promise.all(
    nodes.map(async (n) => {
      try {
        const r =
          n.uid === h.uid ? await h.portsFree(ports) : await h.rpc(n.uid)!.call<{ free: number[] }>(PORTS_FREE_RPC, { ports }, timeoutMs);
        return { uid: n.uid, free: new Set(r.free) };
      } catch (err) {
        log?.warn({ node: n.uid, err: (err as Error).message }, 'a node did not say which ports are free; not counted against them');
        return undefined;
      }
    }),
  );
  const inUse = new Map<number, number>();
  for (const a of answers) {
    if (!a) continue;
    for (const p of ports) if (!a.free.has(p) && !inUse.has(p)) inUse.set(p, a.uid);
  }
  return inUse;
}
