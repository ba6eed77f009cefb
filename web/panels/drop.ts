/**
 * "Open an image": a dropped or chosen file (qcow2, raw, ISO) is registered with the worker's
 * blob driver (by reference: a 5 GiB File is only ever read in slices) and its info shown before
 * anything boots. A qcow2 whose backing file is not registered asks for it, and the chosen file
 * is registered under the name the header records (the blob-naming mechanism: plain names in the
 * worker are registered Blobs). The user then picks how the guest sees it and whether its
 * changes are temporary (an overlay in memory) or kept in the browser (a qcow2 overlay in
 * OPFS/IndexedDB); the file itself is only ever read.
 */
import type { DriveSpec } from '../../src/client/index.ts';
import type { App } from '../lib/app.ts';
import { byId, formatBytes, h } from '../lib/dom.ts';
import { attempt } from '../lib/feedback.ts';
import { imageSummary, isIso, probeFormat, type ImageSummary } from '../lib/image-info.ts';
import { createKept, isKept, keptRef, keptStorage, protocolOptions, touch } from '../lib/storage.ts';
import type { GuestPanel } from './guest.ts';

/** How the guest sees a dropped image. */
type Bus = 'ide' | 'cdrom' | 'floppy' | 'virtio';

interface Opened {
  readonly name: string;
  readonly format: 'qcow2' | 'raw';
  readonly iso: boolean;
  readonly info: ImageSummary;
}

export class DropPanel {
  private readonly zone = byId('drop-zone');
  private readonly out = byId('image-info');
  private readonly registered = new Set<string>();
  private serial = 0;

  constructor(
    private readonly app: App,
    private readonly guest: GuestPanel,
  ) {
    const picker = byId<HTMLInputElement>('image-file');
    picker.addEventListener('change', () => picker.files?.[0] && void this.open(picker.files[0]));
    // The whole page takes drops; the zone shows where.
    addEventListener('dragover', (e) => {
      e.preventDefault();
      this.zone.classList.add('over');
    });
    addEventListener('dragleave', () => this.zone.classList.remove('over'));
    addEventListener('drop', (e) => {
      e.preventDefault();
      this.zone.classList.remove('over');
      const file = (e as DragEvent).dataTransfer?.files[0];
      if (file) void this.open(file);
    });
  }

  /** Registers `file` and shows its info and the ways to attach it. */
  async open(file: File): Promise<void> {
    this.out.replaceChildren(h('p', {}, `Reading ${file.name}…`));
    const opened = await attempt(`${file.name} could not be opened as a disk image`, async () => {
      const name = await this.register(file, file.name);
      const format = await probeFormat(file);
      const info = await imageSummary(this.app.client, { driver: format, file: { driver: 'blob', name } });
      return { name, format, iso: format === 'raw' && (await isIso(file)), info };
    });
    if (!opened) {
      this.out.replaceChildren();
      return;
    }
    this.out.replaceChildren(infoTable(file, opened));
    if (opened.info.backingFile) await this.askBacking(opened);
    this.out.append(this.attachForm(opened));
  }

  /** Registers `blob` as `name`, replacing a file this panel registered under that name before. */
  private async register(blob: Blob, name: string): Promise<string> {
    if (this.registered.has(name)) await this.app.client.unregisterBlob(name);
    const chosen = await this.app.client.registerBlob(blob, name);
    this.registered.add(chosen);
    return chosen;
  }

  /** Until the backing chain opens, asks for the file the header names. */
  private async askBacking(opened: Opened): Promise<void> {
    const missing = await this.missingBacking(opened);
    if (!missing) return;
    const input = h('input', { type: 'file', id: 'backing-file', 'aria-describedby': 'backing-help' });
    const box = h(
      'div',
      { class: 'ask', role: 'group', 'aria-labelledby': 'backing-help' },
      h(
        'p',
        { id: 'backing-help' },
        `This image is an overlay: its backing file '${missing}' is needed. Choose it:`,
      ),
      input,
    );
    this.out.append(box);
    await new Promise<void>((resolve) =>
      input.addEventListener('change', async () => {
        const file = input.files?.[0];
        if (!file) return;
        await attempt(`${file.name} could not be used as '${missing}'`, () => this.register(file, missing));
        if (!(await this.missingBacking(opened))) {
          box.replaceChildren(h('p', { class: 'ok' }, `Backing file '${missing}': ${file.name}`));
          resolve();
        }
      }),
    );
  }

  /** The backing name that cannot be opened, or undefined when the whole chain opens. */
  private async missingBacking(opened: Opened): Promise<string | undefined> {
    const nodeName = `site-chain${this.serial++}`;
    try {
      await this.app.client.execute('blockdev-add', {
        driver: opened.format,
        'node-name': nodeName,
        'read-only': true,
        file: { driver: 'blob', name: opened.name },
      });
      await this.app.client.execute('blockdev-del', { 'node-name': nodeName });
      return undefined;
    } catch {
      return opened.info.backingFile;
    }
  }

