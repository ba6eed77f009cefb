/**
 * The opfs protocol in real Chromium, through the real worker and client: data flushed before a
 * reload is there after it; blockdev-create makes parent directories; a second read-write opener
 * (another worker, another tab) gets QEMU's lock error at once while the first keeps working, and
 * read-only openers coexist with it; open errors carry file-posix's texts; outside a worker the
 * driver says why it cannot work; a qcow2 overlay in OPFS over a memory base survives a reload
 * and is an image qemu-img accepts. The conformance suites run over opfs in
 * e2e/conformance.spec.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, expect, test, type Page } from '@playwright/test';
import type * as Fixture from './fixtures/opfs.ts';

const FIXTURE = `/@fs${fileURLToPath(new URL('./fixtures/opfs.ts', import.meta.url))}`;
const MiB = 1 << 20;
const LOCK_ERROR = 'GenericError: Failed to get "write" lock';
/** "At once": a lock conflict that waited for the holder would take the test's timeout. */
const AT_ONCE_MS = 1000;

type Fn = {
  [K in keyof typeof Fixture]: (typeof Fixture)[K] extends (...a: never[]) => unknown ? K : never;
}[keyof typeof Fixture];

/** Calls the fixture function `fn` in the page with `args`. */
function call<K extends Fn>(
  page: Page,
  fn: K,
  ...args: Parameters<(typeof Fixture)[K]>
): Promise<Awaited<ReturnType<(typeof Fixture)[K]>>> {
  return page.evaluate(
    async ([url, name, a]) => {
      const m = (await import(url)) as Record<string, (...x: unknown[]) => unknown>;
      return m[name]!(...a);
    },
    [FIXTURE, fn, args] as const,
  ) as Promise<Awaited<ReturnType<(typeof Fixture)[K]>>>;
}

async function start(page: Page): Promise<void> {
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
}

test.beforeEach(async ({ page }) => {
  await start(page);
  await call(page, 'clearOpfs');
});

const raw = (filename: string, extra: Record<string, unknown> = {}) => ({
  driver: 'raw',
  file: { driver: 'opfs', filename, ...extra },
});

/** blockdev-create of an opfs file of `size` bytes in worker `worker`; fails the test if refused. */
async function create(page: Page, worker: string, filename: string, size: number): Promise<void> {
  const r = await call(page, 'execute', worker, 'blockdev-create', {
    'job-id': 'create',
    options: { driver: 'opfs', filename, size },
  });
  expect(r.error).toBeUndefined();
}

test('flushed data survives a reload; the reload releases the lock', async ({ page }) => {
  await create(page, 'a', 'persist/disk.img', 4 * MiB);
  expect((await call(page, 'addDrive', 'a', { id: 'd', node: raw('persist/disk.img') })).value).toBe(4 * MiB);
  expect((await call(page, 'writePattern', 'a', 'd', 3 * MiB - 1000, 300_000, 7)).error).toBeUndefined();
  expect((await call(page, 'flush', 'a', 'd')).error).toBeUndefined();
  // No close: the worker dies with the page, holding the handle and the lock.
  await page.reload();
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  expect((await call(page, 'addDrive', 'b', { id: 'd', node: raw('persist/disk.img') })).value).toBe(4 * MiB);
  expect((await call(page, 'mismatch', 'b', 'd', 3 * MiB - 1000, 300_000, 7)).value).toBe(-1);
  expect((await call(page, 'mismatch', 'b', 'd', 0, 3 * MiB - 1000, null)).value).toBe(-1);
});

test('blockdev-create makes the parent directories and empties an existing file', async ({ page }) => {
  await create(page, 'a', 'x/y/z/disk.img', 3000);
  // raw_co_create's size is the file's size: 3000 bytes, though the node reads as 3072.
  expect((await call(page, 'fileBytes', 'x/y/z/disk.img')).length).toBe(3000);
  await call(page, 'addDrive', 'a', { id: 'd', node: raw('x/y/z/disk.img') });
  await call(page, 'writePattern', 'a', 'd', 0, 3000, 1);
  await call(page, 'removeDrive', 'a', 'd');
  await create(page, 'a', '/x//y/z/disk.img', 1024);
  expect(await call(page, 'fileBytes', 'x/y/z/disk.img')).toEqual(new Array(1024).fill(0));
});

