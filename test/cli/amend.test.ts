/**
 * `blockgraph amend` next to `qemu-img amend` (QEMU 7.2) on twin copies of one image: compat
 * up and down and lazy_refcounts on and off leave byte-identical files; a dirty lazy-refcounts
 * image is repaired before lazy refcounts go off; the refusals read the same.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/amend.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);

function must(cmd: string, args: string[]): string {
  const r = runTool(cmd, args, tmp.dir);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Makes `name` from `create` options and qemu-io commands. */
function image(name: string, create: string[], commands: string[] = []): string {
  must('qemu-img', ['create', '-q', '-f', 'qcow2', ...create, name, '1M']);
  if (commands.length > 0) must('qemu-io', ['-f', 'qcow2', ...commands.flatMap((c) => ['-c', c]), name]);
  return name;
}

async function both(base: string, args: string[]) {
  copyFileSync(tmp.path(base), tmp.path('theirs.qcow2'));
  copyFileSync(tmp.path(base), tmp.path('ours.qcow2'));
  const q = normalized(runTool('qemu-img', ['amend', ...args, 'theirs.qcow2'], tmp.dir));
  const o = normalized(await runOurs(run, [...args, 'ours.qcow2'], tmp.dir));
  q.stderr = q.stderr
    .replaceAll('theirs.qcow2', 'ours.qcow2')
    .replace("'qemu-img rebase'", "'blockgraph rebase'");
  return { q, o };
}

const compat = (name: string): string =>
  JSON.parse(must('qemu-img', ['info', '--output=json', name]))['format-specific'].data.compat;

describe('blockgraph amend matches qemu-img amend', () => {
  image('v3.qcow2', [], ['write -P 1 0 64k']);
  image('v2.qcow2', ['-o', 'compat=0.10'], ['write -P 1 0 64k']);
  image('lazy.qcow2', ['-o', 'lazy_refcounts=on'], ['write -P 1 0 64k']);
  image('small.qcow2', ['-o', 'cluster_size=4k'], ['write -P 1 0 64k']);
  image('back.qcow2', ['-b', 'v3.qcow2', '-F', 'qcow2']);

  it.each([
    ['v3.qcow2', ['-o', 'compat=0.10']],
    ['v3.qcow2', ['-o', 'compat=v2', '-f', 'qcow2']],
    ['v3.qcow2', ['-o', 'lazy_refcounts=on']],
    ['v3.qcow2', ['-o', 'compat=1.1,refcount_bits=16']],
    ['lazy.qcow2', ['-o', 'lazy_refcounts=off']],
    ['lazy.qcow2', ['-o', 'compat=0.10']],
    ['v2.qcow2', ['-o', 'compat=1.1']],
    ['v2.qcow2', ['-o', 'compat=1.1', '-o', 'lazy_refcounts=on']],
    ['small.qcow2', ['-o', 'compat=0.10']],
    ['small.qcow2', ['-q', '-o', 'lazy_refcounts=on']],
    ['back.qcow2', ['-o', 'compat=0.10']],
    ['back.qcow2', ['-o', 'backing_file=v3.qcow2,backing_fmt=qcow2']],
  ])('%s %j: the same bytes as qemu-img', async (base, args) => {
    const { q, o } = await both(base, args);
    expect(o).toEqual(q);
    expect(q.status).toBe(0);
    expect(readFileSync(tmp.path('ours.qcow2')).equals(readFileSync(tmp.path('theirs.qcow2')))).toBe(true);
    expect(runTool('qemu-img', ['check', 'ours.qcow2'], tmp.dir).status).toBe(0);
  });

  it('a downgrade really changes the version', async () => {
    await both('v3.qcow2', ['-o', 'compat=0.10']);
    expect(compat(tmp.path('ours.qcow2'))).toBe('0.10');
  });

  it('repairs a dirty lazy-refcounts image before turning lazy refcounts off', async () => {
    image('dirty.qcow2', ['-o', 'lazy_refcounts=on']);
    // qemu-io's abort leaves the dirty bit set and the refcounts not written.
    runTool('qemu-io', ['-f', 'qcow2', '-c', 'write -P 7 0 192k', '-c', 'abort', 'dirty.qcow2'], tmp.dir);
    expect(runTool('qemu-img', ['check', '-f', 'qcow2', 'dirty.qcow2'], tmp.dir).status).not.toBe(0);
    const { q, o } = await both('dirty.qcow2', ['-o', 'lazy_refcounts=off']);
    // QEMU's open logs its repair on stderr; the driver's open-time repair is silent.
    expect(q.stderr).toContain('Rebuilding refcount structure');
    expect({ ...o, stderr: '' }).toEqual({ ...q, stderr: '' });
    const check = runTool('qemu-img', ['check', 'ours.qcow2'], tmp.dir);
    expect(check).toMatchObject({ status: 0 });
    const info = JSON.parse(must('qemu-img', ['info', '--output=json', 'ours.qcow2']));
    expect(info['format-specific'].data['lazy-refcounts']).toBe(false);
    expect(info['dirty-flag']).toBe(false);
    expect(runTool('qemu-img', ['compare', 'ours.qcow2', 'theirs.qcow2'], tmp.dir).stdout).toBe(
      'Images are identical.\n',
    );
  });

  it.each([
    ['v3.qcow2', ['-o', 'compat=0.10,lazy_refcounts=on']],
    ['v2.qcow2', ['-o', 'lazy_refcounts=on']],
    ['v3.qcow2', ['-o', 'compat=0.9']],
    ['v3.qcow2', ['-o', 'bogus=1']],
    ['v3.qcow2', ['-o', 'cluster_size=4k']],
    ['v3.qcow2', ['-o', 'extended_l2=on']],
    ['v2.qcow2', ['-o', 'refcount_bits=8']],
    ['v3.qcow2', ['-o', 'backing_file=x']],
    ['v3.qcow2', []],
    ['v3.qcow2', ['-f', 'raw', '-o', 'compat=1.1']],
  ])('%s %j: fails like qemu-img and leaves the image alone', async (base, args) => {
    const { q, o } = await both(base, args);
    expect(o).toEqual(q);
    expect(q.status).toBe(1);
    expect(readFileSync(tmp.path('ours.qcow2')).equals(readFileSync(tmp.path(base)))).toBe(true);
  });

  it.each([
    ['refcount_bits=8', 'qcow2_image_refcount_width', ['-o', 'refcount_bits=8']],
    ['extended L2', 'ext', ['-o', 'compat=0.10']],
  ])('refuses a downgrade QEMU refuses: %s', async (_what, _id, args) => {
    const base = image(`${_id}.qcow2`, _id === 'ext' ? ['-o', 'extended_l2=on'] : args);
    const { q, o } = await both(base, ['-o', 'compat=0.10']);
    expect(o).toEqual(q);
    expect(q.status).toBe(1);
  });
});
