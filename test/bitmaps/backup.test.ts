/**
 * blockdev-backup over QMP: a full backup under guest writes equals the disk at the job's
 * start; an incremental backup from a bitmap copies exactly the dirty clusters and leaves the
 * bitmap holding only the writes made meanwhile; bitmap-mode never restores it; QEMU's texts.
 */
import { describe, expect, it } from 'vitest';
import { findBitmap } from '../../src/bitmaps/node-bitmaps.ts';
import { BlockBackend } from '../../src/block/backend.ts';
import { ioError } from '../../src/block/errors.ts';
import type { BlockNode } from '../../src/block/node.ts';
import { BlockGraph } from '../../src/graph/graph.ts';
import { jobsOf } from '../../src/jobs/registry.ts';
import { session } from '../jobs/helpers.ts';

const MiB = 1 << 20;
const CLUSTER = 65536;

async function setup() {
  const { graph, execute, events } = await session();
  await execute('blockdev-add', { driver: 'memory', 'node-name': 'src', size: 4 * MiB });
  await execute('blockdev-add', { driver: 'memory', 'node-name': 'tgt', size: 4 * MiB });
  const src = graph.lookup('src');
  for (let c = 0; c < 64; c++) await src.write(c * CLUSTER, new Uint8Array(CLUSTER).fill(c + 1));
  const blk = new BlockBackend(graph, 'drive0');
  blk.insert(src);
  return { graph, execute, src, tgt: graph.lookup('tgt'), blk, events };
}

