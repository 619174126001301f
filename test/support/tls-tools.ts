// Helpers for the internode security tests: PEM files on disk for external
// tools, an `openssl s_client` runner that can hold the connection open and
// tell whether the server closed it, an `sslscan` runner, and a raw Node TLS
// probe that reports exactly what happened on the wire.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { Bundle } from '../../src/tls/policy.js';
import { reap } from './reaper.js';

/** A temporary directory, removed by `cleanup()`. */
export class TlsTempDir {
  readonly dir: string;
  constructor(prefix = 'tessera-tls-') {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  }
  /** Write cert, key and CA of a bundle; returns their paths. */
  writeBundle(name: string, b: Bundle): { cert: string; key: string; ca: string } {
    const cert = path.join(this.dir, `${name}.crt`);
    const key = path.join(this.dir, `${name}.key`);
    const ca = path.join(this.dir, `${name}.ca.crt`);
    fs.writeFileSync(cert, b.certPem);
    fs.writeFileSync(key, b.keyPem, { mode: 0o600 });
    fs.writeFileSync(ca, b.caPem);
    return { cert, key, ca };
  }
  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface CmdResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The process was still running when `holdMs` ran out (it was then asked to stop). */
  aliveAfterHold: boolean;
  /** Milliseconds from spawn to exit. */
  elapsedMs: number;
  /** ms from spawn to the moment `send` was written (s_client only). */
  sentAt?: number;
}

export interface SClientOptions {
  /** Keep stdin open this long (the connection stays up unless the server closes it). */
  holdMs?: number;
  /** A line to write once the handshake summary has been printed. */
  send?: string;
  /** Hard limit after which the process is killed. */
  killAfterMs?: number;
  /** End the hold as soon as stdout matches (the awaited reply came): `holdMs` is then only the limit. */
  holdUntil?: RegExp;
}

/**
 * Run `openssl s_client` with stdin kept open for `holdMs`. If the process
 * exits before that, the peer closed the connection (or the handshake failed).
 * Afterwards stdin is closed (s_client then closes the connection itself) and
 * the process killed if it lingers.
 */
export function sClient(args: string[], o: SClientOptions = {}): Promise<CmdResult> {
  const holdMs = o.holdMs ?? 1500;
  const killAfterMs = o.killAfterMs ?? holdMs + 4000;
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const p = reap(spawn('openssl', ['s_client', ...args], { stdio: ['pipe', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    let exited = false;
    let sentAt: number | undefined;
    let aliveAfterHold = false;
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (d: string) => {
      stdout += d;
      if (o.holdUntil?.test(stdout)) endHold();
      // s_client prints "Verify return code: ..." at the end of its handshake
      // summary; from then on, stdin lines go to the server.
      if (o.send !== undefined && sentAt === undefined && /Verify return code: .*\n---\n/s.test(stdout)) {
        sentAt = Date.now() - t0;
        p.stdin.write(o.send);
      }
    });
    p.stderr.on('data', (d: string) => (stderr += d));
    p.stdin.on('error', () => undefined); // EPIPE once the process is gone
    p.on('error', reject);
    let held = false;
    const endHold = () => {
      if (held) return;
      held = true;
      clearTimeout(hold);
      aliveAfterHold = !exited;
      p.stdin.end();
    };
    const hold = setTimeout(endHold, holdMs);
    const kill = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
    p.on('close', (code, signal) => {
      exited = true;
      clearTimeout(hold);
      clearTimeout(kill);
      resolve({ code, signal, stdout, stderr, aliveAfterHold, elapsedMs: Date.now() - t0, sentAt });
    });
    p.on('exit', () => (exited = true));
  });
}

/** Run a command to completion (killed after `timeoutMs`). */
export function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<CmdResult> {
  return runEnv(cmd, args, {}, timeoutMs);
}

export interface ProbeResult {
  /** The client side of the handshake completed ('secureConnect'). */
  secureConnected: boolean;
  alpn: string | false | null;
  protocol: string | null;
  cipher: string | null;
  /** The key-exchange group, as the client sees it (e.g. X25519MLKEM768). */
  group?: string;
  peerSerial?: string;
  peerFingerprint256?: string;
  /** The first error the socket reported (e.g. an alert from the server). */
  error?: NodeJS.ErrnoException;
  /** Lines the server sent back. */
  replies: string[];
  /** The socket has closed (kept up to date after the watch window for `keepOpen` sockets). */
  closed: boolean;
  /** The socket closed before the end of the observation window. */
  closedDuringWatch?: boolean;
  /** ms from 'secureConnect' (or from the start, without it) to 'close'. */
  closedAfterMs?: number;
  /** The still-open socket when `keepOpen` was asked and it did not close. */
  socket?: tls.TLSSocket;
}

export interface ProbeOptions extends tls.ConnectionOptions {
  /** Written right after the client's handshake completes. */
  send?: string;
  /** How long to watch the connection. */
  watchMs?: number;
  /** Stop watching as soon as a reply line arrives. */
  untilReply?: boolean;
  /** Do not destroy the socket at the end if it is still open; hand it back. */
  keepOpen?: boolean;
}

/**
 * Connect with Node's TLS client, send one line, and watch what happens for
 * `watchMs`: handshake, negotiated parameters, replies, alerts, close.
 * `closed` only ever reports a close we did not cause ourselves.
 */
export function probe(o: ProbeOptions): Promise<ProbeResult> {
  const { send, watchMs = 1500, untilReply = false, keepOpen = false, ...conn } = o;
  return new Promise((resolve) => {
    const t0 = Date.now();
    let tSecure: number | undefined;
    const r: ProbeResult = { secureConnected: false, alpn: null, protocol: null, cipher: null, replies: [], closed: false };
    const s = tls.connect({ rejectUnauthorized: true, ...conn });
    let buf = '';
    let done = false;
    let destroyedByUs = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      r.closedDuringWatch = r.closed;
      if (!r.closed && keepOpen) r.socket = s;
      else if (!r.closed) {
        destroyedByUs = true;
        s.destroy();
      }
      resolve(r);
    };
    const timer = setTimeout(finish, watchMs);
    s.setEncoding('utf8');
    s.on('secureConnect', () => {
      tSecure = Date.now();
      r.secureConnected = true;
      r.alpn = s.alpnProtocol;
      r.protocol = s.getProtocol();
      r.cipher = s.getCipher()?.name ?? null; // OpenSSL spelling, as in policy.ts
      const kx = s.getEphemeralKeyInfo() as { name?: string } | null;
      r.group = kx?.name;
      const pc = s.getPeerCertificate();
      if (pc?.serialNumber) {
        r.peerSerial = pc.serialNumber.toLowerCase().replace(/^0+/, '');
        r.peerFingerprint256 = pc.fingerprint256;
      }
      if (send !== undefined) s.write(send);
    });
    s.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        r.replies.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      if (untilReply && r.replies.length > 0) finish();
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      r.error ??= err;
    });
    s.on('close', () => {
      // Kept up to date after the watch window too: the holder of a kept-open
      // socket polls r.closed and r.replies.
      if (destroyedByUs) return;
      r.closed = true;
      r.closedAfterMs = Date.now() - (tSecure ?? t0);
      finish();
    });
  });
}

