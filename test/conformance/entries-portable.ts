/**
 * The conformance rows that run anywhere: memory and null-co images, and the format stacks over
 * memory. The Node tables (protocol.test.ts, format.test.ts) add their file rows to these; the
 * browser run (e2e/conformance.spec.ts) takes them as they are. No Node imports.
 */
import { rawDriver } from '../../src/drivers/format/raw.ts';
import { deleteMemoryStore, memoryDriver } from '../../src/drivers/protocol/memory.ts';
import { nullCoDriver } from '../../src/drivers/protocol/null-co.ts';
import type { SuiteEntry, TestImage } from './harness.ts';

/** Store names need only be unique within this realm: the store registry is per realm. */
let serial = 0;

/** A named memory store of `size` bytes (the store is created when the node opens). */
export function memoryImage(size: number): TestImage & { options: { store: string } } {
  const store = `conformance-${serial++}`;
  return {
    options: { driver: 'memory', store, size },
    destroy: async () => void deleteMemoryStore(store),
  };
}

export const PORTABLE_PROTOCOLS: readonly SuiteEntry[] = [
  {
    name: 'memory (named store)',
    caps: { ...memoryDriver.capabilities, persistent: true, discardZeroes: true, sparse: true },
    create: async (size) => memoryImage(size),
  },
  {
    name: 'memory (anonymous)',
    caps: { ...memoryDriver.capabilities, discardZeroes: true, sparse: true },
    create: async (size) => ({ options: { driver: 'memory', size }, destroy: async () => {} }),
  },
  {
    name: 'null-co (read-zeroes)',
    caps: { ...nullCoDriver.capabilities, discardZeroes: false, sparse: true },
    create: async (size) => ({
      options: { driver: 'null-co', size, 'read-zeroes': true },
      destroy: async () => {},
    }),
  },
];

/** An image window that starts at an odd offset and has slack after it in the child. */
const OFFSET = 12_345;
const SLACK = 4096;

export const PORTABLE_FORMATS: readonly SuiteEntry[] = [
  {
    name: 'raw over memory',
    caps: { ...rawDriver.capabilities, discardZeroes: true, sparse: true },
    create: async (size) => {
      const child = memoryImage(size);
      return { options: { driver: 'raw', file: child.options }, destroy: child.destroy };
    },
  },
  {
    name: 'raw with offset and size over memory',
    caps: {
      ...rawDriver.capabilities,
      growable: false,
      beyondEndErrno: 'ENOSPC',
      discardZeroes: true,
      sparse: true,
    },
    create: async (size) => {
      const child = memoryImage(OFFSET + size + SLACK);
      return {
        options: { driver: 'raw', offset: OFFSET, size, file: child.options },
        destroy: child.destroy,
      };
    },
  },
  {
    name: 'blkdebug (no rules) over raw over memory',
    caps: { ...rawDriver.capabilities, discardZeroes: true, sparse: true },
    create: async (size) => {
      const child = memoryImage(size);
      const raw = { driver: 'raw', file: child.options };
      return { options: { driver: 'blkdebug', image: raw }, destroy: child.destroy };
    },
  },
  {
    name: 'throttle (generous limits) over raw over memory',
    caps: { ...rawDriver.capabilities, discardZeroes: true, sparse: true },
    create: async (size) => {
      const child = memoryImage(size);
      const raw = { driver: 'raw', file: child.options };
      // Limits every case stays under, so the suite checks forwarding, not waiting.
      const limits = { 'bps-total': 1e12, 'iops-total': 1e9 };
      return {
        options: { driver: 'throttle', 'throttle-group': 'tg0', file: raw },
        objects: [{ 'qom-type': 'throttle-group', id: 'tg0', limits }],
        destroy: child.destroy,
      };
    },
  },
];
