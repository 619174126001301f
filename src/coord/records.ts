// Typed reads of the coordination store: every record is checked against its
// schema (coord/schema.ts) when it is read, so a malformed record fails at the
// read that finds it, with its key and what is wrong, and not later as a
// missing field somewhere else.
import type { Etcd3 } from 'etcd3';
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { casUpdateWith } from './cas.js';

/** What the reads need of a store: an `Etcd3` client is one. */
export interface RecordStore {
  get(key: string): { string(): Promise<string | null> };
  getAll(): { prefix(prefix: string): { strings(): Promise<Record<string, string>> } };
}

/** A stored value that is not JSON or does not match its record's schema. */
export class MalformedRecordError extends Error {
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(`stored record at ${key} is malformed: ${problem}`);
    this.name = 'MalformedRecordError';
  }
}

/** A record that must exist is absent. */
export class MissingRecordError extends Error {
  constructor(readonly key: string) {
    super(`stored record at ${key} is missing`);
    this.name = 'MissingRecordError';
  }
}

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checker<S extends TSchema>(schema: S): TypeCheck<S> {
  let c = compiled.get(schema);
  if (!c) compiled.set(schema, (c = TypeCompiler.Compile(schema)));
  return c as TypeCheck<S>;
}

/** Check a value read from `key` against its schema; throws MalformedRecordError naming the first problem. */
export function checkRecord<S extends TSchema>(key: string, value: unknown, schema: S): Static<S> {
  const c = checker(schema);
  if (c.Check(value)) return value;
  const first = c.Errors(value).First();
  throw new MalformedRecordError(key, first ? `${first.path || '/'}: ${first.message}` : 'does not match its schema');
}

/** Parse and check the stored text of `key`. */
export function parseRecord<S extends TSchema>(key: string, raw: string, schema: S): Static<S> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new MalformedRecordError(key, `not JSON (${(err as Error).message})`);
  }
  return checkRecord(key, value, schema);
}

/** The record at `key`, or null when there is none. */
export async function readRecord<S extends TSchema>(c: RecordStore, key: string, schema: S): Promise<Static<S> | null> {
  const raw = await c.get(key).string();
  return raw === null ? null : parseRecord(key, raw, schema);
}

/** The record at `key`, which must exist (the cluster's CA, say). */
export async function requireRecord<S extends TSchema>(c: RecordStore, key: string, schema: S): Promise<Static<S>> {
  const rec = await readRecord(c, key, schema);
  if (rec === null) throw new MissingRecordError(key);
  return rec;
}

/**
 * The records of a prefix read, by full key, and beside them those this node
 * could not read (`notUnderstood`: not JSON, or a value its schema does not
 * know, such as an enum value a newer version added), each with its error.
 */
export class RecordList<T> extends Map<string, T> {
  readonly notUnderstood = new Map<string, MalformedRecordError>();
}

/**
 * Every record under `prefix`, by full key. A record that does not read is
 * left out and listed in `notUnderstood`: one record never fails the whole
 * read (a newer node may have written it), and the caller decides whether
 * its absence matters.
 */
export async function readRecords<S extends TSchema>(c: RecordStore, prefix: string, schema: S): Promise<RecordList<Static<S>>> {
  const all = await c.getAll().prefix(prefix).strings();
  const out = new RecordList<Static<S>>();
  for (const [key, raw] of Object.entries(all)) {
    try {
      out.set(key, parseRecord(key, raw, schema));
    } catch (err) {
      if (!(err instanceof MalformedRecordError)) throw err;
      out.notUnderstood.set(key, err);
    }
  }
  return out;
}

/**
 * Read-modify-write of one record with compare-and-swap, retried on conflict
 * (coord/cas.ts): `fn` gets the current record (undefined when absent) and
 * returns the one to store, or undefined to leave it as it is. Resolves with
 * the stored record, or the current one when `fn` declined. A malformed
 * current record is never overwritten: the update fails with MalformedRecordError.
 */
export function updateRecord<S extends TSchema>(
  c: Etcd3,
  key: string,
  schema: S,
  fn: (cur: Static<S> | undefined) => Static<S> | undefined,
  attempts?: number,
): Promise<Static<S> | undefined> {
  return casUpdateWith(c, key, (raw) => parseRecord(key, raw, schema), fn, attempts);
}
