// The web UI's files, as `npm run build` leaves them (scripts/build-ui.mjs,
// esbuild): dist/web/index.html and dist/web/assets/<name>-<hash>.<ext>.
// They are read once, at start, and served from memory; a name carries its
// content hash, so an asset never changes under its name and may be cached
// for a year.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/web, next to dist/src where this file is compiled to. */
export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export interface Asset {
  body: Buffer;
  type: string;
}

export interface UiAssets {
  /** undefined when the UI was not built. */
  index?: Buffer;
  files: Map<string, Asset>;
  /** Why there is no index, for the log and the page. */
  problem?: string;
}

export function loadAssets(dir = WEB_DIR): UiAssets {
  const files = new Map<string, Asset>();
  const indexFile = path.join(dir, 'index.html');
  if (!fs.existsSync(indexFile)) return { files, problem: `the web UI is not built (no ${indexFile}); run npm run build` };
  const assetsDir = path.join(dir, 'assets');
  for (const name of fs.readdirSync(assetsDir)) {
    const type = TYPES[path.extname(name)];
    if (type) files.set(name, { body: fs.readFileSync(path.join(assetsDir, name)), type });
  }
  return { index: fs.readFileSync(indexFile), files };
}
