/**
 * NBD from Chromium: the blockgraph Worker's nbd driver speaks NBD in binary WebSocket frames to
 * `blockgraph nbd-bridge` (src/nbd/ws-bridge.ts, started here), which splices them onto a
 * Unix socket of the real qemu-nbd exporting a copy of the test guest. The guest boots from
 * that export (one boot, several checks): its own checks pass, and the pattern it wrote is in
 * the exported file on disk afterwards — the writes went all the way through qemu-nbd.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test, type Page } from '@playwright/test';
import { startBridge, type Bridge } from '../src/nbd/ws-bridge.ts';
import { QemuNbd } from '../test/nbd/qemu-nbd.ts';
import type { BootReport, BootRequest } from './fixtures/boot.ts';

const FIXTURE = `/@fs${fileURLToPath(new URL('./fixtures/boot.ts', import.meta.url))}`;
const GUEST = fileURLToPath(new URL('../guest/out/', import.meta.url));
const manifest = JSON.parse(readFileSync(`${GUEST}guest.json`, 'utf8')) as {
  pattern: { offset: number; line: string };
};
const PATTERN = manifest.pattern.line + '\n';
/** As in boot.spec.ts: boots take ~15 s quiet, minutes under load. */
const BOOT_TIMEOUT = 300_000;

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-nbd-'));
const image = join(dir, 'guest.raw');
let server: QemuNbd;
let bridge: Bridge;

test.beforeAll(async () => {
  copyFileSync(`${GUEST}guest.raw`, image);
  server = await new QemuNbd(join(dir, 'nbd.sock'), ['-f', 'raw', '-x', 'guest', image]).start();
  bridge = await startBridge('127.0.0.1', 0, { type: 'unix', path: server.socket });
});

test.afterAll(async () => {
  await bridge?.close();
  await server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

async function boot(page: Page, req: BootRequest): Promise<BootReport> {
  return page.evaluate(
    async ([url, req]) => ((await import(url)) as typeof import('./fixtures/boot.ts')).boot(req),
    [FIXTURE, req] as const,
  );
}

test('the test guest boots from a qemu-nbd export through the WebSocket bridge', async ({ page }) => {
  test.setTimeout(BOOT_TIMEOUT + 30_000);
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  const nbd = {
    driver: 'nbd',
    server: { type: 'websocket', url: `ws://127.0.0.1:${bridge.port}/` },
    export: 'guest',
  };
  const report = await boot(page, {
    hda: { drive: { id: 'hda', node: { driver: 'raw', file: nbd } } },
    until: '^BLOCKGRAPH-GUEST-DONE ',
    timeoutMs: BOOT_TIMEOUT,
    probe: { offset: manifest.pattern.offset, length: PATTERN.length },
  });
  const results = report.lines.filter((l) => l.startsWith('BLOCKGRAPH-CHECK '));
  expect(results.filter((l) => !/^BLOCKGRAPH-CHECK \S+ OK/.test(l))).toEqual([]);
  expect(results.map((l) => l.split(' ')[1])).toEqual(
    expect.arrayContaining(['seed-sha256', 'direct-write']),
  );
  expect(report.lines.at(-1)).toBe(`BLOCKGRAPH-GUEST-DONE pass=${results.length} fail=0`);
  // The guest's pattern reached the file qemu-nbd exports.
  expect(report.probes).toEqual([PATTERN]);
  const onDisk = readFileSync(image).subarray(
    manifest.pattern.offset,
    manifest.pattern.offset + PATTERN.length,
  );
  expect(onDisk.toString('latin1')).toBe(PATTERN);
});
