import { describe, expect, it } from 'vitest';
import { BlockBackend } from '../../src/block/backend.ts';
import type { BlockNode } from '../../src/block/node.ts';
import { V86Disk, type DiskErrorHandler } from '../../src/frontends/v86-disk.ts';
import { BlockGraph } from '../../src/graph/graph.ts';

const SIZE = 1 << 20;

/**
 * A V86Disk over a BlockBackend over a memory node whose writes take `writeDelayMs` to land, so
 * that a read issued right after a write would overtake it unless the backend orders them.
 */
async function setup(writeDelayMs = 0, onError?: DiskErrorHandler) {
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'memory', size: SIZE });
  if (writeDelayMs > 0) slowWrites(node, writeDelayMs);
  const backend = new BlockBackend(graph, 'hd0');
  backend.insert(node);
  return { backend, disk: new V86Disk(backend, onError) };
}

function slowWrites(node: BlockNode, ms: number): void {
  const ops = node.ops;
  const write = ops.write!.bind(ops);
  ops.write = async (offset, src, flags) => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return write(offset, src, flags);
  };
}

/** v86's `get` as a promise. */
const get = (disk: V86Disk, start: number, len: number) =>
  new Promise<Uint8Array>((resolve) => disk.get(start, len, resolve));

describe('V86Disk', () => {
  it('reports the size and completes load through onload', async () => {
    const { disk } = await setup();
    expect(disk.byteLength).toBe(SIZE);
    let loaded = false;
    disk.onload = () => (loaded = true);
    disk.load();
    expect(loaded).toBe(true);
  });

  it('copies PIO data before set returns: a reused buffer does not change what was written', async () => {
    const { backend, disk } = await setup(5);
    const pio = new Uint8Array(1024);
    pio.fill(0xaa);
    disk.set(0, pio.subarray(0, 512)); // PIO: no callback, buffer reused at once
    pio.fill(0xbb);
    disk.set(512, pio.subarray(512, 1024));
    pio.fill(0xcc);
    const back = await get(disk, 0, 1024);
    expect(back.subarray(0, 512).every((b) => b === 0xaa)).toBe(true);
    expect(back.subarray(512).every((b) => b === 0xbb)).toBe(true);
    // ... and it reached the graph, not a copy held by the adapter.
    const direct = new Uint8Array(1024);
    await backend.read(0, direct);
    expect(direct).toEqual(back);
  });

  it('a read issued right after an un-awaited write sees the write (slow writes, fast reads)', async () => {
    const { disk } = await setup(20);
    const sector = new Uint8Array(512).fill(0x5a);
    disk.set(4096, sector);
    const overlapping = await get(disk, 4096 - 256, 512);
    expect(overlapping.subarray(0, 256).every((b) => b === 0)).toBe(true);
    expect(overlapping.subarray(256).every((b) => b === 0x5a)).toBe(true);
  });

  it('later writes to the same sectors win, in call order', async () => {
    const { disk } = await setup(10);
    for (let i = 1; i <= 5; i++) disk.set(0, new Uint8Array(512).fill(i));
    expect((await get(disk, 0, 512)).every((b) => b === 5)).toBe(true);
  });

  it('calls the DMA callback only once the write completed', async () => {
    const { backend, disk } = await setup(5);
    await new Promise<void>((resolve) => disk.set(8192, new Uint8Array(512).fill(7), resolve));
    const direct = new Uint8Array(512);
    await backend.read(8192, direct);
    expect(direct.every((b) => b === 7)).toBe(true);
  });

  it('caches what get_and_cache read, for get_from_cache, and keeps it in step with writes', async () => {
    const { disk } = await setup();
    disk.set(0, new Uint8Array(512).fill(1));
    expect(disk.get_from_cache(0, 512)).toBeUndefined();
    await new Promise((resolve) => disk.get_and_cache(0, 512, resolve));
    expect(disk.get_from_cache(0, 512)?.every((b) => b === 1)).toBe(true);
    disk.set(256, new Uint8Array(512).fill(2)); // half inside the cached range
    const cached = disk.get_from_cache(0, 512)!;
    expect(cached.subarray(0, 256).every((b) => b === 1)).toBe(true);
    expect(cached.subarray(256).every((b) => b === 2)).toBe(true);
    expect(disk.get_from_cache(256, 512)).toBeUndefined(); // not entirely cached
  });

  it('does not complete a read whose signal was aborted (IDE reset)', async () => {
    const { disk } = await setup();
    const abort = new AbortController();
    let called = false;
    disk.get(0, 512, () => (called = true), { signal: abort.signal });
    abort.abort();
    await get(disk, 0, 512); // a later read completes, so the aborted one had its chance
    expect(called).toBe(false);
  });

  it('hands failed requests to onError and to the failure path chosen at submission', async () => {
    const errors: string[] = [];
    const failed: string[] = [];
    const { disk } = await setup(0, (op, offset, bytes) => errors.push(`${op} ${offset} ${bytes}`));
    disk.failurePath = (op) => {
      const issued = failed.length;
      return (err) => failed.push(`${op} issued-after-${issued}: ${(err as Error).message}`);
    };
    let completed = false;
    disk.get(SIZE - 512, 1024, () => (completed = true));
    disk.set(SIZE, new Uint8Array(512), () => (completed = true));
    await get(disk, 0, 512);
    expect(errors).toEqual([`read ${SIZE - 512} 1024`, `write ${SIZE} 512`]);
    expect(failed).toEqual([
      'read issued-after-0: Input/output error',
      'write issued-after-0: Input/output error',
    ]);
    expect(completed).toBe(false);
  });

  it('flush reaches the backend; its callback runs once it completed', async () => {
    const { backend, disk } = await setup();
    await new Promise<void>((resolve) => disk.flush(resolve));
    expect(backend.stats().flush_operations).toBe(1);
  });

  it('counts what v86 asked for', async () => {
    const { disk } = await setup();
    disk.set(0, new Uint8Array(1024));
    await get(disk, 0, 512);
    await get(disk, 512, 2048);
    expect(disk.stats).toEqual({ gets: 2, getBytes: 2560, sets: 1, setBytes: 1024 });
  });
});
