/**
 * Export of a kept disk as a standalone image: the guest view of the disk (its backing chain
 * flattened) is copied 1 MiB at a time into a new image made in the browser's storage
 * (`exports/NAME.qcow2|raw`, qcow2 or raw), skipping all-zero pieces; then that file's bytes are
 * read back 1 MiB at a time into a Blob of Blobs (which the browser may keep on disk), handed to
 * a download link, and the temporary image deleted. No step holds the whole image in one buffer.
 */
import type { BlockgraphClient, StoredImageRef } from '../../src/client/index.ts';
import { Progress } from './feedback.ts';
import { createKept, isKept, keptRef, protocolOptions, refName, type StorageKind } from './storage.ts';

const STEP = 1 << 20;

/** Exports `ref` (an image of `format`) as `as`, with progress bars in `container`. */
export async function exportImage(
  client: BlockgraphClient,
  ref: StoredImageRef,
  format: string,
  as: 'qcow2' | 'raw',
  container: HTMLElement,
): Promise<void> {
  const base = refName(ref)
    .split('/')
    .at(-1)!
    .replace(/\.(qcow2|raw|img)$/, '');
  const node = { driver: format, 'read-only': true, file: protocolOptions(ref) };
  await exportNode(client, node, ref.driver, `${base}.${as}`, container);
}

/**
 * Exports what `node` (options of a node to open, or the node-name of an open one) reads as a
 * download `name` (.qcow2 or .raw), staged in `kind` storage, with progress bars in `container`.
 */
export async function exportNode(
  client: BlockgraphClient,
  node: Record<string, unknown> | string,
  kind: StorageKind,
  name: string,
  container: HTMLElement,
): Promise<void> {
  const as = name.endsWith('.qcow2') ? 'qcow2' : 'raw';
  const target = keptRef(kind, `exports/${name}`);
  const progress = new Progress(container, `Exporting ${name}…`);
  try {
    if (await isKept(client, target)) await client.deleteStoredImage(target);
    const source = await client.addDrive({ id: 'export-src', node, readOnly: true });
    try {
      await createKept(client, target, { format: as, size: source.size });
      const sink = await client.addDrive({
        id: 'export-dst',
        node: { driver: as, file: protocolOptions(target) },
      });
      try {
        await copy(source, sink, (done) =>
          progress.update(done, source.size, `Copying the disk: ${percent(done, source.size)}`),
        );
      } finally {
        await sink.close();
      }
    } finally {
      await source.close();
    }
    const blob = await readOut(client, target, (done, total) =>
      progress.update(done, total, `Preparing the download: ${percent(done, total)}`),
    );
    download(blob, name);
  } finally {
    progress.done();
    await client.deleteStoredImage(target).catch(() => {});
  }
}

type Drive = Awaited<ReturnType<BlockgraphClient['addDrive']>>;

/** Copies every piece of `source` that is not all zeros (the target reads zeros elsewhere). */
async function copy(source: Drive, sink: Drive, report: (done: number) => void): Promise<void> {
  for (let offset = 0; offset < source.size; offset += STEP) {
    const data = await source.read(offset, Math.min(STEP, source.size - offset));
    if (!allZero(data)) await sink.write(offset, data);
    report(offset + data.length);
  }
  await sink.flush();
}

/** The bytes of the file behind `ref`, read through a raw node, as a Blob of 1 MiB Blobs. */
async function readOut(
  client: BlockgraphClient,
  ref: StoredImageRef,
  report: (done: number, total: number) => void,
): Promise<Blob> {
  const size = (await client.listStoredImages()).find((i) => refName(i.ref) === refName(ref))!.bytesOnDisk;
  const file = await client.addDrive({
    id: 'export-file',
    node: { driver: 'raw', 'read-only': true, file: protocolOptions(ref) },
    readOnly: true,
  });
  const parts: Blob[] = [];
  try {
    for (let offset = 0; offset < size; offset += STEP) {
      parts.push(
        new Blob([(await file.read(offset, Math.min(STEP, size - offset))) as Uint8Array<ArrayBuffer>]),
      );
      report(offset + Math.min(STEP, size - offset), size);
    }
  } finally {
    await file.close();
  }
  return new Blob(parts, { type: 'application/octet-stream' });
}

function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started reading the Blob; the URL is no longer needed.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function allZero(data: Uint8Array): boolean {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  for (let i = words.length << 2; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

function percent(done: number, total: number): string {
  return `${Math.floor((done * 100) / Math.max(total, 1))} %`;
}
