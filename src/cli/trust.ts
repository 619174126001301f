// How the CLI decides to trust a node's REST certificate. It always verifies,
// against the first of:
//   1. --ca <file>, or the file named by TESSERA_CA;
//   2. --fingerprint sha256:<hex>: the node's REST CA (or a blank node's
//      certificate), fetched and accepted only if its fingerprint matches;
//   3. the node's own files, when the node runs on this host (found through the
//      run-file registry, util/run-registry.ts): its services CA, cluster CA,
//      or a blank node's bootstrap certificate (pki/node-files.ts);
//   4. the CA that `cluster create` / `cluster join` saved on this machine for
//      that address ($XDG_CONFIG_HOME/tessera/trust/<host>_<port>.pem, or
//      ~/.config/tessera/trust/…);
//   5. otherwise the system's roots (an operator's publicly issued certificate).
// A certificate that fails is refused with what is wrong and how to fix it;
// --insecure alone skips the check, with a warning.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findLocalNode } from '../util/run-registry.js';
import { restTrustAnchorFile } from '../pki/node-files.js';
import { parseFingerprint, sha256Fingerprint } from '../pki/pki.js';
import { type ConnectError, requestJson } from '../util/https-json.js';

export interface Trust {
  caPem?: string;
  insecure?: boolean;
  /** Where the trust came from, for messages. */
  source: string;
}

export interface TrustOptions {
  ca?: string;
  insecure?: boolean;
  fingerprint?: string;
}

export function savedTrustDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'tessera', 'trust');
}

export const savedTrustFile = (host: string, port: number) =>
  path.join(savedTrustDir(), `${host.replace(/[^0-9A-Za-z.-]/g, '_')}_${port}.pem`);

/** Remember a cluster's REST CA for this address (after create or join). */
export function saveTrust(host: string, port: number, caPem: string): string {
  const f = savedTrustFile(host, port);
  fs.mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 });
  fs.writeFileSync(f, caPem, { mode: 0o600 });
  return f;
}

export class TrustError extends Error {}

export async function resolveTrust(o: TrustOptions, host: string, port: number): Promise<Trust> {
  if (o.insecure) return { insecure: true, source: '--insecure' };
  const file = o.ca ?? process.env.TESSERA_CA;
  if (file) {
    const what = o.ca ? `--ca ${file}` : `TESSERA_CA=${file}`;
    try {
      return { caPem: fs.readFileSync(file, 'utf8'), source: what };
    } catch (e) {
      throw new TrustError(`cannot read ${what}: ${(e as Error).message}`);
    }
  }
  if (o.fingerprint) {
    const want = parseFingerprint(o.fingerprint);
    if (!want) throw new TrustError(`--fingerprint must be sha256:<64 hex digits>, got ${o.fingerprint}`);
    const r = await requestJson<{ rest_ca_cert?: string }>({ host, port, path: '/v1/bootstrap', timeoutMs: 10_000 });
    const pem = typeof r.body === 'object' ? r.body?.rest_ca_cert : undefined;
    let got: string | undefined;
    try {
      got = pem ? sha256Fingerprint(pem) : undefined;
    } catch {
      got = undefined; // not a certificate
    }
    if (got !== want)
      throw new TrustError(`${host}:${port} presents ${got ?? 'no certificate'}, not --fingerprint ${want}: refusing to talk to it`);
    return { caPem: pem, source: `--fingerprint ${want}` };
  }
  const local = findLocalNode(host, port);
  const anchor = local && restTrustAnchorFile(local.data_dir);
  if (anchor) {
    try {
      return { caPem: fs.readFileSync(anchor, 'utf8'), source: `${anchor} (the node runs on this host)` };
    } catch {
      // unreadable (another user's node): try the other sources
    }
  }
  const saved = savedTrustFile(host, port);
  if (fs.existsSync(saved)) return { caPem: fs.readFileSync(saved, 'utf8'), source: `${saved} (saved by cluster create/join)` };
  return { source: "the system's trusted roots (no cluster CA known for this address)" };
}

/** The one-line explanation of a refused certificate, with the ways out. */
export function certProblem(err: ConnectError, host: string, port: number, t: Trust): string {
  const fix = t.source.startsWith('the system')
    ? `pass --ca <cluster CA file> (or TESSERA_CA), run the CLI on the node's host, or --fingerprint sha256:<hex> as the node logs it at start; --insecure skips the check`
    : t.source.includes('saved by')
      ? `if that cluster was re-created, delete ${savedTrustFile(host, port)}; or pass --ca <file>; --insecure skips the check`
      : `check the CA file, or --insecure to skip the check`;
  return `${err.message.replace(/^the certificate of /, 'the REST certificate of ')} (checked against ${t.source}). Fix: ${fix}`;
}

/**
 * A services CA rollover publishes the next CA beside the current one
 * (GET /v1/bootstrap `rest_ca_cert` is the bundle) before any server uses it:
 * a CLI that trusts a node through its saved CA saves the bundle it now
 * publishes, fetched over a connection verified by the saved CA. True when
 * the saved file changed.
 */
export async function refreshSavedTrust(host: string, port: number, saved: string): Promise<boolean> {
  const r = await requestJson<{ rest_ca_cert?: string }>({ host, port, path: '/v1/bootstrap', caPem: saved, timeoutMs: 10_000 });
  const bundle = r.status === 200 && typeof r.body === 'object' ? r.body?.rest_ca_cert : undefined;
  const pems = (text: string) => (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => p.trim());
  if (!bundle || !pems(bundle).length) return false;
  const have = pems(saved);
  const got = pems(bundle);
  // Only ever widen towards what the cluster publishes; a bundle that drops everything known is not taken on its word.
  if (got.length === have.length && got.every((p) => have.includes(p))) return false;
  if (!got.some((p) => have.includes(p)) && !have.some((p) => got.includes(p))) return false;
  const merged = [...new Set([...have, ...got])].join('\n') + '\n';
  if (merged.trim() === saved.trim()) return false;
  saveTrust(host, port, merged);
  return true;
}
