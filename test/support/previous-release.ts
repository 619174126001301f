// The previous release (test/support/previous-release.json), built once per
// machine from its commit into a scratch folder, so upgrade and mixed-version
// tests can run a real 0.1.0 node beside the working tree's build.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO } from './cluster.js';

export interface PreviousRelease {
  version: string;
  commit: string;
}

export function previousRelease(): PreviousRelease {
  return JSON.parse(fs.readFileSync(path.join(REPO, 'test/support/previous-release.json'), 'utf8')) as PreviousRelease;
}

/** Where the release of `commit` is built: keyed by the commit, so a new previous release gets a new folder. */
export function previousReleaseDir(rel = previousRelease()): string {
  return path.join(os.tmpdir(), `tessera-${rel.version}-${rel.commit.slice(0, 12)}`);
}

/**
 * The path of the previous release's `bin/tessera`, building it first if this
 * machine has not yet: `git archive` of the commit into `<dir>.tmp`, `npm ci`,
 * `npm run build`, then renamed into place (a half-done build is never taken
 * for a finished one). A `flock` on `<dir>.lock` keeps two test processes from
 * building at once; the second waits and then finds the folder ready.
 */
export async function previousReleaseBin(timeoutMs = 15 * 60_000): Promise<string> {
  const rel = previousRelease();
  const dir = previousReleaseDir(rel);
  const bin = path.join(dir, 'bin/tessera');
  if (fs.existsSync(path.join(dir, '.built'))) return bin;
  const script = [
    'set -e',
    `[ -f "$DIR/.built" ] && exit 0`,
    'rm -rf "$DIR.tmp" && mkdir -p "$DIR.tmp"',
    'git -C "$REPO" archive "$COMMIT" | tar -x -C "$DIR.tmp"',
    'cd "$DIR.tmp"',
    'npm ci --no-audit --no-fund --loglevel=error',
    'npm run --silent build',
    'echo "$COMMIT" > .built',
    'rm -rf "$DIR" && mv "$DIR.tmp" "$DIR"',
  ].join('\n');
  await new Promise<void>((resolve, reject) => {
    execFile(
      'flock',
      [`${dir}.lock`, 'sh', '-c', script],
      { env: { ...process.env, DIR: dir, REPO, COMMIT: rel.commit }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, _stdout, stderr) =>
        err
          ? reject(new Error(`building release ${rel.version} (${rel.commit.slice(0, 12)}) failed: ${err.message}\n${stderr}`))
          : resolve(),
    );
  });
  return bin;
}
