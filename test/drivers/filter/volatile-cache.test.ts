import { describe, expect, it } from 'vitest';
import type { BlockNode } from '../../../src/block/node.ts';
import { armVolatileCacheCrash, crashVolatileCache } from '../../../src/drivers/filter/volatile-cache.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const SIZE = 64 * 1024;

async function open(): Promise<{ graph: BlockGraph; vc: BlockNode; mem: BlockNode }> {
  const graph = new BlockGraph();
  const vc = await graph.open({ driver: 'x-volatile-cache', file: { driver: 'memory', size: SIZE } });
  return { graph, vc, mem: vc.child('file') as BlockNode };
}

async function bytes(node: BlockNode, offset: number, len: number): Promise<Uint8Array> {
  const buf = new Uint8Array(len);
  await node.read(offset, buf);
  return buf;
}

const fill = (len: number, value: number) => new Uint8Array(len).fill(value);

describe('x-volatile-cache', () => {
  it('reads its own writes, and the child sees them only after a flush', async () => {
    const { vc, mem } = await open();
    await vc.write(1000, fill(3000, 7));
    expect(await bytes(vc, 1000, 3000)).toEqual(fill(3000, 7));
    expect(await bytes(mem, 0, SIZE)).toEqual(fill(SIZE, 0));
    await vc.flush();
    expect(await bytes(mem, 1000, 3000)).toEqual(fill(3000, 7));
    expect(await bytes(mem, 999, 1)).toEqual(fill(1, 0));
    expect(await bytes(mem, 4000, 1)).toEqual(fill(1, 0));
  });

  it('merges partial-sector writes into the cached sector, zero writes and discards included', async () => {
    const { vc, mem } = await open();
    await vc.write(0, fill(512, 1));
    await vc.write(10, fill(20, 2));
    await vc.writeZeroes(100, 4);
    await vc.discard(500, 12);
    const want = fill(512, 1);
    want.fill(2, 10, 30).fill(0, 100, 104).fill(0, 500, 512);
    expect(await bytes(vc, 0, 512)).toEqual(want);
    await vc.flush();
    expect(await bytes(mem, 0, 512)).toEqual(want);
  });

  it('keeps everything flushed and, per sector, old or new content of unflushed writes', async () => {
    const outcomes = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const { vc, mem } = await open();
      await vc.write(0, fill(4096, 1));
      await vc.flush();
      await vc.write(0, fill(2048, 2));
      await vc.write(2048, fill(2048, 3));
      const summary = await crashVolatileCache(vc, seed);
      expect(summary.requests).toBe(2);
      const after = await bytes(mem, 0, 4096);
      const kept: string[] = [];
      for (let s = 0; s < 8; s++) {
        const sector = after.subarray(s * 512, (s + 1) * 512);
        const fresh = s < 4 ? 2 : 3;
        expect([fill(512, 1), fill(512, fresh)]).toContainEqual(sector);
        kept.push(sector[0] === 1 ? 'o' : 'n');
      }
      outcomes.add(kept.join(''));
    }
    // Whole writes kept and dropped, and torn ones (old and new sectors within one write).
    expect(outcomes).toContain('oooooooo');
    expect(outcomes).toContain('nnnnnnnn');
    expect([...outcomes].some((o) => /on|no/.test(o.slice(0, 4)) || /on|no/.test(o.slice(4)))).toBe(true);
  });

  it('gives the same outcome for the same seed', async () => {
    const states: Uint8Array[] = [];
    for (let run = 0; run < 2; run++) {
      const { vc, mem } = await open();
      for (let i = 0; i < 20; i++) await vc.write(i * 1024, fill(1024, i + 1));
      await crashVolatileCache(vc, 1234);
      states.push(await bytes(mem, 0, SIZE));
    }
    expect(states[0]).toEqual(states[1]);
  });

  it('fails every request after a crash with EIO', async () => {
    const { vc } = await open();
    await crashVolatileCache(vc, 1);
    await expect(vc.read(0, new Uint8Array(512))).rejects.toMatchObject({ errno: 'EIO' });
    await expect(vc.write(0, fill(512, 1))).rejects.toMatchObject({ errno: 'EIO' });
    await expect(vc.flush()).rejects.toMatchObject({ errno: 'EIO' });
  });

  it('an armed crash strikes instead of the n-th write-type request', async () => {
    const { vc, mem } = await open();
    await vc.write(0, fill(512, 1));
    await vc.flush();
    armVolatileCacheCrash(vc, 5, 3);
    await vc.write(512, fill(512, 2));
    await vc.write(1024, fill(512, 3));
    await expect(vc.write(1536, fill(512, 4))).rejects.toMatchObject({ errno: 'EIO' });
    expect(await bytes(mem, 0, 512)).toEqual(fill(512, 1));
    expect(await bytes(mem, 1536, 512)).toEqual(fill(512, 0));
  });

  it('keeps FUA writes through a crash', async () => {
    for (let seed = 0; seed < 10; seed++) {
      const { vc, mem } = await open();
      await vc.write(0, fill(4096, 9), { fua: true });
      await crashVolatileCache(vc, seed);
      expect(await bytes(mem, 0, 4096)).toEqual(fill(4096, 9));
    }
  });

  it('journals resizes: a shrink hides the cut-off bytes, a flush applies it to the child', async () => {
    const { vc, mem } = await open();
    await vc.write(SIZE - 1024, fill(1024, 5));
    await vc.flush();
    await vc.truncate(SIZE - 700);
    await vc.truncate(SIZE);
    expect(await bytes(vc, SIZE - 1024, 1024)).toEqual(fill(1024, 5).fill(0, 324));
    expect(mem.length()).toBe(SIZE);
    expect(await bytes(mem, SIZE - 1024, 1024)).toEqual(fill(1024, 5));
    await vc.flush();
    expect(await bytes(mem, SIZE - 1024, 1024)).toEqual(fill(1024, 5).fill(0, 324));
  });

  it('grows with writes past the end and writes the cache back on close', async () => {
    const { graph, vc, mem } = await open();
    await vc.write(SIZE, fill(100, 6));
    expect(vc.length()).toBe(SIZE + 512);
    expect(mem.length()).toBe(SIZE);
    await graph.release(vc);
    expect(mem.length()).toBe(SIZE + 512);
    expect(await bytes(mem, SIZE, 100)).toEqual(fill(100, 6));
  });
});
