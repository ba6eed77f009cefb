/**
 * Persistent qcow2 overlays in real Chromium, through the page's worker client as a page would use
 * it: blockdev-create makes the overlay in `opfs` or `idb` over a read-only base (an image on an
 * HTTP server, cross-origin to the page, or a File the user dropped); the guest's writes go into
 * the overlay; after a reload the overlay reopens from its own options, its header naming the
 * backing, and holds what was written while the base is unchanged.
 *
 * Where the header's name finds the base by itself: a URL always does (an absolute name keeps its
 * protocol); a plain name is resolved next to the overlay by the overlay's own protocol, as QEMU's
 * bdrv_get_full_backing_filename does, so it finds the dropped File from an idb overlay (which has
 * no path: plain names are registered Blobs in the worker) but names an OPFS file from an opfs
 * overlay — there the page passes the backing explicitly, as QEMU users pass `backing`.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test, type Page } from '@playwright/test';
import { TestHttpServer } from '../test/support/http-server.ts';

/** The job-command helper, as the page imports it from Vite's dev server (/@fs/). */
const JOB_COMMAND = `/@fs${fileURLToPath(new URL('../src/jobs/job-command.ts', import.meta.url))}`;

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 2 * MiB;
/** The guest write: inside the cluster at 1 MiB, so its first write copies the rest from the base. */
const WRITE = { offset: MiB + 4 * KiB, length: 8 * KiB, byte: 0xc3 };
/** What the test reads back: the whole cluster around the write, and a cluster never written. */
const READS = [
  { offset: MiB, length: 64 * KiB },
  { offset: 256 * KiB, length: 64 * KiB },
];

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-e2e-overlay-'));
const baseFile = join(dir, 'base.img');
const base = new Uint8Array(SIZE).map((_, i) => (i % 251) ^ ((i >>> 16) & 0xff));
writeFileSync(baseFile, base);
/** The guest's view after the write. */
const written = base.slice();
written.fill(WRITE.byte, WRITE.offset, WRITE.offset + WRITE.length);

let server: TestHttpServer;
test.beforeAll(async () => {
  server = await TestHttpServer.start();
});
test.afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const expected = (image: Uint8Array) =>
  READS.map((r) => sha256(image.subarray(r.offset, r.offset + r.length)));

interface Storage {
  readonly name: string;
  /** Protocol options of overlay `id`. */
  file(id: string): Record<string, unknown>;
}

const STORAGE: readonly Storage[] = [
  { name: 'opfs', file: (id) => ({ driver: 'opfs', filename: `overlays/${id}.qcow2` }) },
  { name: 'idb', file: (id) => ({ driver: 'idb', name: id }) },
];

interface Base {
  readonly name: string;
  /** Makes the base available to the page (after every load); returns the name the header records. */
  provide(page: Page): Promise<string>;
  /** blockdev-add options of the base, for `backing` and for reading the base directly. */
  options(backingFile: string): Record<string, unknown>;
  /** Whether the header's name finds the base from an overlay in `storage`. */
  foundByName(storage: Storage): boolean;
}

const BASES: readonly Base[] = [
  {
    name: 'http',
    provide: () => server.serveFile('/base.img', baseFile),
    options: (url) => ({ driver: 'raw', file: { driver: 'http', url } }),
    foundByName: () => true,
  },
  {
    name: 'blob',
    provide: dropFile,
    options: (name) => ({ driver: 'raw', file: { driver: 'blob', name } }),
    foundByName: (storage) => storage.name !== 'opfs',
  },
];

/** What a drop gives the page: a File backed by the file on disk; registered with the worker. */
async function dropFile(page: Page): Promise<string> {
  await page.evaluate(() => {
    document.body.append(Object.assign(document.createElement('input'), { type: 'file', id: 'drop' }));
  });
  await page.setInputFiles('#drop', baseFile);
  return page.evaluate(() => {
    const file = (document.getElementById('drop') as HTMLInputElement).files![0]!;
    return window.blockgraph.registerBlob(file);
  });
}

async function load(page: Page, reload = false): Promise<void> {
  await (reload ? page.reload() : page.goto('/'));
  await expect(page.locator('#status')).toHaveText('WebAssembly worker ready');
}

