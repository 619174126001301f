// A node's certificate files. The canonical copies live at
// <data-dir>/certs/<plane>.pem|.key for operators and tools. etcd reads its cp
// pair through a symlinked directory swapped in one rename, because it loads
// certificate and key afresh for each new connection and must never see a
// new certificate beside an old key.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/files.js';
import { certInfo, type Plane, type ServiceName } from './pki.js';

/** Where a node keeps its certificates, and their names (`<data-dir>/certs/`). */
export function certsDir(dataDir: string): string {
  return path.join(dataDir, 'certs');
}

export const CERT_FILES = {
  /** The internode CA: for the node's own use, never handed to clients. */
  ca: 'ca.pem',
  /** The services CA: what clients trust (REST, UI, metrics, database endpoints with TLS). */
  servicesCa: 'services-ca.pem',
  cp: 'cp.pem',
  cpKey: 'cp.key',
  dp: 'dp.pem',
  dpKey: 'dp.key',
  api: 'api.pem',
  apiKey: 'api.key',
  etcdClientCa: 'etcd-client-ca.pem',
  etcdClient: 'etcd-client.pem',
  etcdClientKey: 'etcd-client.key',
} as const;

export function certPath(dataDir: string, file: keyof typeof CERT_FILES): string {
  return path.join(certsDir(dataDir), CERT_FILES[file]);
}

/**
 * A blank node's REST certificate (self-signed, made at start): kept beside
 * the others so a CLI on this host can trust it (see util/run-registry.ts).
 * Not one of CERT_FILES: a failed bootstrap wipes those, and the node still
 * presents this one.
 */
export const BOOTSTRAP_CERT_FILE = 'bootstrap.pem';
/** The client-facing services CA (it signs the REST certificate once it exists). */
export const SERVICES_CA_FILE = 'services-ca.pem';

/**
 * The one answer to "what does a client check this node's REST certificate
 * against": the services CA when the node has one, else the cluster CA, else
 * (a blank node) its bootstrap certificate. Undefined when there is none.
 */
export function restTrustAnchorFile(dataDir: string): string | undefined {
  for (const f of [
    path.join(certsDir(dataDir), SERVICES_CA_FILE),
    certPath(dataDir, 'ca'),
    path.join(certsDir(dataDir), BOOTSTRAP_CERT_FILE),
  ]) {
    if (fs.existsSync(f)) return f;
  }
  return undefined;
}

export function etcdPeerDir(dataDir: string): string {
  return path.join(certsDir(dataDir), 'etcd-peer');
}

export function etcdPeerFiles(dataDir: string): { cert: string; key: string } {
  const cur = path.join(etcdPeerDir(dataDir), 'current');
  return { cert: path.join(cur, 'cert.pem'), key: path.join(cur, 'key.pem') };
}

/**
 * Install a plane's certificate. `etcd: false` leaves etcd's peer pair alone:
 * operator-provided certificates serve the internode channel, while etcd's
 * peers keep the cluster-issued cp certificate (etcd cannot reload its CA, so
 * trusting an operator's CA there would need a rolling restart of the store).
 */
export function installPlaneFiles(dataDir: string, plane: Plane, certPem: string, keyPem: string, opts: { etcd?: boolean } = {}): void {
  if (plane === 'cp' && opts.etcd !== false) {
    const base = etcdPeerDir(dataDir);
    const version = `v-${certInfo(certPem).serial}`;
    const dir = path.join(base, version);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'key.pem'), keyPem, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'cert.pem'), certPem, { mode: 0o644 });
    const tmp = path.join(base, `current.tmp-${process.pid}`);
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(version, tmp);
    fs.renameSync(tmp, path.join(base, 'current'));
    // Keep the previous version a while (a reader may still be opening it); drop older ones.
    const versions = fs.readdirSync(base).filter((d) => d.startsWith('v-') && d !== version);
    versions
      .map((d) => ({ d, t: fs.statSync(path.join(base, d)).mtimeMs }))
      .sort((a, b) => b.t - a.t)
      .slice(1)
      .forEach(({ d }) => fs.rmSync(path.join(base, d), { recursive: true, force: true }));
  }
  writeFileAtomic(certPath(dataDir, plane === 'cp' ? 'cpKey' : 'dpKey'), keyPem, 0o600);
  writeFileAtomic(certPath(dataDir, plane), certPem);
}

/** A client-facing certificate's files: `<data-dir>/certs/<name>.pem` and `.key` (mode 0600). */
export function servicePaths(dataDir: string, name: ServiceName): { cert: string; key: string } {
  return { cert: path.join(certsDir(dataDir), `${name}.pem`), key: path.join(certsDir(dataDir), `${name}.key`) };
}

/** Install a client-facing certificate (key first: a reader that sees the new certificate finds its key). */
export function installServiceFiles(dataDir: string, name: ServiceName, certPem: string, keyPem: string): void {
  const p = servicePaths(dataDir, name);
  writeFileAtomic(p.key, keyPem, 0o600);
  writeFileAtomic(p.cert, certPem);
}

/** A client-facing certificate from disk, or undefined when the node has none yet. */
export function readServiceFiles(dataDir: string, name: ServiceName): { certPem: string; keyPem: string } | undefined {
  const p = servicePaths(dataDir, name);
  if (!fs.existsSync(p.cert) || !fs.existsSync(p.key)) return undefined;
  return { certPem: fs.readFileSync(p.cert, 'utf8'), keyPem: fs.readFileSync(p.key, 'utf8') };
}
