// Every process a test starts is registered here and SIGKILLed when the test
// process exits, however it exits (a failed assertion, a timeout, the
// runner's --test-force-exit): no daemon, shard, capture or s_client outlives
// the test file that started it. `after` hooks still stop things properly;
// this is the watchdog behind them.
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

process.once('exit', () => {
  for (const p of live) {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
});

/** Register a child process; returns it for chaining. */
export function reap<T extends ChildProcess>(p: T): T {
  live.add(p);
  p.once('exit', () => live.delete(p));
  return p;
}

/** Children still running (for `after` hooks that want to stop the rest). */
export function liveChildren(): ChildProcess[] {
  return [...live];
}
