/**
 * The protocol conformance suite: every protocol driver (memory, file, null-co; later OPFS,
 * IndexedDB, HTTP, blob, NBD) runs it through a table of rows, each a way to make an image with
 * the driver and the capabilities that decide which cases apply. Browser-safe (see harness.ts).
 */
import { check, withImage, type Harness, type SuiteEntry } from './harness.ts';
import { ioCases } from './io-cases.ts';

export function protocolSuite(h: Harness, entries: readonly SuiteEntry[]): void {
  for (const entry of entries) {
    h.describe(entry.name, () => {
      h.it('is a leaf: a protocol node has no children', () =>
        withImage(entry, 4096, async (img) => {
          check(img.node.driver.kind === 'protocol', `kind is ${img.node.driver.kind}`);
          check(img.node.childList.length === 0, 'protocol node has children');
        }),
      );
      ioCases(h, entry);
    });
  }
}
