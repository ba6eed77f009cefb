/**
 * Storage throughput in Chromium: raw and qcow2 (64 KiB clusters) over each browser storage
 * (memory, opfs, idb; the table is in browser-io.worker.ts), timed inside a dedicated worker
 * through a BlockBackend: sequential 1 MiB and random 4 KiB reads and writes, at queue depth 1
 * and 8, each image filled once first (so qcow2 writes overwrite allocated clusters), writes
 * timed up to and including a flush. Prints MB/s and IOPS, each storage's ratio to memory with
 * the same format, and the issue's target (OPFS random 4 KiB reads >= 20,000 IOPS at depth 8).
 * Not a test: a Playwright-driven script, on its own dev server.
 *
 *   npx tsx bench/browser-io.ts [size-MiB=64] [random-ops=20000] [storage,...=memory,opfs,idb]
 *
 * BENCH_PORT (default 5290) is the dev server's port.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from '@playwright/test';
import { createServer } from 'vite';
import config from '../playwright.config.ts';
import type { BenchRequest, BenchResult, Measurement } from './browser-io.worker.ts';

const PORT = Number(process.env.BENCH_PORT ?? 5290);
const WORKER = `/@fs${fileURLToPath(new URL('./browser-io.worker.ts', import.meta.url))}`;

/** Runs the request in a worker of a fresh headless Chromium; returns the worker's results. */
async function runInChromium(req: BenchRequest): Promise<BenchResult[]> {
  const server = await createServer({
    configFile: fileURLToPath(new URL('../web/vite.config.ts', import.meta.url)),
    server: { host: '127.0.0.1', port: PORT, strictPort: true },
    logLevel: 'warn',
  });
  await server.listen();
  // A profile on disk: Playwright's default contexts are off-the-record, where Chromium keeps
  // OPFS in memory and every sync handle call is an IPC to the browser process (~20x slower).
  const profile = mkdtempSync(join(tmpdir(), 'blockgraph-bench-profile-'));
  const browser = await chromium.launchPersistentContext(profile, config.use?.launchOptions);
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${PORT}/`);
    // Once the demo's own worker is up, vite has found and bundled the dependencies: a first run
    // on a cold cache otherwise reloads the page (and kills the bench worker) when it does.
    await page.locator('#status').filter({ hasText: 'ready' }).waitFor({ timeout: 60_000 });
    return await page.evaluate(
      ([url, request]) =>
        new Promise<BenchResult[]>((resolve, reject) => {
          const worker = new Worker(url, { type: 'module' });
          worker.onmessage = (e: MessageEvent<BenchResult[]>) => resolve(e.data);
          worker.onerror = (e) =>
            reject(new Error(e instanceof ErrorEvent ? e.message : 'worker did not load'));
          worker.postMessage(request);
        }),
      [WORKER, req] as const,
    );
  } finally {
    await browser.close();
    await server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

/** The number a measurement is reported as: MB/s for sequential, IOPS for random. */
function rate(m: Measurement): number {
  return m.pattern === 'seq' ? m.bytes / 1e6 / m.seconds : m.requests / m.seconds;
}

const COLUMNS = (depths: readonly number[]) =>
  (['seq', 'rand'] as const).flatMap((pattern) =>
    (['read', 'write'] as const).flatMap((op) => depths.map((depth) => ({ pattern, op, depth }))),
  );

function find(r: BenchResult, c: { pattern: string; op: string; depth: number }): Measurement | undefined {
  return r.measurements.find((m) => m.pattern === c.pattern && m.op === c.op && m.depth === c.depth);
}

function printTable(results: readonly BenchResult[], depths: readonly number[]): void {
  const cols = COLUMNS(depths);
  const head = cols.map((c) => `${c.pattern} ${c.op} QD${c.depth}`.padStart(16)).join('');
  console.log(`${'image'.padEnd(14)}${head}`);
  console.log(
    `${''.padEnd(14)}${cols.map((c) => (c.pattern === 'seq' ? 'MB/s' : 'IOPS').padStart(16)).join('')}`,
  );
  for (const r of results) {
    const name = `${r.format}/${r.storage}`.padEnd(14);
    if (r.error) console.log(`${name}  failed: ${r.error}`);
    else console.log(name + cols.map((c) => rate(find(r, c)!).toFixed(0).padStart(16)).join(''));
  }
  console.log('\nratio to memory, same format:');
  for (const r of results.filter((x) => x.storage !== 'memory' && !x.error)) {
    const mem = results.find((x) => x.storage === 'memory' && x.format === r.format && !x.error);
    if (!mem) continue;
    const ratios = cols.map((c) => `${(rate(find(r, c)!) / rate(find(mem, c)!)).toFixed(2)}x`.padStart(16));
    console.log(`${`${r.format}/${r.storage}`.padEnd(14)}${ratios.join('')}`);
  }
}

/** The issue's target, on raw over opfs (the storage's own speed). */
function printTarget(results: readonly BenchResult[], depths: readonly number[]): void {
  const opfs = results.find((r) => r.storage === 'opfs' && r.format === 'raw' && !r.error);
  const depth = Math.max(...depths);
  const m = opfs && find(opfs, { pattern: 'rand', op: 'read', depth });
  if (!m) return;
  const iops = rate(m);
  console.log(
    `\ntarget: OPFS random 4 KiB reads at depth ${depth}: ${iops.toFixed(0)} IOPS ` +
      `(target >= 20000: ${iops >= 20000 ? 'met' : 'NOT met'})`,
  );
}

async function main(): Promise<void> {
  const req: BenchRequest = {
    sizeMiB: Number(process.argv[2] ?? 64),
    randomOps: Number(process.argv[3] ?? 20000),
    storage: (process.argv[4] ?? 'memory,opfs,idb').split(','),
    depths: [1, 8],
  };
  const results = await runInChromium(req);
  console.log(
    `Chromium worker, ${req.sizeMiB} MiB images, ${req.randomOps} random 4 KiB requests per cell, ` +
      'writes timed with their flush:\n',
  );
  printTable(results, req.depths);
  printTarget(results, req.depths);
}

await main();
