/**
 * The idb protocol in real Chromium, from a Worker: images outlive a reload (as of their last
 * flush), a second read-write opener gets QEMU's lock error at once, absent chunks read as zeros
 * and zeroed chunks are deleted, and `chunk-size` decides what is stored. IndexedDB is inspected
 * with the bare API, not through the driver.
 */
import { expect, test } from '@playwright/test';
import { storageWorker } from './fixtures/storage-client.ts';

const KiB = 1024;
const MiB = 1 << 20;
const DATABASE = 'blockgraph';

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + (i >> 9)) & 0xff);
}

test.beforeEach(async ({ page }) => {
  await page.goto('/');
});

test('an image survives a reload as of its last flush', async ({ page }) => {
  const w = storageWorker(page, 'w');
  expect(await w.call('create', { driver: 'idb', name: 'persist', size: 4 * MiB })).toEqual({});
  expect(await w.call('open', { driver: 'idb', name: 'persist' })).toEqual({});
  const flushed = bytes(200 * KiB, 1);
  await w.call('write', 70_000, flushed);
  await w.call('flush');
  // Never flushed: the reload ends the worker without a close, so this write must be gone.
  await w.call('write', MiB, bytes(100 * KiB, 2));

  await page.reload();
  const again = storageWorker(page, 'w');
  expect(await again.call('open', { driver: 'idb', name: 'persist' })).toEqual({});
  expect(await again.call('length')).toBe(4 * MiB);
  expect(await again.call('read', 70_000, flushed.length)).toEqual(flushed);
  expect(await again.call('read', MiB, 100 * KiB)).toEqual(new Uint8Array(100 * KiB));
});

test('a second read-write opener gets the lock error at once; readers coexist', async ({ page, context }) => {
  const a = storageWorker(page, 'a');
  await a.call('create', { driver: 'idb', name: 'locked', size: MiB });
  expect(await a.call('open', { driver: 'idb', name: 'locked' })).toEqual({});
  await a.call('write', 0, bytes(4096, 3));
  await a.call('flush');

  const other = await context.newPage();
  await other.goto('/');
  const b = storageWorker(other, 'b');
  const started = Date.now();
  // QEMU 7.2 (qemu-io, blockdev-add) on an image another process has open read-write.
  expect(await b.call('open', { driver: 'idb', name: 'locked' })).toEqual({
    error: 'Failed to get "write" lock',
    errno: 'EIO',
  });
  expect(Date.now() - started).toBeLessThan(2000);
  expect((await b.call('create', { driver: 'idb', name: 'locked', size: MiB })).error).toBe(
    'Failed to get "write" lock',
  );
  expect(await b.call('open', { driver: 'idb', name: 'locked', 'read-only': true })).toEqual({});
  expect(await b.call('read', 0, 4096)).toEqual(bytes(4096, 3));
  await b.call('close');

  // The lock goes with its holder: a terminated worker (a closed tab) leaves the image free.
  await a.terminate();
  await expect
    .poll(async () => (await b.call('open', { driver: 'idb', name: 'locked' })).error)
    .toBeUndefined();
  expect(await b.call('read', 0, 4096)).toEqual(bytes(4096, 3));
});

test('absent chunks read as zeros; zero chunks are not stored', async ({ page }) => {
  const w = storageWorker(page, 'w');
  await w.call('create', { driver: 'idb', name: 'sparse', size: 8 * 64 * KiB });
  await w.call('open', { driver: 'idb', name: 'sparse' });
  await w.call('write', 3 * 64 * KiB + 5, new Uint8Array([0xab]));
  await w.call('write', 5 * 64 * KiB, bytes(64 * KiB, 4));
  await w.call('write', 6 * 64 * KiB, new Uint8Array(64 * KiB)); // zeros: nothing to store
  await w.call('flush');
  const keys = async () =>
    (await w.call('idbEntries', DATABASE))
      .map((e) => e.key as unknown[])
      .filter((k) => k[0] === 'sparse')
      .map((k) => (k.length === 1 ? 'record' : k[1]));
  expect(await keys()).toEqual(['record', 3, 5]);

  const expected = new Uint8Array(8 * 64 * KiB);
  expected[3 * 64 * KiB + 5] = 0xab;
  expected.set(bytes(64 * KiB, 4), 5 * 64 * KiB);
  expect(await w.call('read', 0, expected.length)).toEqual(expected);

  await w.call('writeZeroes', 5 * 64 * KiB, 64 * KiB);
  await w.call('flush');
  expect(await keys()).toEqual(['record', 3]);
});

test('chunk-size decides the stored chunks; QEMU-style refusals', async ({ page }) => {
  const w = storageWorker(page, 'w');
  const create = (extra: Record<string, unknown>) =>
    w.call('create', { driver: 'idb', name: 'small', size: MiB, ...extra });
  expect((await create({ 'chunk-size': 3000 })).error).toBe(
    'Chunk size must be a power of two between 4096 and 16384k',
  );
  expect(await create({ 'chunk-size': 4096 })).toEqual({});
  await w.call('open', { driver: 'idb', name: 'small' });
  await w.call('write', 1000, bytes(10_000, 5));
  await w.call('close');
  const entries = (await w.call('idbEntries', DATABASE)).filter((e) => (e.key as unknown[])[0] === 'small');
  expect(entries).toEqual([
    { key: ['small'], value: { length: MiB, chunkSize: 4096 } },
    { key: ['small', 0], bytes: 4096 },
    { key: ['small', 1], bytes: 4096 },
    { key: ['small', 2], bytes: 4096 },
  ]);
  // As QEMU opening a file that does not exist.
  expect((await w.call('open', { driver: 'idb', name: 'absent' })).error).toBe(
    "Could not open 'blockgraph/absent': No such file or directory",
  );
});
