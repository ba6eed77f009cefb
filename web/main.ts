/**
 * The demo site: starts the blockgraph worker and wires one module per panel (web/panels). The
 * client stays on `window.blockgraph` for the e2e tests and the devtools console; `#status`
 * says when the worker's WebAssembly module is ready.
 */
import { BlockgraphClient } from '../src/client/index.ts';
import { App } from './lib/app.ts';
import { byId, formatBytes } from './lib/dom.ts';
import { ConfigPanel } from './panels/config.ts';
import { DisksPanel } from './panels/disks.ts';
import { DropPanel } from './panels/drop.ts';
import { GraphPanel } from './panels/graph.ts';
import { GuestPanel } from './panels/guest.ts';
import { NbdPanel } from './panels/nbd.ts';
import { QmpPanel } from './panels/qmp.ts';
import { RunningDiskPanel } from './panels/running.ts';
import { Terminal } from './panels/terminal.ts';

declare global {
  interface Window {
    blockgraph: BlockgraphClient;
  }
}

const status = byId('status');
const client = BlockgraphClient.start();
window.blockgraph = client;
const app = new App(client);

const guest = new GuestPanel(app, new Terminal());
new DropPanel(app, guest);
new QmpPanel(app);
new ConfigPanel(app, guest);
new GraphPanel(app);
new DisksPanel(app);
new RunningDiskPanel(app);
new NbdPanel(app, guest);
app.onChange(() => void showQuota());

client.isZero(new Uint8Array(4096)).then(
  (zero) => {
    status.textContent = zero
      ? 'WebAssembly worker ready'
      : 'WebAssembly worker is broken: zeros not detected';
    app.changed();
  },
  (err: unknown) => {
    status.textContent = `WebAssembly worker failed: ${String(err)}`;
  },
);

/** Storage used and left for this origin (navigator.storage.estimate). */
async function showQuota(): Promise<void> {
  const estimate = await navigator.storage?.estimate?.();
  if (!estimate?.quota) return;
  const used = estimate.usage ?? 0;
  byId('quota').textContent =
    `Storage: ${formatBytes(used)} used, ${formatBytes(estimate.quota - used)} left`;
}
