import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import type { Arrived } from './fixtures/qmp-error.ts';

test.beforeEach(async ({ page }) => {
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
});

test('the page runs the WebAssembly loops in a Worker through comlink', async ({ page }) => {
  const results = await page.evaluate(async () => {
    const bg = window.blockgraph;
    const zeros = new Uint8Array(3 << 20); // several scratch chunks
    const oneBitSet = new Uint8Array(4096);
    oneBitSet[4000] = 0x10;
    const pattern = new Uint8Array(65536).fill(0xab);
    const mismatched = pattern.slice();
    mismatched[12345] = 0xaa;
    return {
      zero: await bg.isZero(zeros),
      // Transferred, not cloned: the page's buffer is gone.
      zerosDetached: zeros.byteLength === 0,
      notZero: await bg.isZero(oneBitSet),
      match: await bg.verifyPattern(pattern, 0xab),
      mismatch: await bg.verifyPattern(mismatched, 0xab),
      filled: Array.from(await bg.fillPattern(10, 0x5a)),
    };
  });
  expect(results).toEqual({
    zero: true,
    zerosDetached: true,
    notZero: false,
    match: -1,
    mismatch: 12345,
    filled: Array(10).fill(0x5a),
  });
});

test('a QmpError thrown in a worker arrives with its class and message', async ({ page }) => {
  // Vite's dev server serves files outside web/ under /@fs/.
  const fixture = `/@fs${fileURLToPath(new URL('./fixtures/qmp-error.ts', import.meta.url))}`;
  const arrived = await page.evaluate(async (url) => {
    const fixtureModule = (await import(url)) as typeof import('./fixtures/qmp-error.ts');
    return fixtureModule.run();
  }, fixture);
  const qmp: Arrived = {
    isQmpError: true,
    isBlockIOError: false,
    isError: true,
    name: 'QmpError',
    message: 'x',
    errorClass: 'DeviceNotFound',
  };
  expect(arrived.qmp).toEqual(qmp);
  expect(arrived.io).toMatchObject({
    isBlockIOError: true,
    errorClass: 'GenericError',
    errno: 'ENOSPC',
    message: 'No space left on device',
  });
  // Other errors still take comlink's own path.
  expect(arrived.plain).toMatchObject({ isQmpError: false, isError: true, message: 'not a QMP error' });
  // A thrown non-Error arrives as an Error that says what it was, not as "[object Object]".
  expect(arrived.object).toMatchObject({
    isError: true,
    message: 'non-Error thrown: {"reason":"not an Error"}',
  });
});