test('open errors carry file-posix texts', async ({ page }) => {
  await create(page, 'a', 'dir/disk.img', 4096);
  const open = async (filename: string, readOnly = false) =>
    (
      await call(page, 'execute', 'a', 'blockdev-add', {
        driver: 'opfs',
        'node-name': 'n',
        filename,
        'read-only': readOnly,
      })
    ).error;
  expect(await open('nodir/disk.img')).toBe(
    "GenericError: Could not open 'nodir/disk.img': No such file or directory",
  );
  expect(await open('dir/none')).toBe("GenericError: Could not open 'dir/none': No such file or directory");
  expect(await open('dir')).toBe("GenericError: Could not open 'dir': Is a directory");
  expect(await open('dir', true)).toBe("GenericError: 'opfs' driver requires 'dir' to be a regular file");
  expect(await open('dir/disk.img/x')).toBe("GenericError: Could not open 'dir/disk.img/x': Not a directory");
  expect(await open('dir/..')).toBe("GenericError: Could not open 'dir/..': Invalid argument");
  const created = await call(page, 'execute', 'a', 'blockdev-create', {
    'job-id': 'c',
    options: { driver: 'opfs', filename: 'dir/disk.img/x', size: 0 },
  });
  expect(created.error).toBe("GenericError: Could not create 'dir/disk.img/x': Not a directory");
});

test('outside a dedicated worker the driver says why it cannot work', async ({ page }) => {
  const r = await call(page, 'outsideWorker', 'disk.img');
  const why =
    "the 'opfs' driver works only in a dedicated worker (createSyncAccessHandle() is not available here)";
  expect(r.open.error).toBe(`GenericError: Could not open 'disk.img': ${why}`);
  expect(r.create.error).toBe(`GenericError: Could not create 'disk.img': ${why}`);
});

/**
 * The lock contract, with `other` being a second worker of the same page or a worker of another
 * page (tab) of the same browser context.
 */
async function lockContract(first: Page, other: Page): Promise<void> {
  await create(first, 'a', 'shared/disk.img', MiB);
  expect(
    (await call(first, 'addDrive', 'a', { id: 'd', node: raw('shared/disk.img') })).error,
  ).toBeUndefined();
  await call(first, 'writePattern', 'a', 'd', 0, 64 * 1024, 3);
  await call(first, 'flush', 'a', 'd');

  const second = await call(other, 'addDrive', 'b', { id: 'd', node: raw('shared/disk.img') });
  expect(second.error).toBe(LOCK_ERROR);
  expect(second.ms).toBeLessThan(AT_ONCE_MS);
  const recreate = await call(other, 'execute', 'b', 'blockdev-create', {
    'job-id': 'c',
    options: { driver: 'opfs', filename: 'shared/disk.img', size: MiB },
  });
  expect(recreate.error).toBe(LOCK_ERROR);

  // The first keeps working, and read-only openers coexist with it and with each other.
  expect((await call(first, 'writePattern', 'a', 'd', 64 * 1024, 64 * 1024, 4)).error).toBeUndefined();
  await call(first, 'flush', 'a', 'd');
  const ro = { id: 'r', node: { ...raw('shared/disk.img'), 'read-only': true }, readOnly: true };
  expect((await call(other, 'addDrive', 'b', ro)).error).toBeUndefined();
  expect((await call(other, 'addDrive', 'c', ro)).error).toBeUndefined();
  for (const w of ['b', 'c']) {
    expect((await call(other, 'mismatch', w, 'r', 0, 64 * 1024, 3)).value).toBe(-1);
    expect((await call(other, 'mismatch', w, 'r', 64 * 1024, 64 * 1024, 4)).value).toBe(-1);
  }
  expect((await call(first, 'mismatch', 'a', 'd', 0, 64 * 1024, 3)).value).toBe(-1);

  // Once the writer closes, the other side may write; locking=off lets a second writer in.
  await call(first, 'removeDrive', 'a', 'd');
  expect(
    (await call(other, 'addDrive', 'b', { id: 'd', node: raw('shared/disk.img') })).error,
  ).toBeUndefined();
  const unlocked = await call(first, 'addDrive', 'a', {
    id: 'u',
    node: raw('shared/disk.img', { locking: 'off' }),
  });
  expect(unlocked.error).toBeUndefined();
}

test('two workers: the second read-write opener is refused at once, readers coexist', async ({ page }) => {
  await lockContract(page, page);
});

test('two tabs of one context: the same lock contract across pages', async ({ page, context }) => {
  const tab = await context.newPage();
  await start(tab);
  await lockContract(page, tab);
});

