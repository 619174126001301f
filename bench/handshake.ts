// Internode handshake benchmark: the real internode listener (3342's
// InternodeServer, cluster-issued cp certificates, peer checks) on 127.0.9.60,
// dialed with the hybrid group X25519MLKEM768 (the policy's default) and with
// the classical X25519 alone. Rounds interleave the two; prints handshakes per
// second (one at a time, and 8 in flight) and CPU per handshake (client and
// server together, this one process), medians with the spread.
//
//   npm run bench:handshake     (BENCH_ROUNDS=7, BENCH_HANDSHAKES=300)
import tls from 'node:tls';
import pino from 'pino';
import { makeClusterCerts } from '../test/support/certs.js';
import { CertStore } from '../src/pki/certstore.js';
import { InternodeServer } from '../src/internode/channel.js';
import { ALPN, SERVERNAME } from '../src/tls/contexts.js';
import { protocolOptions } from '../src/tls/policy.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const N = Number(process.env.BENCH_HANDSHAKES ?? 300);
const HOST = '127.0.9.60';
const PORT = 3342;

const certs = await makeClusterCerts('bench-hs', [1, 2], HOST);
const policy = { clusterId: () => 'bench-hs', isMember: () => true, isDenied: () => false };
const server = new InternodeServer({
  host: HOST,
  port: PORT,
  certs: new CertStore({ cp: certs.nodes[0].cp, dp: certs.nodes[0].dp }),
  policy,
  log: pino({ level: 'silent' }),
  handlers: { cp: (s) => s.destroy() },
});
await server.listen();

const client = certs.nodes[1].cp;
const variants = {
  hybrid: protocolOptions().ecdhCurve!,
  x25519: 'X25519',
} as const;
type Variant = keyof typeof variants;

function handshake(groups: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      ...protocolOptions(),
      ecdhCurve: groups,
      host: HOST,
      port: PORT,
      cert: client.certPem,
      key: client.keyPem,
      ca: client.caPem,
      servername: SERVERNAME.cp,
      ALPNProtocols: [ALPN.cp],
      checkServerIdentity: () => undefined,
    });
    s.once('secureConnect', () => {
      const g = (s.getEphemeralKeyInfo() as { name?: string }).name ?? '?';
      s.destroy();
      resolve(g);
    });
    s.once('error', reject);
  });
}

async function round(v: Variant, inFlight: number): Promise<{ perSec: number; cpuUs: number; group: string }> {
  let group = '';
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < N) group = await handshake(variants[v]);
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { perSec: N / secs, cpuUs: (cpu.user + cpu.system) / N, group };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;

try {
  for (const v of Object.keys(variants) as Variant[]) await handshake(variants[v]); // warm up
  const res: Record<string, { perSec: number[]; cpuUs: number[]; group: string }> = {};
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which goes first so drift on a shared machine hits both alike.
    const order: Variant[] = r % 2 ? ['x25519', 'hybrid'] : ['hybrid', 'x25519'];
    for (const inFlight of [1, 8]) {
      for (const v of order) {
        const k = `${v}/${inFlight}`;
        const x = await round(v, inFlight);
        (res[k] ??= { perSec: [], cpuUs: [], group: x.group }).perSec.push(x.perSec);
        res[k].cpuUs.push(x.cpuUs);
      }
    }
  }
  console.log(`internode handshakes on ${HOST}:${PORT}, ${ROUNDS} rounds x ${N}, TLS 1.3, RSA-2048 cp certificates, mutual auth`);
  console.log('variant        group            handshakes/s (spread)   CPU us/handshake (spread)');
  for (const [k, x] of Object.entries(res)) {
    console.log(
      `${k.padEnd(14)} ${x.group.padEnd(16)} ${median(x.perSec).toFixed(0).padStart(6)} (${spread(x.perSec)})`.padEnd(57) +
        `${median(x.cpuUs).toFixed(0).padStart(6)} (${spread(x.cpuUs)})`,
    );
  }
  for (const inFlight of [1, 8]) {
    const h = res[`hybrid/${inFlight}`];
    const c = res[`x25519/${inFlight}`];
    console.log(
      `ratio hybrid/x25519 (${inFlight} in flight): handshakes/s ${(median(h.perSec) / median(c.perSec)).toFixed(3)}, CPU per handshake ${(median(h.cpuUs) / median(c.cpuUs)).toFixed(3)}`,
    );
  }
} finally {
  await server.close();
}
