/**
 * What a session's command handlers share with the connection state machine
 * in session.ts: the slot kinds, the mode bits, the MULTI queue and the
 * `SessionCore` interface that `Session` implements.
 *
 * The handlers (session-conn.ts, session-tx.ts, session-pubsub.ts,
 * session-fanout.ts) are plain functions taking a SessionCore, not a
 * Session, so none of them imports session.ts: the files depend one way
 * (session → handlers → core), with no cycle, not even a type-only one.
 * This file imports none of them either.
 */

import type net from 'node:net';
import type { ReplyTarget } from './fanout.js';
import type { PubSubHub, Subscriber } from './pubsub.js';
import type { Proto } from './replies.js';
import type { RespCommand } from './resp-request.js';
import type { SlotHolds } from './slot-holds.js';
import type { LinkHost, LinkOwner, ShardLink, Sink } from './shard-link.js';

// Slot kinds: what filling the slot must account for.
export const K_LOCAL = 0; // answered by the proxy
export const K_SHARED = 1; // on a shared link (or a fan-out over shared links)
export const K_DED = 2; // on one of this client's dedicated links
export const K_WAIT = 3; // waiting for pub/sub confirmations

// Session mode bits; the hot path runs only when none is set.
export const M_NOAUTH = 1;
export const M_MULTI = 2;
export const M_SUB2 = 4; // RESP2 subscribed context
export const M_PIN = 8; // WATCH holds a dedicated link
export const M_DEDOUT = 16; // replies owed on dedicated links
export const M_CLOSING = 32; // QUIT or protocol error: no more input

/** The commands queued between MULTI and EXEC. */
export interface Tx {
  parts: Buffer[];
  count: number;
  slot: number; // -1 until a command with keys is queued
  dirty: boolean;
}

/** A reply slot in the session's FIFO (session.ts's `Slot`): a shard link's sink that is filled once. */
export type ReplySlot = Sink & ReplyTarget;

/** The part of the endpoint (session.ts's `SessionHost`) the command handlers use. */
export interface SessionCoreHost extends LinkHost {
  password: string | undefined;
  /** slot → shard index (into shardUids), -1 when unserved. */
  readonly slotShard: Int16Array;
  /** Slots a resharding's cut-over holds (slot-holds.ts). */
  readonly holds: SlotHolds;
  /** A key's slot under the database's hashing policy. */
  keySlot(key: Uint8Array | string): number;
  readonly shardUids: number[];
  readonly shardCount: number;
  readonly sessions: ReadonlySet<SessionCore>;
  sharedLink(idx: number, proto: Proto): ShardLink;
  hub(idx: number): PubSubHub;
  hubIfAny(idx: number): PubSubHub | undefined;
}

/**
 * The session state and primitives the command handlers use. `Session`
 * implements it; its members are documented there. Everything not listed
 * (input parsing, back-pressure, the dedicated-link map, the flush) stays
 * private to session.ts.
 */
export interface SessionCore extends Subscriber, LinkOwner {
  readonly id: number;
  readonly ep: SessionCoreHost;
  readonly socket: net.Socket;
  proto: Proto;
  mode: number;
  pendingShared: number;
  dedOut: number;
  waitSlots: number;
  name: Buffer | null;
  readonly lastCmd: string;
  readonly created: number;
  readonly lastActive: number;
  readonly subs: [Map<string, Buffer>, Map<string, Buffer>, Map<string, Buffer>];
  readonly authed: boolean;
  multi: Tx | null;
  pin: ShardLink | null;
  /** Shard uids this connection wrote to since its last WAIT. */
  readonly wrote: Set<number>;
  watchBroken: boolean;

  enqueue(kind: number): ReplySlot;
  local(buf: Buffer, isErr?: boolean): true;
  reject(buf: Buffer): true;
  setAuthed(ok: boolean): void;
  sendShared(shard: number, cmd: RespCommand): boolean;
  sendOn(link: ShardLink, raw: readonly Buffer[], len: number): true;
  dedicatedLink(shard: number): ShardLink;
  dropDedicated(l: ShardLink): void;
}
