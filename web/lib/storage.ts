/**
 * Where the site keeps disks: OPFS when the browser has it (sync access handles in the worker),
 * else IndexedDB. A kept disk is a StoredImageRef; its protocol options open it.
 */
import type { BlockgraphClient, StoredImageRef } from '../../src/client/index.ts';
import { runJobCommand } from '../../src/jobs/job-command.ts';

export type StorageKind = 'opfs' | 'idb';

/** OPFS if this browser has it (FileSystemFileHandle and getDirectory), else IndexedDB. */
export function keptStorage(): StorageKind {
  const opfs = typeof navigator.storage?.getDirectory === 'function' && 'FileSystemFileHandle' in globalThis;
  return opfs ? 'opfs' : 'idb';
}

/** The image at `path` (e.g. `demo/guest.qcow2`) in `kind`. */
export function keptRef(kind: StorageKind, path: string): StoredImageRef {
  return kind === 'opfs' ? { driver: 'opfs', filename: path } : { driver: 'idb', name: path };
}

export function refName(ref: StoredImageRef): string {
  return ref.driver === 'opfs' ? ref.filename : ref.name;
}

export function storageLabel(ref: StoredImageRef): string {
  return ref.driver === 'opfs' ? 'OPFS' : 'IndexedDB';
}

/** Protocol options (blockdev-add `file`) of a kept image. */
export function protocolOptions(ref: StoredImageRef): Record<string, unknown> {
  return { ...ref };
}

export async function isKept(client: BlockgraphClient, ref: StoredImageRef): Promise<boolean> {
  const images = await client.listStoredImages();
  return images.some((i) => i.ref.driver === ref.driver && refName(i.ref) === refName(ref));
}

export interface NewImage {
  readonly format: 'qcow2' | 'raw';
  readonly size: number;
  /** qcow2: the backing file name the header records, and its format. */
  readonly backingFile?: string;
  readonly backingFormat?: string;
}

/** Creates an image in `ref` with blockdev-create, as QEMU users do: the file, then the format. */
export async function createKept(
  client: BlockgraphClient,
  ref: StoredImageRef,
  image: NewImage,
): Promise<void> {
  const file = protocolOptions(ref);
  const execute = (command: string, args?: Record<string, unknown>) => client.execute(command, args);
  // A raw image is its file (QEMU's blockdev-create has no raw format step).
  const fileSize = image.format === 'raw' ? image.size : 0;
  await runJobCommand(execute, 'blockdev-create', {
    'job-id': 'site-create-file',
    options: { ...file, size: fileSize },
  });
  if (image.format === 'raw') return;
  const nodeName = 'site-create';
  await client.execute('blockdev-add', { ...file, 'node-name': nodeName });
  try {
    const options: Record<string, unknown> = { driver: image.format, file: nodeName, size: image.size };
    if (image.backingFile) options['backing-file'] = image.backingFile;
    if (image.backingFormat) options['backing-fmt'] = image.backingFormat;
    await runJobCommand(execute, 'blockdev-create', { 'job-id': 'site-create-format', options });
  } finally {
    await client.execute('blockdev-del', { 'node-name': nodeName });
  }
}

const LAST_USE = 'blockgraph-last-use';

/** Milliseconds since the epoch each kept disk (by driver:name) was last booted from. */
export function lastUse(): Record<string, number> {
  return JSON.parse(localStorage.getItem(LAST_USE) ?? '{}') as Record<string, number>;
}

export function touch(ref: StoredImageRef): void {
  localStorage.setItem(
    LAST_USE,
    JSON.stringify({ ...lastUse(), [`${ref.driver}:${refName(ref)}`]: Date.now() }),
  );
}
