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
      name: 'no-unknown-folder',
      severity: 'error',
      comment: 'every folder of src/ has its place in LAYERS (.dependency-cruiser.cjs)',
      from: { path: '^src/' },
      to: { path: `^src/(?!(${LAYERS.join('|')})/)` },
    },
    { name: 'no-circular', severity: 'error', from: { path: '^src/' }, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
