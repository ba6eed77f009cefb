import { afterAll, describe, it } from 'vitest';
import { rawDriver } from '../../src/drivers/format/raw.ts';
import { fileImage, memoryImage, tempDir } from './entries.ts';
import { formatSuite } from './format-suite.ts';
import type { SuiteEntry } from './harness.ts';

const dir = tempDir();
afterAll(dir.cleanup);

/** An image window that starts at an odd offset and has slack after it in the child. */
const OFFSET = 12_345;
const SLACK = 4096;

const FORMATS: readonly SuiteEntry[] = [
  {
    name: 'raw over memory',
    caps: { ...rawDriver.capabilities, discardZeroes: true, sparse: true },
    create: async (size) => {
      const child = memoryImage(size);
      return { options: { driver: 'raw', file: child.options }, destroy: child.destroy };
    },
  },
  {
    name: 'raw over file',
    caps: { ...rawDriver.capabilities, discardZeroes: false, sparse: true },
    create: async (size) => {
      const child = await fileImage(dir.path, size);
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
];

formatSuite({ describe, it }, FORMATS);
