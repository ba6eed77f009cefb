/**
 * Placeholder page: starts the blockgraph worker, runs one call through it, and leaves the
 * client on `window.blockgraph` (for the e2e tests and the devtools console).
 */
import { BlockgraphClient } from '../src/client/index.ts';

declare global {
  interface Window {
    blockgraph: BlockgraphClient;
  }
}

const status = document.getElementById('status')!;
const client = BlockgraphClient.start();
window.blockgraph = client;

client.isZero(new Uint8Array(4096)).then(
  (zero) => {
    status.textContent = zero
      ? 'WebAssembly worker ready'
      : 'WebAssembly worker is broken: zeros not detected';
  },
  (err: unknown) => {
    status.textContent = `WebAssembly worker failed: ${String(err)}`;
  },
);
