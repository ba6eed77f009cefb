/**
 * The qcow2 read path inside a dedicated Worker in Chromium, against QEMU 7.2: images made here
 * by qemu-img/qemu-io (test/drivers/format/qcow2/corpus.ts), their files moved into the worker's
 * memory stores, and what the worker reads compared with `qemu-img convert -O raw` (SHA-256 per
 * 64 KiB) and `qemu-img map --output=json` (extents, depth and host offsets).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { buildImages, RECIPES, type CorpusImage, type Recipe } from '../test/drivers/format/qcow2/corpus.ts';
import { HASH_CHUNK, type ImageCase, type Layer, type MapExtent } from './fixtures/qcow2.ts';

const MiB = 1 << 20;

/**
 * From the corpus: 64 KiB clusters (v3, scattered writes, zero writes, discards), extended L2
 * with zero subclusters, zlib and zstd compressed then partly overwritten, raw <- qcow2 (the
 * overlay larger than its base) and raw <- qcow2 <- qcow2.
 */
const FROM_CORPUS = [
  'cluster-64k',
  'extended-l2',
  'zlib-64k-overwritten',
  'zstd-64k-overwritten',
  'chain-mid',
  'chain-top',
];
/** Chains whose lower layers the worker adds first and names by node-name; others are inline. */
const BY_NODE_NAME = new Set(['chain-top']);

/** compat=0.10 has no zero flag: without a backing file, zero writes and discards deallocate. */
const V2_4K: Recipe = {
  name: 'v2-4k',
  size: 8 * MiB,
  steps: [
    { argv: 'qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4k v2-4k.qcow2 8M'.split(' ') },
    {
      argv: [
        'qemu-io',
        '-f',
        'qcow2',
        ...[
          'write -P 0x41 1000 3000',
          'write -P 0x42 1M 300k',
          'write -z 1100k 40k',
          'discard 1200k 16k',
          'write -P 0x43 5000k 4097',
          'write -z 6M 64k',
          `write -P 0x44 ${8 * MiB - 8192} 8192`,
        ].flatMap((cmd) => ['-c', cmd]),
        'v2-4k.qcow2',
      ],
    },
  ],
};

let dir: string;
test.beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'blockgraph-qcow2-e2e-'));
});
test.afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The backing chain of `image` as qemu-img resolves it, top first. */
function chainOf(image: CorpusImage): Layer[] {
  const args = ['info', '--backing-chain', '--output=json', '-f', 'qcow2', image.path];
  const out = execFileSync('qemu-img', args, { cwd: dir, encoding: 'utf8' });
  const chain = JSON.parse(out) as { filename: string; format: Layer['format'] }[];
  return chain.map(({ filename, format }) => ({ store: basename(filename), format }));
}

function sha256Chunks(bytes: Uint8Array): string[] {
  const hashes: string[] = [];
  for (let at = 0; at < bytes.length; at += HASH_CHUNK) {
    const chunk = bytes.subarray(at, at + HASH_CHUNK);
    hashes.push(createHash('sha256').update(chunk).digest('hex'));
  }
  return hashes;
}

/** Neighbours merged as qemu-img map merges them (entry_mergeable): same kind, contiguous offsets. */
function merged(extents: readonly MapExtent[]): MapExtent[] {
  const out: MapExtent[] = [];
  for (const e of extents) {
    const last = out.at(-1);
    const sameKind =
      last !== undefined &&
      last.depth === e.depth &&
      last.present === e.present &&
      last.zero === e.zero &&
      last.data === e.data &&
      (last.offset === undefined) === (e.offset === undefined);
    if (sameKind && (last.offset === undefined || last.offset + last.length === e.offset)) {
      last.length += e.length;
    } else {
      out.push({ ...e });
    }
  }
  return out;
}

test('qcow2 images read in a Worker as qemu-img convert and map see them', async ({ page }) => {
  const recipes = [...RECIPES.filter((r) => FROM_CORPUS.includes(r.name)), V2_4K];
  expect(recipes.map((r) => r.name).sort()).toEqual([...FROM_CORPUS, V2_4K.name].sort());
  const images = buildImages(dir, recipes);

  const cases: ImageCase[] = images.map((image) => ({
    name: image.name,
    layers: chainOf(image),
    backing: BY_NODE_NAME.has(image.name) ? 'node-name' : 'inline',
  }));
  const files: Record<string, Uint8Array> = {};
  for (const { store } of cases.flatMap((c) => c.layers)) {
    files[store] = new Uint8Array(readFileSync(join(dir, store)));
  }
  // The corpus still has what this test claims to cover: compressed clusters (data without a
  // host offset), zero clusters, unallocated ranges, and data two backing links down.
  const entries = images.flatMap((i) => i.map);
  expect(entries.some((e) => e.data && e.offset === undefined)).toBe(true);
  expect(entries.some((e) => e.zero && e.present && e.depth === 0)).toBe(true);
  expect(entries.some((e) => !e.present)).toBe(true);
  expect(entries.some((e) => e.data && e.depth === 2)).toBe(true);

  await page.goto('/');
  // Vite's dev server serves files outside web/ under /@fs/.
  const fixture = `/@fs${fileURLToPath(new URL('./fixtures/qcow2.ts', import.meta.url))}`;
  const reports = await page.evaluate(
    async ({ url, files, cases }) => {
      const fixtureModule = (await import(url)) as typeof import('./fixtures/qcow2.ts');
      return fixtureModule.run(files, cases);
    },
    { url: fixture, files, cases },
  );

  expect(reports.map((r) => r.name)).toEqual(images.map((i) => i.name));
  for (const [i, image] of images.entries()) {
    const report = reports[i]!;
    expect.soft(report.error, image.name).toBeUndefined();
    expect.soft(report.length, `${image.name}: length`).toBe(image.size);
    const expected = sha256Chunks(readFileSync(image.raw));
    const differing = expected.flatMap((hash, k) => (report.hashes[k] === hash ? [] : [k * HASH_CHUNK]));
    expect.soft(differing, `${image.name}: guest offsets of 64 KiB chunks unlike qemu-img's`).toEqual([]);
    expect.soft(merged(report.extents), `${image.name}: map`).toEqual(image.map);
  }
});
