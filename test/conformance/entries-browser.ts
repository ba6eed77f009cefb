/**
 * The conformance rows for the browser-only protocols (OPFS, IndexedDB, HTTP, blob) and the
 * formats over them. Only the browser run (e2e/conformance.spec.ts) takes them: the APIs they
 * need do not exist in Node. One row (or a few) per driver; each driver's file adds its own.
 */
import { httpDriver } from '../../src/drivers/protocol/http.ts';
import { BLOB_FORMATS, BLOB_PROTOCOLS } from './entries-blob.ts';
import { IDB_FORMATS, IDB_PROTOCOLS } from './entries-idb.ts';
import { OPFS_FORMATS, OPFS_PROTOCOLS } from './entries-opfs.ts';
import type { SuiteEntry } from './harness.ts';

/**
 * The http row over the test server at `origin` (test/support/http-server.ts): a zero image of
 * any size is its virtual `/zero/<size>` resource, so creating one stores nothing. Read-only, as
 * QEMU's curl driver; the Node test (test/drivers/protocol/http.test.ts) runs it too.
 */
export function httpRow(origin: () => string): SuiteEntry {
  return {
    name: 'http (test server)',
    caps: { ...httpDriver.capabilities, readOnly: true, discardZeroes: false, sparse: true },
    create: async (size) => ({
      options: { driver: 'http', url: `${origin()}/zero/${size}`, 'read-only': true },
      destroy: async () => {},
    }),
  };
}

/** raw over the http row: the format stack a published image is opened with. */
export function rawOverHttpRow(origin: () => string): SuiteEntry {
  const http = httpRow(origin);
  return {
    name: 'raw over http (test server)',
    caps: http.caps,
    create: async (size) => {
      const child = await http.create(size);
      return { options: { driver: 'raw', file: child.options, 'read-only': true }, destroy: child.destroy };
    },
  };
}

/**
 * Where the browser run's test server listens: playwright.config.ts starts it on the dev
 * server's port + 1000 (test/support/http-server-main.ts), a port of its own for every PW_PORT.
 */
export const HTTP_TEST_PORT_OFFSET = 1000;

const browserServer = () =>
  `http://127.0.0.1:${Number((globalThis as { location?: Location }).location?.port) + HTTP_TEST_PORT_OFFSET}`;

export const BROWSER_PROTOCOLS: readonly SuiteEntry[] = [
  httpRow(browserServer),
  ...BLOB_PROTOCOLS,
  ...IDB_PROTOCOLS,
  ...OPFS_PROTOCOLS,
];

export const BROWSER_FORMATS: readonly SuiteEntry[] = [
  rawOverHttpRow(browserServer),
  ...BLOB_FORMATS,
  ...IDB_FORMATS,
  ...OPFS_FORMATS,
];