/**
 * sslscan has no option to send ALPN, and the internode server closes every
 * connection that names no plane by ALPN right after the handshake. In TLS 1.3
 * that does not matter to sslscan (it enumerates 1.3 suites from the raw
 * ServerHello), but for TLS 1.2 it counts a suite as accepted only when
 * OpenSSL's SSL_connect() completes, and the server's CCS+Finished never reach
 * it: the server destroys the socket in 'secureConnection' before they are
 * flushed. So, to let sslscan see the TLS 1.2 suites, we preload a tiny shim
 * into it that wraps libssl's SSL_new() and sets the ALPN list from
 * $TESSERA_SHIM_ALPN on every SSL object it creates. No OpenSSL headers are
 * needed: the two functions are looked up with dlsym(RTLD_NEXT).
 * Returns the path of the built .so, or an error string when no C compiler.
 */
const ALPN_SHIM_C = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
SSL *SSL_new(SSL_CTX *ctx) {
  static SSL *(*real_new)(SSL_CTX *) = 0;
  static int (*set_alpn)(SSL *, const unsigned char *, unsigned int) = 0;
  if (!real_new) real_new = (SSL *(*)(SSL_CTX *))dlsym(RTLD_NEXT, "SSL_new");
  if (!set_alpn) set_alpn = (int (*)(SSL *, const unsigned char *, unsigned int))dlsym(RTLD_NEXT, "SSL_set_alpn_protos");
  SSL *s = real_new(ctx);
  const char *p = getenv("TESSERA_SHIM_ALPN");
  if (s && p && *p && set_alpn) {
    unsigned char buf[256];
    size_t n = strlen(p);
    if (n < 255) {
      buf[0] = (unsigned char)n;
      memcpy(buf + 1, p, n);
      set_alpn(s, buf, (unsigned int)(n + 1));
    }
  }
  return s;
}
`;

export async function buildAlpnShim(dir: string): Promise<string | { error: string }> {
  const src = path.join(dir, 'tls-alpn-shim.c');
  const so = path.join(dir, 'tls-alpn-shim.so');
  fs.writeFileSync(src, ALPN_SHIM_C);
  try {
    const r = await run('cc', ['-shared', '-fPIC', '-O2', '-o', so, src, '-ldl'], 60_000);
    if (r.code !== 0) return { error: `cc failed: ${r.stderr}` };
  } catch (err) {
    return { error: `no C compiler: ${(err as Error).message}` };
  }
  return so;
}

/** Like run(), with extra environment variables. */
export function runEnv(cmd: string, args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const p = reap(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (d: string) => (stdout += d));
    p.stderr.on('data', (d: string) => (stderr += d));
    p.on('error', reject);
    const kill = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code, signal) => {
      clearTimeout(kill);
      resolve({ code, signal, stdout, stderr, aliveAfterHold: false, elapsedMs: Date.now() - t0 });
    });
  });
}
