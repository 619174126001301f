// A scratch redis-server on a unix socket in a temporary directory, for tests
// that check our parsers against the real thing. The README's setup installs
// redis-server, so a missing binary is a failure, not a skip.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reap } from './reaper.js';

export interface ScratchRedis {
  proc: ChildProcess;
  dir: string;
  sock: string;
  stop(): void;
}

export async function startScratchRedis(prefix: string, extraArgs: (dir: string) => string[] = () => []): Promise<ScratchRedis> {
  const dir = mkdtempSync(join(tmpdir(), `tessera-${prefix}-`));
  const sock = join(dir, 'r.sock');
  const proc = reap(spawn('redis-server', ['--port', '0', '--unixsocket', sock, '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs(dir)], { stdio: 'ignore' }));
  const stop = () => {
    if (proc.pid !== undefined && proc.exitCode === null) process.kill(proc.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 250 && !existsSync(sock); i++) await new Promise((res) => setTimeout(res, 20));
  if (!existsSync(sock)) {
    stop();
    throw new Error('redis-server did not start');
  }
  return { proc, dir, sock, stop };
}
