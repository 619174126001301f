// Builds the web UI (part of `npm run build`): type-checks src/ui/web with
// the DOM library, bundles it with esbuild into dist/web/assets under
// content-hashed names, and writes dist/web/index.html pointing at them (with
// subresource integrity). Nothing is fetched at build or run time.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(repo, 'src/ui/web');
const out = path.join(repo, 'dist/web');
const assets = path.join(out, 'assets');

execFileSync(process.execPath, [path.join(repo, 'node_modules/typescript/bin/tsc'), '-p', path.join(src, 'tsconfig.json')], {
  stdio: 'inherit',
});

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(assets, { recursive: true });

const result = await esbuild.build({
  entryPoints: { app: path.join(src, 'main.ts') },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  legalComments: 'none',
  entryNames: '[name]-[hash]',
  outdir: assets,
  metafile: true,
  logLevel: 'warning',
});

const names = {};
const sri = (file) => `sha384-${createHash('sha384').update(fs.readFileSync(file)).digest('base64')}`;
for (const [file, o] of Object.entries(result.metafile.outputs)) {
  const abs = path.resolve(repo, file);
  if (o.entryPoint) names['app.js'] = abs;
  else if (file.endsWith('.css')) names['app.css'] = abs;
}
const favicon = fs.readFileSync(path.join(src, 'favicon.svg'));
const faviconName = `favicon-${createHash('sha256').update(favicon).digest('hex').slice(0, 8).toUpperCase()}.svg`;
fs.writeFileSync(path.join(assets, faviconName), favicon);
if (!names['app.js'] || !names['app.css'])
  throw new Error(`esbuild did not produce app.js and app.css: ${Object.keys(result.metafile.outputs).join(', ')}`);

const html = fs
  .readFileSync(path.join(src, 'index.html'), 'utf8')
  .replace('{{favicon.svg}}', faviconName)
  .replace('{{app.css}}', path.basename(names['app.css']))
  .replace('{{app.css:integrity}}', sri(names['app.css']))
  .replace('{{app.js}}', path.basename(names['app.js']))
  .replace('{{app.js:integrity}}', sri(names['app.js']));
if (html.includes('{{')) throw new Error('index.html has a placeholder left');
fs.writeFileSync(path.join(out, 'index.html'), html);
console.log(`web UI: ${path.relative(repo, out)}/ (${fs.readdirSync(assets).join(', ')})`);
