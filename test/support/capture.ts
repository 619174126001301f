// Packet captures on loopback for the wire tests: dumpcap writes, tshark reads
// afterwards. Every capture is stopped whatever a test does:
// `stopAllCaptures()` in an `after` hook, and the reaper's SIGKILL on process
// exit as the last resort (a running dumpcap must never keep a test process,
// or the machine, busy after a failure).
import fs from 'node:fs';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { sleep, waitFor } from './cluster.js';
import { reap } from './reaper.js';

const live = new Set<ChildProcess>();

export interface ServerHello {
  src: string;
  dst: string;
  /** 0x0304 for TLS 1.3 (from supported_versions), otherwise the record's version. */
  version: string;
  /** Key-share group (decimal, as tshark prints it); empty for TLS 1.2. */
  group: string;
  suite: string;
}

export class Capture {
  private proc?: ChildProcess;

  /** `filter` is a capture (BPF) filter, e.g. `tcp and net 127.0.6.0/24`. */
  constructor(
    readonly file: string,
    private readonly filter: string,
  ) {}

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(): Promise<void> {
    const p = reap(spawn('dumpcap', ['-q', '-i', 'lo', '-f', this.filter, '-w', this.file], { stdio: ['ignore', 'ignore', 'pipe'] }));
    this.proc = p;
    live.add(p);
    p.once('exit', () => live.delete(p));
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    await waitFor(
      'capture running',
      async () => {
        if (p.exitCode !== null) throw new Error(`dumpcap exited: ${err}`);
        return fs.existsSync(this.file) && fs.statSync(this.file).size > 0;
      },
      10_000,
    );
    await sleep(500);
  }

  /** Let the last packets land, then stop dumpcap (safe to call twice). */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await sleep(500);
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGINT');
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }

  tshark(args: string[]): Promise<string> {
    return new Promise((resolve, reject) =>
      execFile('tshark', ['-r', this.file, '-d', 'tcp.port==3342,tls', ...args], { maxBuffer: 512 * 1024 * 1024 }, (err, out) =>
        err ? reject(err) : resolve(out),
      ),
    );
  }

  /** Payload bytes of every TCP segment between two different addresses of `addrs`, with the ports. */
  async payloadsBetween(
    addrs: Set<string>,
  ): Promise<{ src: string; dst: string; sport: number; dport: number; time: number; data: Buffer }[]> {
    const out = await this.tshark([
      '-Y',
      'tcp.len > 0',
      '-T',
      'fields',
      '-e',
      'ip.src',
      '-e',
      'ip.dst',
      '-e',
      'tcp.srcport',
      '-e',
      'tcp.dstport',
      '-e',
      'frame.time_epoch',
      '-e',
      'tcp.payload',
    ]);
    return out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t'))
      .filter(([src, dst]) => addrs.has(src) && addrs.has(dst) && src !== dst)
      .map(([src, dst, sport, dport, time, hex]) => ({
        src,
        dst,
        sport: Number(sport),
        dport: Number(dport),
        time: Number(time) * 1000,
        data: Buffer.from(hex.replace(/:/g, ''), 'hex'),
      }));
  }

  /** Every ServerHello sent from `port`: version, key-share group, suite. */
  async serverHellos(port: number): Promise<ServerHello[]> {
    const out = await this.tshark([
      '-d',
      `tcp.port==${port},tls`,
      '-Y',
      `tls.handshake.type == 2 && tcp.srcport == ${port}`,
      '-T',
      'fields',
      '-E',
      'occurrence=f',
      '-e',
      'ip.src',
      '-e',
      'ip.dst',
      '-e',
      'tls.handshake.extensions.supported_version',
      '-e',
      'tls.handshake.version',
      '-e',
      'tls.handshake.extensions_key_share_group',
      '-e',
      'tls.handshake.ciphersuite',
    ]);
    return out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t'))
      .map(([src, dst, sv, v, group, suite]) => ({ src, dst, version: sv || v, group: group ?? '', suite }));
  }

  /** Cipher suites chosen by servers in ServerHellos on 3342. */
  async serverHelloSuites(): Promise<string[]> {
    return (await this.serverHellos(3342)).map((h) => h.suite);
  }
}

/** For `after` hooks: stop every capture still running. */
export async function stopAllCaptures(): Promise<void> {
  for (const p of [...live]) {
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }
}
