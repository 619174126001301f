// The data-plane parts of a resharding against two real redis-servers (unix
// sockets, requirepass): an endpoint's slot holds (commands for held slots
// wait in order, none fails; a hold ends when the map moves the slots, on
// release, or at its deadline) and the key mover (bulk copy with the source
// writable, the writes made meanwhile, big values in pieces, cleanup).
// Address: the endpoint listens on 127.0.71.1.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Redis } from 'ioredis';
import { authConnect, spawnRedis } from '../support/redis.js';
import { sleep } from '../support/wait.js';
import { Endpoint, type EndpointConfig } from '../../src/proxy/endpoint.js';
import { keySlot } from '../../src/proxy/slots.js';
import { Mover } from '../../src/dataplane/mover.js';

const HOST = '127.0.71.1';
const SECRET = `reshard-secret-${process.pid}`;
let dir = '';
const servers: ChildProcess[] = [];
const sockPath = (uid: number) => join(dir, `s${uid}.sock`);
const connector = (uid: number) => authConnect(sockPath(uid), SECRET);
const shard: Redis[] = [];
const clients: Redis[] = [];
let ep: Endpoint;
let cfg: EndpointConfig;

function client(port: number): Redis {
  const r = new Redis({ host: HOST, port, maxRetriesPerRequest: 0 });
  r.on('error', () => {});
  clients.push(r);
  return r;
}
/** A key whose slot is in [a, b]. */
function keyIn(a: number, b: number, prefix: string): string {
  for (let n = 0; ; n++) {
    const s = keySlot(`${prefix}${n}`);
    if (s >= a && s <= b) return `${prefix}${n}`;
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-reshard-dp-'));
  for (const uid of [1, 2]) {
    servers.push(await spawnRedis(sockPath(uid), dir, ['--requirepass', SECRET]));
    for (let i = 0; ; i++) {
      try {
        (await connector(uid)).destroy();
        break;
      } catch (e) {
        if (i > 100) throw e;
        await sleep(20);
      }
    }
    const r = new Redis({ path: sockPath(uid), password: SECRET });
    shard[uid] = r;
  }
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, HOST, r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  cfg = {
    bdbUid: 1,
    host: HOST,
    port,
    linkGeneration: 1,
    shards: [
      { shardUid: 1, slots: [[0, 16383]] },
      { shardUid: 2, slots: [] },
    ],
  };
  ep = new Endpoint(cfg, connector);
  await ep.listen();
});

