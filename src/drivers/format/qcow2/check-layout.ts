/**
 * What `qemu-img check` needs to know about a qcow2 image, read straight from its protocol node
 * (qcow2.txt "Header", "Header extensions", "Snapshots", "Refcount table"): the header fields,
 * the snapshot table's entries and byte size, the bitmap directory's place, and the on-disk
 * refcounts (read, and changed by repairs, through a small cache of refcount blocks).
 */
import { genericError, ioError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import { parseExtensions, type HeaderExtensions } from './extensions.ts';
import { readSnapshotTable, type Qcow2Snapshot } from './snapshots.ts';

const QCOW_MAGIC = 0x514649fb;
const INCOMPAT_DIRTY = 1n;
const INCOMPAT_CORRUPT = 2n;
const INCOMPAT_DATA_FILE = 4n;
const INCOMPAT_EXTL2 = 16n;
/** Offset of incompatible_features in a version 3 header. */
export const INCOMPAT_FIELD = 72;
/** REFT_RESERVED_MASK: the low 9 bits of a refcount table entry. */
const REFT_RESERVED = 0x1ff;

export interface CheckLayout {
  readonly version: number;
  readonly clusterBits: number;
  readonly clusterSize: number;
  /** Virtual size in bytes, rounded down to whole sectors (bs->total_sectors). */
  readonly size: number;
  readonly l1Offset: number;
  readonly l1Size: number;
  readonly refcountOrder: number;
  readonly refTableOffset: number;
  /** Entries the refcount table has room for (refcount_table_clusters * cluster_size / 8). */
  readonly refTableEntries: number;
  readonly incompatible: bigint;
  readonly dataFile: boolean;
  readonly extendedL2: boolean;
  /** Bytes per L2 entry (16 with extended L2) and entries per L2 table. */
  readonly l2EntryBytes: number;
  readonly l2Size: number;
  readonly snapshotsOffset: number;
  readonly snapshots: readonly Qcow2Snapshot[];
  /** Bytes from snapshots_offset to the end of the last entry (s->snapshots_size). */
  readonly snapshotsSize: number;
  readonly ext: HeaderExtensions;
}

/** Reads the header, its extensions and the snapshot table of the image in `file`. */
export async function readLayout(file: BlockNode): Promise<CheckLayout> {
  const head = await readBytes(file, 0, 112);
  const v = new DataView(head.buffer);
  if (v.getUint32(0) !== QCOW_MAGIC) throw genericError('Image is not in qcow2 format');
  const version = v.getUint32(4);
  const clusterBits = v.getUint32(20);
  const clusterSize = 2 ** clusterBits;
  const v3 = version >= 3;
  const incompatible = v3 ? v.getBigUint64(72) : 0n;
  const autoclear = v3 ? v.getBigUint64(88) : 0n;
  const headerLength = v3 ? v.getUint32(100) : 72;
  const backingOffset = Number(v.getBigUint64(8));
  const extEnd = backingOffset || clusterSize;
  const ext = parseExtensions(
    await readBytes(file, headerLength, Math.max(0, extEnd - headerLength)),
    autoclear,
    clusterSize,
  );
  const extendedL2 = (incompatible & INCOMPAT_EXTL2) !== 0n;
  const size = Math.floor(Number(v.getBigUint64(24)) / 512) * 512;
  const snapshotsOffset = Number(v.getBigUint64(64));
  // The table's size is where its last entry ends: the furthest byte the parser read.
  let tableEnd = snapshotsOffset;
  const snapshots = await readSnapshotTable(
    async (offset, len) => {
      tableEnd = Math.max(tableEnd, offset + len);
      return readBytes(file, offset, len);
    },
    snapshotsOffset,
    v.getUint32(60),
    size,
  );
  return {
    version,
    clusterBits,
    clusterSize,
    size,
    l1Offset: Number(v.getBigUint64(40)),
    l1Size: v.getUint32(36),
    refcountOrder: v3 ? v.getUint32(96) : 4,
    refTableOffset: Number(v.getBigUint64(48)),
    refTableEntries: (v.getUint32(56) * clusterSize) / 8,
    incompatible,
    dataFile: (incompatible & INCOMPAT_DATA_FILE) !== 0n,
    extendedL2,
    l2EntryBytes: extendedL2 ? 16 : 8,
    l2Size: clusterSize / (extendedL2 ? 16 : 8),
    snapshotsOffset,
    snapshots,
    snapshotsSize: tableEnd - snapshotsOffset,
    ext,
  };
}

/** Reads the refcount table the header names: entries as offsets and reserved bits. */
export async function readRefcountTable(file: BlockNode, layout: CheckLayout): Promise<RefcountTable> {
  const raw = await readBytes(file, layout.refTableOffset, layout.refTableEntries * 8);
  const v = new DataView(raw.buffer);
  const entries: RefcountTableEntry[] = [];
  for (let at = 0; at < raw.length; at += 8) {
    const lo = v.getUint32(at + 4);
    entries.push({
      offset: v.getUint32(at) * 2 ** 32 + ((lo & ~REFT_RESERVED) >>> 0),
      reserved: lo & REFT_RESERVED,
    });
  }
  return { offset: layout.refTableOffset, entries };
}

export interface RefcountTableEntry {
  /** The refcount block's offset (REFT_OFFSET_MASK). */
  readonly offset: number;
  readonly reserved: number;
}

export interface RefcountTable {
  readonly offset: number;
  readonly entries: readonly RefcountTableEntry[];
}

const CACHED_BLOCKS = 32;

/**
 * The refcounts stored in the image (qcow2_get_refcount, and update_refcount for one cluster at
 * a time). Changes stay in cached refcount blocks until `writeBack`.
 */
export class StoredRefcounts {
  private readonly blocks = new Map<number, { data: Uint8Array; dirty: boolean }>();
  /** Entries per refcount block (s->refcount_block_size). */
  readonly perBlock: number;
  private readonly bits: number;

  constructor(
    private readonly file: BlockNode,
    readonly layout: CheckLayout,
    public table: RefcountTable,
  ) {
    this.bits = 2 ** layout.refcountOrder;
    this.perBlock = (layout.clusterSize * 8) / this.bits;
  }

  /** The stored refcount of `cluster`; throws EIO for an unaligned refcount block offset. */
  async get(cluster: number): Promise<bigint> {
    const block = await this.block(cluster);
    if (!block) return 0n;
    return readEntry(block.data, cluster % this.perBlock, this.bits);
  }

  /** Sets the stored refcount of `cluster`, whose refcount block must exist. */
  async set(cluster: number, value: bigint): Promise<void> {
    const block = await this.block(cluster);
    if (!block) throw ioError('EIO', `No refcount block for cluster ${cluster}`);
    writeEntry(block.data, cluster % this.perBlock, this.bits, value);
    block.dirty = true;
  }

  /** Writes changed refcount blocks to the file. */
  async writeBack(): Promise<void> {
    for (const [offset, block] of this.blocks) {
      if (!block.dirty) continue;
      await this.file.write(offset, block.data);
      block.dirty = false;
    }
  }

  /** Uses `table` from now on, forgetting cached blocks (after a rebuild). */
  replaceTable(table: RefcountTable): void {
    this.blocks.clear();
    this.table = table;
  }

  private async block(cluster: number): Promise<{ data: Uint8Array; dirty: boolean } | undefined> {
    const index = Math.floor(cluster / this.perBlock);
    const offset = this.table.entries[index]?.offset ?? 0;
    if (offset === 0) return undefined;
    if (offset % this.layout.clusterSize !== 0) throw ioError('EIO');
    let block = this.blocks.get(offset);
    if (!block) {
      if (this.blocks.size >= CACHED_BLOCKS) await this.evict();
      block = { data: await readBytes(this.file, offset, this.layout.clusterSize), dirty: false };
      this.blocks.set(offset, block);
    }
    return block;
  }

  private async evict(): Promise<void> {
    await this.writeBack();
    this.blocks.clear();
  }
}

/** Entry `index` of a refcount block of `bits`-wide entries (get_refcount_ro0..6). */
function readEntry(data: Uint8Array, index: number, bits: number): bigint {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (bits < 8) {
    const perByte = 8 / bits;
    return BigInt((data[Math.floor(index / perByte)]! >> ((index % perByte) * bits)) & (2 ** bits - 1));
  }
  if (bits === 8) return BigInt(data[index]!);
  if (bits === 16) return BigInt(v.getUint16(index * 2));
  if (bits === 32) return BigInt(v.getUint32(index * 4));
  return v.getBigUint64(index * 8);
}

function writeEntry(data: Uint8Array, index: number, bits: number, value: bigint): void {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = Number(value);
  if (bits < 8) {
    const perByte = 8 / bits;
    const at = Math.floor(index / perByte);
    const shift = (index % perByte) * bits;
    const mask = (2 ** bits - 1) << shift;
    data[at] = (data[at]! & ~mask) | ((n << shift) & mask);
  } else if (bits === 8) data[index] = n;
  else if (bits === 16) v.setUint16(index * 2, n);
  else if (bits === 32) v.setUint32(index * 4, n);
  else v.setBigUint64(index * 8, value);
}

/** Serializes `count` refcounts, `value(i)` each, as a refcount block of `bits`-wide entries. */
export function encodeRefcountBlock(
  clusterSize: number,
  bits: number,
  count: number,
  value: (i: number) => number,
): Uint8Array {
  const data = new Uint8Array(clusterSize);
  for (let i = 0; i < count; i++) {
    const n = value(i);
    if (n !== 0) writeEntry(data, i, bits, BigInt(n));
  }
  return data;
}

/** Clears the dirty and corrupt bits (qcow2_mark_clean, qcow2_mark_consistent) if set. */
export async function markCleanAndConsistent(file: BlockNode, layout: CheckLayout): Promise<void> {
  const cleared = layout.incompatible & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT);
  if (layout.version < 3 || cleared === layout.incompatible) return;
  const field = new Uint8Array(8);
  new DataView(field.buffer).setBigUint64(0, cleared);
  await file.write(INCOMPAT_FIELD, field);
  await file.flush();
}

export async function readBytes(file: BlockNode, offset: number, len: number): Promise<Uint8Array> {
  if (offset + len > Number.MAX_SAFE_INTEGER) throw ioError('EIO');
  const buf = new Uint8Array(len);
  await file.read(offset, buf);
  return buf;
}
