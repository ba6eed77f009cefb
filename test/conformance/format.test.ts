import { afterAll, describe, it } from 'vitest';
import { rawDriver } from '../../src/drivers/format/raw.ts';
import { fileImage, tempDir } from './entries.ts';
import { FILTER_FORMATS } from './entries-filters.ts';
import { PORTABLE_FORMATS } from './entries-portable.ts';
import { formatSuite } from './format-suite.ts';
import type { SuiteEntry } from './harness.ts';

const dir = tempDir();
afterAll(dir.cleanup);

const FORMATS: readonly SuiteEntry[] = [
  ...PORTABLE_FORMATS,
  ...FILTER_FORMATS,
  {
    name: 'raw over file',
    caps: { ...rawDriver.capabilities, discardZeroes: false, sparse: true },
    create: async (size) => {
      const child = await fileImage(dir.path, size);
      return { options: { driver: 'raw', file: child.options }, destroy: child.destroy };
    },
  },
];

formatSuite({ describe, it }, FORMATS);
