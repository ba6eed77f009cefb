/**
 * `blockgraph snapshot` next to qemu-img snapshot 7.2: listing (nothing at all for an image
 * without snapshots), option errors, the table format, and -c/-a/-d on twin copies of an image
 * (same messages, same snapshots, same content, a clean check).
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, snapshotList } from '../../src/cli/snapshot.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';
import { makeFeatureImages, makeSnapshots } from './qcow2-images.ts';

const tmp = tempDir();

beforeAll(() => {
  runTool('qemu-img', ['create', '-q', '-f', 'raw', tmp.path('a.raw'), '1M']);
  makeSnapshots(tmp.dir);
  makeFeatureImages(tmp.dir);
  // 'small' taken at 1 MiB, 'big' at 3 MiB, the image then shrunk to 2 MiB.
  const sizes = tmp.path('sizes.qcow2');
  const steps = [
    ['qemu-img', 'create', '-q', '-f', 'qcow2', sizes, '1M'],
    ['qemu-io', '-f', 'qcow2', '-c', 'write -P 1 0 1M', sizes],
    ['qemu-img', 'snapshot', '-c', 'small', sizes],
    ['qemu-img', 'resize', '-q', sizes, '3M'],
    ['qemu-io', '-f', 'qcow2', '-c', 'write -P 2 512k 2M', sizes],
    ['qemu-img', 'snapshot', '-c', 'big', sizes],
    ['qemu-img', 'resize', '-q', '--shrink', sizes, '2M'],
  ];
  for (const [cmd, ...args] of steps) expect(runTool(cmd!, args).status).toBe(0);
});
afterAll(tmp.cleanup);

async function expectSame(args: string[]): Promise<void> {
  const q = normalized(runTool('qemu-img', ['snapshot', ...args], tmp.dir));
  const b = normalized(await runOurs(run, args, tmp.dir));
  expect(b).toEqual(q);
}

describe('blockgraph snapshot matches qemu-img snapshot', () => {
  it.each([
    [['-l', 'a.raw']],
    [['-l', 'snap.qcow2']],
    [['-l', '-U', '-q', 'snap.qcow2']],
    [['-l', '--image-opts', 'driver=qcow2,file.driver=file,file.filename=snap.qcow2']],
    [['-l', '--image-opts', 'driver=raw,file.driver=file,file.filename=a.raw']],
    [['-l']],
    [['-l', 'a.raw', 'a.raw']],
    [['-l', '-c', 'x', 'a.raw']],
    [['-d', 'x', '-a', 'y', 'a.raw']],
    [['-l', 'missing.raw']],
    [['-f', 'raw', '-l', 'a.raw']],
    [['-c']],
  ])('snapshot %j', async (args) => expectSame(args));
});

let copies = 0;
/** Copies of `image` for qemu-img and for us: [theirs, ours]. */
function twins(image: string): [string, string] {
  copies++;
  const names: [string, string] = [`q${copies}-${image}`, `b${copies}-${image}`];
  for (const n of names) copyFileSync(tmp.path(image), tmp.path(n));
  return names;
}

/** The ID and TAG columns of `qemu-img snapshot -l` (dates differ between the twins). */
function listed(image: string): string[] {
  return runTool('qemu-img', ['snapshot', '-l', image], tmp.dir)
    .stdout.split('\n')
    .slice(2)
    .filter((l) => l !== '')
    .map((l) => l.split(/\s+/).slice(0, 2).join(' '));
}

describe('blockgraph snapshot -c/-a/-d does what qemu-img snapshot does', () => {
  it.each([
    [['-c', 'new']],
    [['-a', 'first']],
    [['-a', '2']],
    [['-d', 'first']],
    [['-d', '2']],
    [['-d', 'nope']],
    [['-a', 'nope']],
    [['-q', '-c', '']],
  ])('snapshot %j', async (args) => {
    const [theirs, ours] = twins('snap.qcow2');
    const q = normalized(runTool('qemu-img', ['snapshot', ...args, theirs], tmp.dir));
    const b = normalized(await runOurs(run, [...args, ours], tmp.dir));
    expect(b).toEqual(q);
    expect(listed(ours)).toEqual(listed(theirs));
    expect(runTool('qemu-img', ['check', ours], tmp.dir).stdout).toContain('No errors were found');
    expect(runTool('qemu-img', ['compare', theirs, ours], tmp.dir).status).toBe(0);
    for (const sn of listed(theirs).map((l) => l.split(' ')[0]!)) {
      const content = (img: string) => {
        runTool('qemu-img', ['convert', '-l', `snapshot.id=${sn}`, '-O', 'raw', img, `${img}.raw`], tmp.dir);
        return readFileSync(tmp.path(`${img}.raw`));
      };
      expect(Buffer.compare(content(ours), content(theirs))).toBe(0);
    }
  });

  // qcow2_snapshot_goto resizes the image to the snapshot's disk size first, shrinking or growing.
  it.each([['small'], ['big'], ['1']])('snapshot -a %s of an image resized since', async (sn) => {
    const [theirs, ours] = twins('sizes.qcow2');
    const q = normalized(runTool('qemu-img', ['snapshot', '-a', sn, theirs], tmp.dir));
    const b = normalized(await runOurs(run, ['-a', sn, ours], tmp.dir));
    expect(b).toEqual({ ...q, status: 0 });
    const size = (img: string) =>
      JSON.parse(runTool('qemu-img', ['info', '--output=json', img], tmp.dir).stdout)['virtual-size'];
    expect(size(ours)).toBe(size(theirs));
    expect(size(ours)).toBe(sn === 'big' ? 3 << 20 : 1 << 20);
    expect(runTool('qemu-img', ['check', ours], tmp.dir).stdout).toContain('No errors were found');
    expect(runTool('qemu-img', ['compare', theirs, ours], tmp.dir).stdout).toBe('Images are identical.\n');
  });

  it.each([
    [['-c', 'x', 'datafile.qcow2']],
    [['-c', 'x', '--image-opts', 'driver=raw,file.driver=file,file.filename=a.raw']],
    [['-a', 'x', '--image-opts', 'driver=raw,file.driver=file,file.filename=a.raw']],
    [['-d', 'x', '--image-opts', 'driver=raw,file.driver=file,file.filename=a.raw']],
  ])('refuses %j as qemu-img does', async (args) => expectSame(args));
});

describe('snapshot table', () => {
  it('prints each column as bdrv_snapshot_dump does', () => {
    const saved = process.env.TZ;
    process.env.TZ = 'UTC';
    try {
      const table = snapshotList([
        {
          id: '12',
          name: 'a-name-longer-than-16',
          'vm-state-size': 1572864,
          'date-sec': 86399,
          'date-nsec': 5,
          'vm-clock-sec': 363723,
          'vm-clock-nsec': 45_999_999,
        },
        {
          id: '3',
          name: 'b',
          'vm-state-size': 0,
          'date-sec': 1795975504,
          'date-nsec': 0,
          'vm-clock-sec': 0,
          'vm-clock-nsec': 0,
          icount: 1234567,
        },
      ]);
      expect(table).toBe(
        'Snapshot list:\n' +
          'ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT\n' +
          '12        a-name-longer-than-16  1.5 MiB 1970-01-01 23:59:59101:02:03.045           \n' +
          '3         b                     0 B 2026-11-29 18:05:04 00:00:00.000    1234567\n',
      );
    } finally {
      process.env.TZ = saved;
    }
  });
});
