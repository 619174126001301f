// The Cluster Manager web UI on a real 3-node cluster (127.0.17.1-3), driven
// in Debian's Chromium by playwright-core, every flow confirmed through REST:
// the UI origin's headers and its 401s without a session, TLS 1.1 refused on
// 8443, sign-in (refused, then accepted) and the session cookie's flags,
// navigation, CSRF, the database defaults (RE's exact steps), creating a
// database, the Security switch turning internode encryption on while a
// redis client keeps its connection, deletion, certificate rotation and a
// refused upload, and sign-out. Screenshots of each page go to
// $TESSERA_UI_SCREENSHOTS (default: dist/ui-screenshots).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { Redis } from 'ioredis';
import { TestCluster, type TestNode, type BdbJson, REPO, USER, PASSWORD, createDb, waitDbStatus, waitFor } from '../support/cluster.js';
import { sClient } from '../support/tls-tools.js';
import { rsaKeys, keyPem, makeHierarchy, makeLeaf } from '../support/pki-hierarchy.js';
import { servicesRequest, type RawResponse, type RequestOptions } from '../support/https.js';

const NET = 17;
const UI_PORT = 8443;
const CHROMIUM = process.env.TESSERA_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.TESSERA_UI_SCREENSHOTS ?? path.join(REPO, 'dist/ui-screenshots');
const STEP_MS = 60_000; // a UI step on a busy 2-core machine

const cluster = new TestCluster(NET, 3);
const [n1, n2] = cluster.nodes;
const origin = (n: TestNode) => `https://${n.addr}:${UI_PORT}`;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** What the browser reported against the page's Content-Security-Policy (nothing, if the page keeps to it). */
const cspViolations: string[] = [];

before(async () => {
  await cluster.startAll();
  await cluster.form('ui.test');
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  // The nodes' certificates are issued by the cluster's own CA, which this browser does not know: the test alone skips the check.
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('console', (m) => {
    if (/Content.Security.Policy|Refused to (load|apply|execute)/i.test(m.text())) cspViolations.push(m.text());
  });
});
after(async () => {
  await browser?.close().catch(() => undefined);
  await cluster.stop();
});

type Raw = RawResponse;

/** A request to a node's UI origin (8443), verified against the services CA. */
function ui(n: TestNode, method: string, p: string, o: RequestOptions = {}): Promise<Raw> {
  return servicesRequest(n, UI_PORT, method, p, o);
}

async function sessionCookie(): Promise<string> {
  const c = (await context.cookies(origin(n1))).find((x) => x.name === '__Host-tessera_session');
  assert.ok(c, 'a session cookie');
  return `${c.name}=${c.value}`;
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });
const button = (name: string) => page.getByRole('button', { name, exact: true });
const heading1 = (name: string) => page.getByRole('heading', { level: 1, name, exact: true });

/** Wait for a locator; on timeout, say what the page and REST showed instead. */
async function waitOrExplain(what: ReturnType<Page['getByRole']>, timeout: number, explain: () => Promise<unknown>): Promise<void> {
  try {
    await what.waitFor({ timeout });
  } catch (err) {
    await shot('failure').catch(() => undefined);
    const statuses = await page
      .getByRole('status')
      .allTextContents()
      .catch(() => []);
    const alerts = await page
      .getByRole('alert')
      .allTextContents()
      .catch(() => []);
    throw new Error(
      `${(err as Error).message}\npage status: ${JSON.stringify(statuses)}\npage alerts: ${JSON.stringify(alerts)}\nREST: ${JSON.stringify(await explain().catch((e) => String(e)))}`,
    );
  }
}

async function policy(): Promise<{ data_internode_encryption: boolean }> {
  const r = await n2.api<{ data_internode_encryption: boolean }>('GET', '/v1/cluster/policy');
  assert.equal(r.status, 200);
  return r.body;
}

