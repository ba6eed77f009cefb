/**
 * `blockgraph snapshot` next to qemu-img snapshot 7.2: listing (nothing at all for an image
 * without snapshots), option errors, the refusal of the writing actions, and the table format.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, snapshotList } from '../../src/cli/snapshot.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';
import { makeSnapshots } from './qcow2-images.ts';

const tmp = tempDir();

beforeAll(() => {
  runTool('qemu-img', ['create', '-q', '-f', 'raw', tmp.path('a.raw'), '1M']);
  makeSnapshots(tmp.dir);
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

  it.each([
    ['-c', 'creating'],
    ['-a', 'applying'],
    ['-d', 'deleting'],
  ])('refuses %s, which writes to the image', async (option, what) => {
    const out = await runOurs(run, [option, 'snap1', 'a.raw'], tmp.dir);
    expect(out).toEqual({
      stdout: '',
      stderr: `blockgraph: ${option} (${what} a snapshot) is not supported yet\n`,
      status: 1,
    });
  });
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
