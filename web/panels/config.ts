/**
 * The configuration box: one option per line, as on QEMU's command line — `-drive ...`,
 * `-blockdev ...` (keyval or JSON), `-device ide-hd,drive=ID` / `virtio-blk-pci,drive=ID` — or a
 * bare blockdev-add JSON object. Lines run in order; the first that fails stops the rest and
 * gets QEMU's message under it, with the option the message names marked in the line. Drives
 * given an IDE or virtio device (by -device, or -drive if=ide|virtio) boot the machine.
 */
import type { DriveHandle } from '../../src/client/index.ts';
import { parseDevice } from '../../src/config/device.ts';
import type { App } from '../lib/app.ts';
import { byId, h } from '../lib/dom.ts';
import type { BootDrive, GuestPanel } from './guest.ts';

export class ConfigPanel {
  private readonly text = byId<HTMLTextAreaElement>('config-text');
  private readonly out = byId('config-result');

  constructor(
    private readonly app: App,
    private readonly guest: GuestPanel,
  ) {
    byId('config-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void this.apply();
    });
  }

  async apply(): Promise<void> {
    const lines = this.text.value.split('\n').map((l) => l.trim());
    const drives = new Map<string, DriveHandle>();
    const bus: { hda?: BootDrive; virtio: BootDrive[] } = { virtio: [] };
    this.out.replaceChildren();
    for (const [index, line] of lines.entries()) {
      if (line === '' || line.startsWith('#')) continue;
      try {
        await this.line(line, drives, bus);
      } catch (err) {
        this.out.append(lineError(index + 1, line, err));
        for (const drive of drives.values()) await drive.close().catch(() => {});
        this.app.changed();
        return;
      }
    }
    this.out.append(
      h('p', { class: 'ok' }, `Applied ${lines.filter((l) => l && !l.startsWith('#')).length} line(s).`),
    );
    this.app.changed();
    if (bus.hda || bus.virtio.length) await this.guest.bootWith(bus);
  }

  private async line(
    line: string,
    drives: Map<string, DriveHandle>,
    bus: { hda?: BootDrive; virtio: BootDrive[] },
  ): Promise<void> {
    const [, flag = '', arg = line] = /^(-\S+)\s+(.*)$/.exec(line) ?? [];
    if (flag === '' && line.startsWith('{'))
      return this.app.client
        .execute('blockdev-add', JSON.parse(line) as Record<string, unknown>)
        .then(() => {});
    if (flag === '-blockdev') return this.app.client.blockdevAdd(arg);
    if (flag === '-drive') {
      const drive = await this.app.client.addDrive(arg);
      drives.set(drive.id, drive);
      const iface = /(?:^|,)if=([a-z]+)/.exec(arg)?.[1] ?? 'ide';
      if (iface === 'ide') bus.hda = drive;
      else if (iface === 'virtio') bus.virtio.push(drive);
      return;
    }
    if (flag === '-device') {
      const device = parseDevice(arg);
      const name = device.drive ?? '';
      // A -drive of this box, else a node-name (a -blockdev) under a drive of the device's own.
      const drive: BootDrive = drives.get(name) ?? {
        id: device.id ?? `${device.driver}-${name}`,
        node: name,
      };
      if (device.driver === 'ide-hd') bus.hda = drive;
      else if (device.driver === 'virtio-blk-pci') bus.virtio.push(drive);
      else throw new Error(`'${device.driver}' devices are not available on this page yet`);
      return;
    }
    throw new Error(`Unknown line: start with -drive, -blockdev, -device or a blockdev-add JSON object`);
  }
}

/** The failed line with the option the message quotes marked, and the message under it. */
function lineError(number: number, line: string, err: unknown): HTMLElement {
  const message = err instanceof Error ? err.message : String(err);
  const quoted = /'([^']+)'/.exec(message)?.[1];
  // "Parameter 'file.driver' ..." names a dotted path; the line spells its last part.
  const option = quoted?.split('.').at(-1);
  const match = option ? new RegExp(`(^|[,.{\\s"])(${escapeRegExp(option)})["=:]`).exec(line) : null;
  const text = match
    ? h(
        'code',
        {},
        line.slice(0, match.index + match[1]!.length),
        h('mark', {}, option!),
        line.slice(match.index + match[1]!.length + option!.length),
      )
    : h('code', {}, line);
  return h(
    'div',
    { class: 'error', role: 'alert' },
    h('strong', {}, `Line ${number}: `),
    text,
    h('pre', {}, message),
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
