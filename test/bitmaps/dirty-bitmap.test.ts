/** BdrvDirtyBitmap: chunk arithmetic at the edges, merge across granularities, truncate, flags. */
import { describe, expect, it } from 'vitest';
import { BdrvDirtyBitmap, BitmapCheck } from '../../src/bitmaps/dirty-bitmap.ts';

describe('BdrvDirtyBitmap', () => {
  it('marks every chunk a range touches, and counts whole chunks', () => {
    const b = new BdrvDirtyBitmap('b', 512, 10 * 512 + 100);
    b.set(511, 2); // touches chunks 0 and 1
    b.set(10 * 512, 1); // the partial last chunk
    expect([...b.extents()]).toEqual([
      { offset: 0, bytes: 1024 },
      { offset: 5120, bytes: 100 },
    ]);
    expect(b.count()).toBe(3 * 512);
    b.set(0, 100000); // past the end: clipped to the 11 chunks
    expect(b.count()).toBe(11 * 512);
    b.reset(600, 512 * 3); // chunks 1..4
    expect([...b.extents()]).toEqual([
      { offset: 0, bytes: 512 },
      { offset: 5 * 512, bytes: 5 * 512 + 100 },
    ]);
  });

  it('serializes LSB first per byte, as qcow2 stores bitmaps', () => {
    const b = new BdrvDirtyBitmap('b', 65536, 64 * 65536);
    b.set(0, 1);
    b.set(9 * 65536, 1);
    expect([...b.serialize(0, 3)]).toEqual([0x01, 0x02, 0x00]);
    const c = new BdrvDirtyBitmap('c', 65536, 64 * 65536);
    c.deserialize(0, new Uint8Array([0x80, 0xff]));
    expect([...c.extents()]).toEqual([{ offset: 7 * 65536, bytes: 9 * 65536 }]);
  });

  it('merges a finer bitmap into a coarser one and keeps the target on failure', () => {
    const fine = new BdrvDirtyBitmap('f', 512, 1 << 20);
    fine.set(70000, 10);
    const coarse = new BdrvDirtyBitmap('c', 65536, 1 << 20);
    coarse.merge(fine);
    expect([...coarse.extents()]).toEqual([{ offset: 65536, bytes: 65536 }]);
    coarse.busy = true;
    expect(() => coarse.merge(fine)).toThrow(
      "Bitmap 'c' is currently in use by another operation and cannot be used",
    );
    const other = new BdrvDirtyBitmap('o', 512, 2 << 20);
    coarse.busy = false;
    expect(() => coarse.merge(other)).toThrow("Bitmaps are incompatible and can't be merged");
  });

  it('truncates: shrinking drops chunks past the end, growing adds clean ones', () => {
    const b = new BdrvDirtyBitmap('b', 512, 16 * 512);
    b.set(0, 16 * 512);
    b.truncate(3 * 512);
    expect(b.count()).toBe(3 * 512);
    b.truncate(16 * 512);
    expect([...b.extents()]).toEqual([{ offset: 0, bytes: 3 * 512 }]);
  });

  it("checks flags in QEMU's order with QEMU's texts", () => {
    const b = new BdrvDirtyBitmap('x', 512, 512);
    b.readonly = true;
    b.inconsistent = true;
    expect(() => b.check(BitmapCheck.DEFAULT)).toThrow("Bitmap 'x' is readonly and cannot be modified");
    expect(() => b.check(BitmapCheck.ALLOW_RO)).toThrow("Bitmap 'x' is inconsistent and cannot be used");
    expect(b.info()).toEqual({
      name: 'x',
      count: 0,
      granularity: 512,
      recording: true,
      busy: false,
      persistent: false,
      inconsistent: true,
    });
  });
});
