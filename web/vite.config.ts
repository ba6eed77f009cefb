import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  build: {
    outDir: fileURLToPath(new URL('../dist', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
  },
  // The worker imports ES modules; the default 'iife' format cannot code-split them.
  worker: { format: 'es' },
  // Pre-bundled up front, so no late dependency discovery reloads the page under a test.
  optimizeDeps: { include: ['comlink', 'fflate', 'fzstd', 'idb-keyval'] },
});
