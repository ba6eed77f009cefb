import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlockNode } from '../../../src/block/node.ts';
import { filenameToOptions } from '../../../src/config/filename.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-blkverify-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** blkverify over two raw memory images; `differ` makes the test image hold 1 at 8192..8704. */
async function stack(differ = false): Promise<{ node: BlockNode; test: BlockNode; raw: BlockNode }> {
  const graph = new BlockGraph();
  const test = await graph.blockdevAdd({ driver: 'memory', size: 1 << 20, 'node-name': 't' });
  const raw = await graph.blockdevAdd({ driver: 'memory', size: 1 << 20, 'node-name': 'r' });
  if (differ) await test.write(8192, new Uint8Array(512).fill(1));
  const node = await graph.blockdevAdd({ driver: 'blkverify', 'node-name': 'v', test: 't', raw: 'r' });
  return { node, test, raw };
}

describe('blkverify', () => {
  it('a read whose halves differ fails with EIO naming the offset (qemu-io text)', async () => {
    const { node } = await stack(true);
    await node.read(0, new Uint8Array(4096));
    // qemu-io 7.2 printed exactly this for `read 4096 8k` before exiting.
    await expect(node.read(4096, new Uint8Array(8192))).rejects.toMatchObject({
      errno: 'EIO',
      message: 'blkverify: read offset=4096 bytes=8192 contents mismatch at offset 8192',
    });
  });

  it('writes reach both images, so they read alike afterwards', async () => {
    const { node, test, raw } = await stack(true);
    await node.write(8000, new Uint8Array(1000).fill(7));
    const a = new Uint8Array(1000);
    const b = new Uint8Array(1000);
    await test.read(8000, a);
    await raw.read(8000, b);
    expect(a.every((x) => x === 7) && b.every((x) => x === 7)).toBe(true);
    await node.read(0, new Uint8Array(1 << 20));
    await node.writeZeroes(8000, 100);
    await node.read(0, new Uint8Array(16384));
  });

  it('halves failing differently fail with return value mismatch', async () => {
    const graph = new BlockGraph();
    await graph.blockdevAdd({ driver: 'memory', size: 1 << 20, 'node-name': 't' });
    await graph.blockdevAdd({
      driver: 'blkdebug',
      'node-name': 'r',
      image: { driver: 'memory', size: 1 << 20 },
      'inject-error': [{ event: 'pwritev', immediately: true }],
    });
    const node = await graph.blockdevAdd({ driver: 'blkverify', 'node-name': 'v', test: 't', raw: 'r' });
    await expect(node.write(512, new Uint8Array(512))).rejects.toMatchObject({
      errno: 'EIO',
      message: 'blkverify: write offset=512 bytes=512 return value mismatch 0 != -5',
    });
  });

  it('needs both children (QEMU texts)', async () => {
    const graph = new BlockGraph();
    await graph.blockdevAdd({ driver: 'memory', size: 4096, 'node-name': 'm' });
    await expect(graph.blockdevAdd({ driver: 'blkverify', test: 'm' })).rejects.toThrow(
      'A block device must be specified for "raw"',
    );
    await expect(graph.blockdevAdd({ driver: 'blkverify', raw: 'm' })).rejects.toThrow(
      'A block device must be specified for "test"',
    );
  });

  it('blkverify:RAW:TEST opens RAW as a file and probes TEST (here qcow2)', async () => {
    const raw = join(dir, 'a.raw');
    const test = join(dir, 'b.qcow2');
    writeFileSync(raw, new Uint8Array(1 << 20).fill(3, 0, 4096));
    expect(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', test, '1M']).status).toBe(0);
    expect(spawnSync('qemu-io', ['-c', 'write -P 3 0 4k', test]).status).toBe(0);
    const graph = new BlockGraph();
    const node = await graph.blockdevAdd({
      ...filenameToOptions(`blkverify:${raw}:${test}`),
      'node-name': 'top',
    });
    const v = node.child('file')!;
    expect(v.driver.name).toBe('blkverify');
    expect(v.child('test')!.driver.name).toBe('qcow2');
    expect(v.child('raw')!.driver.name).toBe('file');
    expect(v.filename()).toBe(`blkverify:${raw}:${test}`);
    await node.read(0, new Uint8Array(65536));
    expect(() => filenameToOptions('blkverify:a.raw')).toThrow(
      'blkverify requires raw copy and original image path',
    );
    await graph.blockdevDel('top');
  });

  it('a live graph change can swap the raw child', async () => {
    const { node } = await stack();
    const graph = new BlockGraph();
    const other = await graph.blockdevAdd({ driver: 'memory', size: 1 << 20 });
    await other.write(0, new Uint8Array(512).fill(9));
    node.ops.replaceChild!('raw', other);
    await expect(node.read(0, new Uint8Array(512))).rejects.toThrow('contents mismatch at offset 0');
    expect(() => node.ops.replaceChild!('raw', null)).toThrow("Cannot change the 'raw' child");
  });
});
