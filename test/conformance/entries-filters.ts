/**
 * Format-suite rows for the copy-on-read and blkverify filters, over memory images, so they run
 * anywhere (no Node imports). `compress` has no row: a compressed cluster cannot be rewritten
 * (QEMU's qcow2 fails that with EIO too), and the suite rewrites data everywhere; its own test
 * (test/drivers/filter/compress.test.ts) compares it with qemu-io instead.
 */
import { qcow2Driver } from '../../src/drivers/format/qcow2.ts';
import { rawDriver } from '../../src/drivers/format/raw.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { memoryImage } from './entries-portable.ts';
import type { SuiteEntry, TestImage } from './harness.ts';

/** A fresh qcow2 image of virtual `size` in a named memory store, made by the qcow2 creator. */
async function qcow2MemoryImage(size: number): Promise<TestImage & { options: Record<string, unknown> }> {
  const store = memoryImage(0);
  const graph = new BlockGraph();
  const file = await graph.open(store.options);
  try {
    await qcow2Driver.creator.create(file, { size }, { children: new Map() });
  } finally {
    await graph.release(file);
  }
  return { options: { driver: 'qcow2', file: store.options }, destroy: store.destroy };
}

export const FILTER_FORMATS: readonly SuiteEntry[] = [
  {
    // Every read of the empty overlay copies up from its (empty) backing image.
    name: 'copy-on-read over qcow2 (with a qcow2 backing) over memory',
    caps: { ...qcow2Driver.capabilities, discardZeroes: false, sparse: false, readOnlyRefused: true },
    create: async (size) => {
      const base = await qcow2MemoryImage(size);
      const top = await qcow2MemoryImage(size);
      return {
        options: { driver: 'copy-on-read', file: { ...top.options, backing: base.options } },
        destroy: async () => {
          await top.destroy();
          await base.destroy();
        },
      };
    },
  },
  {
    name: 'blkverify over raw over memory (test and raw)',
    caps: { ...rawDriver.capabilities, growable: false, discardZeroes: false, sparse: true },
    create: async (size) => {
      const test = memoryImage(size);
      const raw = memoryImage(size);
      return {
        options: {
          driver: 'blkverify',
          test: { driver: 'raw', file: test.options },
          raw: { driver: 'raw', file: raw.options },
        },
        destroy: async () => {
          await test.destroy();
          await raw.destroy();
        },
      };
    },
  },
];
