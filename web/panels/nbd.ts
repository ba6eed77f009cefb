/**
 * A disk from an NBD server, reached through `blockgraph nbd-bridge` (a browser speaks
 * WebSocket, not TCP): the form's ws:// URL and export name open an nbd node (server.type =
 * websocket) under a raw node, shown in the graph; "Boot with it" starts the test guest with the
 * export as its virtio disk (/dev/vda).
 */
import type { App } from '../lib/app.ts';
import { byId, formatBytes, h } from '../lib/dom.ts';
import { attempt } from '../lib/feedback.ts';
import type { GuestPanel } from './guest.ts';

export class NbdPanel {
  private serial = 0;

  constructor(
    private readonly app: App,
    private readonly guest: GuestPanel,
  ) {
    byId<HTMLFormElement>('nbd-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void attempt('The NBD export could not be opened', () => this.connect());
    });
  }

  private async connect(): Promise<void> {
    const url = byId<HTMLInputElement>('nbd-url').value.trim();
    const name = byId<HTMLInputElement>('nbd-export').value.trim();
    const nodeName = `nbd${this.serial}`;
    const file = { driver: 'nbd', server: { type: 'websocket', url }, export: name };
    await this.app.client.execute('blockdev-add', { driver: 'raw', 'node-name': nodeName, file });
    this.serial++;
    const nodes =
      await this.app.client.execute<{ 'node-name': string; image: { 'virtual-size': number } }[]>(
        'query-named-block-nodes',
      );
    const size = nodes.find((n) => n['node-name'] === nodeName)!.image['virtual-size'];
    const boot = h('button', { type: 'button' }, 'Boot the test guest with it as /dev/vda');
    boot.addEventListener(
      'click',
      () => void this.guest.bootWith({ virtio: [{ id: 'vda', node: nodeName }] }),
    );
    byId('nbd-result').replaceChildren(
      h('p', { class: 'ok' }, `Connected: node ${nodeName}, ${formatBytes(size)} (export '${name}')`),
      boot,
    );
    this.app.changed();
  }
}
