// The records of the cluster's CAs (0.2): a CA as a trust list, and a CA
// rollover's progress. Apart from schema.ts for size; the same rules hold:
// optional fields stay optional, unknown fields are kept.
import { type Static, Type } from '@sinclair/typebox';

const Time = Type.String();

/** One CA of a cluster's trust list (pki/ca-list.ts): `active` issues, `next` will, `retiring` is on its way out. */
export const CaListEntry = Type.Object({
  cert: Type.String(),
  /** The CA's key: kept for `active` and `next` (a next CA becomes the issuer). */
  key: Type.Optional(Type.String()),
  state: Type.Union([Type.Literal('active'), Type.Literal('next'), Type.Literal('retiring')]),
  added_time: Type.Optional(Time),
});
export type CaListEntry = Static<typeof CaListEntry>;

/**
 * A cluster CA: `cert`/`key` is the issuer (what 0.1.0 nodes read and trust);
 * `cas` (0.2, optional) is every CA the nodes trust, the issuer among them.
 * Absent, the list is the issuer alone.
 */
export const CaRecord = Type.Object({
  cert: Type.String(),
  key: Type.String(),
  cas: Type.Optional(Type.Array(CaListEntry)),
});
export type CaRecord = Static<typeof CaRecord>;

/** A CA rollover in progress or done (0.2): the desired phase, moved on by the cluster master only. */
export const CaRolloverRecord = Type.Object({
  action_uid: Type.String(),
  ca: Type.Union([Type.Literal('internode'), Type.Literal('services')]),
  phase: Type.Union([
    Type.Literal('make_next'),
    Type.Literal('trust_both'),
    Type.Literal('reissue'),
    Type.Literal('drop_old'),
    Type.Literal('done'),
  ]),
  /** Fingerprints (`sha256:<hex>`) of the CA replaced and of its successor. */
  old: Type.String(),
  next: Type.Optional(Type.String()),
  /** The member asked to restart its etcd member (one at a time), and when. */
  etcd_restart: Type.Optional(Type.Number()),
  etcd_restart_time: Type.Optional(Time),
  started_time: Time,
  /** Services CA: when the servers may switch to the next CA, and when the old one may leave the bundle. */
  activate_after: Type.Optional(Time),
  retire_after: Type.Optional(Time),
  /** When each phase began (what the report's figures come from). */
  phase_times: Type.Optional(Type.Record(Type.String(), Time)),
  finished_time: Type.Optional(Time),
});
export type CaRolloverRecord = Static<typeof CaRolloverRecord>;
