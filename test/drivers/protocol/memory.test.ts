import { describe, expect, it } from 'vitest';
import { deleteMemoryStore } from '../../../src/drivers/protocol/memory.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

const CHUNK = 64 * 1024;

async function open(options: Record<string, unknown>) {
  const graph = new BlockGraph();
  const node = await graph.blockdevAdd({ driver: 'memory', 'node-name': 'm', ...options });
  return { graph, node };
}

describe('memory', () => {
  it('defaults to an empty image that grows on write', async () => {
    const { node } = await open({});
    expect(node.length()).toBe(0);
    await node.write(10, new Uint8Array([1, 2, 3]));
    // Whole sectors, as QEMU reports node lengths.
    expect(node.length()).toBe(512);
  });

  it('reports written chunks as data and the rest as zeros, chunk-exact', async () => {
    const { node } = await open({ size: 2 ** 41 });
    await node.write(2 ** 40 + 5, new Uint8Array([9]));
    const head = await node.blockStatus(0, 2 ** 41);
    expect(head).toMatchObject({ bytes: 2 ** 40, data: false, zero: true, allocated: true, offset: 0 });
    const hit = await node.blockStatus(2 ** 40, 2 ** 41 - 2 ** 40);
    expect(hit).toMatchObject({ bytes: CHUNK, data: true, zero: false, offset: 2 ** 40 });
    const tail = await node.blockStatus(2 ** 40 + CHUNK, 2 ** 41 - 2 ** 40 - CHUNK);
    expect(tail).toMatchObject({ bytes: 2 ** 41 - 2 ** 40 - CHUNK, data: false, zero: true });
  });

  it('frees whole chunks on discard and zeroes partial ones', async () => {
    const { node } = await open({ size: 4 * CHUNK });
    await node.write(0, new Uint8Array(4 * CHUNK).fill(0xee));
    await node.discard(CHUNK - 10, CHUNK + 20);
    const read = async (offset: number) => {
      const buf = new Uint8Array(10);
      await node.read(offset, buf);
      return [...buf];
    };
    expect(await read(CHUNK - 15)).toEqual([...Array(5).fill(0xee), ...Array(5).fill(0)]);
    expect(await read(2 * CHUNK + 5)).toEqual([...Array(5).fill(0), ...Array(5).fill(0xee)]);
    // Partly discarded chunks stay data; the wholly discarded one is gone.
    expect(await node.blockStatus(0, 4 * CHUNK)).toMatchObject({ bytes: CHUNK, data: true });
    expect(await node.blockStatus(CHUNK, 3 * CHUNK)).toMatchObject({ bytes: CHUNK, data: false, zero: true });
    expect(await node.blockStatus(2 * CHUNK, 2 * CHUNK)).toMatchObject({ bytes: 2 * CHUNK, data: true });
    await node.writeZeroes(2 * CHUNK, 2 * CHUNK, { unmap: true });
    expect(await node.blockStatus(CHUNK, 3 * CHUNK)).toMatchObject({
      data: false,
      zero: true,
      bytes: 3 * CHUNK,
    });
  });

  it('a zero write past the end grows the image', async () => {
    const { node } = await open({ size: 100 });
    await node.writeZeroes(50, 1000);
    expect(node.length()).toBe(1536);
  });

  it('keeps a named store across close and reopen until it is deleted', async () => {
    const store = 'memory-test-store';
    const first = await open({ store, size: 4096 });
    await first.node.write(100, new Uint8Array([7, 7, 7]));
    await first.graph.blockdevDel('m');

    // `size` only applies when the store is made.
    const second = await open({ store, size: 10 });
    expect(second.node.length()).toBe(4096);
    const buf = new Uint8Array(3);
    await second.node.read(100, buf);
    expect([...buf]).toEqual([7, 7, 7]);
    await second.graph.blockdevDel('m');

    expect(deleteMemoryStore(store)).toBe(true);
    const third = await open({ store, size: 10 });
    expect(third.node.length()).toBe(512);
    deleteMemoryStore(store);
  });

  it('anonymous images do not share data', async () => {
    const a = await open({ size: 512 });
    await a.node.write(0, new Uint8Array([1]));
    const b = await open({ size: 512 });
    const buf = new Uint8Array(1);
    await b.node.read(0, buf);
    expect(buf[0]).toBe(0);
  });
});
