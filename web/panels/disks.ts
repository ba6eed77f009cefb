/**
 * "Disks in this browser": every image kept in OPFS or IndexedDB with its size on disk, virtual
 * size, backing file and last use; delete; export as a standalone image (qcow2 with the backing
 * chain flattened, or raw) — see lib/export.ts.
 */
import type { StoredImage } from '../../src/client/index.ts';
import type { App } from '../lib/app.ts';
import { byId, formatBytes, h } from '../lib/dom.ts';
import { attempt, confirmDialog } from '../lib/feedback.ts';
import { exportImage } from '../lib/export.ts';
import { imageSummary, type ImageSummary } from '../lib/image-info.ts';
import { lastUse, protocolOptions, refName, storageLabel } from '../lib/storage.ts';

export class DisksPanel {
  private readonly body = byId('disks-body');

  constructor(private readonly app: App) {
    byId('disks-refresh').addEventListener('click', () => void this.refresh());
    app.onChange(() => void this.refresh());
  }

  /** Lists the kept images again. */
  async refresh(): Promise<void> {
    await attempt('The disks in this browser could not be listed', () =>
      this.app.storage(() => this.render()),
    );
  }

  private async render(): Promise<void> {
    const images = (await this.app.client.listStoredImages()).filter(
      (i) => !refName(i.ref).startsWith('exports/'),
    );
    const used = lastUse();
    const rows = [];
    for (const image of images) {
      const info = await this.info(image);
      const when = used[`${image.ref.driver}:${refName(image.ref)}`] ?? image.modified;
      rows.push(this.row(image, info, when));
    }
    this.body.replaceChildren(
      ...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7 }, 'No disks yet.'))]),
    );
  }

  /** The image's format and sizes; undefined while a writer holds it or it cannot be read. */
  private async info(image: StoredImage): Promise<ImageSummary | undefined> {
    const file = protocolOptions(image.ref);
    for (const driver of ['qcow2', 'raw']) {
      try {
        return await imageSummary(this.app.client, { driver, file });
      } catch {
        // Not a qcow2: try raw; a raw that fails is unreadable.
      }
    }
    return undefined;
  }

  private row(image: StoredImage, info: ImageSummary | undefined, when: number | undefined): HTMLElement {
    const name = refName(image.ref);
    const format = info?.format ?? 'raw';
    const actions = h(
      'td',
      { class: 'actions' },
      h(
        'button',
        {
          type: 'button',
          onclick: () => void this.export(image, 'qcow2', format),
          'aria-label': `Export ${name} as qcow2`,
        },
        'qcow2',
      ),
      h(
        'button',
        {
          type: 'button',
          onclick: () => void this.export(image, 'raw', format),
          'aria-label': `Export ${name} as raw`,
        },
        'raw',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'danger',
          onclick: () => void this.delete(image),
          'aria-label': `Delete ${name}`,
        },
        'Delete',
      ),
    );
    return h(
      'tr',
      { 'data-name': name },
      h('td', {}, name, h('small', {}, ` ${storageLabel(image.ref)}`)),
      h('td', {}, info?.format ?? '?'),
      h('td', {}, formatBytes(image.bytesOnDisk)),
      h('td', {}, info ? formatBytes(info.virtualSize) : '?'),
      h('td', {}, info?.backingFile ? shorten(info.backingFile) : '—'),
      h('td', {}, when ? new Date(when).toLocaleString() : '—'),
      actions,
    );
  }

  private async delete(image: StoredImage): Promise<void> {
    const name = refName(image.ref);
    if (!(await confirmDialog(`Delete '${name}' from this browser?`, 'Delete'))) return;
    await attempt(`'${name}' could not be deleted`, () =>
      this.app.storage(() => this.app.client.deleteStoredImage(image.ref)),
    );
    await this.refresh();
  }

  private async export(image: StoredImage, as: 'qcow2' | 'raw', format: string): Promise<void> {
    await attempt(`'${refName(image.ref)}' could not be exported`, () =>
      exportImage(this.app.client, image.ref, format, as, byId('disks-progress')),
    );
    this.app.changed();
  }
}

/** json: backing names (the test guest's) are long; the table shows their URL. */
function shorten(name: string): string {
  const url = /"url":"([^"]+)"/.exec(name);
  return url ? url[1]! : name;
}
