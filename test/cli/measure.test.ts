/**
 * `blockgraph measure` against `qemu-img measure` 7.2: the same numbers (human and JSON), the
 * same errors and exit codes, for --size and for qcow2 sources with data, zeros and holes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/measure.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
beforeAll(() => {
  runTool('qemu-img', ['create', '-q', '-f', 'qcow2', 'm.qcow2', '10M'], tmp.dir);
  // Data in clusters 1..6, a zeroed MiB, the rest unallocated.
  runTool(
    'qemu-io',
    ['-f', 'qcow2', '-c', 'write -P 1 100k 300k', '-c', 'write -z 1M 1M', 'm.qcow2'],
    tmp.dir,
  );
  runTool('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'm.qcow2', '-F', 'qcow2', 'o.qcow2'], tmp.dir);
  runTool('qemu-io', ['-f', 'qcow2', '-c', 'write -P 2 5M 4k', 'o.qcow2'], tmp.dir);
});

const LINES: string[][] = [
  ['--size', '1G'],
  ['--size', '1G', '-O', 'qcow2'],
  ['--size', '1G', '-O', 'qcow2', '--output=json'],
  ['--size', '10G', '-O', 'qcow2', '-o', 'cluster_size=512,refcount_bits=1'],
  ['--size', '100G', '-O', 'qcow2', '-o', 'cluster_size=2M,refcount_bits=64,extended_l2=on'],
  ['--size', '10G', '-O', 'qcow2', '-o', 'preallocation=full'],
  ['--size', '1000', '-O', 'qcow2', '-o', 'extended_l2=on'],
  ['-O', 'qcow2', 'm.qcow2'],
  ['-O', 'qcow2', '--output=json', 'm.qcow2'],
  ['-O', 'qcow2', '-o', 'cluster_size=4k', 'm.qcow2'],
  ['-O', 'qcow2', 'o.qcow2'],
  ['-O', 'raw', 'm.qcow2'],
  ['-O', 'qcow2', '-o', 'backing_file=x', 'm.qcow2'],
  ['-O', 'qcow2', '-o', 'compat=0.10', '--output=json', 'm.qcow2'],
  [],
  ['--size', '1G', 'm.qcow2'],
  ['--size', 'abc'],
  ['-O', 'bogus', '--size', '1G'],
  ['-O', 'qcow2', '--size', '1G', '--output=xml'],
  ['-O', 'qcow2', 'nonexist'],
  ['-O', 'qcow2', '--size', '4P'],
  ['-O', 'qcow2', '--size', '1G', '-o', 'bogus=1'],
];

describe('blockgraph measure', () => {
  it.each(LINES.map((l) => [l.join(' '), l]))('measure %s', async (_, args) => {
    const ref = normalized(runTool('qemu-img', ['measure', ...args], tmp.dir));
    expect(await runOurs(run, args, tmp.dir)).toEqual(ref);
  });
});
