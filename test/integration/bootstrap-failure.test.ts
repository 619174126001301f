// A bootstrap that fails before it starts (a data directory that cannot be
// cleared: here a read-only file system mounted on its etcd directory, with a
// leftover in it) must say so at once, in one line, and leave the node able to
// try again, never stuck answering 409 `busy`. (A mount point itself is no
// longer a cause: the wipe empties it, test/unit/wipe-membership.test.ts.)
// Needs root (mount). Net 127.0.80.x.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster } from '../support/cluster.js';

const skip = process.getuid?.() !== 0 ? 'needs root (mount)' : false;

describe('bootstrap that cannot clear its data directory', { skip }, () => {
  const c = new TestCluster(80, 1);
  const [n] = c.nodes;
  const mountPoint = path.join(n.dataDir, 'etcd');
  let mounted = false;

  after(async () => {
    if (mounted) execFileSync('umount', [mountPoint]);
    await n.kill();
    fs.rmSync(c.root, { recursive: true, force: true });
  });

  it('fails at once with one line, and the next attempt is not refused as busy', async () => {
    await n.start();
    fs.mkdirSync(mountPoint, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    mounted = true;
    fs.writeFileSync(path.join(mountPoint, 'leftover'), 'x');
    execFileSync('mount', ['-o', 'remount,ro', mountPoint]);
    const t0 = Date.now();
    const first = await n.cli(['cluster', 'create', 'name', 'busy.test', 'username', 'admin@test.local', 'password', 'test-password-1']);
    assert.notEqual(first.code, 0);
    assert.ok(Date.now() - t0 < 30_000, 'answered within 30 s');
    const lines = first.stderr.trim().split('\n');
    assert.equal(lines.length, 1, first.stderr);
    assert.match(lines[0], /bootstrap_failed|cannot clear/);
    assert.match(lines[0], /read-only/i);
    // The node is not left busy: GET /v1/bootstrap says the attempt ended in an error.
    const state = await n.api<{ bootstrap_status: { state: string; error_code?: string } }>('GET', '/v1/bootstrap', undefined, null);
    assert.equal(state.body.bootstrap_status.state, 'error', JSON.stringify(state.body));
    execFileSync('umount', [mountPoint]);
    mounted = false;
    const second = await n.cli(['cluster', 'create', 'name', 'busy.test', 'username', 'admin@test.local', 'password', 'test-password-1']);
    assert.equal(second.code, 0, second.stderr);
  });
});
