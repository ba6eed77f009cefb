/**
 * The blob rows: zero-filled Blobs registered under fresh names, and raw and qcow2 images over
 * them. Read-only, as the driver. Blob exists in Node too, so the Node test
 * (test/drivers/protocol/blob.test.ts) runs these rows as well as the browser run.
 */
import { qcow2Driver } from '../../src/drivers/format/qcow2.ts';
import { rawDriver } from '../../src/drivers/format/raw.ts';
import { blobDriver, registerBlob, unregisterBlob } from '../../src/drivers/protocol/blob.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import type { SuiteCaps, SuiteEntry, TestImage } from './harness.ts';

let serial = 0;

/** Registers a Blob of `parts` under a fresh name; the options open it read-only. */
function blobImage(parts: BlobPart[]): TestImage & { options: Record<string, unknown> } {
  const name = `conformance-blob-${serial++}`;
  registerBlob(name, new Blob(parts));
  return {
    options: { driver: 'blob', name, 'read-only': true },
    destroy: async () => void unregisterBlob(name),
  };
}

/** A fresh qcow2 image of virtual `size`, made in memory by the qcow2 creator, as bytes. */
async function qcow2Bytes(size: number): Promise<Uint8Array<ArrayBuffer>> {
  const graph = new BlockGraph();
  const file = await graph.open({ driver: 'memory' });
  try {
    await qcow2Driver.creator.create(file, { size }, { children: new Map() });
    const bytes = new Uint8Array(file.length());
    await file.read(0, bytes);
    return bytes;
  } finally {
    await graph.release(file);
  }
}

const READ_ONLY: Omit<SuiteCaps, 'persistent'> = {
  writable: false,
  readOnly: true,
  growable: false,
  discardZeroes: false,
  sparse: false,
};

export const BLOB_PROTOCOLS: readonly SuiteEntry[] = [
  {
    name: 'blob',
    caps: { ...blobDriver.capabilities, ...READ_ONLY },
    create: async (size) => blobImage([new Uint8Array(size)]),
  },
];

export const BLOB_FORMATS: readonly SuiteEntry[] = [
  {
    name: 'raw over blob',
    caps: { ...rawDriver.capabilities, ...READ_ONLY },
    create: async (size) => {
      const child = blobImage([new Uint8Array(size)]);
      return { options: { driver: 'raw', 'read-only': true, file: child.options }, destroy: child.destroy };
    },
  },
  {
    name: 'qcow2 over blob',
    caps: { ...qcow2Driver.capabilities, ...READ_ONLY },
    create: async (size) => {
      const child = blobImage([await qcow2Bytes(size)]);
      return { options: { driver: 'qcow2', 'read-only': true, file: child.options }, destroy: child.destroy };
    },
  },
];
