import { describe, expect, it } from 'vitest';
import { connect } from '../qmp/in-process.ts';

/** The nodes the QEMU 7.2 answer below was captured after (qemu-system-x86_64 -M none -qmp stdio). */
const SETUP: [string, Record<string, unknown>][] = [
  ['object-add', { 'qom-type': 'throttle-group', id: 'tg0', limits: { 'bps-total': 1048576 } }],
  ['blockdev-add', { driver: 'null-co', 'node-name': 'null0' }],
  ['blockdev-add', { driver: 'throttle', 'node-name': 'thr0', 'throttle-group': 'tg0', file: 'null0' }],
  ['blockdev-add', { driver: 'null-co', 'node-name': 'null1' }],
  ['blockdev-add', { driver: 'blkdebug', 'node-name': 'dbg0', image: 'null1' }],
  ['blockdev-add', { driver: 'null-co', 'node-name': 'null2' }],
  ['blockdev-add', { driver: 'copy-on-read', 'node-name': 'cor0', file: 'null2' }],
];

const SIZE = 1073741824;
const NULL_IMAGE = { 'virtual-size': SIZE, filename: 'null-co://', format: 'null-co', 'actual-size': 0 };

/** QEMU's BlockDeviceInfo, with the members that are the same for every node here. */
function device(node: string, drv: string, file: string, depth: number, image: unknown) {
  return {
    iops_rd: 0, detect_zeroes: 'off', image, iops_wr: 0, ro: false, 'node-name': node,
    backing_file_depth: depth, drv, iops: 0, bps_wr: 0, write_threshold: 0, encrypted: false,
    bps: 0, bps_rd: 0, cache: { 'no-flush': false, direct: false, writeback: true }, file,
  }; // prettier-ignore
}

/** A filter's entry: its filtered child nests as `backing-image`, depth 1, no backing_file. */
function filter(node: string, drv: string, file: string, actualSize: boolean) {
  const image = {
    'backing-image': NULL_IMAGE,
    'virtual-size': SIZE,
    filename: file,
    format: drv,
    ...(actualSize && { 'actual-size': 0 }),
  };
  return device(node, drv, file, 1, image);
}

describe('query-named-block-nodes on filter nodes', () => {
  it('answers as QEMU 7.2 does for throttle, blkdebug and copy-on-read over null-co', async () => {
    const execute = await connect();
    for (const [command, args] of SETUP) expect(await execute(command, args)).toEqual({ return: {} });
    // Newest first, as QEMU lists them. blkdebug has no actual-size: a driver with a protocol
    // prefix does not ask its child (bdrv_get_allocated_file_size).
    const qemu = [
      filter('cor0', 'copy-on-read', 'json:{"driver": "copy-on-read", "file": {"driver": "null-co"}}', true),
      device('null2', 'null-co', 'null-co://', 0, NULL_IMAGE),
      filter('dbg0', 'blkdebug', 'blkdebug::null-co://', false),
      device('null1', 'null-co', 'null-co://', 0, NULL_IMAGE),
      filter(
        'thr0',
        'throttle',
        'json:{"throttle-group": "tg0", "driver": "throttle", "file": {"driver": "null-co"}}',
        true,
      ),
      device('null0', 'null-co', 'null-co://', 0, NULL_IMAGE),
    ];
    expect(await execute('query-named-block-nodes')).toEqual({ return: qemu });
  });

  it('leaves the filtered child out with flat, depth 0 as QEMU does', async () => {
    const execute = await connect();
    for (const [command, args] of SETUP.slice(0, 3)) await execute(command, args);
    const answer = (await execute('query-named-block-nodes', { flat: true })) as {
      return: Record<string, unknown>[];
    };
    expect(answer.return[0]).toMatchObject({ 'node-name': 'thr0', backing_file_depth: 0 });
    expect(answer.return[0]!.image).not.toHaveProperty('backing-image');
  });
});
