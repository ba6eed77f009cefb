/**
 * `blockgraph resize` next to `qemu-img resize` (QEMU 7.2): each case runs both tools on twin
 * copies of one image; stdout, stderr and exit code must match, and the results must be equal
 * (`qemu-img compare`, the same virtual size) and clean (`qemu-img check`).
 */
import { copyFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/resize.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);

beforeAll(() => {
  runTool('qemu-img', ['create', '-q', '-f', 'raw', tmp.path('base.raw'), '3M']);
  runTool('qemu-img', ['create', '-q', '-f', 'qcow2', tmp.path('base.qcow2'), '3M']);
  for (const [fmt, name] of [
    ['raw', 'base.raw'],
    ['qcow2', 'base.qcow2'],
  ]) {
    runTool('qemu-io', ['-f', fmt, '-c', 'write -P 0x5a 0 64k', '-c', 'write -P 0xa5 2M 1M', tmp.path(name)]);
  }
});

const virtualSize = (fmt: string, path: string): number =>
  JSON.parse(runTool('qemu-img', ['info', '-f', fmt, '--output=json', path]).stdout)['virtual-size'];

/** Runs `args` (with IMG standing for the image) through both tools on copies of `base.<fmt>`. */
async function twin(fmt: string, args: string[], id: string) {
  const theirs = tmp.path(`theirs-${id}.${fmt}`);
  const ours = tmp.path(`ours-${id}.${fmt}`);
  copyFileSync(tmp.path(`base.${fmt}`), theirs);
  copyFileSync(tmp.path(`base.${fmt}`), ours);
  const q = normalized(runTool('qemu-img', ['resize', ...args.map((a) => (a === 'IMG' ? theirs : a))]));
  const o = normalized(
    await runOurs(
      run,
      args.map((a) => (a === 'IMG' ? ours : a)),
    ),
  );
  return { q, o, theirs, ours };
}

describe('blockgraph resize matches qemu-img resize', () => {
  it.each([
    ['raw', ['-f', 'raw', 'IMG', '5M'], 5 << 20],
    ['raw', ['-f', 'raw', 'IMG', '+1536'], (3 << 20) + 1536],
    ['raw', ['-f', 'raw', '--shrink', 'IMG', '--', '-1M'], 2 << 20],
    ['raw', ['-q', '-f', 'raw', '--shrink', 'IMG', '1M'], 1 << 20],
    ['raw', ['-f', 'raw', 'IMG', '3M'], 3 << 20],
    ['qcow2', ['-f', 'qcow2', 'IMG', '+1G'], (1 << 30) + (3 << 20)],
    ['qcow2', ['-f', 'qcow2', 'IMG', '+512'], (3 << 20) + 512],
    ['qcow2', ['IMG', '7M'], 7 << 20],
  ] as const)('%s %j: same output, same content, clean image', async (fmt, args, size) => {
    const id = args.join('_').replace(/[^\w]/g, '');
    const { q, o, theirs, ours } = await twin(fmt, [...args], id);
    expect(o).toEqual(q);
    expect(q.status).toBe(0);
    expect(virtualSize(fmt, ours)).toBe(virtualSize(fmt, theirs));
    expect(virtualSize(fmt, ours)).toBe(size);
    expect(runTool('qemu-img', ['compare', '-f', fmt, '-F', fmt, ours, theirs]).stdout).toBe(
      'Images are identical.\n',
    );
    if (fmt === 'qcow2') expect(runTool('qemu-img', ['check', '-f', 'qcow2', ours]).status).toBe(0);
  });

  it.each([
    ['raw', ['-f', 'raw', 'IMG', '1M']],
    ['raw', ['-f', 'raw', 'IMG', '--', '-1M']],
    ['raw', ['-f', 'raw', 'IMG', '0']],
    ['raw', ['-f', 'raw', '--shrink', 'IMG', '--', '-10G']],
    ['raw', ['-f', 'raw', 'IMG', 'abc']],
    ['raw', ['-f', 'raw', 'IMG', '+-1M']],
    ['raw', ['-f', 'raw', '--preallocation=bogus', 'IMG', '6M']],
    ['raw', ['-f', 'raw', '--preallocation=full', '--shrink', 'IMG', '1M']],
    ['raw', ['-f', 'raw', 'IMG', '1M', 'extra']],
    ['raw', ['-f', 'raw', '--bogus', 'IMG', '1M']],
    ['raw', ['IMG']],
    ['raw', ['--help']],
    ['raw', ['-f', 'raw', 'missing.raw', '1M']],
    ['raw', ['-f', 'qcow2', 'IMG', '1M']],
    ['qcow2', ['-f', 'qcow2', 'IMG', '+100']],
    ['qcow2', ['-f', 'qcow2', 'IMG', '2M']],
  ])('%s %j: fails like qemu-img and leaves the image alone', async (fmt, args) => {
    const id = `e${args.join('_').replace(/[^\w]/g, '')}`;
    const { q, o, theirs, ours } = await twin(fmt, args, id);
    expect(o).toEqual({ ...q, stderr: q.stderr.replaceAll(theirs, ours) });
    expect(q.status).toBe(1);
    expect(virtualSize(fmt, ours)).toBe(virtualSize(fmt, tmp.path(`base.${fmt}`)));
  });
});

/**
 * qcow2 --shrink: the file is cut where qemu-img cuts it — after the last used cluster, with the
 * refcount blocks that count nothing any more dropped (small clusters make many of them).
 */
describe('blockgraph resize --shrink truncates the qcow2 file as qemu-img does', () => {
  it.each([
    ['cluster_size=64k', '8M', '3M'],
    ['cluster_size=512,refcount_bits=64', '1M', '64k'],
    ['cluster_size=512,refcount_bits=1', '1M', '100k'],
    ['cluster_size=4k,refcount_bits=8', '8M', '1M'],
  ])('%s: %s shrunk to %s', async (opts, size, shrunk) => {
    const id = `shrink-${opts.replace(/[^\w]/g, '')}`;
    const [theirs, ours] = [tmp.path(`${id}-q.qcow2`), tmp.path(`${id}-o.qcow2`)];
    runTool('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', opts, theirs, size]);
    runTool('qemu-io', ['-f', 'qcow2', '-c', `write -P 7 0 ${size}`, theirs]);
    copyFileSync(theirs, ours);
    const before = statSync(ours).size;
    expect(runTool('qemu-img', ['resize', '-q', '--shrink', theirs, shrunk]).status).toBe(0);
    expect(await runOurs(run, ['-q', '--shrink', ours, shrunk])).toEqual({
      stdout: '',
      stderr: '',
      status: 0,
    });
    expect(statSync(ours).size).toBe(statSync(theirs).size);
    expect(statSync(ours).size).toBeLessThan(before / 2);
    expect(runTool('qemu-img', ['check', ours]).stdout).toContain('No errors were found');
    expect(runTool('qemu-img', ['compare', ours, theirs]).stdout).toBe('Images are identical.\n');
    // The reloaded refcounts serve new allocations: grow and fill again, still clean.
    expect((await runOurs(run, ['-q', ours, size])).status).toBe(0);
    runTool('qemu-io', ['-f', 'qcow2', '-c', `write -P 9 0 ${size}`, theirs]);
    expect(runTool('qemu-io', ['-f', 'qcow2', '-c', `write -P 9 0 ${size}`, ours]).status).toBe(0);
    expect(runTool('qemu-img', ['check', ours]).stdout).toContain('No errors were found');
  });
});
