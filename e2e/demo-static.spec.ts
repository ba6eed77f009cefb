/**
 * `vite build` of the demo works from a plain static host: the built site is served by a file
 * server that knows no byte ranges (every GET answers 200 with the whole file), and Boot still
 * starts the test guest from the published chunked image — far enough for SYSLINUX, read from
 * the qcow2 through the worker, to print its banner on the serial terminal.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { expect, test } from '@playwright/test';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-demo-static-'));
const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
};
let server: Server;
let origin: string;
const requests: { path: string; range: boolean }[] = [];

test.beforeAll(async () => {
  test.setTimeout(120_000);
  execFileSync('npx', ['tsx', 'web/publish-guest.ts'], { stdio: 'inherit' });
  // Its output (other modules' bundling warnings) matters only when it fails, and then it throws.
  execFileSync('npx', ['vite', 'build', 'web', '--outDir', dir, '--emptyOutDir'], { stdio: 'pipe' });
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push({ path, range: req.headers.range !== undefined });
    const file = normalize(join(dir, path.endsWith('/') ? `${path}index.html` : path));
    if (!file.startsWith(dir) || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

test('the static build boots the guest from a host without byte ranges', async ({ page }) => {
  test.setTimeout(120_000);
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${origin}/`);
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  await page.locator('#boot').click();
  await expect(page.locator('#terminal')).toContainText('SYSLINUX', { timeout: 90_000 });
  await page.screenshot({ path: test.info().outputPath('demo-static-boot.png'), fullPage: true });
  await page.locator('#stop').click();
  await expect(page.locator('#machine-state')).toHaveText('Stopped');
  // The guest came in chunk files; the site asked for no byte range anywhere.
  expect(requests.some((r) => r.path === '/guest/manifest.json')).toBe(true);
  expect(requests.filter((r) => r.path.startsWith('/guest/chunks/')).length).toBeGreaterThan(0);
  expect(requests.filter((r) => r.range)).toEqual([]);
  expect(errors).toEqual([]);
});
