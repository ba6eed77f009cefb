/**
 * Puts the test guest where the demo site serves it: build/site/guest/, vite's public directory
 * (web/vite.config.ts), copied as is into dist/ by `vite build`. The raw image from
 * scripts/build-guest.sh becomes a compressed qcow2 (`blockgraph convert -c`), published in the
 * http driver's chunked layout (`blockgraph publish -f raw`), so any static host serves it: no
 * byte ranges needed, and every chunk file is small. Runs again only when the guest changed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const GUEST = root('guest/out/guest.raw');
const STAMP = root('guest/out/guest.stamp');
const SITE = root('build/site/guest');
const QCOW2 = root('build/site/guest.qcow2.tmp');

const stamp = readFileSync(STAMP, 'utf8');
if (existsSync(`${SITE}/manifest.json`) && readFileSync(`${SITE}/stamp`, 'utf8') === stamp) process.exit(0);

const blockgraph = (...args: string[]) =>
  execFileSync(process.execPath, [root('bin/blockgraph.js'), ...args]);
rmSync(SITE, { recursive: true, force: true });
mkdirSync(SITE, { recursive: true });
blockgraph('convert', '-c', '-f', 'raw', '-O', 'qcow2', GUEST, QCOW2);
// `-f raw`: the qcow2 file itself is published, the page opens it as qcow2 over http.
blockgraph('publish', '-f', 'raw', QCOW2, SITE);
rmSync(QCOW2);
writeFileSync(`${SITE}/stamp`, stamp);
console.log(`demo guest published to ${SITE}`);