test('a qcow2 overlay in OPFS over a memory base survives a reload and passes qemu-img check', async ({
  page,
}) => {
  const base = async () => {
    await call(page, 'execute', 'a', 'blockdev-add', {
      driver: 'raw',
      'node-name': 'base',
      file: { driver: 'memory', size: 4 * MiB },
    });
    await call(page, 'addDrive', 'a', { id: 'b', node: 'base' });
    await call(page, 'writePattern', 'a', 'b', 0, 4 * MiB, 9);
    await call(page, 'removeDrive', 'a', 'b');
  };
  await base();
  const steps: [string, Record<string, unknown>][] = [
    ['blockdev-create', { 'job-id': 'c1', options: { driver: 'opfs', filename: 'vm/top.qcow2', size: 0 } }],
    ['blockdev-add', { driver: 'opfs', 'node-name': 'top-file', filename: 'vm/top.qcow2' }],
    [
      'blockdev-create',
      {
        'job-id': 'c2',
        options: {
          driver: 'qcow2',
          file: 'top-file',
          size: 4 * MiB,
          'backing-file': 'base.img',
          'backing-fmt': 'raw',
        },
      },
    ],
    ['blockdev-add', { driver: 'qcow2', 'node-name': 'top', file: 'top-file', backing: 'base' }],
  ];
  for (const [command, args] of steps)
    expect((await call(page, 'execute', 'a', command, args)).error).toBeUndefined();
  await call(page, 'addDrive', 'a', { id: 'd', node: 'top' });
  expect((await call(page, 'mismatch', 'a', 'd', 0, 4 * MiB, 9)).value).toBe(-1);
  await call(page, 'writePattern', 'a', 'd', MiB + 512, 100_000, 5);
  await call(page, 'flush', 'a', 'd');

  await page.reload();
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
  await base();
  const reopened = await call(page, 'addDrive', 'a', {
    id: 'd',
    node: { driver: 'qcow2', file: { driver: 'opfs', filename: 'vm/top.qcow2' }, backing: 'base' },
  });
  expect(reopened.error).toBeUndefined();
  expect((await call(page, 'mismatch', 'a', 'd', 0, MiB + 512, 9)).value).toBe(-1);
  expect((await call(page, 'mismatch', 'a', 'd', MiB + 512, 100_000, 5)).value).toBe(-1);
  expect((await call(page, 'mismatch', 'a', 'd', MiB + 100_512, 3 * MiB - 100_512, 9)).value).toBe(-1);
  await call(page, 'removeDrive', 'a', 'd');

  const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-opfs-'));
  try {
    const path = join(dir, 'top.qcow2');
    writeFileSync(path, Uint8Array.from(await call(page, 'fileBytes', 'vm/top.qcow2')));
    // qemu-img check opens the backing file the header names.
    writeFileSync(join(dir, 'base.img'), new Uint8Array(4 * MiB));
    execFileSync('qemu-img', ['check', '-q', path]);
    const info = JSON.parse(
      execFileSync('qemu-img', ['info', '-U', '--output=json', path], { encoding: 'utf8' }),
    );
    expect(info['backing-filename']).toBe('base.img');
    expect(info['virtual-size']).toBe(4 * MiB);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A qcow2 over opfs outgrows the quota: ENOSPC, and what was flushed stays. Writes inside an
 * OPFS file never need quota (its length is charged when it grows): the failure comes when the
 * qcow2 allocates clusters past the end of its file.
 */
async function quotaContract(page: Page): Promise<void> {
  const qcow2 = { driver: 'qcow2', file: { driver: 'opfs', filename: 'quota/disk.qcow2' } };
  await create(page, 'a', 'quota/disk.qcow2', 0);
  const made = await call(page, 'execute', 'a', 'blockdev-create', {
    'job-id': 'q',
    options: { ...qcow2, size: 16 * MiB },
  });
  expect(made.error).toBeUndefined();
  // werror=report: the caller sees the error (the default, enospc, would stop the machine).
  await call(page, 'addDrive', 'a', { id: 'd', node: qcow2, werror: 'report' });
  await call(page, 'writePattern', 'a', 'd', 0, MiB, 2);
  await call(page, 'flush', 'a', 'd');
  const cdp = await page.context().newCDPSession(page);
  const origin = new URL(page.url()).origin;
  const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage ?? 0);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + MiB });
  try {
    // The errno is what QEMU's werror=enospc policy keys on.
    const grow = await call(page, 'writePattern', 'a', 'd', 4 * MiB, 4 * MiB, 3);
    expect(grow.error).toBe('GenericError: No space left on device');
  } finally {
    await cdp.send('Storage.overrideQuotaForOrigin', { origin });
  }
  await call(page, 'removeDrive', 'a', 'd');
  expect((await call(page, 'addDrive', 'b', { id: 'd', node: qcow2 })).error).toBeUndefined();
  expect((await call(page, 'mismatch', 'b', 'd', 0, MiB, 2)).value).toBe(-1);
}

test('a qcow2 over opfs that outgrows the quota fails with ENOSPC; what was flushed stays', async ({
  page,
}) => {
  // Playwright's context is off-the-record: OPFS lives in memory and fails differently there.
  await quotaContract(page);
});

test('the same on a profile on disk', async ({ baseURL }) => {
  const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-opfs-profile-'));
  const context = await chromium.launchPersistentContext(dir, {
    ...test.info().project.use.launchOptions,
    baseURL,
  });
  try {
    const page = await context.newPage();
    await start(page);
    await quotaContract(page);
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
