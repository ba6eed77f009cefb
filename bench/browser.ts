/**
 * The demo page in a fresh headless Chromium, for the Playwright-driven benchmarks: a vite dev
 * server of web/ on `port` (files outside web/ are served under `/@fs/`), the browser flags of
 * playwright.config.ts, and a page whose blockgraph worker is up (`window.blockgraph`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from '@playwright/test';
import { createServer } from 'vite';
import config from '../playwright.config.ts';

export interface BenchPage {
  readonly page: Page;
  /** Stops the browser and the dev server. */
  close(): Promise<void>;
}

/** The URL under which the dev server serves the file at `url` (an import.meta.url-relative URL). */
export function fsPath(url: URL): string {
  return `/@fs${fileURLToPath(url)}`;
}

export async function openBenchPage(port: number, extraArgs: readonly string[] = []): Promise<BenchPage> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'blockgraph-bench-vite-'));
  const server = await createServer({
    configFile: fileURLToPath(new URL('../web/vite.config.ts', import.meta.url)),
    // A dependency cache of its own: dev servers sharing node_modules/.vite rewrite each other's
    // optimized files, and a page that loses them reloads (its workers with it) mid-run.
    cacheDir,
    // Merged with the config's list: imported late (by the worker, on first use), it would be
    // optimized mid-run and reload the page.
    optimizeDeps: { include: ['@hpcc-js/wasm-zstd'] },
    // No HMR: an edit of any source file (others work in this tree) would reload the page mid-run.
    server: { host: '127.0.0.1', port, strictPort: true, hmr: false, watch: null },
    logLevel: 'warn',
  });
  await server.listen();
  const launch = config.use?.launchOptions ?? {};
  const browser = await chromium.launch({ ...launch, args: [...(launch.args ?? []), ...extraArgs] });
  const close = async () => {
    await browser.close();
    await server.close();
    rmSync(cacheDir, { recursive: true, force: true });
  };
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    // Once the demo's worker is up, vite has found and bundled the dependencies: a first run on a
    // cold cache otherwise reloads the page (and kills the workers) when it does.
    await page.locator('#status').filter({ hasText: 'ready' }).waitFor({ timeout: 60_000 });
    return { page, close };
  } catch (err) {
    await close();
    throw err;
  }
}
