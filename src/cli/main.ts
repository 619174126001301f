// The `tessera` command: runs a node daemon, and speaks to a node's REST API
// with rladmin's grammar (`tune cluster data_internode_encryption enabled`).
import fs from 'node:fs';
import { Command } from 'commander';
import { applyProcessDefaults, KEY_EXCHANGES, type KeyExchange } from '../tls/policy.js';
import { CERT_NAMES } from '../pki/pki.js';
import { DEFAULT_PORTS, SOFTWARE_VERSION } from '../control/membership/config.js';
import { requestJson, errorText, ConnectError, type JsonResponse } from '../util/https-json.js';
import { addShapeCommands, tuneReplication, type ShapeCliDeps } from './bdb-shape.js';
import { type Trust, TrustError, certProblem, refreshSavedTrust, resolveTrust, saveTrust } from './trust.js';
import { parseFingerprint } from '../pki/pki.js';
import {
  formatStatus,
  formatInfo,
  type NodeView,
  type BdbView,
  type NodeAlerts,
  STATUS_SECTIONS,
  type StatusSection,
  type StatusOptions,
} from './format.js';
import { formatVerify, verifyEncryption } from './verify.js';
import type { NodeLinksReport } from '../internode/links.js';
import { addShardCommands, followAction, tuneShardsCount } from './shard-ops.js';
import { addNodeStart } from './node-start.js';
import { maintenanceMode } from './maintenance.js';

applyProcessDefaults();

class CliError extends Error {
  /** 1 by default; `verify encryption` keeps 1 for violations and exits 2 when it cannot check. */
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Pull `key value` pairs out of rladmin-style words; unknown keys are an error. */
function pairs(words: string[], allowed: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < words.length; i += 2) {
    const k = words[i];
    if (!allowed.includes(k)) throw new CliError(`unexpected word '${k}' (expected one of: ${allowed.join(', ')})`);
    if (i + 1 >= words.length) throw new CliError(`'${k}' needs a value`);
    out[k] = words[i + 1];
  }
  return out;
}

interface GlobalOpts {
  node: string;
  port: string;
  username?: string;
  password?: string;
  ca?: string;
  insecure?: boolean;
  fingerprint?: string;
}

