import { describe, expect, it } from 'vitest';
import { nodeInfo } from '../../src/block/node-info.ts';
import { BlockGraph } from '../../src/graph/graph.ts';

describe('nodeInfo', () => {
  it('describes raw over null-co exactly as QEMU 7.2 query-named-block-nodes does', async () => {
    const g = new BlockGraph();
    const raw = await g.blockdevAdd({
      driver: 'raw',
      'node-name': 'r',
      file: { driver: 'null-co', 'node-name': 'n' },
    });
    // What block/null.c answers for itself (its filename; bdrv_get_allocated_file_size is 0):
    // supplied here if the driver does not yet. raw has neither and must take both from `file`.
    const nullOps = g.lookup('n').ops;
    nullOps.filename ??= () => 'null-co://';
    nullOps.imageFacts ??= () => ({ actualSize: 0 });
    // Captured from qemu-system-x86_64 -M none -qmp stdio after this blockdev-add.
    const qemu = {
      iops_rd: 0, detect_zeroes: 'off', iops_wr: 0, ro: false, 'node-name': 'r', backing_file_depth: 0,
      drv: 'raw', iops: 0, bps_wr: 0, write_threshold: 0, encrypted: false, bps: 0, bps_rd: 0,
      image: { 'virtual-size': 1073741824, filename: 'null-co://', format: 'raw', 'actual-size': 0 },
      cache: { 'no-flush': false, direct: false, writeback: true },
      file: 'null-co://',
    }; // prettier-ignore
    expect(nodeInfo(raw)).toEqual(qemu);
  });

  it('reports the backing chain, cache options and read-only state', async () => {
    const g = new BlockGraph();
    const mem = await g.blockdevAdd({
      driver: 'memory',
      'node-name': 'm',
      size: 4096,
      'read-only': true,
      cache: { direct: true, 'no-flush': true },
      'detect-zeroes': 'on',
    });
    const info = nodeInfo(mem, false);
    expect(info).toMatchObject({
      'node-name': 'm',
      ro: true,
      drv: 'memory',
      detect_zeroes: 'on',
      backing_file_depth: 0,
      cache: { writeback: false, direct: true, 'no-flush': true },
      image: { format: 'memory', 'virtual-size': 4096 },
    });
    expect(info).not.toHaveProperty('backing_file');
    expect(Object.keys(info)).toEqual([
      'file', 'node-name', 'ro', 'drv', 'backing_file_depth', 'encrypted', 'detect_zeroes',
      'bps', 'bps_rd', 'bps_wr', 'iops', 'iops_rd', 'iops_wr', 'image', 'cache', 'write_threshold',
    ]); // prettier-ignore
  });
});
