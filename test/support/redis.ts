// The one way tests start redis-server: on a unix socket only (`port 0`), no
// persistence, registered with the reaper. `startScratchRedis` adds a
// temporary directory, for tests that check our parsers against the real
// thing. The README's setup installs redis-server, so a missing binary is a
// failure, not a skip.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { ReplyParser, type RespReply } from '../../src/proxy/resp-reply.js';
import { encodeCommand } from '../../src/proxy/resp-encode.js';
import { reap } from './reaper.js';
import { waitFor } from './wait.js';

/**
 * Start redis-server on `sock` (files in `dir`); resolves once the socket file
 * exists (accept() may lag it slightly). No TCP listener unless `tcp` asks for one
 * (`['--port', '6390', '--bind', host]`).
 */
export async function spawnRedis(
  sock: string,
  dir: string,
  extraArgs: string[] = [],
  tcp: string[] = ['--port', '0'],
): Promise<ChildProcess> {
  const proc = reap(
    spawn('redis-server', [...tcp, '--unixsocket', sock, '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs], {
      stdio: 'ignore',
    }),
  );
  try {
    await waitFor(
      `redis-server on ${sock}`,
      () => {
        if (proc.exitCode !== null || proc.signalCode !== null)
          throw new Error(`redis-server exited (${proc.exitCode ?? proc.signalCode})`);
        return existsSync(sock);
      },
      5000,
      20,
    );
  } catch (err) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    throw new Error(`redis-server did not start: ${(err as Error).message}`);
  }
  return proc;
}

export interface ScratchRedis {
  proc: ChildProcess;
  dir: string;
  sock: string;
  stop(): void;
}

export async function startScratchRedis(prefix: string, extraArgs: (dir: string) => string[] = () => []): Promise<ScratchRedis> {
  const dir = mkdtempSync(join(tmpdir(), `tessera-${prefix}-`));
  const sock = join(dir, 'r.sock');
  let proc: ChildProcess;
  try {
    proc = await spawnRedis(sock, dir, extraArgs(dir));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const stop = () => {
    if (proc.pid !== undefined && proc.exitCode === null) process.kill(proc.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  return { proc, dir, sock, stop };
}

/**
 * Write `input` to redis on one connection to `sock` and read the replies
 * with our ReplyParser until `done(replies)`; every byte received is kept, to
 * compare with what the parser accounted for. A parser error fails it.
 */
export function pipelineReplies(
  sock: string,
  input: Buffer,
  done: (replies: RespReply[]) => boolean,
): Promise<{ replies: RespReply[]; received: Buffer[]; parser: ReplyParser }> {
  return new Promise((resolve, reject) => {
    const received: Buffer[] = [];
    const replies: RespReply[] = [];
    const parser = new ReplyParser();
    const s = net.connect(sock);
    s.on('error', reject);
    s.on('data', (d) => {
      received.push(d);
      parser.push(d);
      for (let x = parser.next(); x !== null; x = parser.next()) replies.push(x);
      if (parser.error !== null) {
        s.destroy();
        reject(new Error(parser.error));
      } else if (done(replies)) {
        s.destroy();
        resolve({ replies, received, parser });
      }
    });
    s.write(input);
  });
}

/** A connection to the redis-server on `sock`, authenticated with `password` (AUTH answered +OK); paused, for a proxy to take over. */
export function authConnect(sock: string, password: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (!got.includes('\r\n')) return;
      s.removeListener('data', onData);
      s.removeListener('error', reject);
      s.pause();
      if (got === '+OK\r\n') resolve(s);
      else {
        s.destroy();
        reject(new Error(`AUTH: ${got}`));
      }
    };
    s.once('error', reject);
    s.once('connect', () => {
      s.on('data', onData);
      s.write(encodeCommand(['AUTH', password]));
    });
  });
}
