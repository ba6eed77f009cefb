/**
 * The opfs rows: files in the origin-private file system made as blockdev-create makes them (the
 * protocol creator, then sized as raw), and raw and qcow2 images over them. Browser only, in a
 * dedicated worker (sync access handles exist nowhere else): e2e/conformance.spec.ts runs them.
 */
import { qcow2Driver } from '../../src/drivers/format/qcow2.ts';
import { rawCreator } from '../../src/drivers/format/raw-create.ts';
import { rawDriver } from '../../src/drivers/format/raw.ts';
import { deleteOpfsImage, opfsCreator, opfsDriver } from '../../src/drivers/protocol/opfs.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import type { BlockNode } from '../../src/block/node.ts';
import type { SuiteEntry, TestImage } from './harness.ts';

let serial = 0;

/** A new file, in a directory the creator has to make, written by `fill` (a format's creator). */
async function opfsImage(fill: (file: BlockNode) => Promise<void>): Promise<TestImage> {
  const filename = `conformance/${serial++}/image`;
  const options = await opfsCreator.create({ filename });
  const graph = new BlockGraph();
  const node = await graph.open(options);
  try {
    await fill(node);
  } finally {
    await graph.release(node);
  }
  return { options, destroy: () => deleteOpfsImage(filename) };
}

/** A raw image of `size` zero bytes. */
const rawImage = (size: number) =>
  opfsImage((file) => rawCreator.create(file, { size }, { children: new Map() }));

/** OPFS files are not sparse (the quota is charged their length): no 2^40 offsets. */
const OPFS_CAPS = { ...opfsDriver.capabilities, discardZeroes: false, sparse: false };

export const OPFS_PROTOCOLS: readonly SuiteEntry[] = [{ name: 'opfs', caps: OPFS_CAPS, create: rawImage }];

export const OPFS_FORMATS: readonly SuiteEntry[] = [
  {
    name: 'raw over opfs',
    caps: { ...rawDriver.capabilities, discardZeroes: false, sparse: false },
    create: async (size) => {
      const child = await rawImage(size);
      return { options: { driver: 'raw', file: child.options }, destroy: child.destroy };
    },
  },
  {
    name: 'qcow2 over opfs',
    // As the qcow2 over idb row: writes past the virtual size fail with EIO, and a discard of
    // part of a cluster leaves the data. Sparse: qcow2 allocates only what is written.
    caps: { ...qcow2Driver.capabilities, growable: false, discardZeroes: false, sparse: true },
    create: async (size) => {
      const child = await opfsImage((file) =>
        qcow2Driver.creator.create(file, { size }, { children: new Map() }),
      );
      return { options: { driver: 'qcow2', file: child.options }, destroy: child.destroy };
    },
  },
];
