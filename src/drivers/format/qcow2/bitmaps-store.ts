/**
 * Persistent dirty bitmaps in a qcow2 image (QEMU's block/qcow2-bitmap.c): loaded at open
 * (qcow2_load_dirty_bitmaps: a writable open marks them IN_USE in the image, so a crash leaves
 * them recognisably inconsistent), stored on close (qcow2_store_persistent_dirty_bitmaps: data
 * clusters, then tables, then a new directory, then the header, then the old clusters freed),
 * removed on block-dirty-bitmap-remove. Refcounts go through the writer's cache; the header
 * points at nothing that is not on disk yet.
 */
import { BdrvDirtyBitmap } from '../../../bitmaps/dirty-bitmap.ts';
import type { PersistentBitmaps } from '../../../bitmaps/persistent.ts';
import { genericError, QmpError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import { setBitmapsExtension } from './amend.ts';
import {
  BME_FLAG_AUTO,
  BME_FLAG_IN_USE,
  checkConstraints,
  decodeDirectory,
  decodeTable,
  dirEntrySize,
  encodeBitmapsExtension,
  encodeDirectory,
  encodeTable,
  type DirEntry,
} from './bitmaps-directory.ts';
import { AUTOCLEAR_BITMAPS, type HeaderExtensions } from './extensions.ts';
import { readBytes } from './snapshot-write.ts';
import type { Qcow2Writer } from './writer.ts';

/** QCOW2_MAX_BITMAPS and QCOW2_MAX_BITMAP_DIRECTORY_SIZE. */
const MAX_BITMAPS = 65535;
const MAX_DIRECTORY_SIZE = 1024 * MAX_BITMAPS;
const HDR_AUTOCLEAR = 88;

/** A stored bitmap as QAPI Qcow2BitmapInfo shows it (qcow2_get_bitmap_info_list). */
export interface BitmapInfo {
  readonly flags: readonly string[];
  readonly name: string;
  readonly granularity: number;
}

/** What the bitmap code needs of an open image. */
export interface BitmapImage {
  /** Read at each use: live graph changes may replace the file child. */
  readonly file: BlockNode;
  /** Absent on a read-only node: bitmaps load read-only and nothing is written. */
  readonly writer: Qcow2Writer | undefined;
  readonly clusterSize: number;
  readonly version: number;
  /** The virtual size in bytes. */
  readonly length: number;
  /** The autoclear feature bits as on disk. */
  autoclear: bigint;
}

export class Qcow2Bitmaps implements PersistentBitmaps {
  private constructor(
    private readonly img: BitmapImage,
    /** The directory as in the image, and where it is. */
    private entries: DirEntry[],
    private dir: { offset: number; size: number },
    readonly loaded: readonly BdrvDirtyBitmap[],
  ) {}

  /** qcow2_load_dirty_bitmaps over the extension open parsed (undefined: none, or ignored). */
  static async load(img: BitmapImage, ext: HeaderExtensions['bitmaps']): Promise<Qcow2Bitmaps> {
    if (!ext) return new Qcow2Bitmaps(img, [], { offset: 0, size: 0 }, []);
    const dirBytes = await readBytes(img.file, ext.directoryOffset, ext.directorySize);
    const entries = decodeDirectory(dirBytes, ext.nbBitmaps, img.length, img.clusterSize);
    const loaded: BdrvDirtyBitmap[] = [];
    let update = false;
    for (const e of entries) {
      const bitmap = new BdrvDirtyBitmap(e.name, 2 ** e.granularityBits, img.length);
      bitmap.persistent = true;
      if (e.flags & BME_FLAG_IN_USE) bitmap.inconsistent = true;
      else {
        await loadData(img, e, bitmap);
        // Marked IN_USE only where the image is written (the directory is what `info` shows).
        if (img.writer) {
          e.flags |= BME_FLAG_IN_USE;
          update = true;
        }
      }
      bitmap.disabled = (e.flags & BME_FLAG_AUTO) === 0;
      bitmap.readonly = img.writer === undefined;
      // QEMU inserts each at the head of the node's list.
      loaded.unshift(bitmap);
    }
    const store = new Qcow2Bitmaps(
      img,
      entries,
      { offset: ext.directoryOffset, size: ext.directorySize },
      loaded,
    );
    if (update) await store.updateInPlace();
    return store;
  }

  /** qcow2_get_bitmap_info_list: the directory as it is now, for `info`. */
  info(): BitmapInfo[] {
    return this.entries.map((e) => ({
      flags: [...(e.flags & BME_FLAG_IN_USE ? ['in-use'] : []), ...(e.flags & BME_FLAG_AUTO ? ['auto'] : [])],
      name: e.name,
      granularity: 2 ** e.granularityBits,
    }));
  }

  canStore(name: string, granularity: number, bitmaps: readonly BdrvDirtyBitmap[], nodeName: string): void {
    if (bitmaps.some((b) => b.name === name)) throw genericError(`Bitmap already exists: ${name}`);
    try {
      if (this.img.version < 3) throw genericError('Cannot store dirty bitmaps in qcow2 v2 files');
      checkConstraints(name, granularity, this.img.length, this.img.clusterSize);
      const persistent = bitmaps.filter((b) => b.persistent);
      const dirSize = persistent.reduce((n, b) => n + dirEntrySize(b.name!), dirEntrySize(name));
      if (persistent.length + 1 > MAX_BITMAPS) {
        throw genericError('Maximum number of persistent bitmaps is already reached');
      }
      if (dirSize > MAX_DIRECTORY_SIZE) throw genericError('Not enough space in the bitmap directory');
    } catch (err) {
      throw prefixed(err, `Can't make bitmap '${name}' persistent in '${nodeName}': `);
    }
  }

  async remove(name: string): Promise<void> {
    const entry = this.entries.find((e) => e.name === name);
    // Absence is not an error (bdrv_co_remove_persistent_dirty_bitmap).
    if (!entry || !this.img.writer) return;
    await this.updateDirectory(this.entries.filter((e) => e !== entry));
    await this.freeTable(entry);
    await this.img.writer.flush();
  }

  async store(bitmaps: readonly BdrvDirtyBitmap[]): Promise<void> {
    const list = this.entries.map((e) => ({ ...e }));
    const drop: DirEntry[] = [];
    const toStore = new Map<DirEntry, BdrvDirtyBitmap>();
    for (const bitmap of bitmaps) {
      if (!bitmap.persistent || bitmap.inconsistent || bitmap.readonly) continue;
      const name = bitmap.name!;
      try {
        checkConstraints(name, bitmap.granularity, this.img.length, this.img.clusterSize);
      } catch (err) {
        throw prefixed(err, `Bitmap '${name}' doesn't satisfy the constraints: `);
      }
      let entry = list.find((e) => e.name === name);
      if (!entry) {
        entry = { tableOffset: 0, tableSize: 0, flags: 0, granularityBits: 0, name };
        list.push(entry);
      } else {
        if (!(entry.flags & BME_FLAG_IN_USE))
          throw genericError(`Bitmap '${name}' already exists in the image`);
        drop.push({ ...entry });
      }
      entry.flags = bitmap.enabled() ? BME_FLAG_AUTO : 0;
      entry.granularityBits = Math.log2(bitmap.granularity);
      toStore.set(entry, bitmap);
    }
    const writer = this.img.writer;
    if (toStore.size === 0) return;
    if (list.length > MAX_BITMAPS) throw genericError('Too many persistent bitmaps');
    if (!writer) throw genericError('No write access');
    for (const [entry, bitmap] of toStore) await this.storeBitmap(entry, bitmap, writer);
    await this.updateDirectory(list);
    for (const old of drop) await this.freeTable(old);
    await writer.flush();
  }

  /** store_bitmap: the non-zero clusters of bitmap data, then the table pointing at them. */
  private async storeBitmap(entry: DirEntry, bitmap: BdrvDirtyBitmap, writer: Qcow2Writer): Promise<void> {
    const cs = this.img.clusterSize;
    const offsets: number[] = [];
    for (let at = 0; at < bitmap.serializedBytes(); at += cs) {
      const data = bitmap.serialize(at, cs);
      offsets.push(data.some((b) => b !== 0) ? await this.writeClusters(data, writer) : 0);
    }
    entry.tableOffset = await this.writeClusters(encodeTable(offsets), writer);
    entry.tableSize = offsets.length;
  }

  /**
   * update_ext_header_and_dir: a new directory in new clusters (refcounts written first), the
   * header pointing at it (or, with no bitmaps left, without the extension), the old one freed.
   */
  private async updateDirectory(list: DirEntry[]): Promise<void> {
    const writer = this.img.writer!;
    const old = this.dir;
    let ext: Uint8Array | undefined;
    let dir = { offset: 0, size: 0 };
    if (list.length > 0) {
      const bytes = encodeDirectory(list);
      dir = { offset: await this.writeClusters(bytes, writer), size: bytes.length };
      await writer.flush();
      ext = encodeBitmapsExtension(list.length, dir.size, dir.offset);
      this.img.autoclear |= AUTOCLEAR_BITMAPS;
    } else this.img.autoclear &= ~AUTOCLEAR_BITMAPS;
    await setBitmapsExtension(this.img.file, ext, this.img.autoclear);
    this.entries = list;
    this.dir = dir;
    await this.freeRange(old.offset, old.size);
  }

  /**
   * update_ext_header_and_dir_in_place: with the autoclear bit off (so a crash in between makes
   * QEMU ignore the directory), the directory is rewritten where it is; then the bit is set again.
   */
  private async updateInPlace(): Promise<void> {
    const file = this.img.file;
    await this.writeAutoclear(this.img.autoclear & ~AUTOCLEAR_BITMAPS);
    await file.write(this.dir.offset, encodeDirectory(this.entries));
    await file.flush();
    await this.writeAutoclear(this.img.autoclear | AUTOCLEAR_BITMAPS);
  }

  private async writeAutoclear(bits: bigint): Promise<void> {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, bits);
    await this.img.file.write(HDR_AUTOCLEAR, b);
    await this.img.file.flush();
    this.img.autoclear = bits;
  }

  /** Allocates clusters for `bytes` (zero-padded) and writes them; their offset. */
  private async writeClusters(bytes: Uint8Array, writer: Qcow2Writer): Promise<number> {
    const cs = this.img.clusterSize;
    const n = Math.max(1, Math.ceil(bytes.length / cs));
    const offset = await writer.allocClusters(n);
    const padded = new Uint8Array(n * cs);
    padded.set(bytes);
    await this.img.file.write(offset, padded);
    return offset;
  }

  /** free_bitmap_clusters: the data clusters the table names, then the table. */
  private async freeTable(entry: DirEntry): Promise<void> {
    if (entry.tableOffset === 0) return;
    const table = await readBytes(this.img.file, entry.tableOffset, entry.tableSize * 8);
    for (const t of decodeTable(table, this.img.clusterSize, entry.name)) {
      if (t.offset !== 0) await this.freeRange(t.offset, this.img.clusterSize);
    }
    await this.freeRange(entry.tableOffset, entry.tableSize * 8);
  }

  private async freeRange(offset: number, bytes: number): Promise<void> {
    if (offset === 0 || bytes === 0) return;
    const cs = this.img.clusterSize;
    for (let c = Math.floor(offset / cs); c * cs < offset + bytes; c++) {
      await this.img.writer!.changeRefcount(c, -1);
    }
  }
}

/** load_bitmap_data: each table entry's cluster of bits, or all ones, or (already) all zeros. */
async function loadData(img: BitmapImage, entry: DirEntry, bitmap: BdrvDirtyBitmap): Promise<void> {
  const cs = img.clusterSize;
  if (Math.ceil(bitmap.serializedBytes() / cs) !== entry.tableSize) {
    throw genericError(`Could not read bitmap '${entry.name}' from image: Invalid argument`);
  }
  const table = await readBytes(img.file, entry.tableOffset, entry.tableSize * 8);
  const entries = decodeTable(table, cs, entry.name);
  for (let i = 0; i < entries.length; i++) {
    const { offset, allOnes } = entries[i]!;
    if (offset !== 0) bitmap.deserialize(i * cs, await readBytes(img.file, offset, cs));
    else if (allOnes) bitmap.deserialize(i * cs, new Uint8Array(cs).fill(0xff));
  }
}

/** error_prepend: QEMU's text with `prefix` in front, same class. */
function prefixed(err: unknown, prefix: string): unknown {
  return err instanceof QmpError ? new QmpError(err.errorClass, prefix + err.message) : err;
}