function target(cmd: Command) {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const port = Number(g.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError(`invalid --port ${g.port}`);
  return { host: g.node, port };
}

const trusted = new Map<string, Trust>();

/** The trust for the node a command talks to (cli/trust.ts), resolved once per run. */
async function trustFor(cmd: Command): Promise<Trust> {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const { host, port } = target(cmd);
  const key = `${host}:${port}`;
  let t = trusted.get(key);
  if (!t) {
    try {
      t = await resolveTrust({ ca: g.ca, insecure: g.insecure, fingerprint: g.fingerprint }, host, port);
    } catch (e) {
      if (e instanceof TrustError) throw new CliError(e.message);
      throw e;
    }
    if (t.insecure)
      process.stderr.write(
        `warning: --insecure: the REST certificate of ${key} is not verified; anyone on the path can read your credentials\n`,
      );
    trusted.set(key, t);
  }
  return t;
}

function credentials(cmd: Command, words: Record<string, string> = {}) {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const username = words.username ?? g.username ?? process.env.TESSERA_USERNAME;
  const password = words.password ?? g.password ?? process.env.TESSERA_PASSWORD;
  if (!username || !password)
    throw new CliError('credentials needed: username/password words, --username/--password, or TESSERA_USERNAME/TESSERA_PASSWORD');
  return { username, password };
}

async function api<T>(cmd: Command, method: string, p: string, body?: unknown, auth = true): Promise<T> {
  return (await apiResponse<T>(cmd, method, p, body, auth)).body;
}

/** A REST call whose answer's headers matter too (optimize_shards_placement's cluster-state-id), with request headers of its own. */
async function apiResponse<T>(
  cmd: Command,
  method: string,
  p: string,
  body?: unknown,
  auth = true,
  headers?: Record<string, string>,
): Promise<JsonResponse<T>> {
  const t = target(cmd);
  const trust = await trustFor(cmd);
  let res: JsonResponse<T>;
  try {
    res = await requestJson<T>({
      ...t,
      caPem: trust.caPem,
      systemTrust: !trust.insecure,
      method,
      path: p,
      body,
      ...(auth ? credentials(cmd) : {}),
      ...(headers ? { headers } : {}),
      timeoutMs: 120_000,
    });
  } catch (e) {
    if (e instanceof ConnectError && e.code === 'CERT') throw new CliError(certProblem(e, t.host, t.port, trust));
    throw e;
  }
  if (res.status < 200 || res.status >= 300) throw new CliError(errorText(res));
  await refreshSaved(t.host, t.port, trust);
  return res;
}

const refreshed = new Set<string>();
/** Once per run: a CLI trusting a node through its saved CA saves the bundle the cluster publishes (a services CA rollover). */
async function refreshSaved(host: string, port: number, trust: Trust): Promise<void> {
  const key = `${host}:${port}`;
  if (refreshed.has(key) || !trust.caPem || !trust.source.includes('saved by')) return;
  refreshed.add(key);
  try {
    if (await refreshSavedTrust(host, port, trust.caPem))
      process.stderr.write(`note: the cluster publishes a new CA bundle; saved for ${key}\n`);
  } catch (e) {
    // The command itself succeeded; the saved CA still works: try again next time.
    process.stderr.write(`warning: cannot refresh the saved CA bundle for ${key}: ${(e as Error).message}\n`);
  }
}

/** After create or join: print the cluster's REST CA fingerprint and save the CA for this address. */
function rememberCa(cmd: Command, res: { rest_ca_cert?: string; rest_ca_fingerprint?: string }): void {
  if (!res.rest_ca_cert || !res.rest_ca_fingerprint) return;
  console.log(`Cluster CA fingerprint: ${res.rest_ca_fingerprint}`);
  const { host, port } = target(cmd);
  try {
    const f = saveTrust(host, port, res.rest_ca_cert);
    console.log(`CA saved to ${f}`);
  } catch (e) {
    process.stderr.write(`warning: cannot save the cluster CA (${(e as Error).message}); pass --ca next time\n`);
  }
  trusted.delete(`${host}:${port}`); // the node now presents the cluster's certificate
}

function enabledWord(v: string): boolean {
  if (v === 'enabled') return true;
  if (v === 'disabled') return false;
  throw new CliError(`expected 'enabled' or 'disabled', got '${v}'`);
}

async function removeNode(cmd: Command, uid: string): Promise<void> {
  if (!/^\d+$/.test(uid)) throw new CliError(`invalid node uid '${uid}'`);
  const r = await api<{ denied_serials?: string[]; action_uid?: string }>(cmd, 'POST', `/v1/nodes/${uid}/actions/remove`, {});
  if (r.action_uid !== undefined) {
    // The node hosts shards: they migrate away first (an action), then it goes.
    console.log(`Removing node ${uid}: migrating its shards to the other nodes (action ${r.action_uid})`);
    await followAction(cmd, { api }, r.action_uid);
    console.log(`Node ${uid} removed`);
    return;
  }
  console.log(`Node ${uid} removed; certificates denied: ${(r.denied_serials ?? []).join(', ')}`);
}

async function findDb(cmd: Command, ref: string): Promise<BdbView> {
  const m = /^(?:db:)?(\d+)$/.exec(ref);
  if (m) return api<BdbView>(cmd, 'GET', `/v1/bdbs/${m[1]}`);
  const all = await api<BdbView[]>(cmd, 'GET', '/v1/bdbs');
  const b = all.find((x) => x.name === ref);
  if (!b) throw new CliError(`no database named ${ref}`);
  return b;
}

/** verify encryption: gather every node's internode links and judge them. Exit 0 clean, 1 on violations, 2 when it cannot check. */
async function verifyEncryptionCommand(cmd: Command, words: string[], o: { requireAll?: boolean; json?: boolean }): Promise<void> {
  try {
    const w = pairs(words, ['db']);
    const db = w.db === undefined ? undefined : await findDb(cmd, w.db);
    const [nodes, bdbs, policy] = await Promise.all([
      api<NodeView[]>(cmd, 'GET', '/v1/nodes'),
      api<BdbView[]>(cmd, 'GET', '/v1/bdbs'),
      api<{ internode_key_exchange: KeyExchange }>(cmd, 'GET', '/v1/cluster/policy'),
    ]);
    // The node asked answers for the others over control RPC; one that does not answer fails the check.
    const reports = await Promise.all(nodes.map((n) => api<NodeLinksReport>(cmd, 'GET', `/v1/nodes/${n.uid}/internode_links`)));
    const r = verifyEncryption(nodes, bdbs, reports, {
      db: db?.uid,
      requireAll: !!o.requireAll,
      keyExchange: policy.internode_key_exchange,
    });
    process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatVerify(r));
    process.exitCode = r.ok ? 0 : 1;
  } catch (err) {
    throw new CliError(`cannot verify encryption: ${(err as Error).message}`, 2);
  }
}

