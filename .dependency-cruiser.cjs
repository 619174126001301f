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


module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'etcd-sealed-in-coord',
      severity: 'error',
      comment: 'only src/coord/ imports etcd3 (type-only imports too): elsewhere go through coord/store.ts (ClusterStore)',
      from: { path: '^src/', pathNot: '^src/coord/' },
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
      comment: 'every file of src/control lives in one of its rooms: model, membership, reconcilers, controllers, bootstrap, services',
      from: { path: '^src/control/(?!(model|membership|reconcilers|controllers|bootstrap|services)/)' },
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
      from: { path: '^src/control/controllers/' },
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
      from: { path: '^src/control/membership/' },
      to: { path: '^src/control/(controllers|reconcilers|bootstrap)/' },
    },
    {
      name: 'services-below-loops',
      severity: 'error',
      comment:
        "control/services (what REST handlers call: plan, write intent, wait on it) use the model and the membership's view, never a loop or the bootstrap",
      from: { path: '^src/control/services/' },
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
