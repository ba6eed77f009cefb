/**
 * The demo site by keyboard alone, in real Chromium: Tab order reaches every panel's controls
 * (machine, image picker, configuration, QMP console) and a QMP command and a -blockdev line run
 * with the keyboard only; the focused control is visibly outlined.
 */
import { expect, test, type Page } from '@playwright/test';
import { shot, watchErrors } from './fixtures/demo-page.ts';

/** Presses Tab until `selector` has the focus; fails after `limit` presses. */
async function tabTo(page: Page, selector: string, limit = 60): Promise<void> {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press('Tab');
    if (await page.locator(selector).evaluate((el) => el === document.activeElement)) return;
  }
  throw new Error(`${selector} is not reachable with Tab within ${limit} presses`);
}

test('every panel can be used with the keyboard alone', async ({ page }) => {
  const errors = watchErrors(page);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto('/');
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');

  // Tab order follows the page: the machine's Boot button, the image picker, the terminal.
  for (const control of ['#boot', '#image-file', '#terminal']) {
    await page.locator('body').focus();
    await tabTo(page, control);
  }
  const outline = await page
    .locator('#terminal')
    .evaluate(
      (el) => getComputedStyle(el).outlineStyle !== 'none' || getComputedStyle(el).boxShadow !== 'none',
    );
  expect(outline, 'the focused terminal is visibly marked').toBe(true);

  // The configuration box: type a -blockdev line, Tab to Apply, press Enter.
  await tabTo(page, '#config-text');
  await page.keyboard.type('-blockdev driver=null-co,node-name=kbd0,size=1048576');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await expect(page.locator('#config')).toContainText('Applied 1 line(s).');

  // The QMP console: type a command and submit it with Enter.
  await tabTo(page, '#qmp-input');
  await page.keyboard.type('{"execute": "query-named-block-nodes", "arguments": {"flat": true}}');
  await page.keyboard.press('Enter');
  await expect(page.locator('#qmp-log')).toContainText(/"node-name": ?"kbd0"/);
  await expect(page.locator('#graph')).toContainText('kbd0');

  await shot(page, 'demo-keyboard');
  expect(errors).toEqual([]);
});
