/**
 * The bitmap directory and bitmap tables of qcow2.txt ("Bitmaps extension", "Bitmap directory",
 * "Bitmap table"), decoded and encoded as QEMU's block/qcow2-bitmap.c does (bitmap_list_load,
 * check_dir_entry, bitmap_list_store, check_table_entry), with QEMU's texts.
 */
import { genericError } from '../../../block/errors.ts';
import { cString } from './extensions.ts';

export const BME_FLAG_IN_USE = 1;
export const BME_FLAG_AUTO = 2;
const BME_RESERVED_FLAGS = 0xfffffffc;
const BME_MAX_TABLE_SIZE = 0x8000000;
const BME_MAX_PHYS_SIZE = 0x20000000;
export const BME_MIN_GRANULARITY_BITS = 9;
export const BME_MAX_GRANULARITY_BITS = 31;
export const BME_MAX_NAME_SIZE = 1023;
const BT_DIRTY_TRACKING_BITMAP = 1;
const ENTRY_HEADER = 24;
/** BME_TABLE_ENTRY_OFFSET_MASK and _RESERVED_MASK; bit 0 means "all ones" without an offset. */
const TABLE_OFFSET_MASK = 0x00fffffffffffe00n;
const TABLE_RESERVED_MASK = 0xff000000000001fen;

/** One directory entry (Qcow2Bitmap): where its table is, its flags, granularity and name. */
export interface DirEntry {
  tableOffset: number;
  tableSize: number;
  flags: number;
  granularityBits: number;
  readonly name: string;
}

/** calc_dir_entry_size: header and name, padded to 8 bytes. */
export function dirEntrySize(name: string): number {
  return Math.ceil((ENTRY_HEADER + new TextEncoder().encode(name).length) / 8) * 8;
}

/**
 * bitmap_list_load over the directory bytes `dir`, expecting `nb` entries, for an image of
 * `length` bytes and `clusterSize`. Throws QEMU's texts for a broken directory.
 */
export function decodeDirectory(
  dir: Uint8Array,
  nb: number,
  length: number,
  clusterSize: number,
): DirEntry[] {
  const v = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  const out: DirEntry[] = [];
  let pos = 0;
  while (pos < dir.length) {
    if (pos + ENTRY_HEADER > dir.length) throw genericError('Broken bitmap directory');
    if (out.length + 1 > nb) throw genericError('More bitmaps found than specified in header extension');
    const nameSize = v.getUint16(pos + 18);
    const extra = v.getUint32(pos + 20);
    const next = pos + Math.ceil((ENTRY_HEADER + nameSize + extra) / 8) * 8;
    if (next > dir.length) throw genericError('Broken bitmap directory');
    if (extra !== 0) throw genericError('Bitmap extra data is not supported');
    const entry: DirEntry = {
      tableOffset: Number(v.getBigUint64(pos)),
      tableSize: v.getUint32(pos + 8),
      flags: v.getUint32(pos + 12),
      granularityBits: v.getUint8(pos + 17),
      name: cString(dir.subarray(pos + ENTRY_HEADER, pos + ENTRY_HEADER + nameSize)),
    };
    const type = v.getUint8(pos + 16);
    if (!entryValid(entry, type, nameSize, length, clusterSize)) {
      throw genericError(`Bitmap '${entry.name}' doesn't satisfy the constraints`);
    }
    out.push(entry);
    pos = next;
  }
  if (out.length !== nb) throw genericError('Less bitmaps found than specified in header extension');
  return out;
}

/** check_dir_entry. */
function entryValid(
  e: DirEntry,
  type: number,
  nameSize: number,
  length: number,
  clusterSize: number,
): boolean {
  if (
    e.tableSize === 0 ||
    e.tableOffset === 0 ||
    e.tableOffset % clusterSize !== 0 ||
    e.tableSize > BME_MAX_TABLE_SIZE ||
    e.granularityBits > BME_MAX_GRANULARITY_BITS ||
    e.granularityBits < BME_MIN_GRANULARITY_BITS ||
    (e.flags & BME_RESERVED_FLAGS) !== 0 ||
    nameSize > BME_MAX_NAME_SIZE ||
    type !== BT_DIRTY_TRACKING_BITMAP
  ) {
    return false;
  }
  const phys = e.tableSize * clusterSize;
  if (phys > BME_MAX_PHYS_SIZE) return false;
  // A consistent bitmap's table must cover the whole image (an IN_USE one may be stale).
  return (e.flags & BME_FLAG_IN_USE) !== 0 || length <= phys * 8 * 2 ** e.granularityBits;
}