async function readNode(node: BlockNode, offset = 0, bytes = node.length()): Promise<Uint8Array> {
  const buf = new Uint8Array(bytes);
  await node.read(offset, buf);
  return buf;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** Waits until the job `id` is gone (auto-dismiss). */
async function finished(graph: BlockGraph, id: string): Promise<void> {
  const job = jobsOf(graph).find(id);
  await job.concluded;
}

describe('blockdev-backup', () => {
  it('sync=full under guest writes copies the disk as it was at the start; progress reaches total once', async () => {
    const { graph, execute, src, tgt, blk, events } = await setup();
    const before = await readNode(src);
    expect(
      await execute('blockdev-backup', { 'job-id': 'j', device: 'src', target: 'tgt', sync: 'full' }),
    ).toEqual({
      return: {},
    });
    // Guest writes while the job runs: through the filter, so their old data is kept.
    for (let i = 0; i < 16; i++) await blk.write(i * 200000, new Uint8Array(5000).fill(0xaa));
    await finished(graph, 'j');
    expect(same(await readNode(tgt), before)).toBe(true);
    const done = events.filter(([name]) => name === 'BLOCK_JOB_COMPLETED');
    expect(done).toHaveLength(1);
    const data = done[0]![1] as { len: number; offset: number };
    expect(data.offset).toBe(data.len);
    expect(data.len).toBe(4 * MiB);
    // The filter is gone again: the drive writes the source directly.
    expect(blk.root).toBe(src);
    expect([...graph.nodes.keys()].filter((n) => !['src', 'tgt'].includes(n))).toEqual([]);
  });

  it('incremental copies exactly the dirty clusters; the bitmap keeps only the new writes', async () => {
    const { graph, execute, src, tgt, blk } = await setup();
    expect(await execute('block-dirty-bitmap-add', { node: 'src', name: 'b' })).toEqual({ return: {} });
    await blk.write(3 * CLUSTER + 10, new Uint8Array(100).fill(0x33));
    await blk.write(40 * CLUSTER, new Uint8Array(2 * CLUSTER).fill(0x44));
    const at = await readNode(src);
    expect(
      await execute('blockdev-backup', {
        'job-id': 'inc',
        device: 'src',
        target: 'tgt',
        sync: 'incremental',
        bitmap: 'b',
      }),
    ).toEqual({ return: {} });
    await blk.write(50 * CLUSTER, new Uint8Array(512).fill(0x55));
    await finished(graph, 'inc');
    const copied = await readNode(tgt);
    for (let c = 0; c < 64; c++) {
      const cluster = copied.subarray(c * CLUSTER, (c + 1) * CLUSTER);
      if ([3, 40, 41].includes(c))
        expect(same(cluster, at.subarray(c * CLUSTER, (c + 1) * CLUSTER)), `${c}`).toBe(true);
      else
        expect(
          cluster.every((b) => b === 0),
          `cluster ${c} untouched`,
        ).toBe(true);
    }
    const b = findBitmap(src, 'b')!;
    expect([...b.extents()]).toEqual([{ offset: 50 * CLUSTER, bytes: CLUSTER }]);
    expect(b.info()).toMatchObject({ busy: false, recording: true });
  });

  it('bitmap-mode=never on a cancelled sync=bitmap backup restores the bitmap plus new writes', async () => {
    const { graph, execute, src, blk } = await setup();
    await execute('block-dirty-bitmap-add', { node: 'src', name: 'b' });
    await blk.write(0, new Uint8Array(512).fill(1));
    await execute('blockdev-backup', {
      'job-id': 'n',
      device: 'src',
      target: 'tgt',
      sync: 'bitmap',
      bitmap: 'b',
      'bitmap-mode': 'never',
      speed: 1,
    });
    expect(findBitmap(src, 'b')!.info()).toMatchObject({ busy: true, recording: true });
    expect(await execute('block-dirty-bitmap-remove', { node: 'src', name: 'b' })).toEqual({
      error: {
        class: 'GenericError',
        desc: "Bitmap 'b' is currently in use by another operation and cannot be used",
      },
    });
    await blk.write(5 * CLUSTER, new Uint8Array(512).fill(1));
    await execute('block-job-cancel', { device: 'n', force: true });
    await finished(graph, 'n');
    expect([...findBitmap(src, 'b')!.extents()]).toEqual([
      { offset: 0, bytes: CLUSTER },
      { offset: 5 * CLUSTER, bytes: CLUSTER },
    ]);
  });

  it('on-target-error=stop pauses the job on a failed copy; job-resume retries and finishes', async () => {
    const { graph, execute, src, tgt, events } = await setup();
    const before = await readNode(src);
    // Every copy now fails writing the target.
    const ops = tgt.ops;
    tgt.ops = { ...ops, length: () => ops.length(), write: () => Promise.reject(ioError('EIO')) };
    await execute('blockdev-backup', {
      'job-id': 's',
      device: 'src',
      target: 'tgt',
      sync: 'full',
      'on-target-error': 'stop',
    });
    await new Promise((r) => setTimeout(r, 20));
    const jobs = (await execute('query-block-jobs')).return as Record<string, unknown>[];
    expect(jobs[0]).toMatchObject({ device: 's', paused: true, 'io-status': 'failed' });
    expect(events.find(([name]) => name === 'BLOCK_JOB_ERROR')?.[1]).toMatchObject({
      device: 's',
      operation: 'write',
      action: 'stop',
    });
    tgt.ops = ops;
    expect(await execute('job-resume', { id: 's' })).toEqual({ return: {} });
    await finished(graph, 's');
    expect(same(await readNode(tgt), before)).toBe(true);
  });

  it("refuses bad combinations with QEMU's texts", async () => {
    const { execute } = await setup();
    await execute('blockdev-add', { driver: 'memory', 'node-name': 'small', size: MiB });
    await execute('block-dirty-bitmap-add', { node: 'src', name: 'b' });
    const backup = (args: Record<string, unknown>) =>
      execute('blockdev-backup', { 'job-id': 'j', device: 'src', target: 'tgt', ...args });
    const cases: [Record<string, unknown>, string][] = [
      [{ sync: 'bitmap' }, "must provide a valid bitmap name for 'bitmap' sync mode"],
      [{ sync: 'incremental' }, "must provide a valid bitmap name for 'incremental' sync mode"],
      [{ sync: 'bitmap', bitmap: 'nope' }, "Bitmap 'nope' could not be found"],
      [{ sync: 'bitmap', bitmap: 'b' }, 'Bitmap sync mode must be given when providing a bitmap'],
      [
        { sync: 'none', bitmap: 'b', 'bitmap-mode': 'always' },
        "sync mode 'none' does not produce meaningful bitmap outputs",
      ],
      [
        { sync: 'full', bitmap: 'b', 'bitmap-mode': 'never' },
        "Bitmap sync mode 'never' has no meaningful effect when combined with sync mode 'full'",
      ],
      [{ sync: 'full', 'bitmap-mode': 'never' }, 'Cannot specify bitmap sync mode without a bitmap'],
      [
        { sync: 'incremental', bitmap: 'b', 'bitmap-mode': 'always' },
        "Bitmap sync mode must be 'on-success' when using sync mode 'incremental'",
      ],
      [{ sync: 'full', target: 'small' }, 'Source and target image have different sizes'],
      [{ sync: 'full', target: 'src' }, 'Source and target cannot be the same'],
    ];
    for (const [args, desc] of cases) {
      expect(await backup(args), desc).toEqual({ error: { class: 'GenericError', desc } });
    }
  });
});
