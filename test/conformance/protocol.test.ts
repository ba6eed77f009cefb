import { afterAll, describe, it } from 'vitest';
import { fileDriver } from '../../src/drivers/protocol/file.ts';
import { memoryDriver } from '../../src/drivers/protocol/memory.ts';
import { nullCoDriver } from '../../src/drivers/protocol/null-co.ts';
import { fileImage, memoryImage, tempDir } from './entries.ts';
import type { SuiteEntry } from './harness.ts';
import { protocolSuite } from './protocol-suite.ts';

const dir = tempDir();
afterAll(dir.cleanup);

const PROTOCOLS: readonly SuiteEntry[] = [
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
    name: 'file',
    caps: { ...fileDriver.capabilities, discardZeroes: false, sparse: true },
    create: (size) => fileImage(dir.path, size),
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

protocolSuite({ describe, it }, PROTOCOLS);
