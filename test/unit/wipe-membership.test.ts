// wipeMembership (control/membership/config.ts) undoes a half-done create or
// join, and runs before each attempt. The shards' directory may be a disk of
// its own (a mount point, which cannot be removed: EBUSY): it is emptied, not
// removed, so a join onto such a node works. Needs root and tmpfs (skipped
// with the reason otherwise).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { wipeMembership } from '../../src/control/membership/config.js';

function mountTmpfs(dir: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here: ${(err as Error).message.split('\n')[0]}`;
  }
}

test('a data directory whose shards and etcd directories are mount points is wiped without removing them', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-wipe-'));
  const shards = path.join(dataDir, 'shards');
  const etcd = path.join(dataDir, 'etcd');
  fs.mkdirSync(shards);
  fs.mkdirSync(etcd);
  const why = mountTmpfs(shards) ?? mountTmpfs(etcd);
  try {
    if (why) {
      t.skip(why);
      return;
    }
    fs.mkdirSync(path.join(shards, '7'));
    fs.writeFileSync(path.join(shards, '7', 'appendonly.aof'), 'x');
    fs.mkdirSync(path.join(etcd, 'member'));
    fs.writeFileSync(path.join(dataDir, 'node.json'), '{}');
    wipeMembership(dataDir);
    assert.deepEqual(fs.readdirSync(shards), [], 'the shards are gone');
    assert.deepEqual(fs.readdirSync(etcd), [], "etcd's data is gone");
    assert.equal(fs.existsSync(path.join(dataDir, 'node.json')), false, 'the identity is gone');
  } finally {
    for (const d of [shards, etcd]) {
      try {
        execFileSync('umount', [d], { stdio: 'pipe' });
      } catch {
        // not mounted (the skip path, or the mount failed): nothing to undo
      }
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
