/**
 * The qcow2 driver against QEMU 7.2 on the corpus (corpus.ts): for every image the guest view
 * equals `qemu-img convert -O raw` byte for byte, and `blockgraph map --output=json` prints what
 * `qemu-img map --output=json` prints. The 4 TiB image is compared on its data extents only, and
 * `blockgraph convert` of it must satisfy `qemu-img compare`, all in under 10 s.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run as convert } from '../../../../src/cli/convert.ts';
import { run as info } from '../../../../src/cli/info.ts';
import { run as map } from '../../../../src/cli/map.ts';
import { runOurs } from '../../../cli/helpers.ts';
import { firstDifference, openQcow2 } from './compare.ts';
import { cleanupCorpus, corpus, type CorpusImage } from './corpus.ts';

const images = corpus();
afterAll(cleanupCorpus);

const small = images.filter((i) => !i.huge).map((i) => [i.name, i] as const);
const huge = images.filter((i) => i.huge).map((i) => [i.name, i] as const);

/** `qemu-img map --output=json` as printed, run where the image is (see corpus.ts qemuMap). */
function qemuMapText(image: CorpusImage): string {
  const r = spawnSync('qemu-img', ['map', '-f', 'qcow2', '--output=json', image.path], {
    cwd: dirname(image.path),
    encoding: 'utf8',
  });
  return r.stdout;
}

async function ourMapText(image: CorpusImage): Promise<string> {
  const out = await runOurs(map, ['-f', 'qcow2', '--output=json', image.path], dirname(image.path));
  expect(out.stderr).toBe('');
  return out.stdout;
}

describe('qcow2 reads equal qemu-img convert -O raw', () => {
  it.each(small)('%s', async (_, image) => {
    const { node, close } = await openQcow2(image.path);
    try {
      expect(node.length()).toBe(image.size);
      expect(await firstDifference(node, image.raw)).toBeUndefined();
    } finally {
      await close();
    }
  });
});

describe('blockgraph map --output=json equals qemu-img map', () => {
  it.each(small)('%s', async (_, image) => {
    expect(await ourMapText(image)).toBe(qemuMapText(image));
  });
});

/** `info --output=json` parsed, without `actual-size` (host allocation differs by writer). */
function withoutActualSize(json: string): unknown {
  return JSON.parse(json, (key, value: unknown) => (key === 'actual-size' ? undefined : value));
}

describe("blockgraph info --output=json has qemu-img info's keys and values", () => {
  it.each(images.map((i) => [i.name, i] as const))('%s', async (_, image) => {
    const args = ['-f', 'qcow2', '--output=json', image.path];
    const cwd = dirname(image.path);
    const qemu = spawnSync('qemu-img', ['info', ...args], { cwd, encoding: 'utf8' });
    expect(qemu.status, qemu.stderr).toBe(0);
    const ours = await runOurs(info, args, cwd);
    expect(ours.stderr).toBe('');
    expect(withoutActualSize(ours.stdout)).toEqual(withoutActualSize(qemu.stdout));
  });
});

describe('internal snapshots read as qemu-img convert -l shows them', () => {
  const withSnapshots = images.flatMap((i) => i.snapshots.map((s) => [`${i.name} ${s.name}`, i, s] as const));
  it.each(withSnapshots)('%s', async (_, image, snap) => {
    const out = join(dirname(image.path), `ours.${snap.name}.raw`);
    const r = await runOurs(convert, [
      '-f',
      'qcow2',
      '-O',
      'raw',
      '-l',
      `snapshot.name=${snap.name}`,
      image.path,
      out,
    ]);
    expect(r.stderr).toBe('');
    const cmp = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', out, snap.raw], {
      encoding: 'utf8',
    });
    expect(cmp.stdout).toBe('Images are identical.\n');
  });
});

describe('the 4 TiB sparse image', () => {
  it.each(huge)('%s: map, data extents and convert match QEMU in under 10 s', async (_, image) => {
    const started = Date.now();
    expect(await ourMapText(image)).toBe(qemuMapText(image));
    const dataExtents = image.map.filter((e) => e.data).map((e) => [e.start, e.length] as const);
    expect(dataExtents.length).toBeGreaterThan(0);
    const { node, close } = await openQcow2(image.path);
    try {
      expect(node.length()).toBe(image.size);
      expect(await firstDifference(node, image.raw, dataExtents)).toBeUndefined();
    } finally {
      await close();
    }
    const out = join(dirname(image.path), 'ours.huge.raw');
    const r = await runOurs(convert, ['-f', 'qcow2', '-O', 'raw', image.path, out]);
    expect(r.stderr).toBe('');
    const cmp = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', out, image.path], {
      encoding: 'utf8',
    });
    expect(cmp.stdout).toBe('Images are identical.\n');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
