/**
 * Rebuilds build/blockgraph.wasm when a source under assembly/ is newer, so unit tests never
 * run against a stale module (a broken loop must fail them even without `npm run build`).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WASM_URL } from '../../src/wasm/load.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function ensureWasmBuilt(): void {
  const built = mtime(fileURLToPath(WASM_URL));
  const newest = Math.max(
    ...readdirSync(`${ROOT}assembly`, { recursive: true, encoding: 'utf8' }).map((f) =>
      mtime(`${ROOT}assembly/${f}`),
    ),
    mtime(`${ROOT}asconfig.json`),
  );
  if (newest <= built) return;
  execFileSync('npx', ['asc', '--config', 'asconfig.json', '--target', 'release'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}
