/**
 * block-dirty-bitmap-add/remove/clear/enable/disable/merge over QMP: behaviour, the
 * `dirty-bitmaps` member of query-named-block-nodes and query-block, and QEMU 7.2's texts
 * (captured from qemu-system-x86_64 -qmp stdio).
 */
import { describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import { runJobCommand } from '../../src/jobs/job-command.ts';
import { localExecute } from '../../src/qmp/commands/local.ts';
import { session } from '../jobs/helpers.ts';

const MiB = 1 << 20;

const ok = { return: {} };
const err = (desc: string) => ({ error: { class: 'GenericError', desc } });

/** A qcow2 image of 8 MiB with 64 KiB clusters made through blockdev-create. */
async function withImage() {
  const s = await session();
  await s.execute('blockdev-add', { driver: 'memory', 'node-name': 'm', size: 0 });
  await runJobCommand(localExecute(s.graph), 'blockdev-create', {
    'job-id': 'c',
    options: { driver: 'qcow2', file: 'm', size: 8 * MiB },
  });
  await s.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'img', file: 'm' });
  return s;
}

describe('block-dirty-bitmap-* commands', () => {
  it("answers QEMU's texts for bad requests", async () => {
    const { execute } = await withImage();
    const add = (args: Record<string, unknown>) =>
      execute('block-dirty-bitmap-add', { node: 'img', ...args });
    expect(await add({ name: 'b0' })).toEqual(ok);
    expect(await add({ name: 'b0' })).toEqual(err('Bitmap already exists: b0'));
    expect(await add({ name: 'b1', granularity: 100 })).toEqual(
      err('Granularity must be power of 2 and at least 512'),
    );
    expect(await add({ name: 'b1', granularity: 256 })).toEqual(
      err('Granularity must be power of 2 and at least 512'),
    );
    expect(await add({ name: 'b1', granularity: 0 })).toEqual(
      err('Granularity must be power of 2 and at least 512'),
    );
    expect(await add({ name: 'b1', granularity: 4294967296 })).toEqual(
      err("Parameter 'granularity' expects uint32_t"),
    );
    expect(await add({ name: '' })).toEqual(err('Bitmap name cannot be empty'));
    expect(await execute('block-dirty-bitmap-add', { node: 'zz', name: 'x' })).toEqual(
      err("Cannot find device='zz' nor node-name='zz'"),
    );
    for (const cmd of ['remove', 'clear', 'enable', 'disable']) {
      expect(await execute(`block-dirty-bitmap-${cmd}`, { node: 'img', name: 'nope' })).toEqual(
        err("Dirty bitmap 'nope' not found"),
      );
    }
    expect(await execute('block-dirty-bitmap-remove', { node: 'zz', name: 'nope' })).toEqual(
      err("Node 'zz' not found"),
    );
    const merge = (bitmaps: unknown[], target = 'b0') =>
      execute('block-dirty-bitmap-merge', { node: 'img', target, bitmaps });
    expect(await merge(['b0', 'nope'])).toEqual(err("Dirty bitmap 'nope' not found"));
    expect(await merge([{ node: 'img', name: 'zz' }])).toEqual(err("Dirty bitmap 'zz' not found"));
    expect(await merge([{ node: 'zz', name: 'zz' }])).toEqual(err("Node 'zz' not found"));
    expect(await merge(['b0'], 'nope')).toEqual(err("Dirty bitmap 'nope' not found"));
    expect(await merge([3])).toEqual(
      err("Invalid parameter type for 'null', expected: BlockDirtyBitmapOrStr"),
    );
  });

  it('tracks writes, lists bitmaps newest first, and merges, clears, enables and disables', async () => {
    const { graph, execute } = await withImage();
    expect(await execute('block-dirty-bitmap-add', { node: 'img', name: 'a' })).toEqual(ok);
    expect(await execute('block-dirty-bitmap-add', { node: 'img', name: 'fine', granularity: 512 })).toEqual(
      ok,
    );
    expect(await execute('block-dirty-bitmap-add', { node: 'img', name: 'off', disabled: true })).toEqual(ok);
    const blk = new BlockBackend(graph, 'd0');
    blk.insert(graph.lookup('img'));
    await blk.write(70000, new Uint8Array(1000).fill(1));
    await blk.writeZeroes(2 * MiB, 512);
    await blk.discard(4 * MiB, 65536);
    const nodes = (await execute('query-named-block-nodes', { flat: true })).return as Record<
      string,
      unknown
    >[];
    const img = nodes.find((n) => n['node-name'] === 'img')!;
    expect(img['dirty-bitmaps']).toEqual([
      { name: 'off', count: 0, granularity: 65536, recording: false, busy: false, persistent: false },
      { name: 'fine', count: 1536 + 512, granularity: 512, recording: true, busy: false, persistent: false },
      { name: 'a', count: 2 * 65536, granularity: 65536, recording: true, busy: false, persistent: false },
    ]);
    // The discard marked nothing: without discard=unmap QEMU drops it before it counts.
    // query-block's inserted member shows the same list.
    const block = (await execute('query-block')).return as { inserted: Record<string, unknown> }[];
    expect(block[0]!.inserted['dirty-bitmaps']).toEqual(img['dirty-bitmaps']);
    // Nodes without bitmaps have no member at all.
    expect(nodes.find((n) => n['node-name'] === 'm')!).not.toHaveProperty('dirty-bitmaps');

    expect(
      await execute('block-dirty-bitmap-merge', { node: 'img', target: 'off', bitmaps: ['fine', 'a'] }),
    ).toEqual(ok);
    const info = async () =>
      ((await execute('query-named-block-nodes', { flat: true })).return as Record<string, unknown>[]).find(
        (n) => n['node-name'] === 'img',
      )!['dirty-bitmaps'] as { name: string; count: number; recording: boolean }[];
    expect((await info())[0]).toMatchObject({ name: 'off', count: 2 * 65536 });
    expect(await execute('block-dirty-bitmap-enable', { node: 'img', name: 'off' })).toEqual(ok);
    expect(await execute('block-dirty-bitmap-disable', { node: 'img', name: 'a' })).toEqual(ok);
    expect(await execute('block-dirty-bitmap-clear', { node: 'img', name: 'off' })).toEqual(ok);
    await blk.write(6 * MiB, new Uint8Array(512));
    const now = await info();
    expect(now.map((b) => [b.name, b.count, b.recording])).toEqual([
      ['off', 65536, true],
      ['fine', 1536 + 512 + 512, true],
      ['a', 2 * 65536, false],
    ]);
    expect(await execute('block-dirty-bitmap-remove', { node: 'img', name: 'fine' })).toEqual(ok);
    expect((await info()).map((b) => b.name)).toEqual(['off', 'a']);
  });
});
