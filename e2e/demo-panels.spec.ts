/**
 * The demo site's panels that need no guest boot, in real Chromium: a dropped qcow2 (an overlay
 * with a snapshot and zstd compression) shows its info and asks for its missing backing file; a
 * 5 GiB file opens without being read whole; the configuration box marks the offending option;
 * the QMP console runs commands; the graph shows what was added; a disk kept in the browser is
 * listed, exported as a download and deleted. Screenshots at 1280×800 and on a narrow window.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test, type Page } from '@playwright/test';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-demo-'));
const MiB = 1 << 20;

test.beforeAll(() => {
  const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { cwd: dir });
  qemuImg('create', '-f', 'qcow2', '-o', 'cluster_size=65536', 'base.qcow2', '16M');
  execFileSync('qemu-io', ['-c', 'write -P 0x5a 0 1M', 'base.qcow2'], { cwd: dir });
  qemuImg(
    'create',
    '-f',
    'qcow2',
    '-o',
    'compression_type=zstd,cluster_size=131072',
    '-b',
    'base.qcow2',
    '-F',
    'qcow2',
    'top.qcow2',
  );
  qemuImg('snapshot', '-c', 'before-demo', 'top.qcow2');
  // Sparse: 5 GiB on paper, nothing on disk; the page must never read it whole.
  execFileSync('truncate', ['-s', '5G', join(dir, 'huge.img')]);
});

test.afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Console errors and uncaught exceptions of the page, collected for a final assertion. */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: test.info().outputPath(`${name}.png`), fullPage: true });
}

test('image info, backing file request, configuration, QMP console, graph and kept disks', async ({
  page,
}) => {
  test.setTimeout(90_000);
  const errors = watchErrors(page);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');

  // A dropped overlay: its info first, then the question for its backing file.
  await page.setInputFiles('#image-file', join(dir, 'top.qcow2'));
  const info = page.locator('#image-info-table');
  await expect(info).toContainText('qcow2');
  await expect(info).toContainText('16 MiB (16777216 bytes)');
  await expect(info).toContainText('128 KiB');
  await expect(info).toContainText('base.qcow2 (qcow2)');
  await expect(info).toContainText('zstd');
  await expect(info).toContainText('before-demo');
  await expect(page.locator('#backing-help')).toContainText("backing file 'base.qcow2' is needed");
  await page.setInputFiles('#backing-file', join(dir, 'base.qcow2'));
  await expect(page.locator('#image-info .ask')).toContainText("Backing file 'base.qcow2': base.qcow2");
  await expect(page.locator('#attach-boot')).toBeVisible();
  await shot(page, 'demo-drop-info');

  // Over 4 GiB: only headers are read.
  await page.setInputFiles('#image-file', join(dir, 'huge.img'));
  await expect(info).toContainText('5 GiB (5368709120 bytes)');
  await expect(info).toContainText('raw');

  // The configuration box: QEMU's text under the line, the option marked.
  const config = page.locator('#config-text');
  // QEMU 7.2's texts (qemu-system-x86_64 -blockdev ...): keyval sizes take no suffix there.
  await config.fill('# a comment\n-blockdev driver=null-co,node-name=cfg0,size=1073741824,bogus=1');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.locator('#config-result .error pre')).toHaveText("Parameter 'bogus' is unexpected");
  await expect(page.locator('#config-result .error strong')).toHaveText('Line 2: ');
  await expect(page.locator('#config-result mark')).toHaveText('bogus');
  await config.fill('-blockdev driver=null-co,node-name=cfg0,size=1G');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.locator('#config-result .error pre')).toHaveText("Parameter 'size' expects integer");
  await expect(page.locator('#config-result mark')).toHaveText('size');
  await config.fill('-blockdev driver=null-co,node-name=cfg0,size=1073741824');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.locator('#config-result .ok')).toHaveText('Applied 1 line(s).');

  // The graph shows the new node with its driver.
  await expect(page.locator('#graph-svg g[data-name="cfg0"]')).toContainText('null-co');

  // The QMP console: a return, and an error with its class.
  const qmp = page.locator('#qmp-input');
  await qmp.fill('query-named-block-nodes');
  await qmp.press('Enter');
  await expect(page.locator('#qmp-log .qmp-return').last()).toContainText('"node-name": "cfg0"');
  await qmp.fill('blockdev-del {"node-name": "nope"}');
  await qmp.press('Enter');
  await expect(page.locator('#qmp-log .qmp-error').last()).toContainText(
    `{"error":{"class":"GenericError","desc":"Failed to find node with node-name='nope'"}}`,
  );

  // A disk kept in the browser: listed, exported (a download), deleted after confirmation.
  // The job-command helper, as the page imports it from Vite's dev server (/@fs/).
  const jobCommand = `/@fs${fileURLToPath(new URL('../src/jobs/job-command.ts', import.meta.url))}`;
  await page.evaluate(async (url) => {
    const { runJobCommand } = (await import(url)) as typeof import('../src/jobs/job-command.ts');
    const bg = window.blockgraph;
    const execute = (c: string, a?: Record<string, unknown>) => bg.execute(c, a);
    const file = { driver: 'opfs', filename: 'tests/kept.raw' };
    await runJobCommand(execute, 'blockdev-create', { 'job-id': 'c', options: { ...file, size: 2 << 20 } });
    const drive = await bg.addDrive({ id: 'w', node: { driver: 'raw', file } });
    await drive.write(1 << 20, new Uint8Array(4096).fill(0xc3));
    await drive.close();
  }, jobCommand);
  await page.locator('#disks-refresh').click();
  const row = page.locator('#disks-body tr[data-name="tests/kept.raw"]');
  await expect(row).toContainText('2 MiB');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    row.getByRole('button', { name: /as raw/ }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('kept.raw');
  const saved = join(dir, 'kept.raw');
  await download.saveAs(saved);
  const bytes = readFileSync(saved);
  expect(bytes.length).toBe(2 * MiB);
  expect(bytes.subarray(MiB, MiB + 4096).every((b) => b === 0xc3)).toBe(true);
  expect(bytes.subarray(0, MiB).every((b) => b === 0)).toBe(true);
  // As a standalone qcow2: the same guest view, checked by qemu-img.
  const [qcow2] = await Promise.all([
    page.waitForEvent('download'),
    row.getByRole('button', { name: /as qcow2/ }).click(),
  ]);
  expect(qcow2.suggestedFilename()).toBe('kept.qcow2');
  await qcow2.saveAs(join(dir, 'kept.qcow2'));
  const compare = execFileSync(
    'qemu-img',
    ['compare', '-f', 'qcow2', '-F', 'raw', 'kept.qcow2', 'kept.raw'],
    { cwd: dir },
  );
  expect(compare.toString()).toContain('Images are identical.');
  await shot(page, 'demo-panels-1280');

  await row.getByRole('button', { name: /Delete/ }).click();
  await page.locator('dialog.confirm').getByRole('button', { name: 'Delete' }).click();
  await expect(row).toHaveCount(0);

  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, 'demo-panels-narrow');
  // Narrow: one column, nothing wider than the window.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  expect(errors).toEqual([]);
});

