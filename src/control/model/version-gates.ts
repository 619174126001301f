// Versions and feature gates. The cluster version is major.minor: the lowest
// software version among the members, decided by the cluster master and never
// lowered (control/controllers/cluster-version.ts). A behaviour that older
// members cannot follow is gated on it: while the cluster version is below
// the feature's, a REST change that asks for it is refused (409
// cluster_version_too_old, naming the older members), and code paths keep
// the older behaviour (`clusterAtLeast`).
import { conflict, type OperatorError } from '../../util/errors.js';

/** A major.minor version; patch releases never change what a cluster can do. */
export interface MinorVersion {
  major: number;
  minor: number;
}

/** `0.2.0`, `0.2` → {0, 2}; undefined when the text is not a version. */
export function parseMinor(v: string): MinorVersion | undefined {
  const m = /^(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$/.exec(v.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

function minorOf(v: string): MinorVersion {
  const p = parseMinor(v);
  if (!p) throw new Error(`not a version: ${JSON.stringify(v)}`);
  return p;
}

/** The major.minor text of a version: `0.2.0` → `0.2`. */
export function minorText(v: string): string {
  const p = minorOf(v);
  return `${p.major}.${p.minor}`;
}

/** Compare by major.minor only: negative when a is older. */
export function compareMinor(a: string, b: string): number {
  const x = minorOf(a);
  const y = minorOf(b);
  return x.major - y.major || x.minor - y.minor;
}

/** The lowest major.minor among `versions` (undefined for none); an unreadable version counts as the oldest there is. */
export function lowestMinor(versions: readonly string[]): string | undefined {
  let low: string | undefined;
  for (const v of versions) {
    const t = parseMinor(v) ? minorText(v) : '0.0';
    if (low === undefined || compareMinor(t, low) < 0) low = t;
  }
  return low;
}

/** Features that need every member at a version: name → the cluster version they need. */
export const FEATURES = {
  // The 0.2 features still to come; each writes records or sends RPCs that 0.1.0 nodes cannot read.
  resharding: '0.2',
  maintenance_mode: '0.2',
  ca_rollover: '0.2',
  // A replication change is a shard operation of a kind 0.1.0 masters cannot read.
  replication_change: '0.2',
  // min_replicas_to_write: a 0.1.0 node would run its shards without the guard.
  min_replicas: '0.2',
} as const satisfies Record<string, string>;
export type Feature = keyof typeof FEATURES;

/** What a gate is decided on: the stored cluster version and the members' software versions. */
export interface VersionView {
  /** The stored cluster version (major.minor); undefined on a cluster no 0.2 master has seen yet: it is then 0.1. */
  cluster_version?: string;
  members: readonly { uid: number; software_version: string }[];
}

/** The version a cluster without a stored cluster version has: the last release that did not store one. */
export const UNRECORDED_CLUSTER_VERSION = '0.1';

export function clusterVersionOf(view: VersionView): string {
  return view.cluster_version ?? UNRECORDED_CLUSTER_VERSION;
}

/** Is the cluster at `version` or later? 0.2 behaviours keep 0.1.0-compatible behaviour while this is false. */
export function clusterAtLeast(view: VersionView, version: string): boolean {
  return compareMinor(clusterVersionOf(view), version) >= 0;
}

/** The members whose software is older than `version`, by uid. */
export function membersOlderThan(view: VersionView, version: string): { uid: number; software_version: string }[] {
  return view.members
    .filter((n) => !parseMinor(n.software_version) || compareMinor(n.software_version, version) < 0)
    .sort((a, b) => a.uid - b.uid);
}

/** The refusal of a feature (or a node) because of the cluster version: 409 `cluster_version_too_old`. */
export function clusterVersionTooOld(description: string): OperatorError {
  return conflict('cluster_version_too_old', description);
}

/** The gate: undefined when `feature` may be used, otherwise the refusal naming the older members. */
export function featureRefusal(view: VersionView, feature: Feature): OperatorError | undefined {
  const need = FEATURES[feature];
  if (clusterAtLeast(view, need)) return undefined;
  const older = membersOlderThan(view, need);
  const who = older.length
    ? `; older members: ${older.map((n) => `node ${n.uid} (${n.software_version})`).join(', ')}`
    : '; every member is upgraded, the cluster master raises the cluster version shortly';
  return clusterVersionTooOld(`${feature} needs cluster version ${need}; the cluster version is ${clusterVersionOf(view)}${who}`);
}

/** Throws the gate's refusal (see featureRefusal). */
export function requireFeature(view: VersionView, feature: Feature): void {
  const refusal = featureRefusal(view, feature);
  if (refusal) throw refusal;
}

/**
 * What the master decides: the lowest member version, but never below the
 * stored one (a cluster version is never lowered; a node older than it is
 * refused at join and start instead). Undefined: nothing to store.
 */
export function nextClusterVersion(stored: string | undefined, memberVersions: readonly string[]): string | undefined {
  const low = lowestMinor(memberVersions);
  if (low === undefined) return undefined;
  if (stored !== undefined && compareMinor(low, stored) <= 0) return undefined;
  return low;
}

/** The header a joining node names its software version in (a header: 0.1.0 members ignore it, and refuse unknown body fields). */
export const VERSION_HEADER = 'x-tessera-version';

/** What a joiner that sends no version runs: 0.1.0, the release before joiners sent one. */
export const UNSTATED_SOFTWARE_VERSION = '0.1.0';

/** The refusal of a node older than the cluster version, in one line. */
export function nodeTooOld(who: string, software: string, clusterVersion: string): OperatorError {
  return clusterVersionTooOld(
    `${who} runs Tessera ${software}, older than the cluster version ${clusterVersion}: upgrade it to ${clusterVersion} or later first`,
  );
}

/** May a node of `software` run in (join or restart into) a cluster at `clusterVersion`? */
export function admits(clusterVersion: string | undefined, software: string): boolean {
  return clusterVersion === undefined || (parseMinor(software) !== undefined && compareMinor(software, clusterVersion) >= 0);
}
