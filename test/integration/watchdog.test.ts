// The suite never outlives a failure: a test file that starts a packet
// capture and a node daemon-like child, then fails before stopping them,
// still ends (through --test-force-exit, as `npm test` runs it), and the
// reaper kills what it started.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const support = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'support');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a failing test that leaves a capture and a redis-server running still ends, and both are killed', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-watchdog-'));
  try {
    const file = path.join(dir, 'leaky.test.mjs');
    fs.writeFileSync(
      file,
      `import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Capture } from ${JSON.stringify(path.join(support, 'capture.js'))};
import { startScratchRedis } from ${JSON.stringify(path.join(support, 'redis.js'))};
test('fails with things running', async () => {
  const cap = new Capture(${JSON.stringify(path.join(dir, 'x.pcap'))}, 'tcp and host 127.0.11.1');
  await cap.start();
  const r = await startScratchRedis('watchdog');
  console.log('PIDS ' + cap.pid + ' ' + r.proc.pid);
  assert.fail('deliberate failure before cleanup');
});
`,
    );
    const t0 = Date.now();
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      // A runner of its own, not a subtest of this one.
      const env = { ...process.env };
      delete env.NODE_TEST_CONTEXT;
      const p = execFile(process.execPath, ['--test', '--test-force-exit', file], { timeout: 60_000, env }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: stdout + stderr }),
      );
      p.stdin?.end();
    });
    const took = Date.now() - t0;
    assert.notEqual(r.code, 0, r.out);
    assert.ok(took < 30_000, `the failing file ran ${took} ms`);
    const m = /PIDS (\d+) (\d+)/.exec(r.out);
    assert.ok(m, r.out);
    const pids = [Number(m[1]), Number(m[2])];
    // Give the kernel a moment to reap them.
    for (let i = 0; i < 50 && pids.some(alive); i++) await new Promise((res) => setTimeout(res, 100));
    assert.deepEqual(pids.filter(alive), [], 'dumpcap and redis-server were killed');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
