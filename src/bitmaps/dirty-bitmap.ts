/**
 * BdrvDirtyBitmap (QEMU's block/dirty-bitmap.c over util/hbitmap.c): one bit per `granularity`
 * bytes of a node, set by every write-type request while the bitmap is enabled. The bits are
 * kept in the on-disk serialization order of qcow2.txt "Bitmaps" (bit k of byte j covers chunk
 * 8j + k), so storing and loading a bitmap is a byte copy.
 *
 * Flags as in QEMU: `busy` (an operation such as a backup job owns it), `readonly` (loaded from
 * an image opened read-only), `inconsistent` (stored IN_USE: not closed cleanly, bits unusable),
 * `persistent` (stored in the image on close). `count` is in bytes: set bits × granularity.
 */
import { genericError } from '../block/errors.ts';

/** What bdrv_dirty_bitmap_check looks at (BDRV_BITMAP_*). */
export const BitmapCheck = {
  BUSY: 1,
  RO: 2,
  INCONSISTENT: 4,
  /** BDRV_BITMAP_DEFAULT: every flag refuses. */
  DEFAULT: 7,
  /** BDRV_BITMAP_ALLOW_RO: enable/disable work on read-only bitmaps. */
  ALLOW_RO: 5,
} as const;

/** A maximal run of dirty bytes: [offset, offset + bytes). */
export interface DirtyExtent {
  readonly offset: number;
  readonly bytes: number;
}

export class BdrvDirtyBitmap {
  private bits: Uint8Array;
  disabled = false;
  busy = false;
  readonly = false;
  inconsistent = false;
  persistent = false;
  /** The anonymous bitmap recording writes while an operation owns this one (create_successor). */
  successor: BdrvDirtyBitmap | undefined;

  /** `name` undefined: anonymous (merge scratch space, successors). `size`: the node's bytes. */
  constructor(
    readonly name: string | undefined,
    readonly granularity: number,
    private bytes: number,
  ) {
    this.bits = new Uint8Array(Math.ceil(this.chunks() / 8));
  }

  /** bdrv_dirty_bitmap_size: the bytes of the node the bitmap covers. */
  get size(): number {
    return this.bytes;
  }

  enabled(): boolean {
    return !this.disabled;
  }

  /** bdrv_dirty_bitmap_recording: enabled, or an enabled successor records for it. */
  recording(): boolean {
    return this.enabled() || this.successor?.enabled() === true;
  }

  /** bdrv_dirty_bitmap_check: throws QEMU's text for the first of `flags` that refuses. */
  check(flags: number): void {
    const name = this.name ?? '(null)';
    if (flags & BitmapCheck.BUSY && this.busy) {
      throw genericError(`Bitmap '${name}' is currently in use by another operation and cannot be used`);
    }
    if (flags & BitmapCheck.RO && this.readonly) {
      throw genericError(`Bitmap '${name}' is readonly and cannot be modified`);
    }
    if (flags & BitmapCheck.INCONSISTENT && this.inconsistent) {
      throw genericError(`Bitmap '${name}' is inconsistent and cannot be used`);
    }
  }

  /** Marks every chunk touching [offset, offset + bytes) dirty (hbitmap_set). */
  set(offset: number, bytes: number): void {
    this.apply(offset, bytes, true);
  }

  /** Marks every chunk touching [offset, offset + bytes) clean (hbitmap_reset). */
  reset(offset: number, bytes: number): void {
    this.apply(offset, bytes, false);
  }

  /** bdrv_clear_dirty_bitmap. */
  clear(): void {
    this.bits.fill(0);
  }

  /** Whether the chunk holding byte `offset` is dirty. */
  get(offset: number): boolean {
    const c = Math.floor(offset / this.granularity);
    return c < this.chunks() && (this.bits[c >> 3]! & (1 << (c & 7))) !== 0;
  }

  /** bdrv_get_dirty_count: dirty chunks × granularity (not clipped to the size, as QEMU's). */
  count(): number {
    let n = 0;
    for (const b of this.bits) n += POPCOUNT[b]!;
    return n * this.granularity;
  }

