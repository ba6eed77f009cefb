import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync, type Zlib } from 'node:zlib';
import { expect, test } from '@playwright/test';
import type { CompressionType } from '../src/drivers/format/qcow2/compress.ts';
import {
  makeSource,
  overlapping,
  qemuCompressedClusters,
} from '../test/drivers/format/qcow2/compressed-clusters.ts';
import type { ClusterCase } from './fixtures/compress.ts';

const CLUSTER_SIZE = 65536;
const source = makeSource(8 * CLUSTER_SIZE);
let dir: string;

test.beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'blockgraph-compress-e2e-'));
});
test.afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base64 = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');

/** qemu-img's compressed clusters of `source`, as cases for the page. */
function cases(type: CompressionType): ClusterCase[] {
  const clusters = qemuCompressedClusters(dir, source, type, CLUSTER_SIZE);
  expect(clusters.length).toBe(source.length / CLUSTER_SIZE);
  expect(overlapping(clusters)).toBeGreaterThan(0);
  return clusters.map(({ guestOffset, src }) => ({
    type,
    clusterSize: CLUSTER_SIZE,
    src: base64(src),
    expected: base64(source.subarray(guestOffset, guestOffset + CLUSTER_SIZE)),
  }));
}

test('QEMU-compressed clusters decode in a Worker, trailing bytes and all', async ({ page }) => {
  const all = [...cases('deflate'), ...cases('zstd')];

  // A deflate descriptor with bytes after its stream, and that stream alone (zlib says where it ends).
  const [first] = qemuCompressedClusters(dir, source, 'deflate', CLUSTER_SIZE);
  const { engine } = inflateRawSync(first.src, { info: true }) as unknown as { engine: Zlib };
  expect(engine.bytesWritten).toBeLessThan(first.src.length);
  const deflate = {
    withTrailingBytes: base64(first.src),
    exactStream: base64(first.src.subarray(0, engine.bytesWritten)),
  };

  await page.goto('/');
  // Vite's dev server serves files outside web/ under /@fs/.
  const fixture = `/@fs${fileURLToPath(new URL('./fixtures/compress.ts', import.meta.url))}`;
  const report = await page.evaluate(
    async ({ url, all, deflate }) => {
      const fixtureModule = (await import(url)) as typeof import('./fixtures/compress.ts');
      return fixtureModule.run(all, deflate);
    },
    { url: fixture, all, deflate },
  );

  expect(report.mismatches).toEqual(all.map(() => -1));
  expect(report.invalid).toEqual({
    isBlockIOError: true,
    errno: 'EIO',
    message: 'qcow2: invalid zstd compressed cluster: no zstd frame at byte 0',
  });
  // The finding that rules out the platform decoder: Chromium's DecompressionStream decodes the
  // exact stream but rejects the very same stream followed by the rest of its last sector (the
  // cluster's bytes were seen to arrive before the error, which is not something to rely on).
  expect(report.platformInflate.exactStream).toEqual({ ok: true, bytes: CLUSTER_SIZE });
  expect(report.platformInflate.withTrailingBytes).toMatchObject({
    ok: false,
    error: 'TypeError: Junk found after end of compressed data.',
  });
  // And it has no zstd at all (Chromium 156), so zstd needs a library in any case.
  expect(report.platformZstd).toEqual({
    ok: false,
    error: "TypeError: Failed to construct 'DecompressionStream': Unsupported compression format: 'zstd'",
  });
});
