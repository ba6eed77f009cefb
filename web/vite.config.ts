import { fileURLToPath } from 'node:url';
import { defineConfig, searchForWorkspaceRoot } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // The published test guest (web/publish-guest.ts), served as static files and copied into dist/.
  publicDir: fileURLToPath(new URL('../build/site', import.meta.url)),
  build: {
    outDir: fileURLToPath(new URL('../dist', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
  },
  // The worker imports ES modules; the default 'iife' format cannot code-split them.
  worker: { format: 'es' },
  // Pre-bundled up front, so no late dependency discovery reloads the page under a test.
  optimizeDeps: { include: ['comlink', 'fflate', 'fzstd', 'idb-keyval', 'v86', '@hpcc-js/wasm-zstd'] },
  // Debian's SeaBIOS (v86 ships none) is imported from /usr/share/seabios by
  // src/frontends/browser/assets.ts; the project root stays allowed as by default.
  server: {
    // Under Playwright (which passes PW_PORT) a source edited during a run must not reload the
    // page mid-test (a guest boot takes up to minutes); `npm start` keeps live reload.
    hmr: process.env.PW_PORT === undefined,
    fs: {
      allow: [searchForWorkspaceRoot(fileURLToPath(new URL('..', import.meta.url))), '/usr/share/seabios'],
    },
  },
});
