// Watches of the cluster store (coord/watch.ts) against a real etcd: a cache
// whose client is cut off while keys change and the store compacts past its
// watch's revision lists the prefix again when it is back, reports each id
// that changed or vanished, holds what a fresh list holds, and is live again.
// Two caches share the client, as a node's do: the second must recover too
// (etcd3 1.1.2 stalls every watch queued behind one refused as compacted).
//
// Addresses: etcd on 127.0.40.1 (client 24010, peer 24020); the cut-able
// proxy the caches' client goes through on 127.0.40.2:24010.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Etcd3 } from 'etcd3';
import { clientBehaviour } from '../../src/coord/etcd.js';
import { PrefixCache } from '../../src/coord/watch.js';
import { startScratchEtcd, type ScratchEtcd } from '../support/etcd.js';
import { waitFor } from '../support/wait.js';

const HOST = '127.0.40.1';
const PROXY = '127.0.40.2';
const PORT = 24010;

/** A TCP proxy to etcd that can be cut (every connection dropped, new ones refused) and restored, or paused (etcd's replies held back). */
class CutProxy {
  private cut = false;
  private readonly sockets = new Set<net.Socket>();
  private readonly pairs = new Set<{ up: net.Socket; down: net.Socket }>();
  private readonly server = net.createServer((down) => {
    if (this.cut) return void down.destroy();
    const up = net.connect(PORT, HOST);
    for (const s of [down, up]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined); // the other side is destroyed with it; nothing to report in a test proxy
    }
    down.pipe(up).pipe(down);
    const pair = { up, down };
    this.pairs.add(pair);
    down.on('close', () => up.destroy());
    up.on('close', () => {
      down.destroy();
      this.pairs.delete(pair);
    });
  });
  listen(): Promise<void> {
    return new Promise((r) => this.server.listen(PORT, PROXY, r));
  }
  cutOff(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }
  restore(): void {
    this.cut = false;
  }
  /** Stop passing what etcd sends (it backs up in etcd); requests still go through. */
  pause(): void {
    for (const { up, down } of this.pairs) {
      up.unpipe(down);
      up.pause();
    }
  }
  resume(): void {
    for (const { up, down } of this.pairs) up.pipe(down);
  }
  close(): Promise<void> {
    this.cutOff();
    return new Promise((r) => this.server.close(() => r()));
  }
}

let etcd: ScratchEtcd;
let proxy: CutProxy;
let client: Etcd3;
before(async () => {
  etcd = await startScratchEtcd(HOST, PORT, PORT + 10);
  proxy = new CutProxy();
  await proxy.listen();
  client = new Etcd3({ ...clientBehaviour(), hosts: `http://${PROXY}:${PORT}` });
});
after(async () => {
  client?.close();
  await proxy?.close();
  await etcd?.stop();
});

const put = (k: string, v: unknown) => etcd.client.put(k).value(JSON.stringify(v));

async function freshList(prefix: string): Promise<Map<string, unknown>> {
  const all = await etcd.client.getAll().prefix(prefix).strings();
  return new Map(Object.entries(all).map(([k, v]) => [k.slice(prefix.length), JSON.parse(v)]));
}

