// The run-file registry: each running node writes one small file saying where
// it is (address, REST port, pid, data directory), so that a CLI on the same
// host can find the node's own certificate files and trust its REST API
// without flags. The directory is, in order: $TESSERA_RUN_DIR,
// $XDG_RUNTIME_DIR/tessera, or <tmpdir>/tessera-<uid>. It must be owned by the
// user and writable by nobody else, or it is not trusted (another local user
// could otherwise point the CLI at certificates of their choosing). An entry
// whose process is gone is ignored (and removed).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processAlive, writeFileAtomic } from './files.js';

export interface RunEntry {
  pid: number;
  addr: string;
  rest_port: number;
  data_dir: string;
  started: string;
}

export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TESSERA_RUN_DIR) return env.TESSERA_RUN_DIR;
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'tessera');
  return path.join(os.tmpdir(), `tessera-${process.getuid?.() ?? 'user'}`);
}

const entryName = (addr: string, port: number) => `${addr.replace(/[^0-9A-Za-z.:-]/g, '_').replace(/:/g, '_')}_${port}.json`;

/** Why the directory cannot be trusted, or undefined when it can. */
function untrusted(dir: string): string | undefined {
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) return `${dir} is not a directory`;
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) return `${dir} belongs to another user`;
  if (st.mode & 0o022) return `${dir} is writable by other users`;
  return undefined;
}

/** Record this process as the node at addr:port; returns the function that removes the entry. */
export function registerNode(e: Omit<RunEntry, 'started'>): () => void {
  const dir = runDir();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const why = untrusted(dir);
  if (why) throw new Error(`cannot use the run directory: ${why}`);
  const file = path.join(dir, entryName(e.addr, e.rest_port));
  writeFileAtomic(file, JSON.stringify({ ...e, started: new Date().toISOString() }), 0o600);
  return () => {
    try {
      const cur = JSON.parse(fs.readFileSync(file, 'utf8')) as RunEntry;
      if (cur.pid === e.pid) fs.rmSync(file, { force: true });
    } catch {
      /* already gone, or replaced by another node at this address: nothing of ours to remove */
    }
  };
}

/** The node running on this host at addr:port, if the registry knows one. */
export function findLocalNode(addr: string, port: number): RunEntry | undefined {
  const dir = runDir();
  const file = path.join(dir, entryName(addr, port));
  try {
    if (untrusted(dir)) return undefined;
    const st = fs.lstatSync(file);
    if (!st.isFile() || (process.getuid && st.uid !== process.getuid())) return undefined;
    const e = JSON.parse(fs.readFileSync(file, 'utf8')) as RunEntry;
    if (typeof e.pid !== 'number' || typeof e.data_dir !== 'string' || e.addr !== addr || e.rest_port !== port) return undefined;
    if (!processAlive(e.pid)) {
      fs.rmSync(file, { force: true });
      return undefined;
    }
    return e;
  } catch {
    return undefined; // no registry, no entry, or an unreadable one: this host runs no node we can vouch for
  }
}
