import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { countCases } from './fixtures/conformance-harness.ts';
import { BROWSER_SUITES } from './fixtures/conformance-suites.ts';

test('the conformance suites pass unchanged inside a browser Worker', async ({ page }) => {
  await page.goto('/');
  // Vite's dev server serves files outside web/ under /@fs/.
  const fixture = `/@fs${fileURLToPath(new URL('./fixtures/conformance.ts', import.meta.url))}`;
  const report = await page.evaluate(async (url) => {
    const fixtureModule = (await import(url)) as typeof import('./fixtures/conformance.ts');
    return fixtureModule.run();
  }, fixture);

  const failures = report.results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.message}`);
  expect(failures, `failed in the worker:\n${failures.join('\n')}`).toEqual([]);
  // Every registered case ran, and the same rows register as many cases here in Node: nothing in
  // the suites depends on where they run. More than a handful, so an empty run cannot pass.
  expect(report.results.length).toBe(report.expected);
  expect(report.expected).toBe(countCases(BROWSER_SUITES));
  expect(report.expected).toBeGreaterThan(30);
});
