import { afterAll, describe, it } from 'vitest';
import { fileDriver } from '../../src/drivers/protocol/file.ts';
import { fileImage, tempDir } from './entries.ts';
import { PORTABLE_PROTOCOLS } from './entries-portable.ts';
import type { SuiteEntry } from './harness.ts';
import { protocolSuite } from './protocol-suite.ts';

const dir = tempDir();
afterAll(dir.cleanup);

const PROTOCOLS: readonly SuiteEntry[] = [
  ...PORTABLE_PROTOCOLS,
  {
    name: 'file',
    caps: { ...fileDriver.capabilities, discardZeroes: false, sparse: true },
    create: (size) => fileImage(dir.path, size),
  },
];

protocolSuite({ describe, it }, PROTOCOLS);
