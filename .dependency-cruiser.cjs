// `npm run check:deps`: the folders of src/ depend one way, lowest layer
// first; nothing imports a folder above its own, and no file-level cycles.
// Type-only imports count (tsPreCompilationDeps).
const LAYERS = [
  'tls', // the TLS policy: versions, suites, groups, contexts' options
  'util', // small helpers: files, errors, the HTTPS JSON client
  'pki', // certificates: issue, validate, the node's cert store and files
  'coord', // the etcd store: member process, client, key layout, watches
  'proxy', // the RESP endpoint: parser, routing, sessions, links
  'shards', // redis-server processes
  'internode', // the internode channel (3342) and its RPC
  'dataplane', // the data-plane worker: listeners, endpoints, shard links
  'control', // membership, bootstrap, controllers and reconcilers
  'api', // REST routes and the metrics endpoint
  'ui', // the web UI: its server (a client of api's routes) and, in ui/web, the page
  'node', // the composition root
  'cli', // the command line
];

const upward = LAYERS.map((layer, i) => ({
  name: `no-upward-from-${layer}`,
  severity: 'error',
  comment: `src/${layer} may only import folders below it: ${LAYERS.slice(0, i).join(', ') || '(none)'}`,
  from: { path: `^src/${layer}/` },
  to: { path: `^src/(${LAYERS.slice(i + 1).join('|') || '$^'})/` },
}));

// Crossings that the rooms' rules forbid and that still exist while ClusterMember
// is being dissolved (issue 19). The list only shrinks; empty, it goes.
const KNOWN_CROSSINGS = '^src/control/(membership/member|controllers/shard-ops|controllers/bdb-controller)\\.ts$';

// etcd is sealed in src/coord/ (issue 19): elsewhere code holds a ClusterStore. The files that still name
// the etcd3 client while their owners move to the store; the list only shrinks, and empty, it goes.
const ETCD3_NOT_YET_SEALED = '^src/(api/services|control/membership/member)\\.ts$';

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'etcd-sealed-in-coord',
      severity: 'error',
      comment: 'only src/coord/ imports etcd3 (type-only imports too): elsewhere go through coord/store.ts (ClusterStore)',
      from: { path: '^src/', pathNot: ['^src/coord/', ETCD3_NOT_YET_SEALED] },
      to: { path: '(^|/)node_modules/etcd3/' },
    },
    {
      name: 'no-unknown-folder',
      severity: 'error',
      comment: 'every folder of src/ has its place in LAYERS (.dependency-cruiser.cjs)',
      from: { path: '^src/' },
      to: { path: `^src/(?!(${LAYERS.join('|')})/)` },
    },
    { name: 'no-circular', severity: 'error', from: { path: '^src/' }, to: { circular: true } },
    // The rooms of control/ (ARCHITECTURE.md, "control/ in rooms").
    {
      name: 'control-rooms',
      severity: 'error',
      comment: 'every file of src/control lives in one of its rooms: model, membership, reconcilers, controllers, bootstrap',
      from: { path: '^src/control/(?!(model|membership|reconcilers|controllers|bootstrap)/)' },
      to: {},
    },
    {
      name: 'model-is-pure',
      severity: 'error',
      comment: 'control/model holds pure placement and planners: it imports only the model itself, record types and small helpers',
      from: { path: '^src/control/model/' },
      to: { path: '^src/', pathNot: '^src/(control/model/|coord/schema\\.ts$|util/|proxy/slots\\.ts$)' },
    },
    {
      name: 'controllers-not-reconcilers',
      severity: 'error',
      comment: 'a controller (cluster master) decides from the store, never from a node loop: no import of control/reconcilers',
      from: { path: '^src/control/controllers/', pathNot: KNOWN_CROSSINGS },
      to: { path: '^src/control/(reconcilers|bootstrap)/' },
    },
    {
      name: 'reconcilers-not-controllers',
      severity: 'error',
      comment: 'a reconciler (every node) converges its own processes and reports; it never runs a master decision',
      from: { path: '^src/control/reconcilers/' },
      to: { path: '^src/control/(controllers|bootstrap)/' },
    },
    {
      name: 'model-and-membership-below-loops',
      severity: 'error',
      comment: 'membership (the read view, lease, fence, election, peers) knows no loop: loops are given it, by src/node',
      from: { path: '^src/control/membership/', pathNot: KNOWN_CROSSINGS },
      to: { path: '^src/control/(controllers|reconcilers|bootstrap)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
