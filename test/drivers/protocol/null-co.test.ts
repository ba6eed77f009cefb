import { describe, expect, it } from 'vitest';
import { BlockIOError } from '../../../src/block/errors.ts';
import { nullCoDriver } from '../../../src/drivers/protocol/null-co.ts';
import { BlockGraph } from '../../../src/graph/graph.ts';

function add(options: Record<string, unknown> = {}) {
  return new BlockGraph().blockdevAdd({ driver: 'null-co', ...options });
}

describe('null-co', () => {
  it('is 1 GiB by default (qemu-img info: virtual size 1 GiB (1073741824 bytes))', async () => {
    expect((await add()).length()).toBe(1073741824);
  });

  it('leaves the read buffer untouched unless read-zeroes (QEMU 7.2 default off)', async () => {
    const buf = new Uint8Array(16).fill(0xab);
    await (await add()).read(0, buf);
    expect(buf.every((b) => b === 0xab)).toBe(true);
    await (await add({ 'read-zeroes': true })).read(0, buf);
    expect(buf.every((b) => b === 0)).toBe(true);
  });

  it('drops writes and refuses them past the end with EIO', async () => {
    const node = await add({ size: 1024, 'read-zeroes': true });
    await node.write(0, new Uint8Array(512).fill(1));
    const buf = new Uint8Array(512);
    await node.read(0, buf);
    expect(buf.every((b) => b === 0)).toBe(true);
    await expect(node.write(1000, new Uint8Array(512))).rejects.toMatchObject({ errno: 'EIO' });
    await expect(node.write(1000, new Uint8Array(512))).rejects.toBeInstanceOf(BlockIOError);
  });

  // qemu-img map --output=json: present false / zero false; with read-zeroes present, zero true.
  it('block status: unallocated, or allocated zeros with read-zeroes', async () => {
    expect(await (await add({ size: 1 << 20 })).blockStatus(0, 1 << 20)).toEqual({
      bytes: 1 << 20,
      data: false,
      zero: false,
      allocated: false,
      depth: 0,
      offset: 0,
    });
    expect(await (await add({ size: 1 << 20, 'read-zeroes': true })).blockStatus(4096, 8192)).toMatchObject({
      bytes: 8192,
      data: false,
      zero: true,
      allocated: true,
      offset: 4096,
    });
  });

  it('delays requests by latency-ns and refuses a negative one', async () => {
    const node = await add({ 'latency-ns': 30_000_000 });
    const start = performance.now();
    await node.flush();
    expect(performance.now() - start).toBeGreaterThanOrEqual(25);
    await expect(add({ 'latency-ns': -1 })).rejects.toThrow('latency-ns is invalid');
  });

  it('accepts only null-co:// as a filename', () => {
    expect(nullCoDriver.parseFilename('null-co://')).toEqual({});
    expect(() => nullCoDriver.parseFilename('null-co://x')).toThrow(
      "The only allowed filename for this driver is 'null-co://'",
    );
  });
});
