/**
 * The http driver in Chromium, inside a Worker, against the real test server started here on a
 * port of its own (so cross-origin to the page, CORS in force): a qcow2 made by qemu-img reads
 * exactly as qemu-img converts it; the chunked layout reads without ranges; a server without
 * CORS, or one that hides Content-Range, fails with the message that says what to fix.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, test, type Page } from '@playwright/test';
import { TestHttpServer } from '../test/support/http-server.ts';
import type { HttpReport } from './fixtures/http.ts';

// Async: the server answers from this process.
const exec = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-http-'));
let server: TestHttpServer;
let qcow2Url: string;
let refSha: string;
let refLength: number;

test.beforeAll(async () => {
  server = await TestHttpServer.start();
  const qcow2 = join(dir, 'img.qcow2');
  await exec('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '3M']);
  const writes = ['-P 0x5a 0 200k', '-P 0xa5 1M 64k', '-P 0x3c 3000k 72k'];
  await exec('qemu-io', ['-f', 'qcow2', ...writes.flatMap((w) => ['-c', `write ${w}`]), qcow2]);
  await exec('qemu-img', ['convert', '-O', 'raw', qcow2, join(dir, 'ref.raw')]);
  const ref = readFileSync(join(dir, 'ref.raw'));
  refSha = createHash('sha256').update(ref).digest('hex');
  refLength = ref.length;
  qcow2Url = await server.serveFile('/img.qcow2', qcow2);
  const cli = fileURLToPath(new URL('../bin/blockgraph.js', import.meta.url));
  await exec('node', [cli, 'publish', '-z', '-c', '64k', qcow2, join(dir, 'pub')]);
  server.serveDir('/pub/', join(dir, 'pub'));
});
test.afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});
test.afterEach(() => server.reset());

async function readInWorker(page: Page, options: Record<string, unknown>): Promise<HttpReport> {
  await page.goto('/');
  const fixture = `/@fs${fileURLToPath(new URL('./fixtures/http.ts', import.meta.url))}`;
  return page.evaluate(
    async ([url, opts]) => {
      const m = (await import(url)) as typeof import('./fixtures/http.ts');
      return m.readAll(opts);
    },
    [fixture, options] as const,
  );
}

test('a qcow2 made by qemu-img reads over cross-origin http in a Worker, bit-exact', async ({ page }) => {
  const report = await readInWorker(page, { driver: 'qcow2', file: { driver: 'http', url: qcow2Url } });
  expect(report).toEqual({ length: refLength, sha256: refSha });
  // The page is on another port: every request crossed origins and was answered.
  expect(server.requests('/img.qcow2').every((r) => r.status === 206)).toBe(true);
});

test('the chunked layout (publish of the guest view) reads from a server without ranges', async ({
  page,
}) => {
  server.misbehave.noRanges = true;
  const url = `${server.origin}/pub/manifest.json`;
  const report = await readInWorker(page, { driver: 'http', layout: 'chunked', url });
  expect(report).toEqual({ length: refLength, sha256: refSha });
  expect(server.log.some((r) => r.path.endsWith('.zst'))).toBe(true);
});

test('a server without CORS: the error says network or CORS, and what the server must send', async ({
  page,
}) => {
  server.misbehave.noCors = true;
  const report = await readInWorker(page, { driver: 'http', url: qcow2Url, retries: 0 });
  expect(report.error).toContain(
    `CURL: Error opening file: Failed to fetch '${qcow2Url}': network error, or the cross-origin request was refused (CORS)`,
  );
  expect(report.error).toContain('Access-Control-Allow-Origin');
  expect(report.error).toContain('Access-Control-Expose-Headers');
});

test('a server that does not expose Content-Range: the error names Access-Control-Expose-Headers', async ({
  page,
}) => {
  server.misbehave.noExpose = true;
  const report = await readInWorker(page, { driver: 'http', url: qcow2Url });
  expect(report.error).toBe(
    "CURL: Error opening file: Server didn't report file size. (no readable Content-Range on a range response: " +
      'a cross-origin server must list Content-Range and ETag in Access-Control-Expose-Headers)',
  );
});
