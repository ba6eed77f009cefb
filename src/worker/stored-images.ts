/**
 * The images this origin keeps in the browser, for the demo's "Disks in this browser": every
 * file in the origin-private file system (the `opfs` driver's files) and every image of the
 * `idb` driver's default database. Listing reads no image data: OPFS files by their metadata,
 * idb images by their keys (a chunk key per stored chunk).
 */
import { keys } from 'idb-keyval';
import { genericError } from '../block/errors.ts';
import { deleteIdbImage } from '../drivers/protocol/idb.ts';
import { durableStore, readRecord } from '../drivers/protocol/idb-store.ts';
import { deleteOpfsImage } from '../drivers/protocol/opfs.ts';

/** The idb driver's default database (its `database` option). */
const IDB_DATABASE = 'blockgraph';

/** Where an image lives: the protocol options that open it. */
export type StoredImageRef =
  { readonly driver: 'opfs'; readonly filename: string } | { readonly driver: 'idb'; readonly name: string };

export interface StoredImage {
  readonly ref: StoredImageRef;
  /** Bytes the browser stores for it (OPFS: the file's size; idb: its chunks). */
  readonly bytesOnDisk: number;
  /** Milliseconds since the epoch of the last change, where the storage records it. */
  readonly modified?: number;
}

/** Every OPFS file and idb image, OPFS first, each sorted by name. */
export async function listStoredImages(): Promise<StoredImage[]> {
  return [...(await listOpfs()), ...(await listIdb())];
}

/** Deletes an image; refused (QEMU's lock text) while a node has it open for writing. */
export function deleteStoredImage(ref: StoredImageRef): Promise<void> {
  if (ref.driver === 'opfs') return deleteOpfsImage(ref.filename);
  if (ref.driver === 'idb') return deleteIdbImage(IDB_DATABASE, ref.name);
  throw genericError(`Unknown storage '${(ref as { driver: string }).driver}'`);
}

async function listOpfs(): Promise<StoredImage[]> {
  if (typeof navigator.storage?.getDirectory !== 'function') return [];
  const found: StoredImage[] = [];
  const walk = async (dir: FileSystemDirectoryHandle, prefix: string): Promise<void> => {
    // entries() is in Chromium's OPFS but not in TypeScript's DOM lib yet.
    const entries = (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries();
    for await (const [name, handle] of entries) {
      if (handle.kind === 'directory') await walk(handle as FileSystemDirectoryHandle, `${prefix}${name}/`);
      else {
        const file = await (handle as FileSystemFileHandle).getFile();
        found.push({
          ref: { driver: 'opfs', filename: prefix + name },
          bytesOnDisk: file.size,
          modified: file.lastModified,
        });
      }
    }
  };
  await walk(await navigator.storage.getDirectory(), '');
  return found.sort((a, b) => name(a).localeCompare(name(b)));
}

async function listIdb(): Promise<StoredImage[]> {
  if (typeof indexedDB === 'undefined') return [];
  const store = durableStore(IDB_DATABASE);
  // [NAME] is an image's record, [NAME, i] one stored chunk of it.
  const chunks = new Map<string, number>();
  for (const key of (await keys(store)) as unknown as (string | number)[][]) {
    const image = String(key[0]);
    chunks.set(image, (chunks.get(image) ?? 0) + (key.length > 1 ? 1 : 0));
  }
  const found: StoredImage[] = [];
  for (const [image, count] of chunks) {
    const record = await readRecord(store, image);
    if (record) found.push({ ref: { driver: 'idb', name: image }, bytesOnDisk: count * record.chunkSize });
  }
  return found.sort((a, b) => name(a).localeCompare(name(b)));
}

function name(image: StoredImage): string {
  return image.ref.driver === 'opfs' ? image.ref.filename : image.ref.name;
}