test('every node serves the UI on 8443 with a strict CSP, HSTS and hashed, long-cached assets; every API call without a session is 401', async () => {
  for (const n of cluster.nodes) {
    const r = await ui(n, 'GET', '/');
    assert.equal(r.status, 200, `${n.addr}: ${r.text}`);
    assert.match(String(r.headers['content-type']), /^text\/html/);
    const csp = String(r.headers['content-security-policy']);
    assert.match(csp, /(^|;\s*)default-src 'self'(;|$)/, csp);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, csp);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(String(r.headers['strict-transport-security']), /^max-age=\d{7,}/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    // The page names its assets by content hash, with subresource integrity, and nothing from elsewhere.
    const assets = [...r.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(assets.length >= 3, r.text);
    for (const a of assets) {
      assert.match(a, /^\/assets\/[a-z]+-[A-Z0-9]{8}\.(js|css|svg)$/, a);
      const asset = await ui(n, 'GET', a);
      assert.equal(asset.status, 200, a);
      assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable', a);
      assert.match(String(asset.headers['content-security-policy']), /default-src 'self'/);
    }
    assert.match(r.text, /<script type="module" src="\/assets\/app-[A-Z0-9]{8}\.js" integrity="sha384-/);
    assert.equal((await ui(n, 'GET', '/assets/app-00000000.js')).status, 404);
  }

  // Without a session every resource is refused with the REST error shape, whatever the method, even with the REST API's basic credentials.
  const basic = { authorization: 'Basic ' + Buffer.from(`${USER}:${PASSWORD}`).toString('base64') };
  const calls: [string, string, unknown?][] = [
    ['GET', '/v1/cluster'],
    ['GET', '/v1/bdbs'],
    ['GET', '/v1/nodes'],
    ['GET', '/v1/cluster/certificates'],
    ['GET', '/ui/session'],
    ['PUT', '/v1/cluster/policy', { data_internode_encryption: true }],
    ['POST', '/v1/bdbs', { name: 'x', memory_size: 100 << 20 }],
    ['DELETE', '/v1/bdbs/1'],
    ['POST', '/v1/cluster/certificates/rotate', {}],
    ['DELETE', '/ui/session'],
  ];
  for (const [method, p, body] of calls) {
    for (const headers of [{}, basic]) {
      const r = await ui(n1, method, p, { body, headers, cookie: '__Host-tessera_session=forged-or-expired' });
      assert.equal(r.status, 401, `${method} ${p}: ${r.text}`);
      const e = r.json as { error_code: string; description: string };
      assert.equal(e.error_code, 'unauthorized');
      assert.ok(e.description.length > 10);
      assert.equal(r.headers['cache-control'], 'no-store');
    }
  }
  assert.equal((await policy()).data_internode_encryption, false, 'nothing changed');
  // The UI origin is not the place for node-to-node routes.
  assert.equal((await ui(n1, 'GET', '/v1/bootstrap')).status, 404);
});

test('8443 refuses TLS 1.1 and accepts TLS 1.2 with a policy suite', async () => {
  const ca = path.join(n1.dataDir, 'certs/services-ca.pem');
  const old = await sClient(['-connect', `${n1.addr}:${UI_PORT}`, '-CAfile', ca, '-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0', '-msg'], {
    holdMs: 1500,
  });
  assert.match(
    old.stdout,
    />>> TLS 1\.[01], Handshake \[length [0-9a-f]+\], ClientHello/,
    `no ClientHello sent:\n${old.stdout}\n${old.stderr}`,
  );
  assert.match(old.stdout, /Alert \[length 0002\], fatal protocol_version/, old.stdout);
  assert.doesNotMatch(old.stdout, /<<< .*ServerHello/);
  const ok = await sClient(['-connect', `${n1.addr}:${UI_PORT}`, '-CAfile', ca, '-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'], {
    holdMs: 1000,
  });
  assert.match(ok.stdout, /Cipher is ECDHE-RSA-AES128-GCM-SHA256/, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /Verify return code: 0 \(ok\)/);
});

test('sign-in: a wrong password shows an alert and sets no cookie; the admin signs in with a HttpOnly, Secure, SameSite=Strict session cookie', async () => {
  await page.goto(origin(n1));
  await heading1('Sign in').waitFor();
  await shot('sign-in');
  await page.getByLabel('Email', { exact: true }).fill(USER);
  await page.getByLabel('Password', { exact: true }).fill('not-the-password');
  const refused = page.waitForResponse((r) => r.url().endsWith('/ui/session') && r.request().method() === 'POST');
  await button('Sign in').click();
  const rr = await refused;
  assert.equal(rr.status(), 401);
  assert.equal(await rr.headerValue('set-cookie'), null);
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match((await alert.textContent()) ?? '', /wrong email or password/i);
  assert.equal((await context.cookies()).length, 0);

  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  const accepted = page.waitForResponse((r) => r.url().endsWith('/ui/session') && r.request().method() === 'POST');
  await button('Sign in').click();
  const ar = await accepted;
  assert.equal(ar.status(), 200);
  const setCookie = (await ar.headerValue('set-cookie')) ?? '';
  assert.match(setCookie, /^__Host-tessera_session=[A-Za-z0-9_-]{40,};/);
  for (const flag of [/;\s*HttpOnly(;|$)/i, /;\s*Secure(;|$)/i, /;\s*SameSite=Strict(;|$)/i, /;\s*Path=\/(;|$)/, /;\s*Max-Age=1800(;|$)/])
    assert.match(setCookie, flag, setCookie);
  assert.match(String(await ar.headerValue('content-security-policy')), /default-src 'self'/);
  await heading1('Cluster').waitFor();
  const [c] = await context.cookies(origin(n1));
  assert.equal(c.httpOnly, true);
  assert.equal(c.secure, true);
  assert.equal(c.sameSite, 'Strict');
  // Script cannot read it.
  assert.equal(await page.evaluate(() => document.cookie), '');
});

test('navigation: Cluster (name, master, nodes, alerts; refreshing), Nodes, Databases, Certificates, Alerts', async () => {
  await nav('Cluster').click();
  await heading1('Cluster').waitFor();
  await page.getByText('ui.test', { exact: true }).first().waitFor();
  const rows = page.getByRole('table', { name: 'Nodes of the cluster' }).getByRole('row');
  await waitFor('three nodes listed', async () => (await rows.count()) === 4, STEP_MS);
  for (const n of cluster.nodes) await page.getByRole('cell', { name: n.addr, exact: true }).first().waitFor();
  const master = await n1.api<{ master_node_uid: number }>('GET', '/v1/cluster');
  await page.getByText(new RegExp(`^node ${master.body.master_node_uid} \\(`)).waitFor();
  await page.getByText('No alert is raised.').waitFor();
  // It refreshes by itself (every 5 s), in the background.
  const refreshed = await page.waitForRequest((r) => r.url().endsWith('/v1/nodes'), { timeout: 15_000 });
  assert.equal(await refreshed.headerValue('x-tessera-background'), '1');
  await shot('cluster');

  for (const [link, h1] of [
    ['Nodes', 'Nodes'],
    ['Databases', 'Databases'],
    ['Certificates', 'Certificates'],
    ['Alerts', 'Alerts'],
  ] as const) {
    await nav(link).click();
    await heading1(h1).waitFor();
    assert.equal(await nav(link).getAttribute('aria-current'), 'page');
    await page.waitForFunction(() => !document.querySelector('.placeholder'));
    await shot(link.toLowerCase());
  }
  await nav('Nodes').click();
  await page.getByRole('cell', { name: n2.addr, exact: true }).waitFor();
});

test('a state-changing call without the CSRF token is refused (403) and changes nothing; with it, it goes through', async () => {
  const cookie = await sessionCookie();
  assert.equal((await ui(n1, 'GET', '/v1/cluster', { cookie })).status, 200, 'a read needs only the session');
  for (const csrf of [undefined, 'wrong-token']) {
    const r = await ui(n1, 'PUT', '/v1/cluster/policy', { cookie, csrf, body: { data_internode_encryption: true } });
    assert.equal(r.status, 403, r.text);
    assert.equal((r.json as { error_code: string }).error_code, 'csrf_token_invalid');
    const d = await ui(n1, 'POST', '/v1/bdbs', { cookie, csrf, body: { name: 'csrf', memory_size: 100 << 20 } });
    assert.equal(d.status, 403, d.text);
  }
  assert.equal((await policy()).data_internode_encryption, false);
  assert.deepEqual((await n1.api<unknown[]>('GET', '/v1/bdbs')).body, []);
  const session = (await ui(n1, 'GET', '/ui/session', { cookie })).json as { csrf_token: string; username: string };
  assert.equal(session.username, USER);
  const r = await ui(n1, 'PUT', '/v1/cluster/policy', { cookie, csrf: session.csrf_token, body: { failover_timeout: 5 } });
  assert.equal(r.status, 200, r.text);
  // The UI origin answers with the REST routes' own validation.
  const bad = await ui(n1, 'PUT', '/v1/cluster/policy', { cookie, csrf: session.csrf_token, body: { colour: 'blue' } });
  assert.equal(bad.status, 400);
  assert.equal((bad.json as { error_code: string }).error_code, 'invalid_schema');
});

/** Databases → Database defaults → Internode Encryption → Change → <value> → Change → Save. */
async function setDefault(value: 'Enabled' | 'Disabled'): Promise<void> {
  await nav('Databases').click();
  await heading1('Databases').waitFor();
  await button('Database defaults').click();
  const setting = page.getByRole('group', { name: 'Internode Encryption' });
  await setting.waitFor();
  await button('Change').click();
  await page.getByRole('radio', { name: value, exact: true }).check();
  await button('Change').click();
  assert.match((await setting.textContent()) ?? '', new RegExp(`${value} \\(not saved\\)`));
  await button('Save').click();
  await page
    .getByRole('status')
    .filter({ hasText: `internode encryption ${value.toLowerCase()}` })
    .waitFor();
}

test('database defaults: Internode Encryption shows the current value; Change → Enabled → Change → Save sets it (GET /v1/cluster/policy)', async () => {
  await nav('Databases').click();
  await button('Database defaults').click();
  const setting = page.getByRole('group', { name: 'Internode Encryption' });
  await setting.waitFor();
  assert.match((await setting.textContent()) ?? '', /Disabled/);
  await button('Close').click();

  await setDefault('Enabled');
  await shot('database-defaults');
  assert.equal((await policy()).data_internode_encryption, true);
  assert.match((await page.getByRole('group', { name: 'Internode Encryption' }).textContent()) ?? '', /Enabled/);
  // Reopened, it shows the stored value.
  await button('Close').click();
  await button('Database defaults').click();
  assert.match((await page.getByRole('group', { name: 'Internode Encryption' }).textContent()) ?? '', /^Internode EncryptionEnabled/);
  await button('Close').click();

  await setDefault('Disabled');
  assert.equal((await policy()).data_internode_encryption, false);
});

let uiDb: BdbJson;

test('create a database from the Databases page; the list shows it active (and REST agrees)', async () => {
  await nav('Databases').click();
  await button('Create database').click();
  await page.getByLabel('Name', { exact: true }).fill('web');
  await page.getByLabel('Memory limit (MB)').fill('64');
  await page.getByLabel('Number of shards').fill('2');
  await page.getByLabel('Replication').check();
  assert.equal(await page.getByLabel('Internode encryption').isChecked(), false, 'the cluster default (disabled)');
  await page.getByLabel('Port').fill('12017');
  await shot('create-database');
  await button('Create').click();
  await page.getByRole('status').filter({ hasText: 'Database web is being created.' }).waitFor();
  const list = await n1.api<BdbJson[]>('GET', '/v1/bdbs');
  const created = list.body.find((b) => b.name === 'web');
  assert.ok(created, JSON.stringify(list.body));
  uiDb = await waitDbStatus(n1, created.uid, 'active', 120_000);
  assert.equal(uiDb.port, 12017);
  assert.equal(uiDb.data_internode_encryption, false);
  assert.equal(uiDb.shards.length, 4);
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'web', exact: true }) });
  await row.getByText('active', { exact: true }).waitFor({ timeout: 30_000 });
  assert.match((await row.textContent()) ?? '', /127\.0\.17\.\d:12017/);

  // A REST refusal shows next to the form, with its description; nothing is created.
  await button('Create database').click();
  await page.getByLabel('Name', { exact: true }).fill('web');
  await button('Create').click();
  const err = page.getByRole('alert');
  await err.waitFor();
  assert.match((await err.textContent()) ?? '', /a database named web exists.*db_name_exists/);
  await button('Cancel').click();
  assert.equal((await n1.api<BdbJson[]>('GET', '/v1/bdbs')).body.length, 1);
});

