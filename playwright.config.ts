import { defineConfig } from '@playwright/test';

/**
 * Fixed (PW_PORT overrides it, so parallel runs on one machine do not clash), so the dev server
 * and the tests agree; strictPort makes a clash fail loudly.
 */
const PORT = Number(process.env.PW_PORT ?? 5183);
const BASE_URL = `http://127.0.0.1:${PORT}`;

export default defineConfig({
  testDir: 'e2e',
  timeout: 30_000,
  forbidOnly: !!process.env.CI,
  reporter: process.env.CI ? 'line' : 'list',
  use: {
    baseURL: BASE_URL,
    browserName: 'chromium',
    headless: true,
    // Playwright cannot download browsers here: Debian's Chromium (DESIGN.md §5). Each launch
    // gets a new temporary profile, as Playwright does for every non-persistent launch.
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        // Without these Chromium floods the closed network with refused connections.
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: [
    {
      command: `npx vite web --host 127.0.0.1 --port ${PORT} --strictPort`,
      url: BASE_URL,
      reuseExistingServer: false,
      timeout: 60_000,
    },
    // The HTTP test server the browser conformance rows read from (test/conformance/entries-browser.ts),
    // cross-origin to the page on a port derived from PORT.
    {
      command: `npx tsx test/support/http-server-main.ts ${PORT + 1000}`,
      url: `http://127.0.0.1:${PORT + 1000}/`,
      reuseExistingServer: false,
      timeout: 30_000,
    },
  ],
});
