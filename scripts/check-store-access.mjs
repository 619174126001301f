// `npm run check:deps`, second part: only src/coord/ touches etcd keys. Code
// elsewhere goes through the typed cluster store (coord/store.ts `storeOf`),
// so it must not import the key layout (`KEYS`) or the keyed record
// primitives (coord/records.ts, coord/cas.ts), write a key by hand
// ('/tessera/...'), or call the etcd client's key operations; nor import
// etcd3 or call its lease, maintenance or member operations (coord/store.ts
// has `leases`, `members`). A text check, not a type check: it catches the
// usual spellings, not an aliased client.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const SRC = new URL('../src/', import.meta.url).pathname;

const RULES = [
  { what: 'imports KEYS (the key layout)', re: /import\s*(?:type\s*)?\{[^}]*\bKEYS\b[^}]*\}\s*from\s*'[^']*coord\/[^']*'/ },
  { what: 'imports the keyed record primitives (coord/records.ts, coord/cas.ts)', re: /from\s*'[^']*coord\/(?:records|cas)\.js'/ },
  { what: "writes a store key by hand ('/tessera/...')", re: /['`]\/tessera\// },
  { what: "uses the etcd client's key operations", re: /\bclient\.(?:get|getAll|put|delete|if)\(/ },
  { what: 'imports etcd3', re: /(?:from\s*|import\s*\(\s*)'etcd3'/ },
  { what: "uses the etcd client's leases (store.leases)", re: /\.lease\(/ },
  { what: "uses the etcd client's maintenance calls (store.members.status)", re: /\.maintenance\./ },
  { what: "uses the etcd client's member calls (store.members)", re: /\.cluster\.member[A-Z]\w*\(/ },
];

function* tsFiles(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

const problems = [];
for (const file of tsFiles(SRC)) {
  const rel = relative(SRC, file);
  if (rel.startsWith('coord/')) continue;
  const text = readFileSync(file, 'utf8');
  const hits = RULES.filter((r) => r.re.test(text));
  for (const h of hits) problems.push(`src/${rel} ${h.what}: go through coord/store.ts (ClusterStore) instead`);
}

if (problems.length) {
  for (const p of problems) console.error(`✘ ${p}`);
  process.exit(1);
}
console.log('✔ only src/coord/ touches etcd keys');