test('without OPFS the guest overlay is kept in IndexedDB', async ({ page }) => {
  test.setTimeout(90_000);
  const errors = watchErrors(page);
  // A browser without the origin-private file system, as far as the page can tell.
  await page.addInitScript(
    () => delete (StorageManager.prototype as { getDirectory?: unknown }).getDirectory,
  );
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  await page.locator('#boot').click();
  await expect(page.locator('#machine-state')).toHaveText('Booting…', { timeout: 60_000 });
  const row = page.locator('#disks-body tr[data-name="demo/guest.qcow2"]');
  await expect(row).toContainText('IndexedDB');
  await expect(row).toContainText('12 MiB');
  await page.locator('#stop').click();
  await expect(page.locator('#machine-state')).toHaveText('Stopped');
  await shot(page, 'demo-idb-fallback');
  expect(errors).toEqual([]);
});

test('a dropped image kept in the browser: an overlay over the unmodified file, the VGA screen', async ({
  page,
}) => {
  test.setTimeout(90_000);
  const errors = watchErrors(page);
  const file = join(dir, 'blank.img');
  execFileSync('truncate', ['-s', '2M', file]);
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  await page.setInputFiles('#image-file', file);
  await expect(page.locator('#image-info-table')).toContainText('2 MiB (2097152 bytes)');
  await page.getByLabel('kept in this browser').check();
  await page.locator('#attach-boot').click();
  // SeaBIOS finds nothing to boot on an empty disk and says so on the VGA screen.
  await expect(page.locator('#screen')).toContainText('not a bootable disk', { timeout: 60_000 });
  const row = page.locator('#disks-body tr[data-name="dropped/blank.img.qcow2"]');
  await expect(row).toContainText('blank.img');
  await expect(row).toContainText('qcow2');
  await shot(page, 'demo-dropped-kept');
  await page.locator('#stop').click();
  await expect(page.locator('#machine-state')).toHaveText('Stopped');
  // The file was only read.
  expect(readFileSync(file).every((b) => b === 0)).toBe(true);
  expect(errors).toEqual([]);
});

test('a dropped ISO goes into the CD-ROM and the BIOS reads it', async ({ page }) => {
  test.setTimeout(90_000);
  const errors = watchErrors(page);
  // The smallest ISO 9660 image: a primary volume descriptor (sector 16), a terminator (17).
  const iso = new Uint8Array(64 * 2048);
  iso.set([1, ...new TextEncoder().encode('CD001'), 1], 16 * 2048);
  iso.set([255, ...new TextEncoder().encode('CD001'), 1], 17 * 2048);
  const file = join(dir, 'empty.iso');
  writeFileSync(file, iso);
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  await page.setInputFiles('#image-file', file);
  await expect(page.locator('#image-info-table')).toContainText('raw (ISO 9660 CD image)');
  await expect(page.getByLabel(/^ CD-ROM/)).toBeChecked();
  await page.locator('#attach-boot').click();
  await expect(page.locator('#screen')).toContainText('Booting from DVD/CD', { timeout: 60_000 });
  // SeaBIOS read the medium's sector 17 and found no El Torito boot record there: code 0004
  // (an empty drive fails earlier, with code 0003, as in the previous test's screen).
  await expect(page.locator('#screen')).toContainText('Boot failed: Could not read from CDROM (code 0004)');
  await shot(page, 'demo-cdrom');
  await page.locator('#stop').click();
  expect(errors).toEqual([]);
});
