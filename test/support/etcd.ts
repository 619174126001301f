// A scratch etcd (the real `etcd` binary of the etcd-server package) for tests
// that need the coordination store but no cluster: one member, a temporary
// data directory, plaintext client and peer URLs on a loopback address of the
// caller's, its data in /dev/shm when there is one. The reaper kills it if the test process dies first; `stop()`
// kills it and removes its directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before } from 'node:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { clientBehaviour } from '../../src/coord/etcd.js';
import { type ClusterStore, storeOf } from '../../src/coord/store.js';
import { reap } from './reaper.js';
import { waitFor } from './wait.js';

export interface ScratchEtcd {
  proc: ChildProcess;
  dir: string;
  /** A client of it; closed by stop(). */
  client: Etcd3;
  /** Output, for a failure message. */
  log(): string;
  stop(): Promise<void>;
}

export async function startScratchEtcd(host: string, clientPort = 23790, peerPort = clientPort + 10): Promise<ScratchEtcd> {
  // In memory where the machine has it: every write of etcd is an fsync, and a scratch store needs no durability.
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'tessera-etcd-'));
  const client = `http://${host}:${clientPort}`;
  const peer = `http://${host}:${peerPort}`;
  const proc = reap(
    spawn(
      'etcd',
      [
        '--name',
        'scratch',
        '--data-dir',
        join(dir, 'data'),
        '--listen-client-urls',
        client,
        '--advertise-client-urls',
        client,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `scratch=${peer}`,
        '--initial-cluster-state',
        'new',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  // Plaintext (a scratch store on loopback), otherwise the node's client: same deadlines, retries and reconnects.
  const c = new Etcd3({ ...clientBehaviour(), hosts: client });
  const stop = async () => {
    c.close();
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      `etcd on ${client}`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`etcd exited (${proc.exitCode}): ${out.slice(-2000)}`);
        await c.put('/scratch/ready').value('1');
        return true;
      },
      20_000,
      100,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { proc, dir, client: c, log: () => out, stop };
}

/** One scratch etcd of a test file, with its client and typed store (set once the file's `before` hook ran). */
export interface FileEtcd {
  etcd: ScratchEtcd;
  client: Etcd3;
  store: ClusterStore;
}

/**
 * The preamble of a unit test file over one scratch etcd: started before the
 * file's first test, stopped after its last. Read the fields inside tests.
 */
export function scratchEtcdForFile(host: string, clientPort?: number, peerPort?: number): FileEtcd {
  const f = {} as FileEtcd;
  before(async () => {
    f.etcd = await startScratchEtcd(host, clientPort, peerPort);
    f.client = f.etcd.client;
    f.store = storeOf(f.client);
  });
  after(async () => {
    await f.etcd?.stop();
  });
  return f;
}