  /** The dirty runs in order, in bytes clipped to the size (bdrv_dirty_bitmap_next_dirty_area). */
  *extents(): Generator<DirtyExtent> {
    const chunks = this.chunks();
    for (let c = 0; c < chunks;) {
      if (this.bits[c >> 3] === 0 && (c & 7) === 0) {
        c += 8;
        continue;
      }
      if (!this.chunkDirty(c)) {
        c++;
        continue;
      }
      const start = c;
      while (c < chunks && this.chunkDirty(c)) c++;
      const offset = start * this.granularity;
      yield { offset, bytes: Math.min(c * this.granularity, this.bytes) - offset };
    }
  }

  /**
   * bdrv_merge_dirty_bitmap: every dirty chunk of `src` (any granularity, same size) becomes
   * dirty here. Throws QEMU's texts when this bitmap may not change or `src` is unusable.
   */
  merge(src: BdrvDirtyBitmap): void {
    this.check(BitmapCheck.DEFAULT);
    src.check(BitmapCheck.INCONSISTENT);
    if (src.size !== this.size) throw genericError("Bitmaps are incompatible and can't be merged");
    if (src.granularity === this.granularity) {
      for (let i = 0; i < this.bits.length; i++) this.bits[i]! |= src.bits[i]!;
      return;
    }
    for (const e of src.extents()) this.set(e.offset, e.bytes);
  }

  /** bdrv_dirty_bitmap_truncate: the node's size changed; chunks past the old end start clean. */
  truncate(bytes: number): void {
    this.bytes = bytes;
    const bits = new Uint8Array(Math.ceil(this.chunks() / 8));
    bits.set(this.bits.subarray(0, bits.length));
    // A shrink may leave bits of chunks now past the end in the last byte.
    const tail = this.chunks() & 7;
    if (tail !== 0 && bits.length > 0) bits[bits.length - 1]! &= (1 << tail) - 1;
    this.bits = bits;
  }

  /**
   * The bits serialized as qcow2 stores them (hbitmap_serialize_part): `len` bytes of bitmap
   * data starting at bitmap byte `at`, zero past the end of the bitmap.
   */
  serialize(at: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    out.set(this.bits.subarray(at, Math.min(this.bits.length, at + len)));
    return out;
  }

  /** hbitmap_deserialize_part: bitmap bytes from `at` on are `data` (clipped to the size). */
  deserialize(at: number, data: Uint8Array): void {
    const n = Math.max(0, Math.min(data.length, this.bits.length - at));
    this.bits.set(data.subarray(0, n), at);
    this.truncate(this.bytes);
  }

  /** Bytes of serialized bitmap data (bdrv_dirty_bitmap_serialization_size, unpadded). */
  serializedBytes(): number {
    return this.bits.length;
  }

  /** QAPI BlockDirtyInfo, members in schema order (bdrv_query_dirty_bitmaps). */
  info(): Record<string, unknown> {
    return {
      ...(this.name !== undefined && { name: this.name }),
      count: this.count(),
      granularity: this.granularity,
      recording: this.recording(),
      busy: this.busy,
      persistent: this.persistent,
      ...(this.inconsistent && { inconsistent: true }),
    };
  }

  private chunks(): number {
    return Math.ceil(this.bytes / this.granularity);
  }

  private chunkDirty(c: number): boolean {
    return (this.bits[c >> 3]! & (1 << (c & 7))) !== 0;
  }

  private apply(offset: number, bytes: number, dirty: boolean): void {
    if (bytes <= 0) return;
    const first = Math.floor(offset / this.granularity);
    const last = Math.min(this.chunks(), Math.ceil((offset + bytes) / this.granularity)) - 1;
    for (let c = first; c <= last; c++) {
      if ((c & 7) === 0 && c + 7 <= last) {
        this.bits[c >> 3] = dirty ? 0xff : 0;
        c += 7;
        continue;
      }
      if (dirty) this.bits[c >> 3]! |= 1 << (c & 7);
      else this.bits[c >> 3]! &= ~(1 << (c & 7));
    }
  }
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, b) => {
  let n = 0;
  for (let x = b; x; x >>= 1) n += x & 1;
  return n;
});
