/**
 * The demo's running-disk tools in real Chromium, on one boot of the default guest: a throttle
 * inserted above the drive slows the guest's reads and shows its own counters in the graph, then
 * goes again; a point-in-time export (fleecing) keeps what the disk held when it started although
 * the guest writes during it; "Make local" (block-stream) and "Copy into a new image"
 * (blockdev-mirror) run as jobs with their events in the QMP console. Without a boot: a disk from
 * the real qemu-nbd through the WebSocket bridge.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { startBridge, type Bridge } from '../src/nbd/ws-bridge.ts';
import { QemuNbd } from '../test/nbd/qemu-nbd.ts';
import {
  BOOT_TIMEOUT,
  bootShell,
  readScratch as read,
  run,
  SCRATCH_SECTOR as SECTOR,
  shot,
  watchErrors,
  writeScratch as write,
} from './fixtures/demo-page.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-demo-running-'));
/** Where partition 2 (sda2) starts in the test guest's disk (guest/out/guest.json). */
const SDA2 = 9437184;

let server: QemuNbd;
let bridge: Bridge;

test.beforeAll(async () => {
  execFileSync('npx', ['tsx', 'web/publish-guest.ts'], { stdio: 'inherit' });
  execFileSync('qemu-img', ['create', '-f', 'raw', join(dir, 'nbd.raw'), '16M']);
  // -e 2: the page's second connection (a wrong export name) is answered while nbd0 stays open.
  const args = ['-e', '2', '-f', 'raw', '-x', 'data', join(dir, 'nbd.raw')];
  server = await new QemuNbd(join(dir, 'nbd.sock'), args).start();
  bridge = await startBridge('127.0.0.1', 0, { type: 'unix', path: server.socket });
});

test.afterAll(async () => {
  await bridge?.close();
  await server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

test('a disk from an NBD server through the WebSocket bridge', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  await page.getByLabel('WebSocket bridge').fill(`ws://127.0.0.1:${bridge.port}/`);
  await page.getByLabel('Export').fill('data');
  await page.getByRole('button', { name: 'Connect' }).click();
  await expect(page.locator('#nbd-result')).toContainText("Connected: node nbd0, 16 MiB (export 'data')");
  await expect(page.locator('#graph-svg g[data-name="nbd0"]')).toContainText('raw');
  // A wrong export name: qemu-nbd's refusal in plain words.
  await page.getByLabel('Export').fill('nope');
  await page.getByRole('button', { name: 'Connect' }).click();
  const error = page.locator('#errors .error');
  await expect(error).toContainText('The NBD export could not be opened');
  // QEMU 7.2's text (qemu-io on nbd+unix:///nope): the client's words, then the server's.
  await expect(error.locator('pre')).toHaveText(
    "GenericError: Requested export not available\nserver reported: export 'nope' not present",
  );
  await shot(page, 'demo-nbd');
  expect(errors).toEqual([]);
});

test('throttle, point-in-time export, make local and copy into a new image on a running guest', async ({
  page,
}) => {
  test.setTimeout(BOOT_TIMEOUT + 150_000);
  const errors = watchErrors(page);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  const terminal = await bootShell(page, page.locator('#boot'));
  const svg = page.locator('#graph-svg');
  const state = page.locator('#running-state');

  // Throttle: 0.5 MiB/s makes 2 MiB of direct reads take seconds; its node counts them.
  await page.getByLabel('Limit').fill('0.5');
  await page.getByRole('button', { name: 'Insert throttle' }).click();
  await expect(state).toHaveText('Throttled: 0.5 MiB/s');
  await expect(svg.locator('g[data-name="site-throttle"]')).toContainText('throttle');
  const timed =
    'S=$(date +%s); dd if=/dev/sda of=/dev/null bs=1M count=2 iflag=direct 2>/dev/null; echo T=$(($(date +%s)-S))=DONE';
  const out = await run(terminal, timed, /T=\d+=DONE/);
  expect(Number(/T=(\d+)=DONE/.exec(out)![1])).toBeGreaterThanOrEqual(2);
  await expect(svg.locator('g[data-name="site-throttle"] text.counters')).toContainText(/rd [2-9][.\d]* MiB/);
  await shot(page, 'demo-running-throttle');
  await page.getByRole('button', { name: 'Remove throttle' }).click();
  await expect(state).toHaveText('Throttle removed');
  await expect(svg.locator('g[data-name="site-throttle"]')).toHaveCount(0);

  // Fleecing: the guest overwrites the sector while the export runs; the export has the old text.
  expect(await run(terminal, write('BEFORE-EXPORT', 'W1-$((40+1))'), /W1-41/)).toContain('W1-41');
  const downloaded = page.waitForEvent('download', { timeout: 60_000 });
  await page.getByRole('button', { name: 'Export as it is now' }).click();
  await expect(page.locator('#running-progress .progress')).toBeVisible();
  await run(terminal, write('AFTER-EXPORT', 'W2-$((40+2))'), /W2-42/);
  const download = await downloaded;
  expect(download.suggestedFilename()).toMatch(/^guest-\d{8}-\d{6}\.raw$/);
  await download.saveAs(join(dir, 'fleece.raw'));
  const image = readFileSync(join(dir, 'fleece.raw'));
  expect(image.length).toBe(12 << 20);
  const at = SDA2 + SECTOR * 512;
  expect(image.subarray(at, at + 13).toString()).toBe('BEFORE-EXPORT');
  expect(await run(terminal, read('R1-$((40+3))'), /R1-43/)).toContain('AFTER-EXPORT');
  await expect(state).toHaveText('Exported the disk as it was when the export started');
  await expect(svg.locator('g[data-name="site-fleece-cbw"]')).toHaveCount(0);

  // Make local: block-stream at 1 MiB/s (QEMU's `speed`), slow enough to watch its progress bar
  // and its line under the graph; the overlay loses its backing link.
  await page.getByLabel('Job speed').fill('1');
  await page.getByRole('button', { name: 'Make local' }).click();
  await expect(page.locator('#running-progress progress')).toBeVisible();
  await expect(page.locator('#running-progress')).toContainText(/make-local: running, \d+ %/);
  await expect(page.locator('#graph-jobs')).toContainText(/make-local \(stream, running, \d+ %\)/);
  await shot(page, 'demo-running-stream');
  await expect(state).toHaveText('The disk is local: the overlay no longer needs its base', {
    timeout: 60_000,
  });
  await expect(page.locator('#qmp-log')).toContainText(
    'JOB_STATUS_CHANGE {"status":"concluded","id":"make-local"}',
  );
  await expect(svg.locator('text.role', { hasText: 'backing' })).toHaveCount(0);

  // Copy into a new image: blockdev-mirror, cancelled once ready; the copy is a kept disk.
  await page.getByLabel('Job speed').fill('0');
  await page.getByRole('button', { name: 'Copy into a new image' }).click();
  await expect(state).toContainText('Copied into copies/guest-', { timeout: 60_000 });
  await expect(page.locator('#qmp-log')).toContainText('BLOCK_JOB_READY');
  await expect(svg.locator('g[data-name="site-copy"]')).toHaveCount(0);
  await page.locator('#disks-refresh').click();
  await expect(page.locator('#disks-body tr[data-name^="copies/guest-"]')).toContainText('12 MiB');
  // The guest still writes and reads its disk.
  expect(await run(terminal, read('R2-$((40+4))'), /R2-44/)).toContain('AFTER-EXPORT');
  await shot(page, 'demo-running-jobs');
  await page.locator('#stop').click();
  await expect(page.locator('#machine-state')).toHaveText('Stopped');
  expect(errors).toEqual([]);
});
