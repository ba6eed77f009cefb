import { describe, expect, it } from 'vitest';
import { rig } from './setup.ts';

describe('BlockNode counters', () => {
  it('count the requests reaching each node, once per node a request passes', async () => {
    const { blk, root, dbg } = await rig();
    await blk.write(0, new Uint8Array(4096).fill(1));
    await blk.writeZeroes(8192, 1024);
    await blk.read(0, new Uint8Array(512));
    await blk.read(4096, new Uint8Array(2048));
    const expected = { readOps: 2, readBytes: 2560, writeOps: 2, writeBytes: 5120 };
    expect(root.counters).toEqual(expected);
    // raw passes every request down unchanged: the node below counts the same.
    expect(dbg.counters).toEqual(expected);
    const file = dbg.primaryChild()!;
    expect(file.counters.writeBytes).toBe(5120);
  });
});
