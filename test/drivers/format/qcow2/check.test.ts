/**
 * checkImage (drivers/format/qcow2/check.ts) against `qemu-img check` on the qcow2 corpus and on
 * a few more images: every count equals qemu-img's JSON and every logged line equals what it
 * prints on stderr. A dirty lazy-refcounts image repaired through the API (as the driver does on
 * a read-write open) is then clean for qemu-img, no longer dirty, and reads as before.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlockNode } from '../../../../src/block/node.ts';
import { checkImage, type CheckResult } from '../../../../src/drivers/format/qcow2/check.ts';
import { BlockGraph } from '../../../../src/graph/graph.ts';
import { buildImages, cleanupCorpus, corpus, type Recipe } from './corpus.ts';

const images = corpus();
const dir = dirname(images[0]!.path);
afterAll(cleanupCorpus);

// Images the corpus lacks: persistent bitmaps, an internal snapshot of a compressed image.
const EXTRA: Recipe[] = [
  {
    name: 'bitmaps',
    size: 4 << 20,
    steps: [
      { argv: ['qemu-img', 'create', '-q', '-f', 'qcow2', 'bitmaps.qcow2', '4M'] },
      { argv: ['qemu-img', 'bitmap', '--add', 'bitmaps.qcow2', 'b0'] },
      { argv: ['qemu-io', '-f', 'qcow2', '-c', 'write -P 3 0 1M', 'bitmaps.qcow2'] },
      { argv: ['qemu-img', 'bitmap', '--add', '-g', '128k', 'bitmaps.qcow2', 'b1'] },
    ],
  },
  {
    name: 'compressed-snapshot',
    size: 4 << 20,
    steps: [
      { argv: ['qemu-img', 'create', '-q', '-f', 'qcow2', 'compressed-snapshot.qcow2', '4M'] },
      { argv: ['qemu-io', '-f', 'qcow2', '-c', 'write -c -P 4 0 64k', 'compressed-snapshot.qcow2'] },
      { argv: ['qemu-img', 'snapshot', '-c', 's', 'compressed-snapshot.qcow2'] },
      { argv: ['qemu-io', '-f', 'qcow2', '-c', 'write -P 5 32k 4k', 'compressed-snapshot.qcow2'] },
    ],
  },
];
// Built apart: buildImages rewrites every file of its directory, the corpus's 4 TiB raw included.
const extraDir = mkdtempSync(join(tmpdir(), 'blockgraph-check-'));
const extra = buildImages(extraDir, EXTRA);
afterAll(() => rmSync(extraDir, { recursive: true, force: true }));

/** qemu-img check --output=json, run in the image's directory (data files resolve there). */
function qemuCheck(path: string): { json: Record<string, number>; lines: string[]; status: number } {
  const r = spawnSync('qemu-img', ['check', '--output=json', basename(path)], {
    cwd: dirname(path),
    encoding: 'utf8',
  });
  return { json: JSON.parse(r.stdout), lines: r.stderr.split('\n').filter(Boolean), status: r.status ?? -1 };
}

/** Our result under qemu-img's JSON keys (absent when zero, as QAPI's optional members). */
function asJson(r: CheckResult, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {
    filename: basename(path),
    format: 'qcow2',
    'check-errors': r.checkErrors,
  };
  const keys: [string, number][] = [
    ['image-end-offset', r.imageEndOffset],
    ['corruptions', r.corruptions],
    ['leaks', r.leaks],
    ['total-clusters', r.totalClusters],
    ['allocated-clusters', r.allocatedClusters],
    ['fragmented-clusters', r.fragmentedClusters],
    ['compressed-clusters', r.compressedClusters],
  ];
  for (const [k, v] of keys) if (v) out[k] = v;
  return out;
}

async function withFile<T>(
  path: string,
  readOnly: boolean,
  body: (file: BlockNode) => Promise<T>,
): Promise<T> {
  const graph = new BlockGraph();
  const file = await graph.open({ driver: 'file', filename: path, 'read-only': readOnly });
  try {
    return await body(file);
  } finally {
    await graph.release(file);
  }
}

async function ourCheck(path: string, repair?: 'leaks' | 'all') {
  const lines: string[] = [];
  const result = await withFile(path, repair === undefined, (file) =>
    checkImage(file, { repair, log: (l) => lines.push(l) }),
  );
  return { result, lines };
}

// The check itself opens the file read-only: a check that wrote anything would fail.
describe('checkImage equals qemu-img check', () => {
  it.each([...images, ...extra].map((i) => [i.name, i.path] as const))('%s', async (_, path) => {
    const qemu = qemuCheck(path);
    const ours = await ourCheck(path);
    expect(asJson(ours.result, path)).toEqual(qemu.json);
    expect(ours.lines).toEqual(qemu.lines);
  });
});

describe('lazy refcounts: repair of a dirty image', () => {
  it('rebuilds the refcounts, clears the dirty bit and keeps the guest content', async () => {
    const image = images.find((i) => i.name === 'lazy-refcounts-dirty')!;
    const path = join(dir, 'lazy-repaired.qcow2');
    copyFileSync(image.path, path);
    const { result, lines } = await ourCheck(path, 'all');
    expect(lines).toContain('Rebuilding refcount structure');
    expect(result.corruptionsFixed).toBeGreaterThan(0);
    expect(result.corruptions).toBe(0);
    const after = qemuCheck(path);
    expect(after.status).toBe(0);
    expect(after.lines).toEqual([]);
    const info = spawnSync('qemu-img', ['info', '--output=json', path], { encoding: 'utf8' });
    expect(JSON.parse(info.stdout)['dirty-flag']).toBe(false);
    const same = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', path, image.raw], {
      encoding: 'utf8',
    });
    expect(same.stdout).toBe('Images are identical.\n');
  });

  it('refuses to fix only leaks when the structure needs a rebuild (QEMU: EIO)', async () => {
    const image = images.find((i) => i.name === 'lazy-refcounts-dirty')!;
    const path = join(dir, 'lazy-leaks.qcow2');
    copyFileSync(image.path, path);
    const lines: string[] = [];
    await expect(
      withFile(path, false, (file) => checkImage(file, { repair: 'leaks', log: (l) => lines.push(l) })),
    ).rejects.toMatchObject({ errno: 'EIO' });
    expect(lines.at(-1)).toBe('ERROR need to rebuild refcount structures');
  });
});