  private attachForm(opened: Opened): HTMLFormElement {
    const radio = (group: string, value: string, label: string, checked = false) =>
      h('label', {}, h('input', { type: 'radio', name: group, value, checked }), ` ${label}`);
    const form = h(
      'form',
      { class: 'attach', id: 'attach-form' },
      h(
        'fieldset',
        {},
        h('legend', {}, 'Attach as'),
        radio('bus', 'ide', 'IDE disk (boot from it)', !opened.iso),
        radio('bus', 'cdrom', 'CD-ROM (boot from it; read-only, so no changes to keep)', opened.iso),
        radio('bus', 'floppy', 'floppy (boot from it; 1.44 MiB and the other standard sizes)'),
        radio('bus', 'virtio', 'virtio disk (data disk of the test guest)'),
      ),
      h(
        'fieldset',
        {},
        h('legend', {}, 'Changes'),
        radio('keep', 'temporary', 'temporary (lost when the machine stops)', true),
        radio('keep', 'kept', 'kept in this browser (an overlay; the file is not modified)'),
      ),
      h('button', { type: 'submit', id: 'attach-boot' }, 'Boot'),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const data = new FormData(form);
      void this.boot(opened, data.get('bus') as Bus, data.get('keep') === 'kept');
    });
    return form;
  }

  private async boot(opened: Opened, bus: Bus, kept: boolean): Promise<void> {
    if (bus === 'cdrom') {
      const cdrom = `file=${qemuOptsValue(opened.name)},format=${opened.format},if=none,id=cd0,readonly=on`;
      return this.guest.bootWith({ hda: null, cdrom });
    }
    const id = ({ ide: 'hda', floppy: 'fda', virtio: 'vda' } as const)[bus];
    const drive = kept ? await this.keptDrive(opened, id) : temporaryDrive(opened, id);
    if (!drive) return;
    if (bus === 'floppy') await this.guest.bootWith({ hda: null, fda: drive });
    else await this.guest.bootWith(bus === 'ide' ? { hda: drive } : { virtio: [drive] });
  }

  /** A qcow2 overlay kept in the browser over the file (made on first use); undefined if that failed. */
  private async keptDrive(opened: Opened, id: string): Promise<DriveSpec | undefined> {
    const ref = keptRef(keptStorage(), `dropped/${opened.name}.qcow2`);
    const made = await attempt('The overlay could not be created', async () => {
      if (await isKept(this.app.client, ref)) return true;
      const image = {
        format: 'qcow2',
        size: opened.info.virtualSize,
        backingFile: opened.name,
        backingFormat: opened.format,
      } as const;
      await createKept(this.app.client, ref, image);
      return true;
    });
    if (!made) return undefined;
    touch(ref);
    // The header's plain name would resolve next to the overlay; the page names the base itself.
    const base = { driver: opened.format, 'read-only': true, file: { driver: 'blob', name: opened.name } };
    return {
      id,
      node: { driver: 'qcow2', 'node-name': `${id}-overlay`, file: protocolOptions(ref), backing: base },
    };
  }
}

/** The file under a temporary overlay (-drive snapshot=on): changes go when the machine stops. */
function temporaryDrive(opened: Opened, id: string): string {
  return `file=${qemuOptsValue(opened.name)},format=${opened.format},if=none,id=${id},snapshot=on`;
}

/** QemuOpts escapes a comma in a value by doubling it. */
function qemuOptsValue(value: string): string {
  return value.replaceAll(',', ',,');
}

function infoTable(file: File, opened: Opened): HTMLElement {
  const { info } = opened;
  const rows: [string, string][] = [
    ['File', `${file.name} (${formatBytes(file.size)})`],
    ['Format', opened.iso ? `${info.format} (ISO 9660 CD image)` : info.format],
    ['Virtual size', `${formatBytes(info.virtualSize)} (${info.virtualSize} bytes)`],
    ['Cluster size', info.clusterSize ? formatBytes(info.clusterSize) : '—'],
    [
      'Backing file',
      info.backingFile
        ? `${info.backingFile}${info.backingFormat ? ` (${info.backingFormat})` : ''}`
        : 'none',
    ],
    ['Compression', info.compression ?? '—'],
    ['Snapshots', info.snapshots.length ? info.snapshots.map((s) => s.name).join(', ') : 'none'],
  ];
  return h(
    'table',
    { class: 'info', id: 'image-info-table' },
    h('tbody', {}, ...rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v)))),
  );
}
