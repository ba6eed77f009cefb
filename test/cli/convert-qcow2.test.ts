/**
 * `blockgraph convert` to qcow2 next to `qemu-img convert` (QEMU 7.2): -o, -B/-F, -n, -S and -p
 * give the same result as qemu-img's (content by `qemu-img compare`, layout by `qemu-img map`
 * without host offsets, header fields by `qemu-img info`), every image passes `qemu-img check`,
 * and the errors read the same.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/convert.ts';
import { mustRunIn, normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);

const must = mustRunIn(tmp.dir);

beforeAll(() => {
  must('qemu-img', ['create', '-q', '-f', 'qcow2', 'base.qcow2', '4M']);
  must('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 1M', '-c', 'write -P 3 3M 64k', 'base.qcow2']);
  must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2']);
  // Data over the backing file's, zeros over it, data where it has none, a zeroed data block.
  must('qemu-io', [
    '-f',
    'qcow2',
    ...['-c', 'write -P 2 512k 64k', '-c', 'write -z 128k 64k', '-c', 'write -P 4 2M 8k'],
    ...['-c', 'write -P 0 2M 4k', '-c', 'write -P 5 3980k 12k'],
    'top.qcow2',
  ]);
  must('qemu-img', ['create', '-q', '-f', 'raw', 'src.raw', '3M']);
  must('qemu-io', [
    '-f',
    'raw',
    '-c',
    'write -P 7 0 100k',
    '-c',
    'write -P 0 1M 128k',
    '-c',
    'write -P 8 2M 4k',
    'src.raw',
  ]);
});

/** qemu-img map without host offsets: where data, zeros and holes are, and at which depth. */
function layout(name: string): unknown {
  const map = JSON.parse(must('qemu-img', ['map', '--output=json', '-f', 'qcow2', name])) as Record<
    string,
    unknown
  >[];
  return map.map(({ offset: _offset, ...rest }) => rest);
}

function info(name: string): Record<string, unknown> {
  const i = JSON.parse(must('qemu-img', ['info', '--output=json', '-f', 'qcow2', name]));
  return {
    size: i['virtual-size'],
    cluster: i['cluster-size'],
    backing: i['full-backing-filename'],
    specific: i['format-specific'],
  };
}

/** Converts with both tools (OUT standing for the target) and returns both outcomes. */
async function both(args: string[], prepare?: (out: string) => void) {
  const withOut = (out: string) => args.map((a) => (a === 'OUT' ? out : a));
  prepare?.('theirs.qcow2');
  const q = normalized(runTool('qemu-img', ['convert', ...withOut('theirs.qcow2')], tmp.dir));
  prepare?.('ours.qcow2');
  const o = normalized(await runOurs(run, withOut('ours.qcow2'), tmp.dir));
  return { q, o };
}

function expectClean(name: string): void {
  const r = runTool('qemu-img', ['check', '-f', 'qcow2', name], tmp.dir);
  expect(r.stdout).toContain('No errors were found on the image.');
  expect(r.status).toBe(0);
}

