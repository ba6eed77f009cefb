/**
 * Booting the test guest in Chromium from an HTTP server: blockgraph's `http` driver (a raw
 * image, snapshot=on, default options: 64 KiB chunks, adaptive read-ahead) against v86's own URL
 * disk (`hda: { url, async: true, size }`: one Range request per uncached IDE read) on the same
 * image, alternating, in the same run. Prints per boot: boot-to-done time (machine start to the
 * guest's BLOCKGRAPH-GUEST-DONE line), the GET requests and bytes the server answered, and the
 * medians' ratios. Each boot gets a fresh browser context, so Chromium's HTTP cache starts empty.
 * Not a test: a Playwright-driven script, on its own dev server and HTTP server.
 *
 *   npx tsx bench/browser-boot.ts [rounds=2]
 *
 * BENCH_PORT (default 5291) is the dev server's port. Needs guest/out/guest.raw (npm run guest).
 */
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from '@playwright/test';
import { createServer } from 'vite';
import config from '../playwright.config.ts';
import { TestHttpServer } from '../test/support/http-server.ts';
import type { BootReport, BootRequest } from '../e2e/fixtures/boot.ts';

const PORT = Number(process.env.BENCH_PORT ?? 5291);
const FIXTURE = `/@fs${fileURLToPath(new URL('../e2e/fixtures/boot.ts', import.meta.url))}`;
const IMAGE = fileURLToPath(new URL('../guest/out/guest.raw', import.meta.url));
const DONE = '^BLOCKGRAPH-GUEST-DONE ';
const TIMEOUT_MS = 180_000;

type Mode = 'blockgraph http' | 'v86 URL disk';

interface Row {
  readonly mode: Mode;
  readonly seconds: number;
  readonly requests: number;
  readonly bytes: number;
  readonly done: string;
}

/** One boot in a fresh context of `browser`; the server's log covers exactly this boot. */
async function bootOnce(browser: Browser, http: TestHttpServer, mode: Mode): Promise<Row> {
  const url = `${http.origin}/guest.raw`;
  const req: BootRequest = {
    hda:
      mode === 'v86 URL disk'
        ? { v86Url: url, size: statSync(IMAGE).size }
        : { drive: `file=${url},format=raw,if=none,id=hda,snapshot=on` },
    until: DONE,
    timeoutMs: TIMEOUT_MS,
  };
  await http.reset();
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${PORT}/`);
    await page.locator('#status').filter({ hasText: 'ready' }).waitFor({ timeout: 60_000 });
    const report: BootReport = await page.evaluate(
      async ([fixture, req]) =>
        ((await import(fixture)) as typeof import('../e2e/fixtures/boot.ts')).boot(req),
      [FIXTURE, req] as const,
    );
    const gets = http.requests('/guest.raw');
    return {
      mode,
      seconds: report.ms / 1000,
      requests: gets.length,
      bytes: gets.reduce((n, r) => n + r.bytes, 0),
      done: report.lines.at(-1)!,
    };
  } finally {
    await context.close();
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function printRows(rows: readonly Row[]): void {
  console.log(
    `${'disk'.padEnd(18)}${'boot s'.padStart(8)}${'requests'.padStart(10)}${'MB'.padStart(8)}  guest`,
  );
  for (const r of rows) {
    const cells = [r.seconds.toFixed(1).padStart(8), String(r.requests).padStart(10)];
    console.log(`${r.mode.padEnd(18)}${cells.join('')}${(r.bytes / 1e6).toFixed(2).padStart(8)}  ${r.done}`);
  }
  const of = (mode: Mode, key: 'seconds' | 'requests' | 'bytes') =>
    median(rows.filter((r) => r.mode === mode).map((r) => r[key]));
  const ratio = (key: 'seconds' | 'requests' | 'bytes') =>
    `${(of('blockgraph http', key) / of('v86 URL disk', key)).toFixed(2)}x`;
  console.log(
    `\nblockgraph / v86, medians: time ${ratio('seconds')}, requests ${ratio('requests')}, bytes ${ratio('bytes')}`,
  );
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 2);
  readFileSync(IMAGE, { flag: 'r' }); // fail early, with the path, when the guest is not built
  const vite = await createServer({
    configFile: fileURLToPath(new URL('../web/vite.config.ts', import.meta.url)),
    // No file watching: an edit to a module the page imports would reload it mid-boot.
    server: { host: '127.0.0.1', port: PORT, strictPort: true, hmr: false, watch: null },
    logLevel: 'warn',
  });
  await vite.listen();
  const http = await TestHttpServer.start();
  await http.serveFile('/guest.raw', IMAGE);
  const browser = await chromium.launch(config.use?.launchOptions);
  try {
    const rows: Row[] = [];
    for (let i = 0; i < rounds; i++) {
      for (const mode of ['blockgraph http', 'v86 URL disk'] as const)
        rows.push(await bootOnce(browser, http, mode));
    }
    console.log(`Chromium, test guest (${statSync(IMAGE).size} bytes raw) over HTTP, ${rounds} round(s):\n`);
    printRows(rows);
  } finally {
    await browser.close();
    await http.close();
    await vite.close();
  }
}

await main();
