// Network cuts between test nodes, as Jepsen's partition nemeses make them:
// every node's processes (daemon, and the etcd and redis-server it spawns,
// which inherit it) live in a cgroup of their own, and iptables OUTPUT rules
// drop what a node's cgroup sends to another node's address. Rules match by
// cgroup, not by source address, because etcd's peer dials leave from
// 127.0.0.1 (Go picks the loopback route's source) and so cannot be told
// apart by address. The test process itself is in no such cgroup: its
// clients reach every node whatever is cut.
//
// Every rule carries the comment `tessera-test-<net>`: `heal()` removes the
// ones added, `close()` and a process 'exit' handler remove all of them (and
// the cgroups) whatever happens, and a new instance first removes what a
// crashed earlier run on the same net left behind. Rules name only the
// test's own loopback addresses.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TestNode } from './cluster.js';

/** cgroup v2 as this machine mounts it (hybrid layout); TESSERA_CGROUP2 overrides. */
const CGROUP_ROOT = process.env.TESSERA_CGROUP2 ?? '/sys/fs/cgroup/unified';

function iptables(args: string[]): string {
  return execFileSync('iptables', ['-w', '5', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why cuts cannot be made here (the tests skip with it), or undefined when they can. */
export function cutsUnavailable(): string | undefined {
  try {
    iptables(['-S', 'OUTPUT']);
  } catch (err) {
    return `iptables is missing or not permitted (${(err as Error).message.split('\n')[0]})`;
  }
  if (!fs.existsSync(path.join(CGROUP_ROOT, 'cgroup.procs'))) return `no cgroup v2 mount at ${CGROUP_ROOT}`;
  const probe = path.join(CGROUP_ROOT, `tessera-probe-${process.pid}`);
  try {
    fs.mkdirSync(probe);
    fs.rmdirSync(probe);
  } catch (err) {
    return `cannot create a cgroup under ${CGROUP_ROOT} (${(err as Error).message})`;
  }
  return undefined;
}

/** The process and all its descendants, by PID (pgrep -P, level by level). */
function processTree(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    let kids = '';
    try {
      kids = execFileSync('pgrep', ['-P', String(out[i])], { encoding: 'utf8' });
    } catch {
      /* pgrep exits 1 when there are none */
    }
    for (const k of kids.split('\n').filter(Boolean)) out.push(Number(k));
  }
  return out;
}

export class NetworkCuts {
  private readonly tag: string;
  private readonly groups = new Map<TestNode, string>();
  /** The rules in force, each as its iptables arguments after -A/-D. */
  private rules: string[][] = [];
  private readonly onExit = (): void => this.close();

  constructor(
    readonly net: number,
    readonly nodes: TestNode[],
  ) {
    this.tag = `tessera-test-${net}`;
    for (const n of nodes) {
      if (!n.addr.startsWith(`127.0.${net}.`)) throw new Error(`node ${n.addr} is not on the test's net 127.0.${net}.x`);
    }
    this.removeLeftovers();
    nodes.forEach((n, i) => {
      const dir = path.join(CGROUP_ROOT, `tessera-${net}-n${i + 1}`);
      fs.mkdirSync(dir, { recursive: true });
      this.groups.set(n, dir);
    });
    process.on('exit', this.onExit);
  }

  /** Put a started node's processes (daemon and any child already there) into its cgroup; later children inherit it. */
  attach(node: TestNode): void {
    const pid = node.proc?.pid;
    if (pid === undefined) throw new Error(`node ${node.addr} is not running`);
    const procs = path.join(this.group(node), 'cgroup.procs');
    for (const p of processTree(pid)) {
      try {
        fs.writeFileSync(procs, String(p));
      } catch (err) {
        // A child that exited between pgrep and the write has nothing left to move.
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
  }

  /** Cut `node` off from every other node, both ways. */
  isolate(node: TestNode): void {
    const others = this.nodes.filter((n) => n !== node);
    this.split([node], others);
  }

  /** Nothing in `a` reaches `b` and nothing in `b` reaches `a`. */
  split(a: TestNode[], b: TestNode[]): void {
    const rules: string[][] = [];
    for (const x of a) for (const y of b) rules.push(this.drop(x, y));
    for (const y of b) for (const x of a) rules.push(this.drop(y, x));
    this.apply(rules);
  }

  /**
   * Asymmetric: nothing `from` sends reaches `to`'s address; `to` still
   * sends to `from` (what needs an answer over a connection `to` opened from
   * its own address gets none; etcd's peer dials, from 127.0.0.1, get theirs).
   */
  oneWay(from: TestNode[], to: TestNode): void {
    this.apply(from.filter((x) => x !== to).map((x) => this.drop(x, to)));
  }

  /** Remove every rule added; connections recover by themselves. */
  heal(): void {
    const rules = this.rules;
    this.rules = [];
    if (rules.length === 0) return;
    try {
      // One transaction, so the whole cut heals at once.
      const input = `*filter\n${rules.map((r) => `-D ${r.join(' ')}`).join('\n')}\nCOMMIT\n`;
      execFileSync('iptables-restore', ['--noflush', '-w', '5'], { input, stdio: ['pipe', 'pipe', 'pipe'] });
      return;
    } catch (err) {
      // A rule is gone already (removed by hand): remove the rest one by one below.
      console.log(`# partition: one-transaction heal failed, removing rules one by one: ${(err as Error).message.split('\n')[0]}`);
    }
    for (const r of rules) {
      try {
        iptables(['-D', ...r]);
      } catch (err) {
        // Already gone (removed by hand, or a leftover sweep): the cut is healed either way.
        console.log(`# partition: rule already gone: ${r.join(' ')} (${(err as Error).message.split('\n')[0]})`);
      }
    }
  }

  /** Heal, move every process still in the cgroups back to the root, remove the cgroups. Safe to call twice. */
  close(): void {
    this.heal();
    this.removeLeftovers();
    process.off('exit', this.onExit);
  }

  private group(node: TestNode): string {
    const g = this.groups.get(node);
    if (!g) throw new Error(`node ${node.addr} is not one of this test's nodes`);
    return g;
  }

  /** The rule that drops what `from`'s cgroup sends to `to`'s address. */
  private drop(from: TestNode, to: TestNode): string[] {
    const rel = path.relative(CGROUP_ROOT, this.group(from));
    return ['OUTPUT', '-m', 'cgroup', '--path', rel, '-d', `${to.addr}/32`, '-m', 'comment', '--comment', this.tag, '-j', 'DROP'];
  }

  /** Add the rules in one iptables-restore transaction: the whole cut comes into force at once. */
  private apply(rules: string[][]): void {
    const input = `*filter\n${rules.map((r) => `-A ${r.join(' ')}`).join('\n')}\nCOMMIT\n`;
    execFileSync('iptables-restore', ['--noflush', '-w', '5'], { input, stdio: ['pipe', 'pipe', 'pipe'] });
    this.rules.push(...rules);
  }

  /** Every rule carrying this net's comment, and this net's cgroups (their processes back to the root first). */
  private removeLeftovers(): void {
    let listing = '';
    try {
      listing = iptables(['-S', 'OUTPUT']);
    } catch (err) {
      console.log(`# partition: cannot list iptables rules: ${(err as Error).message.split('\n')[0]}`);
    }
    for (const line of listing.split('\n')) {
      if (!line.startsWith('-A OUTPUT ') || !line.split(' ').includes(this.tag)) continue;
      try {
        iptables(['-D', ...line.split(' ').slice(1)]);
      } catch (err) {
        console.log(`# partition: cannot remove leftover rule "${line}": ${(err as Error).message.split('\n')[0]}`);
      }
    }
    let dirs: string[] = [];
    try {
      dirs = fs.readdirSync(CGROUP_ROOT).filter((d) => d.startsWith(`tessera-${this.net}-n`));
    } catch {
      /* no cgroup mount: nothing was created */
    }
    for (const d of dirs) {
      const dir = path.join(CGROUP_ROOT, d);
      try {
        for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try {
            fs.writeFileSync(path.join(CGROUP_ROOT, 'cgroup.procs'), pid);
          } catch {
            /* the process exited meanwhile: nothing to move */
          }
        }
        fs.rmdirSync(dir);
      } catch (err) {
        console.log(`# partition: cannot remove cgroup ${dir}: ${(err as Error).message}`);
      }
    }
  }
}
