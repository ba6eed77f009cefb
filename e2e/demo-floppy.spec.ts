/**
 * A dropped 1.44 MiB floppy image attached as floppy: SeaBIOS boots its boot sector, which
 * prints a line on the VGA screen. No guest kernel: seconds, not minutes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { shot, watchErrors } from './fixtures/demo-page.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-demo-floppy-'));
const MESSAGE = 'FLOPPY-BOOT-OK';

test.afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A boot sector (16-bit real mode at 0:7C00) printing MESSAGE with int 10h teletype, then halting:
 *   xor ax,ax; mov ds,ax; xor bx,bx; mov si,msg
 *   next: lodsb; test al,al; jz stop; mov ah,0Eh; int 10h; jmp next
 *   stop: hlt; jmp stop
 */
function bootSector(): Uint8Array {
  const code = [0x31, 0xc0, 0x8e, 0xd8, 0x31, 0xdb, 0xbe, 0x17, 0x7c];
  code.push(0xac, 0x84, 0xc0, 0x74, 0x06, 0xb4, 0x0e, 0xcd, 0x10, 0xeb, 0xf5, 0xf4, 0xeb, 0xfd);
  const sector = new Uint8Array(512);
  sector.set(code);
  sector.set(new TextEncoder().encode(`${MESSAGE}\0`), code.length);
  sector.set([0x55, 0xaa], 510);
  return sector;
}

test('a dropped floppy image boots from the floppy drive', async ({ page }) => {
  test.setTimeout(90_000);
  const errors = watchErrors(page);
  const file = join(dir, 'boot.img');
  const image = new Uint8Array(1474560);
  image.set(bootSector());
  writeFileSync(file, image);
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  await page.setInputFiles('#image-file', file);
  await expect(page.locator('#image-info-table')).toContainText('1.41 MiB (1474560 bytes)');
  await page.getByLabel(/^ floppy/).check();
  await page.locator('#attach-boot').click();
  await expect(page.locator('#screen')).toContainText('Booting from Floppy', { timeout: 60_000 });
  await expect(page.locator('#screen')).toContainText(MESSAGE);
  await expect(page.locator('#graph-svg g[data-name="fda"]')).toContainText(/rd [1-9]/);
  await shot(page, 'demo-floppy');
  await page.locator('#stop').click();
  await expect(page.locator('#machine-state')).toHaveText('Stopped');
  // Temporary changes: the file was only read.
  expect(readFileSync(file).equals(image)).toBe(true);
  expect(errors).toEqual([]);
});
