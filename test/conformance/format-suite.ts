/**
 * The format conformance suite: every format or filter stack (raw, blkdebug; later qcow2) runs the
 * I/O cases over a protocol child, plus what is particular to a node with a child: it can be
 * opened over a child added on its own and named by node-name, and that child cannot be deleted
 * while the format uses it. Browser-safe (see harness.ts).
 */
import {
  check,
  checkBytes,
  graphFor,
  prng,
  randomBytes,
  withImage,
  type Harness,
  type SuiteEntry,
} from './harness.ts';
import { ioCases } from './io-cases.ts';

export function formatSuite(h: Harness, entries: readonly SuiteEntry[]): void {
  for (const entry of entries) {
    h.describe(entry.name, () => {
      if (entry.caps.writable && entry.caps.persistent) childByNameCase(h, entry);
      ioCases(h, entry);
    });
  }
}

/** The first inline child in blockdev-add options: [option name, child options]. */
function inlineChild(options: Record<string, unknown>): [string, Record<string, unknown>] {
  for (const [key, value] of Object.entries(options)) {
    if (value && typeof value === 'object' && 'driver' in value)
      return [key, value as Record<string, unknown>];
  }
  throw new Error(`no inline child in ${JSON.stringify(options)}`);
}

function childByNameCase(h: Harness, entry: SuiteEntry): void {
  h.it('opens over a child named by node-name, which stays while in use', () =>
    withImage(entry, 1 << 20, async (img, image) => {
      await img.close();
      const [key, child] = inlineChild(image.options);
      const graph = graphFor(image);
      await graph.blockdevAdd({ ...child, 'node-name': 'proto' });
      const open = () => graph.blockdevAdd({ ...image.options, [key]: 'proto', 'node-name': 'fmt' });
      const data = randomBytes(prng(99), 10_000);
      await (await open()).write(4321, data);
      await expectRefused(graph.blockdevDel('proto'), 'deleting a child in use');
      await graph.blockdevDel('fmt');
      const again = await open();
      const back = new Uint8Array(data.length);
      await again.read(4321, back);
      checkBytes(back, data, 'through the reopened format');
      await graph.blockdevDel('fmt');
      await graph.blockdevDel('proto');
      check(graph.nodes.size === 0, `nodes left: ${[...graph.nodes.keys()].join(', ')}`);
    }),
  );
}

async function expectRefused(p: Promise<unknown>, what: string): Promise<void> {
  const failed = await p.then(
    () => false,
    () => true,
  );
  check(failed, `${what} succeeded`);
}