describe('blockgraph convert -O qcow2 matches qemu-img convert', () => {
  it.each([
    [['-O', 'qcow2', 'src.raw', 'OUT']],
    [['-O', 'qcow2', '-o', 'cluster_size=4k,lazy_refcounts=on', '-o', 'refcount_bits=8', 'src.raw', 'OUT']],
    [['-O', 'qcow2', '-o', 'compat=0.10,size=1M', 'top.qcow2', 'OUT']],
    [['-O', 'qcow2', '-o', 'extended_l2=on', 'top.qcow2', 'OUT']],
    [['-O', 'qcow2', '-S', '0', 'top.qcow2', 'OUT']],
    [['-O', 'qcow2', '-S', '64k', 'src.raw', 'OUT']],
    [['-O', 'qcow2', '-S', '512', 'src.raw', 'OUT']],
    [['-O', 'qcow2', '-B', 'base.qcow2', '-F', 'qcow2', 'top.qcow2', 'OUT']],
    [['-O', 'qcow2', '-o', 'backing_file=base.qcow2,backing_fmt=qcow2', 'top.qcow2', 'OUT']],
    [['-O', 'qcow2', '-B', 'base.qcow2', '-F', 'qcow2', '-S', '0', 'top.qcow2', 'OUT']],
  ])('%j: same content, layout and header', async (args) => {
    const { q, o } = await both(args);
    expect(o).toEqual(q);
    expect(q.status).toBe(0);
    expectClean('ours.qcow2');
    const source = args.at(-2)!;
    const sourceFormat = source.endsWith('.raw') ? 'raw' : 'qcow2';
    const cmp = runTool('qemu-img', ['compare', '-F', sourceFormat, 'ours.qcow2', source], tmp.dir);
    expect(cmp.stdout).toBe('Images are identical.\n');
    expect(layout('ours.qcow2')).toEqual(layout('theirs.qcow2'));
    expect(info('ours.qcow2')).toEqual(info('theirs.qcow2'));
  });

  it('-n -B writes into an existing overlay only what the source top layer holds', async () => {
    const prepare = (out: string) =>
      must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', out, '4M']);
    const { q, o } = await both(['-n', '-O', 'qcow2', '-B', 'base.qcow2', 'top.qcow2', 'OUT'], prepare);
    expect(o).toEqual(q);
    expectClean('ours.qcow2');
    expect(runTool('qemu-img', ['compare', 'ours.qcow2', 'top.qcow2'], tmp.dir).status).toBe(0);
    expect(layout('ours.qcow2')).toEqual(layout('theirs.qcow2'));
  });

  it('-n overwrites a full qcow2, turning zero ranges into zero clusters', async () => {
    const prepare = (out: string) => {
      must('qemu-img', ['create', '-q', '-f', 'qcow2', out, '4M']);
      must('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xff 0 4M', out]);
    };
    const { q, o } = await both(['-n', '-O', 'qcow2', 'top.qcow2', 'OUT'], prepare);
    expect(o).toEqual(q);
    expectClean('ours.qcow2');
    expect(runTool('qemu-img', ['compare', 'ours.qcow2', 'top.qcow2'], tmp.dir).status).toBe(0);
    expect(layout('ours.qcow2')).toEqual(layout('theirs.qcow2'));
  });

  it('-p ends with the 100% line, as qemu-img', async () => {
    const { q, o } = await both(['-p', '-O', 'qcow2', 'top.qcow2', 'OUT']);
    expect(o.status).toBe(0);
    expect(o.stdout.split('\r').slice(-2)).toEqual(q.stdout.split('\r').slice(-2));
    expect(o.stdout.startsWith('    (0.00/100%)\r')).toBe(true);
  });

  it.each([
    [['-O', 'qcow2', '-B', 'base.qcow2', 'top.qcow2', 'x.qcow2']],
    [['-O', 'qcow2', '-o', 'backing_file=base.qcow2', 'top.qcow2', 'x.qcow2']],
    [['-O', 'raw', '-B', 'base.qcow2', '-F', 'qcow2', 'top.qcow2', 'x.raw']],
    [['-O', 'qcow2', '-S', '1000', 'top.qcow2', 'x.qcow2']],
    [['-O', 'qcow2', '-S', '32M', 'top.qcow2', 'x.qcow2']],
    [['-O', 'qcow2', '-S', 'abc', 'top.qcow2', 'x.qcow2']],
    [['-O', 'qcow2', '-S', '-1', 'top.qcow2', 'x.qcow2']],
    [['-O', 'qcow2', '-o', 'cluster_size=4k,bogus=1', 'top.qcow2', 'x.qcow2']],
    [['-O', 'qcow2', '-o', 'cluster_size=3k', 'top.qcow2', 'x.qcow2']],
    [['-n', '-O', 'qcow2', '-o', 'cluster_size=4k', 'top.qcow2', 'top.qcow2']],
    [['-c', '-O', 'raw', 'top.qcow2', 'x.raw']],
    [['-c', '-O', 'qcow2', '-o', 'preallocation=full', 'top.qcow2', 'x.qcow2']],
  ])('fails like qemu-img for %j', async (args) => {
    const q = normalized(runTool('qemu-img', ['convert', ...args], tmp.dir));
    const o = normalized(await runOurs(run, args, tmp.dir));
    expect(o).toEqual(q);
  });

  it('-o help lists the creation options (encryption ones left out: not supported)', async () => {
    const o = await runOurs(run, ['-O', 'qcow2', '-o', 'help'], tmp.dir);
    expect(o.status).toBe(0);
    expect(o.stdout).toMatch(
      /^Supported qcow2 options:\n {2}backing_file=<str> {5}- File name of a base image\n/,
    );
  });
});