test('a cache cut off while the store compacts past its revision lists again, reports what changed, and is live again', async () => {
  await put('/t/a/1', { v: 1 });
  await put('/t/a/2', { v: 2 });
  await put('/t/a/3', { v: 3 });
  await put('/t/b/1', { v: 1 });
  const a = new PrefixCache<{ v: number }>(client, '/t/a/');
  const b = new PrefixCache<{ v: number }>(client, '/t/b/');
  const changes = { a: [] as string[], b: [] as string[] };
  const relists = { a: 0, b: 0 };
  a.on('change', (id: string) => changes.a.push(id));
  b.on('change', (id: string) => changes.b.push(id));
  a.on('watchError', (_e: Error, i: { relisting: boolean }) => void (i.relisting && relists.a++));
  b.on('watchError', (_e: Error, i: { relisting: boolean }) => void (i.relisting && relists.b++));
  try {
    await Promise.all([a.start(), b.start()]);
    await waitFor('both caches live', () => a.hasSynced() && b.hasSynced(), 5000, 20);
    assert.deepEqual([...a.items.keys()].sort(), ['1', '2', '3']);

    proxy.cutOff();
    await waitFor('the cut noticed', () => !a.hasSynced() && !b.hasSynced(), 10_000, 20);
    await put('/t/a/1', { v: 10 });
    await etcd.client.delete().key('/t/a/2');
    await put('/t/a/4', { v: 4 });
    await etcd.client.delete().key('/t/b/1');
    await put('/t/b/2', { v: 2 });
    // Revisions past the changes, then compact them away: the watches' revisions are gone.
    for (let i = 0; i < 20; i++) await put('/t/other', { i });
    const rev = (await etcd.client.get('/t/other').exec()).header.revision;
    await etcd.client.kv.compact({ revision: rev, physical: true });
    assert.deepEqual(changes, { a: [], b: [] }, 'nothing delivered while cut off');

    proxy.restore();
    await waitFor('both caches live again', () => a.hasSynced() && b.hasSynced(), 15_000, 50);
    assert.ok(relists.a >= 1 && relists.b >= 1, `both watches were cancelled and listed again (${JSON.stringify(relists)})`);
    assert.deepEqual(new Map(a.items), await freshList('/t/a/'));
    assert.deepEqual(new Map(b.items), await freshList('/t/b/'));
    assert.deepEqual(changes.a.sort(), ['1', '2', '4'], 'a change for each id changed or gone, none for the unchanged one');
    assert.deepEqual(changes.b.sort(), ['1', '2']);

    // Live again: a new write arrives through the watch.
    await put('/t/a/5', { v: 5 });
    await put('/t/b/1', { v: 11 });
    await waitFor('new writes delivered', () => a.items.get('5')?.v === 5 && b.items.get('1')?.v === 11, 5000, 20);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  assert.equal(a.hasSynced(), false, 'a stopped cache is not synced');
});

test('a cache whose deliveries back up while the store compacts past them is cancelled by etcd, lists again and is live again', async () => {
  const prefix = '/t/c/';
  await put(`${prefix}keep`, { v: 0 });
  await put(`${prefix}gone`, { v: 0 });
  const c = new PrefixCache<{ v: number }>(client, prefix);
  const errors: string[] = [];
  const changed = new Set<string>();
  c.on('watchError', (e: Error) => errors.push(e.message));
  c.on('change', (id: string) => changed.add(id));
  try {
    await c.start();
    await waitFor('the cache live', () => c.hasSynced(), 5000, 20);
    proxy.pause();
    // More single-revision changes than etcd buffers for a stalled watch: it falls behind and is served from history later.
    const pad = 'x'.repeat(200);
    for (let round = 0; round < 10; round++)
      await Promise.all(Array.from({ length: 300 }, (_, i) => put(`${prefix}k${i % 50}`, { v: round * 300 + i, pad })));
    await etcd.client.delete().key(`${prefix}gone`);
    const rev = (await etcd.client.get(`${prefix}keep`).exec()).header.revision;
    await etcd.client.kv.compact({ revision: rev, physical: true });
    proxy.resume();
    // etcd3 gives a compaction's cancel no reason: 'Watcher canceled: '.
    await waitFor('etcd cancelled the stalled watch', () => errors.some((m) => m.startsWith('Watcher canceled')), 15_000, 50);
    await waitFor('the cache live again', () => c.hasSynced(), 15_000, 50);
    assert.deepEqual(new Map(c.items), await freshList(prefix));
    assert.ok(changed.has('gone') && !c.items.has('gone'), 'the deleted key reported and gone');
    await put(`${prefix}after`, { v: 1 });
    await waitFor('a new write delivered', () => c.items.get('after')?.v === 1, 5000, 20);
  } finally {
    proxy.resume();
    await c.stop();
  }
});
