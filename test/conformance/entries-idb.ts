/**
 * The idb rows: images in IndexedDB made as blockdev-create makes them (the protocol creator,
 * then sized as raw), and raw and qcow2 images over them. Browser only (Node has no IndexedDB):
 * e2e/conformance.spec.ts runs them inside a Worker.
 */
import { rawCreator } from '../../src/drivers/format/raw-create.ts';
import { qcow2Driver } from '../../src/drivers/format/qcow2.ts';
import { rawDriver } from '../../src/drivers/format/raw.ts';
import { deleteIdbImage, idbCreator, idbDriver } from '../../src/drivers/protocol/idb.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import type { SuiteEntry, TestImage } from './harness.ts';

const DATABASE = 'blockgraph-conformance';
let serial = 0;

/** A new idb image of `size` zero bytes with chunks of `chunkSize`. */
async function idbImage(size: number, chunkSize?: number): Promise<TestImage> {
  const name = `conformance-${serial++}`;
  const options = await idbCreator.create({ database: DATABASE, name, 'chunk-size': chunkSize });
  const graph = new BlockGraph();
  const node = await graph.open(options);
  try {
    await rawCreator.create(node, { size }, { children: new Map() });
  } finally {
    await graph.release(node);
  }
  return { options, destroy: () => deleteIdbImage(DATABASE, name) };
}

/** Discarded and zeroed ranges read as zeros; absent chunks cost nothing. */
const IDB_CAPS = { ...idbDriver.capabilities, discardZeroes: true, sparse: true };

export const IDB_PROTOCOLS: readonly SuiteEntry[] = [
  { name: 'idb', caps: IDB_CAPS, create: (size) => idbImage(size) },
  // Small chunks: more requests cross chunk boundaries.
  { name: 'idb (4 KiB chunks)', caps: IDB_CAPS, create: (size) => idbImage(size, 4096) },
];

export const IDB_FORMATS: readonly SuiteEntry[] = [
  {
    name: 'raw over idb',
    caps: { ...rawDriver.capabilities, discardZeroes: true, sparse: true },
    create: async (size) => {
      const child = await idbImage(size);
      return { options: { driver: 'raw', file: child.options }, destroy: child.destroy };
    },
  },
  {
    name: 'qcow2 over idb',
    // Writes past the virtual size fail with EIO (qemu-io answers so); resizing is truncate's
    // business, with qcow2's own rules. A discard of part of a cluster leaves the data.
    caps: { ...qcow2Driver.capabilities, growable: false, discardZeroes: false, sparse: true },
    create: async (size) => {
      const child = await idbImage(0);
      const graph = new BlockGraph();
      const file = await graph.open(child.options);
      try {
        await qcow2Driver.creator.create(file, { size }, { children: new Map() });
      } finally {
        await graph.release(file);
      }
      return { options: { driver: 'qcow2', file: child.options }, destroy: child.destroy };
    },
  },
];