/** Opens a drive on `node` (blockdev-add options), reads READS and hashes them; closes it. */
function readDrive(page: Page, id: string, node: Record<string, unknown>) {
  return page.evaluate(
    async ([id, node, reads]) => {
      const bg = window.blockgraph;
      const drive = await bg.addDrive({ id, node, readOnly: true });
      const hashes: string[] = [];
      for (const r of reads) {
        const data = (await drive.read(r.offset, r.length)) as Uint8Array<ArrayBuffer>;
        const digest = await crypto.subtle.digest('SHA-256', data);
        hashes.push([...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join(''));
      }
      const nodes =
        await bg.execute<{ 'node-name': string; drv: string; ro: boolean; backing_file?: string }[]>(
          'query-named-block-nodes',
        );
      const top = nodes.find((n) => n['node-name'] === drive.nodeName)!;
      await drive.close();
      return {
        hashes,
        backingFile: top.backing_file,
        nodes: nodes.map((n) => `${n.drv}:${n.ro ? 'ro' : 'rw'}`).sort(),
      };
    },
    [id, node, READS] as const,
  );
}

for (const storage of STORAGE) {
  for (const b of BASES) {
    test(`a qcow2 overlay in ${storage.name} over a ${b.name} base keeps the guest's writes across a reload`, async ({
      page,
    }) => {
      await load(page);
      const backingFile = await b.provide(page);
      const file = storage.file('disk');
      // Without the name finding the base, the page passes the backing explicitly.
      const overlay = {
        driver: 'qcow2',
        file,
        ...(!b.foundByName(storage) && { backing: b.options(backingFile) }),
      };
      const around = await page.evaluate(
        async ([file, overlay, size, backingFile, w, url]) => {
          const { runJobCommand } = (await import(url)) as typeof import('../src/jobs/job-command.ts');
          const bg = window.blockgraph;
          const execute = (c: string, a?: Record<string, unknown>) => bg.execute(c, a);
          await runJobCommand(execute, 'blockdev-create', { 'job-id': 'c0', options: { ...file, size: 0 } });
          await runJobCommand(execute, 'blockdev-create', {
            'job-id': 'c1',
            options: {
              driver: 'qcow2',
              file,
              size,
              'backing-file': backingFile,
              'backing-fmt': 'raw',
            },
          });
          const drive = await bg.addDrive({ id: 'guest', node: overlay });
          await drive.write(w.offset, new Uint8Array(w.length).fill(w.byte));
          const back = await drive.read(w.offset - 1, 2);
          await drive.close();
          return Array.from(back);
        },
        [file, overlay, SIZE, backingFile, WRITE, JOB_COMMAND] as const,
      );
      expect(around).toEqual([base[WRITE.offset - 1], WRITE.byte]);

      // A new page load: a new worker, nothing in memory; a File must be given again.
      await load(page, true);
      expect(await b.provide(page)).toBe(backingFile);
      // The backing, named by the header or given without read-only, opens read-only (as in QEMU).
      expect(await readDrive(page, 'reopened', overlay)).toEqual({
        hashes: expected(written),
        backingFile,
        nodes: ['qcow2:rw', 'raw:ro', `${b.name}:ro`, `${storage.name}:rw`].sort(),
      });
      expect(await readDrive(page, 'base', { ...b.options(backingFile), 'read-only': true })).toEqual({
        hashes: expected(base),
        backingFile: undefined,
        nodes: ['raw:ro', `${b.name}:ro`].sort(),
      });
    });
  }
}

test('an opfs overlay cannot find a dropped File by its plain name: the error names the OPFS path', async ({
  page,
}) => {
  await load(page);
  const name = await dropFile(page);
  const error = await page.evaluate(
    async ([name, size, url]) => {
      const { runJobCommand } = (await import(url)) as typeof import('../src/jobs/job-command.ts');
      const bg = window.blockgraph;
      const execute = (c: string, a?: Record<string, unknown>) => bg.execute(c, a);
      const file = { driver: 'opfs', filename: 'overlays/lost.qcow2' };
      await runJobCommand(execute, 'blockdev-create', { 'job-id': 'c0', options: { ...file, size: 0 } });
      await runJobCommand(execute, 'blockdev-create', {
        'job-id': 'c1',
        options: { driver: 'qcow2', file, size, 'backing-file': name, 'backing-fmt': 'raw' },
      });
      return bg.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'lost', file }).then(
        () => null,
        (e: Error) => e.message,
      );
    },
    [name, SIZE, JOB_COMMAND] as const,
  );
  expect(error).toBe(
    "Could not open backing file: Could not open 'overlays/base.img': No such file or directory",
  );
});
