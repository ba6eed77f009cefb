/**
 * `blockgraph convert` next to qemu-img convert 7.2: the copy compares identical with
 * `qemu-img compare`, is exactly as sparse as qemu-img's own output, and errors read the same.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/convert.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';
import { makeChain, makeSnapshots } from './qcow2-images.ts';

const tmp = tempDir();
const src = tmp.path('src.raw');

beforeAll(() => {
  runTool('qemu-img', ['create', '-q', '-f', 'raw', src, '6M']);
  // Data, a hole, data written as zeros (must come out sparse), data crossing a 2 MiB chunk,
  // and an unaligned tail.
  runTool('qemu-io', [
    '-f',
    'raw',
    '-c',
    'write -P 0x11 0 64k',
    '-c',
    'write -P 0x22 1M 4k',
    '-c',
    'write -P 0 2M 64k',
    '-c',
    'write -P 0x33 4094k 8k',
    '-c',
    'write -P 0x44 6141k 3k',
    src,
  ]);
  makeChain(tmp.dir);
  makeSnapshots(tmp.dir);
});
afterAll(tmp.cleanup);

const allocated = (path: string): number => statSync(path).blocks * 512;

describe('blockgraph convert matches qemu-img convert', () => {
  it('copies raw to raw identically and as sparse as qemu-img', async () => {
    const out = await runOurs(run, ['-f', 'raw', '-O', 'raw', src, tmp.path('ours.raw')]);
    expect(out).toEqual({ stdout: '', stderr: '', status: 0 });
    runTool('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', src, tmp.path('theirs.raw')]);
    expect(runTool('qemu-img', ['compare', src, tmp.path('ours.raw')]).stdout).toBe(
      'Images are identical.\n',
    );
    // The same data extents and holes (st_blocks may differ by a filesystem metadata block).
    const map = (path: string): string =>
      runTool('qemu-img', ['map', '--output=json', '-f', 'raw', path]).stdout;
    expect(map(tmp.path('ours.raw'))).toBe(map(tmp.path('theirs.raw')));
    expect(map(tmp.path('ours.raw'))).not.toBe(map(src));
    expect(allocated(tmp.path('ours.raw'))).toBeLessThan(allocated(src));
  });

  it('overwrites an existing target with -n, zeroing what the source has as zeros', async () => {
    const target = tmp.path('full.raw');
    writeFileSync(target, new Uint8Array(6 << 20).fill(0xff));
    const out = await runOurs(run, ['-n', '-p', src, target]);
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(/^ {4}\(0\.00\/100%\)\r.* {4}\(100\.00\/100%\)\r\n$/s);
    const cmp = runTool('qemu-img', ['compare', src, target]);
    expect(cmp).toMatchObject({ status: 0, stdout: 'Images are identical.\n' });
  });

  it.each([
    [['missing.raw', 'x.raw']],
    [['-O', 'bogus', 'src.raw', 'x.raw']],
    [['-O', 'null-co', 'src.raw', 'x.raw']],
    [['src.raw', 'null-co://']],
    [['src.raw']],
    [[]],
    [['-n', 'src.raw', 'missing.raw']],
    [['-n', 'src.raw', 'small.raw']],
    [['src.raw', 'no/such/dir.raw']],
    [['/tmp', 'x.raw']],
    [['--bogus', 'src.raw', 'x.raw']],
  ])('fails like qemu-img for %j', async (args) => {
    writeFileSync(tmp.path('small.raw'), new Uint8Array(1 << 20));
    const q = normalized(runTool('qemu-img', ['convert', ...args], tmp.dir));
    const b = normalized(await runOurs(run, args, tmp.dir));
    expect(b).toEqual(q);
  });
});

describe('blockgraph convert from qcow2 matches qemu-img convert', () => {
  /** Converts with both tools and expects byte-identical raw output (or the same failure). */
  async function expectSameOutput(args: string[]): Promise<void> {
    const theirs = normalized(runTool('qemu-img', ['convert', ...args, 'theirs.raw'], tmp.dir));
    const ours = normalized(await runOurs(run, [...args, 'ours.raw'], tmp.dir));
    expect(ours).toEqual(theirs);
    if (theirs.status !== 0) return;
    expect(readFileSync(tmp.path('ours.raw')).equals(readFileSync(tmp.path('theirs.raw')))).toBe(true);
    expect(runTool('qemu-img', ['compare', '-f', 'raw', 'ours.raw', args.at(-1)!], tmp.dir).status).toBe(
      args.includes('-l') ? 1 : 0,
    );
  }

  it.each([
    [['-f', 'qcow2', '-O', 'raw', 'top.qcow2']],
    [['-O', 'raw', 'mid.qcow2']],
    [['-O', 'raw', 'snap.qcow2']],
    // -l: an internal snapshot instead of the active image.
    [['-l', 'snapshot.name=first', '-O', 'raw', 'snap.qcow2']],
    [['-l', 'snapshot.id=2', '-O', 'raw', 'snap.qcow2']],
    [['-l', 'snapshot.id=1,snapshot.name=first', '-O', 'raw', 'snap.qcow2']],
    [['-l', 'first', '-O', 'raw', 'snap.qcow2']],
    [['-l', '2', '-O', 'raw', 'snap.qcow2']],
  ])('convert %j', async (args) => expectSameOutput(args));

  it.each([
    [['-l', 'snapshot.id=1,snapshot.name=2', 'snap.qcow2']],
    [['-l', 'nope', 'snap.qcow2']],
    [['-l', 'snapshot.id=', 'snap.qcow2']],
    [['-l', 'snapshot.bogus=1', 'snap.qcow2']],
    [['-l', 'first', 'src.raw']],
  ])('fails like qemu-img for %j', async (args) => {
    const q = normalized(runTool('qemu-img', ['convert', ...args, 'x.raw'], tmp.dir));
    const b = normalized(await runOurs(run, [...args, 'x.raw'], tmp.dir));
    expect(b).toEqual(q);
  });
});
