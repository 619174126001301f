import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';

import { SLOT_COUNT, crc16, keySlot, keySlotOf } from '../../src/proxy/slots.js';
import { encodeCommand } from '../../src/proxy/resp-encode.js';
import { decodeReply } from '../../src/proxy/resp-reply.js';
import { startScratchRedis, pipelineReplies, type ScratchRedis } from '../support/redis.js';
import { rng } from '../support/rng.js';

/** Bit-by-bit CRC16/XMODEM: an independent oracle for the table version. */
function crc16Slow(buf: Uint8Array): number {
  let crc = 0;
  for (const byte of buf) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** Random keys, rich in braces so the hash-tag rules are exercised. */
function randomKeys(seed: number, n: number): Buffer[] {
  const r = rng(seed);
  const keys: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const len = Math.floor(r() * 20);
    const b = Buffer.alloc(len);
    for (let j = 0; j < len; j++) {
      const k = r();
      b[j] = k < 0.15 ? 0x7b : k < 0.3 ? 0x7d : k < 0.8 ? 97 + Math.floor(r() * 4) : Math.floor(r() * 256);
    }
    keys.push(b);
  }
  return keys;
}

describe('slots', () => {
  it('crc16 is XMODEM', () => {
    assert.equal(crc16(Buffer.from('123456789')), 0x31c3);
    assert.equal(crc16(Buffer.alloc(0)), 0);
    for (const k of randomKeys(1, 500)) assert.equal(crc16(k), crc16Slow(k));
    const b = Buffer.from('xx123456789yy');
    assert.equal(crc16(b, 2, 11), 0x31c3, 'range form');
  });

  it('known slots', () => {
    assert.equal(SLOT_COUNT, 16384);
    assert.equal(keySlot('foo'), 12182);
    assert.equal(keySlot('bar'), 5061);
    assert.equal(keySlot('123456789'), 12739);
    assert.equal(keySlot(''), 0);
    assert.equal(keySlot(Buffer.from('foo')), 12182);
  });

  it('hash tags follow Redis Cluster rules', () => {
    assert.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'));
    assert.equal(keySlot('{user1000}.following'), keySlot('user1000'));
    // First '{', then the first '}' after it; an empty tag hashes the whole key.
    assert.equal(keySlot('foo{}{bar}'), crc16(Buffer.from('foo{}{bar}')) & 0x3fff);
    assert.notEqual(keySlot('foo{}{bar}'), keySlot('bar'));
    assert.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'));
    assert.equal(keySlot('foo{{bar}}zap'), crc16(Buffer.from('{bar')) & 0x3fff);
    assert.equal(keySlot('foo{bar}{zap}'), keySlot('bar'));
    assert.equal(keySlot('{}'), crc16(Buffer.from('{}')) & 0x3fff);
    assert.equal(keySlot('{abc'), crc16(Buffer.from('{abc')) & 0x3fff, 'no closing brace');
    assert.equal(keySlot('abc}{'), crc16(Buffer.from('abc}{')) & 0x3fff, '} before { is not a tag');
    assert.equal(keySlot('a{b}c'), keySlot('b'));
  });

  it('strings hash as their UTF-8 bytes; ranges hash in place', () => {
    for (const s of ['ключ', '{ключ}x', 'é', 'a{€}b', '\u0000x']) {
      assert.equal(keySlot(s), keySlot(Buffer.from(s, 'utf8')), s);
    }
    for (const k of randomKeys(2, 300)) {
      const padded = Buffer.concat([Buffer.from('{x}'), k, Buffer.from('}{')]);
      assert.equal(keySlotOf(padded, 3, 3 + k.length), keySlot(k));
      assert.equal(keySlot(k.toString('latin1')), keySlot(Buffer.from(k.toString('latin1'), 'utf8')));
    }
  });
});

// CLUSTER KEYSLOT needs cluster mode, which redis allows without any slots
// assigned. Its bus port would default to 10000 on every interface (inside
// Tessera's endpoint range), so bind it to loopback on a port the OS picks.
describe('against CLUSTER KEYSLOT', () => {
  let redis: ScratchRedis;
  let sock = '';

  before(async () => {
    const busPort = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const port = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(port));
      });
    });
    redis = await startScratchRedis('proxy-slots', (dir) => [
      '--bind',
      '127.0.0.1',
      '--cluster-enabled',
      'yes',
      '--cluster-port',
      String(busPort),
      '--cluster-config-file',
      join(dir, 'nodes.conf'),
    ]);
    sock = redis.sock;
  });

  after(() => redis?.stop());

  it('keySlot agrees with redis on 3,000 keys', async () => {
    const keys = [
      ...['foo', 'bar', '123456789', '', '{}', 'foo{}{bar}', 'foo{{bar}}zap', '{user1000}.following'].map((k) => Buffer.from(k)),
      ...randomKeys(3, 2992),
    ];
    const input = Buffer.concat(keys.map((k) => encodeCommand(['CLUSTER', 'KEYSLOT', k])));
    const { replies } = await pipelineReplies(sock, input, (got) => got.length === keys.length);
    const slots = replies.map((x) => decodeReply(x.raw) as number);
    for (let i = 0; i < keys.length; i++) assert.equal(keySlot(keys[i]), slots[i], `key ${keys[i].toString('hex')}`);
  });
});
