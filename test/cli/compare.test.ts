/**
 * `blockgraph compare` next to qemu-img compare 7.2: verdicts, offsets of the first mismatch,
 * size mismatches, strict mode, progress lines, and the exit codes (0 identical, 1 different or
 * usage error, 2 cannot open). The images are fully written raw files: the file protocol cannot
 * see holes (see map.test.ts), so on sparse files strict mode and progress steps would differ.
 */
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/compare.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';
import { makeChain } from './qcow2-images.ts';

const tmp = tempDir();
const MiB = 1 << 20;

beforeAll(() => {
  const data = new Uint8Array(5 * MiB);
  randomFillSync(data);
  writeFileSync(tmp.path('a.raw'), data);
  writeFileSync(tmp.path('same.raw'), data);
  const changed = data.slice();
  changed[3000000] ^= 0xff;
  writeFileSync(tmp.path('changed.raw'), changed);
  // Shorter images: zeros after the common part are not a mismatch, anything else is.
  writeFileSync(tmp.path('short.raw'), data.subarray(0, 4 * MiB));
  const longZeros = new Uint8Array(5 * MiB);
  longZeros.set(data.subarray(0, 4 * MiB));
  writeFileSync(tmp.path('longz.raw'), longZeros);
  const longData = longZeros.slice();
  longData[5 * MiB - 700] = 1;
  writeFileSync(tmp.path('longx.raw'), longData);
  makeChain(tmp.dir);
  runTool('qemu-img', ['convert', '-O', 'qcow2', 'top.qcow2', 'flat.qcow2'], tmp.dir);
  const flat = runTool('qemu-img', ['convert', '-O', 'raw', 'top.qcow2', 'top.raw'], tmp.dir);
  expect(flat.status).toBe(0);
});
afterAll(tmp.cleanup);

async function expectSame(args: string[]): Promise<number> {
  const q = normalized(runTool('qemu-img', ['compare', ...args], tmp.dir));
  const b = normalized(await runOurs(run, args, tmp.dir));
  expect(b).toEqual(q);
  return b.status;
}

describe('blockgraph compare matches qemu-img compare', () => {
  it.each([
    [['a.raw', 'same.raw'], 0],
    [['-s', '-f', 'raw', '-F', 'raw', 'a.raw', 'same.raw'], 0],
    [['a.raw', 'changed.raw'], 1],
    [['-q', 'a.raw', 'changed.raw'], 1],
    [['-p', 'a.raw', 'changed.raw'], 1],
    [['-p', 'a.raw', 'same.raw'], 0],
    [['-p', '-q', 'a.raw', 'same.raw'], 0],
    [['short.raw', 'longz.raw'], 0],
    [['-p', 'longz.raw', 'short.raw'], 0],
    [['-s', 'short.raw', 'longz.raw'], 1],
    [['short.raw', 'longx.raw'], 1],
    [['longx.raw', 'short.raw'], 1],
    [['-T', 'none', '-U', 'a.raw', 'same.raw'], 0],
  ])('compare %j', async (args, status) => {
    expect(await expectSame(args)).toBe(status);
  });

  it.each([
    [['a.raw'], 1],
    [['-x', 'a.raw', 'same.raw'], 1],
    [['a.raw', 'missing.raw'], 2],
    [['missing.raw', 'a.raw'], 2],
    [['-f', 'bogus', 'a.raw', 'same.raw'], 2],
    [['-T', 'bogus', 'a.raw', 'same.raw'], 2],
    [['--object', 'bogus,id=x', 'a.raw', 'same.raw'], 2],
    [['--image-opts', '-f', 'raw', 'a.raw', 'same.raw'], 2],
  ])('error %j', async (args, status) => {
    expect(await expectSame(args)).toBe(status);
  });
});

describe('blockgraph compare matches qemu-img compare on qcow2', () => {
  it.each([
    [['top.qcow2', 'flat.qcow2'], 0],
    // Same content, different allocation: strict mode tells them apart.
    [['-s', 'top.qcow2', 'flat.qcow2'], 1],
    [['-p', 'mid.qcow2', 'top.qcow2'], 1],
    [['-s', 'mid.qcow2', 'mid.qcow2'], 0],
    [['-f', 'raw', 'top.qcow2', 'flat.qcow2'], 1],
    [['-F', 'raw', 'flat.qcow2', 'top.raw'], 0],
  ])('compare %j', async (args, status) => {
    expect(await expectSame(args)).toBe(status);
  });
});