/** The directory bytes for `entries` (bitmap_list_store's buffer, big-endian). */
export function encodeDirectory(entries: readonly DirEntry[]): Uint8Array {
  const out = new Uint8Array(entries.reduce((n, e) => n + dirEntrySize(e.name), 0));
  const v = new DataView(out.buffer);
  let pos = 0;
  for (const e of entries) {
    const name = new TextEncoder().encode(e.name);
    v.setBigUint64(pos, BigInt(e.tableOffset));
    v.setUint32(pos + 8, e.tableSize);
    v.setUint32(pos + 12, e.flags);
    v.setUint8(pos + 16, BT_DIRTY_TRACKING_BITMAP);
    v.setUint8(pos + 17, e.granularityBits);
    v.setUint16(pos + 18, name.length);
    out.set(name, pos + ENTRY_HEADER);
    pos += dirEntrySize(e.name);
  }
  return out;
}

/** The bitmaps extension's 24 bytes: nb_bitmaps, reserved, directory size and offset. */
export function encodeBitmapsExtension(nb: number, dirSize: number, dirOffset: number): Uint8Array {
  const out = new Uint8Array(24);
  const v = new DataView(out.buffer);
  v.setUint32(0, nb);
  v.setBigUint64(8, BigInt(dirSize));
  v.setBigUint64(16, BigInt(dirOffset));
  return out;
}

/** A bitmap table entry: a data cluster's offset, or none with "all ones" or "all zeros". */
export interface TableEntry {
  readonly offset: number;
  readonly allOnes: boolean;
}

/** bitmap_table_load's check_table_entry over the table bytes; EINVAL-style text on a bad one. */
export function decodeTable(bytes: Uint8Array, clusterSize: number, name: string): TableEntry[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: TableEntry[] = [];
  for (let at = 0; at < bytes.length; at += 8) {
    const e = v.getBigUint64(at);
    const offset = Number(e & TABLE_OFFSET_MASK);
    const allOnes = (e & 1n) !== 0n;
    if ((e & TABLE_RESERVED_MASK) !== 0n || (offset !== 0 && (allOnes || offset % clusterSize !== 0))) {
      throw genericError(
        `Could not read bitmap_table table from image for bitmap '${name}': Invalid argument`,
      );
    }
    out.push({ offset, allOnes });
  }
  return out;
}

/** The table bytes for data cluster offsets (0: an all-zeros cluster, not stored). */
export function encodeTable(offsets: readonly number[]): Uint8Array {
  const out = new Uint8Array(offsets.length * 8);
  const v = new DataView(out.buffer);
  offsets.forEach((o, i) => v.setBigUint64(i * 8, BigInt(o)));
  return out;
}

/**
 * check_constraints_on_bitmap: granularity within 512 B..2 GiB, the serialized bitmap small
 * enough, the name short enough. Throws QEMU's text.
 */
export function checkConstraints(
  name: string,
  granularity: number,
  length: number,
  clusterSize: number,
): void {
  const bits = Math.log2(granularity);
  if (bits > BME_MAX_GRANULARITY_BITS) {
    throw genericError(`Granularity exceeds maximum (${2 ** BME_MAX_GRANULARITY_BITS} bytes)`);
  }
  if (bits < BME_MIN_GRANULARITY_BITS) {
    throw genericError(`Granularity is under minimum (${2 ** BME_MIN_GRANULARITY_BITS} bytes)`);
  }
  const bytes = Math.ceil(Math.ceil(length / granularity) / 8);
  if (bytes > BME_MAX_PHYS_SIZE || bytes > BME_MAX_TABLE_SIZE * clusterSize) {
    throw genericError('Too much space will be occupied by the bitmap. Use larger granularity');
  }
  if (new TextEncoder().encode(name).length > BME_MAX_NAME_SIZE) {
    throw genericError(`Name length exceeds maximum (${BME_MAX_NAME_SIZE} characters)`);
  }
}