after(async () => {
  for (const c of clients) c.disconnect();
  for (const r of shard) r?.disconnect();
  await ep?.close();
  for (const p of servers) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('slot holds', () => {
  it('a held slot makes its commands wait, in order, until the map moves it; other slots are served meanwhile; none fails', async () => {
    const c = client(cfg.port);
    const other = client(cfg.port);
    const held = keyIn(100, 199, 'h');
    const free = keyIn(5000, 6000, 'f');
    await c.set(held, 'before');
    await ep.holdSlots([[100, 199]], 1, 5000);
    const order: string[] = [];
    const p1 = c.set(held, 'after').then((r) => order.push(`held:${r}`));
    const p2 = c.set(free, 'x').then((r) => order.push(`free:${r}`)); // same client: behind the held one
    assert.equal(await other.set(free, 'y'), 'OK', 'another client, another slot: served during the hold');
    await sleep(300);
    assert.deepEqual(order, [], 'nothing of the held client answered while held');
    // The cut-over: the slots go to shard 2 (their key copied there first, as the mover does).
    await shard[2].set(held, 'before');
    cfg = {
      ...cfg,
      shards: [
        {
          shardUid: 1,
          slots: [
            [0, 99],
            [200, 16383],
          ],
        },
        { shardUid: 2, slots: [[100, 199]] },
      ],
    };
    ep.update(cfg);
    await Promise.all([p1, p2]);
    assert.deepEqual(order, ['held:OK', 'free:OK']);
    assert.equal(await shard[2].get(held), 'after', 'the held write ran on the new owner');
    assert.equal(await shard[1].get(held), 'before', 'and not on the old one');
  });

  it('a hold ends on release and at its deadline; a transaction on a held slot waits too', async () => {
    const c = client(cfg.port);
    const k = keyIn(300, 399, 't');
    await ep.holdSlots([[300, 399]], 1, 60_000, 'mine');
    const t0 = Date.now();
    let answered = false;
    const tx = c
      .multi()
      .set(k, '1')
      .incr(k)
      .exec()
      .finally(() => {
        answered = true;
      });
    await sleep(100);
    ep.releaseSlots([[300, 399]], 'someone-else');
    await sleep(100);
    assert.equal(answered, false, 'a release with another token (a former master) does not end the hold');
    ep.releaseSlots([[300, 399]], 'mine');
    const res = await tx;
    assert.deepEqual(
      res?.map(([e, v]) => [e, v]),
      [
        [null, 'OK'],
        [null, 2],
      ],
    );
    assert.ok(Date.now() - t0 >= 200);
    await ep.holdSlots([[300, 399]], 1, 300);
    const t1 = Date.now();
    assert.equal(await c.get(k), '2');
    assert.ok(Date.now() - t1 >= 250, 'served once the deadline passed');
  });
});

describe('key mover', () => {
  const log = pino({ level: 'silent' });
  const links = { open: (uid: number) => connector(uid) };

  it('copies a range while the source takes writes, then the writes made meanwhile, then removes them from the source', async () => {
    const range: [number, number] = [8192, 12287];
    const keys = Array.from({ length: 3000 }, (_, i) => `m:${i}`);
    const inRange = (k: string) => keySlot(k) >= range[0] && keySlot(k) <= range[1];
    const big = keyIn(range[0], range[1], 'm:bighash');
    const ttl = keyIn(range[0], range[1], 'm:ttl');
    const p = shard[1].pipeline();
    for (const k of keys) p.set(k, `v0-${k}`);
    p.set(ttl, 'soon', 'PX', 600_000);
    for (let i = 0; i < 200_000; i += 10_000) p.hset(big, ...Array.from({ length: 10_000 }, (_, j) => [`f${i + j}`, `${i + j}`]).flat());
    await p.exec();
    const mover = new Mover(links, log);
    const spec = { bdbUid: 1, source: 1, target: 2, ranges: [range] };
    // Writes while the bulk copy runs: overwrites, a delete, a new key.
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await shard[1].set(keys[i % keys.length], `v1-${keys[i % keys.length]}`);
        if (i === 10) await shard[1].del(keys[1]);
        await sleep(1);
      }
    })();
    const start = await mover.step(spec, 'start');
    assert.ok(start.copied >= keys.filter(inRange).length);
    writing = false;
    await writer;
    await shard[1].set('m:new-after-start', 'n');
    await mover.step(spec, 'catchup');
    const fin = await mover.step(spec, 'final');
    assert.equal(fin.dirty, 0);
    const moved = [...keys, 'm:new-after-start', ttl].filter(inRange);
    assert.deepEqual(await shard[2].mget(...moved), await shard[1].mget(...moved), 'copied as they are on the source');
    assert.ok((await shard[2].pttl(ttl)) > 500_000, 'the expiry travels');
    assert.equal(await shard[2].hlen(big), 200_000, 'a big hash, in pieces');
    assert.equal(await shard[2].exists(`__tessera_reshard_tmp__:${big}`), 0, 'no temporary key left');
    assert.equal(await shard[1].config('GET', 'notify-keyspace-events').then((r) => (r as string[])[1]), '', 'key events off again');
    const clean = await mover.step(spec, 'cleanup');
    assert.ok((clean.removed ?? 0) > 0);
    let cursor = '0';
    do {
      const [next, found] = await shard[1].scan(cursor, 'COUNT', 1000);
      cursor = next;
      for (const k of found) assert.ok(!inRange(k), `${k} (slot ${keySlot(k)}) left on the source`);
    } while (cursor !== '0');
    mover.close();
  });
});
