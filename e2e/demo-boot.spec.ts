/**
 * The demo's default guest in real Chromium: Boot starts the test guest's shell from the
 * published compressed qcow2 (build/site/guest, the chunked layout, as a static host serves it)
 * under a qcow2 overlay kept in OPFS; typing on the serial terminal runs commands; Save state /
 * Restore bring back the disk as it was; after a reload a second boot (from the drop panel, with
 * a dropped raw file as the guest's virtio disk) finds what was written and reads the dropped
 * file; Reset disk (after its confirmation) deletes the overlay. Two boots (~15-150 s each).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import {
  BOOT_TIMEOUT,
  bootShell,
  readScratch as read,
  run,
  shot,
  watchErrors,
  writeScratch as write,
} from './fixtures/demo-page.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-demo-boot-'));
/** A raw image to drop: its first sector holds a line the guest reads from /dev/vda. */
const DROPPED = join(dir, 'data.img');

test.beforeAll(() => {
  // The site serves the guest from vite's public directory; publish it if the guest changed.
  execFileSync('npx', ['tsx', 'web/publish-guest.ts'], { stdio: 'inherit' });
  const data = new Uint8Array(1 << 20);
  data.set(new TextEncoder().encode('DROPPED-DATA\n'));
  writeFileSync(DROPPED, data);
});

test.afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('boot, type, save and restore, keep across a reload, reset', async ({ page }) => {
  test.setTimeout(2 * BOOT_TIMEOUT + 90_000);
  const errors = watchErrors(page);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');

  let terminal = await bootShell(page, page.locator('#boot'));
  // $((...)) makes the marker the guest's output, not the echo of what was typed.
  expect(await run(terminal, write('KEPT-TEXT', 'W1-$((40+2))'), /W1-42/)).toContain('W1-42');

  // The graph: the drive, the overlay in OPFS over the qcow2 over http, with child roles.
  const svg = page.locator('#graph-svg');
  await expect(svg.locator('g[data-name="hda"]')).toContainText(/rd [1-9]/);
  await expect(svg.locator('g[data-name="guest"]')).toContainText('qcow2');
  await expect(svg.locator('g[data-name="guest-base"]')).toContainText('qcow2');
  await expect(svg.locator('text.role', { hasText: 'backing' })).toHaveCount(1);
  await expect(svg).toContainText('http');
  await expect(svg).toContainText('opfs');

  await page.getByRole('button', { name: 'Save state' }).click();
  await expect(page.locator('#machine-state')).toHaveText('Saving the machine state: done', {
    timeout: 60_000,
  });
  expect(await run(terminal, write('LATER-TEXT', 'W2-$((40+3))'), /W2-43/)).toContain('W2-43');
  expect(await run(terminal, read('R1-$((40+4))'), /R1-44/)).toContain('LATER-TEXT');
  await page.getByRole('button', { name: 'Restore' }).click();
  await expect(page.locator('#machine-state')).toHaveText('Restoring the machine state: done', {
    timeout: 60_000,
  });
  expect(await run(terminal, read('R2-$((40+5))'), /R2-45/)).toContain('KEPT-TEXT');
  await shot(page, 'demo-boot-running');

  // A reload ends the machine; the overlay in OPFS keeps the guest's writes.
  await page.reload();
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  await expect(page.locator('#disks-body tr[data-name="demo/guest.qcow2"]')).toContainText('qcow2');
  // This boot comes from the drop panel: a dropped raw file as the guest's virtio disk,
  // temporary changes; the guest's own disk is its overlay as before.
  await page.setInputFiles('#image-file', DROPPED);
  await expect(page.locator('#image-info-table')).toContainText('1 MiB (1048576 bytes)');
  await page.getByLabel('virtio disk (data disk of the test guest)').check();
  terminal = await bootShell(page, page.locator('#attach-boot'));
  expect(await run(terminal, read('R3-$((40+6))'), /R3-46/)).toContain('KEPT-TEXT');
  const vda = `dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | head -n 1; echo R4-$((40+7))`;
  expect(await run(terminal, vda, /R4-47/)).toContain('DROPPED-DATA');
  await expect(page.locator('#graph-svg g[data-name="vda"]')).toContainText(/rd [1-9]/);
  await shot(page, 'demo-boot-after-reload');

  // Reset asks first; cancelling keeps the disk, confirming deletes it.
  await page.getByRole('button', { name: 'Reset disk' }).click();
  await page.locator('dialog.confirm').getByRole('button', { name: 'Cancel' }).click();
  await expect(page.locator('#machine-state')).toHaveText('Running: type in the terminal');
  await page.getByRole('button', { name: 'Reset disk' }).click();
  await page.locator('dialog.confirm').getByRole('button', { name: 'Reset disk' }).click();
  await expect(page.locator('#machine-state')).toContainText('Disk reset');
  await expect(page.locator('#disks-body tr[data-name="demo/guest.qcow2"]')).toHaveCount(0);
  await shot(page, 'demo-boot-reset');
  expect(errors).toEqual([]);
});