test('the Security switch turns Internode Encryption on (PUT /v1/bdbs/{uid}) while a redis client keeps its connection', async () => {
  const client = new Redis({
    host: n2.addr,
    port: uiDb.port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  let closed = 0;
  client.on('close', () => closed++);
  await client.connect();
  const id = await client.client('ID');
  let ok = 0;
  const errors: string[] = [];
  let stop = false;
  const load = (async () => {
    while (!stop) {
      try {
        await client.incr('ui:counter');
        ok++;
      } catch (e) {
        errors.push((e as Error).message);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();

  try {
    await page.getByRole('link', { name: 'web', exact: true }).click();
    await heading1('web').waitFor();
    const sw = page.getByRole('switch', { name: 'Internode Encryption' });
    await sw.waitFor();
    assert.equal(await sw.isChecked(), false);
    assert.equal(await sw.isDisabled(), true, 'read-only until Edit');
    await page.getByRole('heading', { name: 'Security' }).waitFor();
    for (const s of uiDb.shards)
      await page
        .getByRole('cell', { name: `node ${s.node_uid}`, exact: true })
        .first()
        .waitFor();
    await shot('database');
    await button('Edit').click();
    await sw.check();
    await shot('database-edit');
    await button('Save').click();
    const done = page.getByRole('status').filter({ hasText: 'client connections were kept' });
    await waitOrExplain(done, 120_000, async () => {
      const b = await n1.api<BdbJson>('GET', `/v1/bdbs/${uiDb.uid}`);
      return { bdb: b.body, action: b.body.action_uid ? (await n1.api('GET', `/v1/actions/${b.body.action_uid}`)).body : undefined };
    });
    await shot('database-encrypted');
    assert.equal(await sw.isChecked(), true);

    const b = await n1.api<BdbJson>('GET', `/v1/bdbs/${uiDb.uid}`);
    assert.equal(b.body.data_internode_encryption, true);
    assert.equal(b.body.status, 'active');
    await new Promise((r) => setTimeout(r, 1000)); // traffic over the new links too
  } finally {
    stop = true;
    await load;
  }
  assert.deepEqual(errors, [], 'no command failed');
  assert.equal(closed, 0, 'the connection was never closed');
  assert.equal(await client.client('ID'), id, 'the same connection');
  assert.equal(Number(await client.get('ui:counter')), ok);
  assert.ok(ok > 50, `commands ran during the switch: ${ok}`);
  client.disconnect();
});

test('the Security switch turns TLS for clients on (tls_mode): a TLS client is served, a plaintext one is not; and off again', async () => {
  await nav('Databases').click();
  await page.getByRole('link', { name: 'web', exact: true }).click();
  await heading1('web').waitFor();
  const sw = page.getByRole('switch', { name: 'TLS for clients' });
  await sw.waitFor();
  assert.equal(await sw.isChecked(), false);
  assert.equal(await sw.isDisabled(), true, 'read-only until Edit');
  assert.match((await page.locator(`#tls-${uiDb.uid}-hint`).textContent()) ?? '', /any TLS client is served/);
  const flip = async (on: boolean) => {
    await button('Edit').click();
    if (on) await sw.check();
    else await sw.uncheck();
    await button('Save').click();
    const done = page.getByRole('status').filter({ hasText: `TLS for clients is now ${on ? 'enabled' : 'disabled'}` });
    await waitOrExplain(done, 120_000, async () => (await n1.api<BdbJson>('GET', `/v1/bdbs/${uiDb.uid}`)).body);
    assert.equal((await n1.api<{ tls_mode: string }>('GET', `/v1/bdbs/${uiDb.uid}`)).body.tls_mode, on ? 'enabled' : 'disabled');
  };
  await flip(true);
  await shot('database-client-tls');
  const ca = fs.readFileSync(path.join(n2.dataDir, 'certs/services-ca.pem'), 'utf8');
  const tlsClient = new Redis({
    host: n2.addr,
    port: uiDb.port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    tls: { ca, checkServerIdentity: () => undefined },
  });
  try {
    await tlsClient.connect();
    assert.equal(await tlsClient.ping(), 'PONG');
  } finally {
    tlsClient.disconnect();
  }
  const plain = new Redis({
    host: n2.addr,
    port: uiDb.port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 3000,
  });
  plain.on('error', () => undefined); // the refusal is asserted below
  await assert.rejects(async () => {
    await plain.connect();
    await plain.ping();
  }, 'a plaintext client is refused by a TLS endpoint');
  plain.disconnect();
  await flip(false);
  const again = new Redis({ host: n2.addr, port: uiDb.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  await again.connect();
  assert.equal(await again.ping(), 'PONG');
  again.disconnect();
});

test('delete a database from its page, after a confirmation', async () => {
  const temp = await createDb(n1, { name: 'temp', memory_size: 32 << 20 });
  await page.goto(`${origin(n1)}/#/databases/${temp.uid}`);
  await heading1('temp').waitFor();
  await button('Delete database').click();
  await page.getByText('Delete database temp?').waitFor();
  await button('Cancel').click();
  assert.equal((await n1.api('GET', `/v1/bdbs/${temp.uid}`)).status, 200, 'Cancel deletes nothing');
  await button('Delete database').click();
  await button('Delete').click();
  await page.getByRole('status').filter({ hasText: 'Database temp was deleted.' }).waitFor({ timeout: 120_000 });
  await heading1('Databases').waitFor();
  assert.equal((await n1.api('GET', `/v1/bdbs/${temp.uid}`)).status, 404);
});

test('certificates: each node and plane with its openssl-style serial; Rotate changes them on disk and on the page; an invalid upload names the failing check', async () => {
  const serialOnDisk = (n: TestNode, plane: 'cp' | 'dp') =>
    new X509Certificate(fs.readFileSync(path.join(n.dataDir, 'certs', `${plane}.pem`))).serialNumber;
  await nav('Certificates').click();
  const table = page.getByRole('table', { name: 'Internode certificates of every node' });
  await table.waitFor();
  assert.equal(await table.getByRole('row').count(), 7);
  const before = cluster.nodes.map((n) => serialOnDisk(n, 'dp'));
  for (const s of before) await table.getByText(s, { exact: true }).waitFor();
  await shot('certificates');

  await button('Rotate certificates').click();
  await button('Rotate').click();
  await page.getByRole('status').filter({ hasText: 'Every node has its new certificates' }).waitFor({ timeout: 120_000 });
  const after = cluster.nodes.map((n) => serialOnDisk(n, 'dp'));
  for (const [i, s] of after.entries()) {
    assert.notEqual(s, before[i], `node ${i + 1} has a new dp certificate on disk`);
    await table.getByText(s, { exact: true }).waitFor();
  }
  for (const s of before) assert.equal(await table.getByText(s, { exact: true }).count(), 0);

  // A leaf without clientAuth: refused with the check's name, and nothing applied.
  const keys = await rsaKeys(3);
  const { root, cas } = await makeHierarchy('UI', 1, keys);
  const leaf = await makeLeaf(cas[0], 'noclient', keys[2], { eku: ['1.3.6.1.5.5.7.3.1'] });
  await page.getByLabel('Certificate chain (PEM)').fill([leaf, cas[0], root].map((e) => e.pem.trim()).join('\n'));
  await page.getByLabel('Private key (PEM)').fill(await keyPem(keys[2]));
  await button('Upload certificate').click();
  await page.getByText('Failed check: eku_client_auth').waitFor();
  assert.match((await page.getByRole('alert').textContent()) ?? '', /Extended Key Usage.*invalid_certificate/s);
  assert.deepEqual(
    cluster.nodes.map((n) => serialOnDisk(n, 'dp')),
    after,
    'nothing applied',
  );
  await shot('certificates-upload-refused');
});

test('Nodes page: maintenance mode on and off for a node, each after a confirmation; the table shows its state', async () => {
  const uid = n2.uidFromDisk!;
  await nav('Nodes').click();
  await heading1('Nodes').waitFor();
  const picker = page.getByRole('combobox', { name: 'Node' });
  await picker.locator(`option[value="${uid}"]`).waitFor({ state: 'attached' });
  await picker.selectOption(String(uid));
  await button('Maintenance mode on').click();
  await page.getByText(`Turn maintenance mode on for node ${uid}?`).waitFor();
  await button('Cancel').click();
  assert.equal(
    (await n1.api<{ maintenance_mode: boolean }>('GET', `/v1/nodes/${uid}`)).body.maintenance_mode,
    false,
    'Cancel changes nothing',
  );
  await button('Maintenance mode on').click();
  await button('Turn on').click();
  await page.getByText(`node ${uid} is in maintenance mode`).waitFor({ timeout: 120_000 });
  const row = page.getByRole('table', { name: 'Nodes' }).getByRole('row').filter({ hasText: n2.addr });
  await row.getByText('maintenance', { exact: true }).waitFor({ timeout: STEP_MS });
  assert.equal((await n1.api<{ maintenance_state: string }>('GET', `/v1/nodes/${uid}`)).body.maintenance_state, 'on');
  await shot('nodes-maintenance');
  await button('Maintenance mode off').click();
  await button('Turn off').click();
  await page.getByText(`node ${uid} left maintenance mode`).waitFor({ timeout: 120_000 });
  assert.equal((await n1.api<{ maintenance_mode: boolean }>('GET', `/v1/nodes/${uid}`)).body.maintenance_mode, false);
});

test('a node that stops is shown as down on the Cluster page, which keeps working', async () => {
  const n3 = cluster.nodes[2];
  await nav('Cluster').click();
  const row = () => page.getByRole('table', { name: 'Nodes of the cluster' }).getByRole('row').filter({ hasText: n3.addr });
  await row().getByText('active', { exact: true }).waitFor();
  await n3.kill('SIGTERM');
  await row().getByText('down', { exact: true }).waitFor({ timeout: 60_000 });
  await page.getByText('2 of 3 active').waitFor();
  await shot('cluster-node-down');
  assert.deepEqual(cspViolations, [], 'the pages keep to their CSP');
});

test('sign out: back to the sign-in page, and the old cookie gets 401', async () => {
  const cookie = await sessionCookie();
  await button('Sign out').click();
  await heading1('Sign in').waitFor();
  await page.getByText('You are signed out.').waitFor();
  assert.equal((await context.cookies(origin(n1))).length, 0, 'the browser dropped the cookie');
  const r = await ui(n1, 'GET', '/v1/cluster', { cookie });
  assert.equal(r.status, 401);
  assert.equal((r.json as { error_code: string }).error_code, 'unauthorized');
  // Reloading the page shows the sign-in form, not the app.
  await page.reload();
  await heading1('Sign in').waitFor();
});
