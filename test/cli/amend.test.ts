/**
 * `blockgraph amend` next to `qemu-img amend` (QEMU 7.2) on twin copies of one image: compat
 * up and down and lazy_refcounts on and off leave byte-identical files; a dirty lazy-refcounts
 * image is repaired before lazy refcounts go off; the refusals read the same.
 */
import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/amend.ts';
import { mustRunIn, normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
afterAll(tmp.cleanup);

const must = mustRunIn(tmp.dir);

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

/**
 * ours.qcow2 is `original` at compat=0.10: clean, the same guest data and snapshots, and no
 * zero cluster left (qemu-img map shows data, or nothing, where they were).
 */
function expectExpanded(original: string): void {
  expect(compat(tmp.path('ours.qcow2'))).toBe('0.10');
  expect(runTool('qemu-img', ['check', 'ours.qcow2'], tmp.dir).stdout).toContain('No errors were found');
  expect(runTool('qemu-img', ['compare', 'ours.qcow2', original], tmp.dir).stdout).toBe(
    'Images are identical.\n',
  );
  const map = JSON.parse(must('qemu-img', ['map', '--output=json', 'ours.qcow2'])) as Record<
    string,
    unknown
  >[];
  expect(map.filter((m) => m.depth === 0 && m.present && !m.data)).toEqual([]);
  const info = JSON.parse(must('qemu-img', ['info', '--output=json', original]));
  for (const { name } of (info.snapshots ?? []) as { name: string }[]) {
    const snap = (img: string) => {
      must('qemu-img', ['convert', '-l', `snapshot.name=${name}`, '-O', 'raw', img, `${img}.sn.raw`]);
      return readFileSync(tmp.path(`${img}.sn.raw`));
    };
    expect(Buffer.compare(snap('ours.qcow2'), snap(original))).toBe(0);
  }
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

  // qcow2_expand_zero_clusters: allocated zero clusters become zeroed data, unallocated ones
  // become unallocated, or zeroed data over a backing file; in snapshots' tables too.
  // `after`: qemu-io commands once snapshot 'sn' is taken.
  it.each([
    ['zeros.qcow2', [], ['write -P 1 0 256k', 'write -z 64k 64k', 'write -z 512k 128k'], []],
    ['zeros-back.qcow2', ['-b', 'v3.qcow2', '-F', 'qcow2'], ['write -z 0 64k', 'write -z 256k 64k'], []],
    [
      'zeros-snap.qcow2',
      [],
      ['write -P 2 0 192k', 'write -z 64k 64k', 'write -z 320k 64k'],
      ['write -z 0 64k', 'write -P 3 128k 64k'],
    ],
  ])('expands the zero clusters of %s for compat=0.10', async (name, create, commands, after) => {
    image(name, create, commands);
    if (after.length > 0) {
      must('qemu-img', ['snapshot', '-c', 'sn', name]);
      must('qemu-io', ['-f', 'qcow2', ...after.flatMap((c) => ['-c', c]), name]);
    }
    const { q, o } = await both(name, ['-o', 'compat=0.10']);
    expect(o).toEqual(q);
    expect(q.status).toBe(0);
    expectExpanded(name);
  });

  // QEMU 7.2 zeroes a zero cluster's host cluster in place even when a snapshot holds data in
  // it (qemu-img check then finds an OFLAG_COPIED error and the snapshot reads zeros): blockgraph
  // gives the active image a cluster of its own instead.
  it('keeps the data a snapshot shares with a zero cluster', async () => {
    image('shared.qcow2', [], ['write -P 2 0 192k']);
    must('qemu-img', ['snapshot', '-c', 'sn', 'shared.qcow2']);
    must('qemu-io', ['-f', 'qcow2', '-c', 'write -z 0 64k', 'shared.qcow2']);
    copyFileSync(tmp.path('shared.qcow2'), tmp.path('ours.qcow2'));
    expect((await runOurs(run, ['-o', 'compat=0.10', 'ours.qcow2'], tmp.dir)).status).toBe(0);
    expectExpanded('shared.qcow2');
  });

  // qcow2_change_refcount_order: new refcount blocks of the new width; sizes as qemu-img's.
  it.each([
    ['v3.qcow2', ['-o', 'refcount_bits=1']],
    ['v3.qcow2', ['-o', 'refcount_bits=64']],
    ['small.qcow2', ['-o', 'refcount_bits=2']],
    ['v2.qcow2', ['-o', 'compat=1.1,refcount_bits=8']],
    ['rc8.qcow2', ['-o', 'refcount_bits=16,compat=0.10']],
    ['snapped.qcow2', ['-o', 'refcount_bits=4']],
    ['snapped.qcow2', ['-o', 'refcount_bits=1']],
  ])('%s %j: refcount width changed as qemu-img changes it', async (base, args) => {
    image('rc8.qcow2', ['-o', 'refcount_bits=8,cluster_size=512'], ['write -P 3 0 300k', 'write -z 64k 64k']);
    image('snapped.qcow2', [], ['write -P 4 0 128k']);
    must('qemu-img', ['snapshot', '-c', 'sn', 'snapped.qcow2']);
    const { q, o } = await both(base, args);
    expect(o).toEqual(q);
    const info = (name: string) => JSON.parse(must('qemu-img', ['info', '--output=json', name]));
    expect(info(tmp.path('ours.qcow2'))['format-specific']).toEqual(
      info(tmp.path('theirs.qcow2'))['format-specific'],
    );
    expect(statSync(tmp.path('ours.qcow2')).size).toBe(statSync(tmp.path('theirs.qcow2')).size);
    if (q.status !== 0) return;
    expect(runTool('qemu-img', ['check', 'ours.qcow2'], tmp.dir).stdout).toContain('No errors were found');
    expect(runTool('qemu-img', ['compare', 'ours.qcow2', base], tmp.dir).stdout).toBe(
      'Images are identical.\n',
    );
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