async function waitActive(cmd: Command, uid: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = await api<BdbView>(cmd, 'GET', `/v1/bdbs/${uid}`);
    if (b.status === 'active') return;
    if (b.status === 'creation-failed') throw new CliError(`database ${uid} failed: ${b.error ?? 'unknown error'}`);
    if (Date.now() > deadline) throw new CliError(`database ${uid} is still ${b.status} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The REST helpers of the shape commands (cli/bdb-shape.ts). */
const shapeDeps: ShapeCliDeps = {
  api: (cmd, method, p, body) => api(cmd, method, p, body),
  apiResponse: (cmd, method, p, body, headers) => apiResponse(cmd, method, p, body, true, headers),
  findDb: (cmd, ref) => findDb(cmd, ref),
};

/** rladmin `tune cluster` database defaults, passed to PUT /v1/cluster/policy as given. */
const POLICY_DEFAULTS = ['default_sharded_proxy_policy', 'default_non_sharded_proxy_policy', 'default_shards_placement'];

/** `status [nodes|databases|endpoints|shards] [extra <what>] [issues_only]`, rladmin's words. */
function statusOptions(words: string[]): StatusOptions {
  const o: StatusOptions = {};
  const sections = new Set<StatusSection>();
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if ((STATUS_SECTIONS as readonly string[]).includes(w)) sections.add(w as StatusSection);
    else if (w === 'issues_only') o.issuesOnly = true;
    else if (w === 'extra') {
      const what = words[++i];
      if (what === undefined) throw new CliError("'extra' needs a value (all)");
      // Tessera's extra columns are one set; rladmin's finer choices name parts of it.
      if (!['all', 'nodestats', 'state_machine'].includes(what))
        throw new CliError(`unsupported 'extra ${what}' (supported: all, nodestats, state_machine)`);
      o.extra = true;
    } else throw new CliError(`unexpected word '${w}' (expected: ${STATUS_SECTIONS.join(', ')}, extra all, issues_only)`);
  }
  if (sections.size) o.sections = sections;
  return o;
}

/** rladmin `cluster certificate set internal …`: operator-provided internode certificates (PUT /v1/cluster/certificates). */
async function setInternalCertificates(cmd: Command, words: string[]): Promise<void> {
  const [what, ...rest] = words;
  if (what !== 'internal')
    throw new CliError(
      `unsupported certificate '${what ?? ''}' (expected: set internal dpine_certificate_file <f> dpine_key_file <f> cpine_certificate_file <f> cpine_key_file <f>)`,
    );
  const w = pairs(rest, ['dpine_certificate_file', 'dpine_key_file', 'cpine_certificate_file', 'cpine_key_file']);
  const certificates: { name: string; certificate: string; key: string }[] = [];
  for (const [prefix, name] of [
    ['cpine', 'ccs_internode_encryption'],
    ['dpine', 'data_internode_encryption'],
  ] as const) {
    const certFile = w[`${prefix}_certificate_file`];
    const keyFile = w[`${prefix}_key_file`];
    if (certFile === undefined && keyFile === undefined) continue;
    if (certFile === undefined || keyFile === undefined)
      throw new CliError(`${prefix}_certificate_file and ${prefix}_key_file go together`);
    const read = (f: string) => {
      try {
        return fs.readFileSync(f, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    };
    certificates.push({ name, certificate: read(certFile), key: read(keyFile) });
  }
  if (!certificates.length)
    throw new CliError('set internal needs dpine_certificate_file/dpine_key_file and/or cpine_certificate_file/cpine_key_file');
  await api(cmd, 'PUT', '/v1/cluster/certificates', { certificates });
  console.log(`Set internal certificates (${certificates.map((c) => c.name).join(', ')}) on every node`);
}

export function buildProgram(): Command {
  const program = new Command('tessera')
    .description('Tessera: a Redis-compatible database cluster with internode encryption')
    .version(SOFTWARE_VERSION, '--version', 'print the software version')
    .option('--node <ip>', 'node whose REST API to talk to', '127.0.0.1')
    .option('--port <port>', 'REST API port', String(DEFAULT_PORTS.rest))
    .option('--username <email>', 'admin user (or TESSERA_USERNAME)')
    .option('--password <password>', 'admin password (or TESSERA_PASSWORD)')
    .option(
      '--ca <file>',
      "the cluster's services CA (PEM, <data-dir>/certs/services-ca.pem) to verify the REST API's certificate (or TESSERA_CA); see cli/trust.ts for where else trust comes from",
    )
    .option(
      '--fingerprint <sha256:hex>',
      'trust the node whose REST CA (or, on a blank node, certificate) has this SHA-256 fingerprint, as the node logs it at start',
    )
    .option('--insecure', "do not verify the REST API's certificate (prints a warning)")
    .showHelpAfterError(false)
    .configureOutput({ outputError: (s, write) => write(s.split('\n')[0] + '\n') });

  const node = program
    .command('node')
    .description('run or manage a node: node start …, node <uid> remove, node <uid> maintenance_mode on|off …');
  node
    .command('remove', { hidden: true })
    .argument('<uid>')
    .action(async (uid: string, _o, cmd: Command) => removeNode(cmd, uid));
  node
    .command('maintenance_mode', { hidden: true })
    .argument('<uid>')
    .argument('<mode>')
    .argument('[words...]')
    .action(async (uid: string, mode: string, words: string[], _o, cmd: Command) => maintenanceMode(cmd, api, uid, mode, words));
  addNodeStart(node);

  const cluster = program.command('cluster').description('create, join and manage the cluster');
  cluster
    .command('create')
    .description('create a cluster: cluster create name <name> username <email> password <pw>')
    .argument('<words...>')
    .action(async (words: string[], _o, cmd: Command) => {
      const w = pairs(words, ['name', 'username', 'password', 'addr']);
      if (!w.name) throw new CliError("'name' is required");
      const creds = credentials(cmd, w);
      const body = {
        action: 'create_cluster',
        cluster: { name: w.name },
        credentials: creds,
        ...(w.addr ? { node: { identity: { addr: w.addr } } } : {}),
      };
      const res = await api<{ rest_ca_cert?: string; rest_ca_fingerprint?: string }>(
        cmd,
        'POST',
        '/v1/bootstrap/create_cluster',
        body,
        false,
      );
      console.log(`Cluster ${w.name} created; node ${target(cmd).host} is node 1`);
      rememberCa(cmd, res);
    });
  cluster
    .command('master')
    .description('show the cluster master, or change it: cluster master [set <node_uid>]')
    .argument('[words...]')
    .action(async (words: string[], _o, cmd: Command) => {
      if (words.length === 0) {
        const c = await api<{ master_node_uid: number | null }>(cmd, 'GET', '/v1/cluster');
        if (c.master_node_uid === null) throw new CliError('the cluster has no master right now (an election is under way)');
        console.log(`Node ${c.master_node_uid} is the cluster master node`);
        return;
      }
      if (words[0] !== 'set' || words.length !== 2 || !/^\d+$/.test(words[1]))
        throw new CliError("expected 'cluster master' or 'cluster master set <node_uid>'");
      await api(cmd, 'POST', '/v1/cluster/actions/change_master', { node_uid: words[1] });
      console.log(`Node ${words[1]} set to be the cluster master node`);
    });
  cluster
    .command('join')
    .description('join a cluster: cluster join nodes <member-ip> username <email> password <pw>')
    .argument('<words...>')
    .action(async (words: string[], _o, cmd: Command) => {
      const w = pairs(words, ['nodes', 'username', 'password', 'addr', 'ca_fingerprint']);
      if (!w.nodes) throw new CliError("'nodes' is required");
      const creds = credentials(cmd, w);
      let pin: string | undefined;
      if (w.ca_fingerprint !== undefined) {
        pin = parseFingerprint(w.ca_fingerprint);
        if (!pin) throw new CliError('ca_fingerprint must be sha256:<64 hex digits>, as cluster create printed it');
      } else {
        process.stderr.write(
          `warning: joining without ca_fingerprint: the member's identity is not checked before the credentials are sent to it; pass ca_fingerprint sha256:<hex> as cluster create printed it\n`,
        );
      }
      const cluster = { nodes: w.nodes.split(','), ...(pin ? { ca_fingerprint: pin } : {}) };
      const body = { action: 'join_cluster', cluster, credentials: creds, ...(w.addr ? { node: { identity: { addr: w.addr } } } : {}) };
      const res = await api<{ local_node_info: { uid: number }; rest_ca_cert?: string; rest_ca_fingerprint?: string }>(
        cmd,
        'POST',
        '/v1/bootstrap/join_cluster',
        body,
        false,
      );
      console.log(`Node ${target(cmd).host} joined the cluster as node ${res.local_node_info.uid}`);
      rememberCa(cmd, res);
    });

  cluster
    .command('certificate')
    .description(
      'cluster certificate rotate [name] | cluster certificate rotate_ca internode|services | cluster certificate set internal dpine_certificate_file <f> dpine_key_file <f> cpine_certificate_file <f> cpine_key_file <f>',
    )
    .argument('<action>', 'rotate, rotate_ca or set')
    .argument(
      '[words...]',
      'rotate: ccs_internode_encryption or data_internode_encryption (default: both); set: internal and the file pairs',
    )
    .action(async (action: string, words: string[], _o, cmd: Command) => {
      if (action === 'rotate') {
        const [name, ...rest] = words;
        if (rest.length) throw new CliError(`unexpected word '${rest[0]}'`);
        if (name !== undefined && !(CERT_NAMES as readonly string[]).includes(name)) {
          throw new CliError(`unknown certificate '${name}' (expected ${CERT_NAMES.join(' or ')})`);
        }
        const r = await api<{ action_uid?: string }>(cmd, 'POST', '/v1/cluster/certificates/rotate', name ? { name } : {});
        // The rotation is an action: print what each node did (and follow it, should it still run).
        if (r.action_uid !== undefined) await followAction(cmd, { api }, r.action_uid);
        console.log('Finished successfully');
        return;
      }
      if (action === 'rotate_ca') {
        // A CA rollover: an action that follows every node; its steps are printed as they come.
        const [ca, ...rest] = words;
        if (rest.length) throw new CliError(`unexpected word '${rest[0]}'`);
        if (ca !== 'internode' && ca !== 'services') throw new CliError(`rotate_ca needs the CA: internode or services, not '${ca ?? ''}'`);
        const r = await api<{ action_uid: string }>(cmd, 'POST', '/v1/cluster/certificates/ca/rotate', { ca });
        console.log(`CA rollover started (action ${r.action_uid})`);
        await followAction(cmd, { api }, r.action_uid);
        console.log('Finished successfully');
        return;
      }
      if (action !== 'set') throw new CliError(`unknown certificate action '${action}' (expected: rotate, rotate_ca, set)`);
      await setInternalCertificates(cmd, words);
    });

  program
    .command('status')
    .description(
      'cluster, nodes, databases, endpoints, shards (rladmin status [nodes|databases|endpoints|shards] [extra all] [issues_only])',
    )
    .argument('[words...]')
    .action(async (words: string[], _o, cmd: Command) => {
      const o = statusOptions(words);
      const [cl, nodes, bdbs, alerts, actions] = await Promise.all([
        api<Record<string, unknown>>(cmd, 'GET', '/v1/cluster'),
        api<NodeView[]>(cmd, 'GET', '/v1/nodes'),
        api<BdbView[]>(cmd, 'GET', '/v1/bdbs'),
        api<NodeAlerts>(cmd, 'GET', '/v1/nodes/alerts'),
        o.extra ? api<{ actions: NonNullable<StatusOptions['actions']> }>(cmd, 'GET', '/v1/actions') : undefined,
      ]);
      process.stdout.write(formatStatus(cl, nodes, target(cmd).host, bdbs, alerts, { ...o, actions: actions?.actions }));
    });

  program
    .command('verify')
    .description('check the cluster: verify encryption')
    .command('encryption')
    .description(
      "list every live internode connection and check it against its database's data_internode_encryption and the TLS policy (exit 0: clean, 1: violations, 2: cannot check)",
    )
    .argument('[words...]', "db <uid|name>: check only that database's data links")
    .option('--require-all', "also fail when any database's data crosses nodes in plaintext")
    .option('--json', 'print a machine-readable report')
    .action(async (words: string[], o: { requireAll?: boolean; json?: boolean }, cmd: Command) => verifyEncryptionCommand(cmd, words, o));

  const info = program.command('info').description('key: value details');
  info.command('cluster').action(async (_o, cmd: Command) => {
    const [cl, policy] = await Promise.all([
      api<Record<string, unknown>>(cmd, 'GET', '/v1/cluster'),
      api<Record<string, unknown>>(cmd, 'GET', '/v1/cluster/policy'),
    ]);
    process.stdout.write(formatInfo({ ...cl, ...policy }));
  });

  const dbInfo = (b: BdbView) => {
    const { shards: _s, endpoints, ...rest } = b as BdbView & Record<string, unknown>;
    return formatInfo({ db: `db:${b.uid}`, ...rest, endpoint: endpoints[0]?.addr.map((a) => `${a}:${b.port}`).join(',') });
  };
  info
    .command('db')
    .argument('[db]', 'database: <uid>, db:<uid> or its name (default: every database)')
    .action(async (ref: string | undefined, _o, cmd: Command) => {
      // rladmin `info db` with no database lists them all, one block each.
      const list = ref === undefined ? await api<BdbView[]>(cmd, 'GET', '/v1/bdbs') : [await findDb(cmd, ref)];
      process.stdout.write(list.map(dbInfo).join('\n'));
    });
  info
    .command('node')
    .argument('[uid]', 'node: <uid> or node:<uid> (default: every node)')
    .action(async (ref: string | undefined, _o, cmd: Command) => {
      let list: (NodeView & Record<string, unknown>)[];
      if (ref === undefined) list = await api(cmd, 'GET', '/v1/nodes');
      else {
        const m = /^(?:node:)?(\d+)$/.exec(ref);
        if (!m) throw new CliError(`invalid node '${ref}' (expected <uid> or node:<uid>)`);
        list = [await api(cmd, 'GET', `/v1/nodes/${m[1]}`)];
      }
      process.stdout.write(list.map(({ uid, ...rest }) => formatInfo({ node: `node:${uid}`, ...rest })).join('\n'));
    });

  const tune = program.command('tune').description('change settings (rladmin tune)');
  tune
    .command('db')
    .argument('<db>', 'database: <uid>, db:<uid> or its name')
    .argument('<words...>', 'setting value pairs, e.g. data_internode_encryption enabled')
    .action(async (ref: string, words: string[], _o, cmd: Command) => {
      const w = pairs(words, [
        'data_internode_encryption',
        'tls_mode',
        'replication',
        'shards_count',
        'min_replicas_to_write',
        'min_replicas_max_lag',
      ]);
      const b = await findDb(cmd, ref);
      if (w.shards_count !== undefined) {
        await tuneShardsCount(cmd, { api: (c, method, p, body) => api(c, method, p, body) }, b.uid, w);
        await waitActive(cmd, b.uid);
        console.log('Finished successfully');
        return;
      }
      const body: Record<string, unknown> = {};
      if (w.data_internode_encryption !== undefined) body.data_internode_encryption = enabledWord(w.data_internode_encryption);
      if (w.tls_mode !== undefined) body.tls_mode = enabledWord(w.tls_mode) ? 'enabled' : 'disabled';
      for (const k of ['min_replicas_to_write', 'min_replicas_max_lag'] as const)
        if (w[k] !== undefined) {
          if (!/^\d+$/.test(w[k])) throw new CliError(`${k} needs a whole number, not '${w[k]}'`);
          body[k] = Number(w[k]);
        }
      if (Object.keys(body).length) await api(cmd, 'PUT', `/v1/bdbs/${b.uid}`, body);
      // Replication is a change of its own, an action followed step by step (cli/bdb-shape.ts).
      if (w.replication !== undefined) await tuneReplication(cmd, shapeDeps, b.uid, enabledWord(w.replication));
      // rladmin answers once the change is in place; so do we.
      await waitActive(cmd, b.uid);
      console.log('Finished successfully');
    });
  tune
    .command('cluster')
    .argument('<words...>', 'setting value pairs, e.g. data_internode_encryption enabled')
    .action(async (words: string[], _o, cmd: Command) => {
      const w = pairs(words, [
        'data_internode_encryption',
        'internode_key_exchange',
        'failover_timeout',
        'slave_ha',
        'slave_ha_grace_period',
        ...POLICY_DEFAULTS,
      ]);
      const body: Record<string, unknown> = {};
      if (w.data_internode_encryption !== undefined) body.data_internode_encryption = enabledWord(w.data_internode_encryption);
      if (w.internode_key_exchange !== undefined) {
        if (!(KEY_EXCHANGES as readonly string[]).includes(w.internode_key_exchange))
          throw new CliError(`internode_key_exchange must be one of: ${KEY_EXCHANGES.join(', ')}`);
        body.internode_key_exchange = w.internode_key_exchange;
      }
      if (w.failover_timeout !== undefined) {
        const t = Number(w.failover_timeout);
        if (!Number.isInteger(t) || t < 1 || t > 3600)
          throw new CliError('failover_timeout must be a whole number of seconds from 1 to 3600');
        body.failover_timeout = t;
      }
      if (w.slave_ha !== undefined) body.slave_ha = enabledWord(w.slave_ha);
      if (w.slave_ha_grace_period !== undefined) {
        const t = Number(w.slave_ha_grace_period);
        if (!Number.isInteger(t) || t < 0 || t > 86400)
          throw new CliError('slave_ha_grace_period must be a whole number of seconds from 0 to 86400');
        body.slave_ha_grace_period = t;
      }
      // Database defaults: the REST API checks the values and names the allowed ones.
      for (const k of POLICY_DEFAULTS) if (w[k] !== undefined) body[k] = w[k];
      await api(cmd, 'PUT', '/v1/cluster/policy', body);
      console.log('Finished successfully');
    });

  addShardCommands(program, { api: (cmd, method, p, body) => api(cmd, method, p, body), findDb });
  addShapeCommands(program, shapeDeps);

  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    // rladmin's word order, `node <uid> remove`, becomes commander's `node remove <uid>` (maintenance_mode alike).
    const i = argv.indexOf('node');
    if (i >= 2 && /^\d+$/.test(argv[i + 1] ?? '') && ['remove', 'maintenance_mode'].includes(argv[i + 2] ?? ''))
      argv = [...argv.slice(0, i + 1), argv[i + 2], argv[i + 1], ...argv.slice(i + 3)];
    await program.parseAsync(argv);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message.split('\n')[0]}\n`);
    process.exit(err instanceof CliError ? err.exitCode : 1);
  }
}

await main(process.argv);
