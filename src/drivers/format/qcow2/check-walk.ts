/**
 * Counting the references to every host cluster of a qcow2 image, as QEMU's calculate_refcounts
 * (block/qcow2-refcount.c) does: the header, the active and snapshot L1/L2 tables and the
 * clusters they map, the snapshot table, the refcount table and blocks, and the bitmaps' tables
 * (block/qcow2-bitmap.c qcow2_check_bitmaps_refcounts). Problems found on the way are counted
 * in the result and logged in QEMU's words; a read error ends the check (throws).
 */
import { ioError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import type { RefcountArray } from './check-imrt.ts';
import { readBytes, type CheckLayout, type RefcountTable } from './check-layout.ts';

/** QEMU's BdrvCheckResult with its BlockFragInfo flattened. */
export interface CheckCounts {
  corruptions: number;
  leaks: number;
  checkErrors: number;
  corruptionsFixed: number;
  leaksFixed: number;
  imageEndOffset: number;
  totalClusters: number;
  allocatedClusters: number;
  fragmentedClusters: number;
  compressedClusters: number;
}

export const emptyCounts = (): CheckCounts => ({
  corruptions: 0,
  leaks: 0,
  checkErrors: 0,
  corruptionsFixed: 0,
  leaksFixed: 0,
  imageEndOffset: 0,
  totalClusters: 0,
  allocatedClusters: 0,
  fragmentedClusters: 0,
  compressedClusters: 0,
});

/** BDRV_FIX_LEAKS / BDRV_FIX_ERRORS. */
export interface FixMode {
  readonly leaks: boolean;
  readonly errors: boolean;
}
export const NO_FIX: FixMode = { leaks: false, errors: false };

/** What one counting pass works on. */
export interface Walk {
  readonly file: BlockNode;
  readonly layout: CheckLayout;
  readonly table: RefcountTable;
  readonly res: CheckCounts;
  readonly imrt: RefcountArray;
  readonly fix: FixMode;
  readonly log: (line: string) => void;
  /** Set when the refcount structure itself is broken (rebuild_refcount_structure needed). */
  rebuild: boolean;
}

/** QCOW_MAX_L1_SIZE / L1E_SIZE. */
const MAX_L1_ENTRIES = 0x2000000 / 8;
const HI_COPIED = 0x80000000;
const HI_COMPRESSED = 0x40000000;
/** L1E_RESERVED_MASK and L2E_STD_RESERVED_MASK, split into 32-bit halves. */
const L1_RESERVED = [0x7f000000, 0x1ff] as const;
const L2_RESERVED = [0x3f000000, 0x1fe] as const;

/** A 64-bit table entry as two 32-bit halves (no BigInt in the hot loops). */
export interface Entry {
  readonly hi: number;
  readonly lo: number;
}

/** L1E_OFFSET_MASK / L2E_OFFSET_MASK applied to `e`. */
export const entryOffset = (e: Entry): number => (e.hi & 0x00ffffff) * 2 ** 32 + ((e.lo & 0xfffffe00) >>> 0);
export const entryHex = (e: Entry): string => ((BigInt(e.hi) << 32n) | BigInt(e.lo)).toString(16);
export const hex = (n: number | bigint): string => n.toString(16);
/** C's "%#x": zero has no prefix. */
const altHex = (n: number): string => (n === 0 ? '0' : `0x${hex(n)}`);

export function entryAt(v: DataView, at: number): Entry {
  return { hi: v.getUint32(at), lo: v.getUint32(at + 4) };
}

export const ClusterType = {
  UNALLOCATED: 0,
  ZERO_PLAIN: 1,
  ZERO_ALLOC: 2,
  NORMAL: 3,
  COMPRESSED: 4,
} as const;

/** qcow2_get_cluster_type. */
export function clusterType(layout: CheckLayout, e: Entry): number {
  if (e.hi & HI_COMPRESSED) return ClusterType.COMPRESSED;
  const offset = entryOffset(e);
  if (e.lo & 1 && !layout.extendedL2) return offset ? ClusterType.ZERO_ALLOC : ClusterType.ZERO_PLAIN;
  if (offset === 0) {
    // Offset 0 is valid in an external data file, where COPIED tells it from unallocated.
    return layout.dataFile && e.hi & HI_COPIED ? ClusterType.NORMAL : ClusterType.UNALLOCATED;
  }
  return ClusterType.NORMAL;
}

/** qcow2_inc_refcounts_imrt: counts one reference to each cluster of [offset, offset + size). */
export function countRange(w: Walk, offset: number, size: number): void {
  if (size <= 0) return;
  const cs = w.layout.clusterSize;
  // The last cluster may be only partly in the file, but no reference may go a cluster further.
  if (offset + size - w.file.length() >= cs) {
    w.log(
      'ERROR: counting reference for region exceeding the end of the file by one cluster or more: ' +
        `offset 0x${hex(offset)} size 0x${hex(size)}`,
    );
    w.res.corruptions++;
    return;
  }
  const first = Math.floor(offset / cs);
  const last = Math.floor((offset + size - 1) / cs);
  for (let k = first; k <= last; k++) {
    if (k >= w.imrt.size) w.imrt.size = k + 1;
    if (!w.imrt.increment(k)) {
      w.log(`ERROR: overflow cluster offset=0x${hex(k * cs)}`);
      w.log(
        'Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a clean copy if the image cannot be opened for writing',
      );
      w.res.corruptions++;
    }
  }
}

/** calculate_refcounts: counts every reference in the image into `w.imrt`. */
export async function calculateRefcounts(w: Walk): Promise<void> {
  const { layout } = w;
  countRange(w, 0, layout.clusterSize);
  await checkL1(w, layout.l1Offset, layout.l1Size, true);
  if (layout.dataFile && layout.snapshots.length > 0) {
    w.log(`ERROR ${layout.snapshots.length} snapshots in image with data file`);
    w.res.corruptions++;
  }
  for (const sn of layout.snapshots) {
    if (sn.l1TableOffset % layout.clusterSize !== 0) {
      w.log(
        `ERROR snapshot ${sn.id} (${sn.name}) l1_offset=${altHex(sn.l1TableOffset)}: ` +
          'L1 table is not cluster aligned; snapshot table entry corrupted',
      );
      w.res.corruptions++;
      continue;
    }
    if (sn.l1Size > MAX_L1_ENTRIES) {
      w.log(
        `ERROR snapshot ${sn.id} (${sn.name}) l1_size=${altHex(sn.l1Size)}: ` +
          'L1 table is too large; snapshot table entry corrupted',
      );
      w.res.corruptions++;
      continue;
    }
    await checkL1(w, sn.l1TableOffset, sn.l1Size, false);
  }
  countRange(w, layout.snapshotsOffset, layout.snapshotsSize);
  countRange(w, w.table.offset, w.table.entries.length * 8);
  const crypto = layout.ext.cryptoHeader;
  if (crypto) countRange(w, crypto.offset, crypto.length);
  await countBitmaps(w);
  await checkRefblocks(w);
}

/** check_refcounts_l1: the L1 table, its L2 tables and what they map. */
async function checkL1(w: Walk, offset: number, size: number, fragInfo: boolean): Promise<void> {
  if (size === 0) return;
  countRange(w, offset, size * 8);
  const l1 = await readOrFail(w, offset, size * 8, 'ERROR: I/O error in check_refcounts_l1');
  const v = new DataView(l1.buffer);
  for (let i = 0; i < size; i++) {
    const e = entryAt(v, i * 8);
    if (e.hi === 0 && e.lo === 0) continue;
    if (e.hi & L1_RESERVED[0] || e.lo & L1_RESERVED[1]) {
      w.log(`ERROR found L1 entry with reserved bits set: ${entryHex(e)}`);
      w.res.corruptions++;
    }
    const l2Offset = entryOffset(e);
    countRange(w, l2Offset, w.layout.clusterSize);
    if (l2Offset % w.layout.clusterSize !== 0) {
      w.log(`ERROR l2_offset=${hex(l2Offset)}: Table is not cluster aligned; L1 entry corrupted`);
      w.res.corruptions++;
    }
    await checkL2(w, l2Offset, fragInfo);
  }
}

/** check_refcounts_l2: one L2 table's entries. */
async function checkL2(w: Walk, l2Offset: number, fragInfo: boolean): Promise<void> {
  const { layout, res } = w;
  const table = await readOrFail(w, l2Offset, layout.clusterSize, 'ERROR: I/O error in check_refcounts_l2');
  const v = new DataView(table.buffer);
  let nextContiguous = 0;
  for (let i = 0; i < layout.l2Size; i++) {
    const at = i * layout.l2EntryBytes;
    const e = entryAt(v, at);
    // The subcluster bitmap: the high word says zero, the low word says allocated.
    const zeroBits = layout.extendedL2 ? v.getUint32(at + 8) : 0;
    const allocBits = layout.extendedL2 ? v.getUint32(at + 12) : 0;
    const type = clusterType(layout, e);
    if (type !== ClusterType.COMPRESSED && (e.hi & L2_RESERVED[0] || e.lo & L2_RESERVED[1])) {
      w.log(`ERROR found l2 entry with reserved bits set: ${entryHex(e)}`);
      res.corruptions++;
    }
    if (type === ClusterType.COMPRESSED) {
      checkCompressed(w, e, i, zeroBits !== 0 || allocBits !== 0, fragInfo);
    } else if (type === ClusterType.NORMAL || type === ClusterType.ZERO_ALLOC) {
      const offset = entryOffset(e);
      if ((zeroBits & allocBits) !== 0) {
        res.corruptions++;
        w.log(`ERROR offset=${hex(offset)}: Allocated cluster has corrupted subcluster allocation bitmap`);
      }
      if (offset % layout.clusterSize !== 0) {
        res.corruptions++;
        const containsData = layout.extendedL2 ? allocBits !== 0 : (e.lo & 1) === 0;
        if (containsData) {
          w.log(`ERROR offset=${hex(offset)}: Data cluster is not properly aligned; L2 entry corrupted.`);
        } else {
          const repairing = w.fix.errors;
          w.log(
            `${repairing ? 'Repairing' : 'ERROR'} offset=${hex(offset)}: Preallocated cluster is not properly aligned; L2 entry corrupted.`,
          );
          if (repairing && (await zeroL2Entry(w, l2Offset, table, i))) continue;
        }
      }
      if (fragInfo) {
        res.allocatedClusters++;
        if (nextContiguous && offset !== nextContiguous) res.fragmentedClusters++;
        nextContiguous = offset + layout.clusterSize;
      }
      if (!layout.dataFile) countRange(w, offset, layout.clusterSize);
    } else if (type === ClusterType.UNALLOCATED && allocBits !== 0) {
      res.corruptions++;
      w.log('ERROR: Unallocated cluster has non-zero subcluster allocation map');
    }
  }
}

/** The compressed case of check_refcounts_l2. */
function checkCompressed(w: Walk, e: Entry, index: number, hasBitmap: boolean, fragInfo: boolean): void {
  const { layout, res } = w;
  const entry = (BigInt(e.hi) << 32n) | BigInt(e.lo);
  const shift = BigInt(62 - (layout.clusterBits - 8));
  const offsetMask = (1n << shift) - 1n;
  if (e.hi & HI_COPIED) {
    w.log(
      `ERROR: coffset=0x${hex(entry & offsetMask)}: copied flag must never be set for compressed clusters`,
    );
    res.corruptions++;
  }
  const shown = entry & ~(1n << 63n);
  if (layout.dataFile) {
    w.log(`ERROR compressed cluster ${index} with data file, entry=0x${hex(shown)}`);
    res.corruptions++;
    return;
  }
  if (hasBitmap) {
    w.log(
      `ERROR compressed cluster ${index} with non-zero subcluster allocation bitmap, entry=0x${hex(shown)}`,
    );
    res.corruptions++;
    return;
  }
  const coffset = Number(entry & offsetMask);
  const sectors = Number((entry >> shift) & ((1n << BigInt(layout.clusterBits - 8)) - 1n)) + 1;
  countRange(w, coffset, sectors * 512 - (coffset % 512));
  if (fragInfo) {
    res.allocatedClusters++;
    res.compressedClusters++;
    // Compressed clusters are fragmented by nature: adjacent ones share sectors (QEMU's words).
    res.fragmentedClusters++;
  }
}

/**
 * fix_l2_entry_by_zero: turns entry `index` of the L2 table at `l2Offset` (held in `table`) into a
 * zero cluster on disk. True when done; false (a check error) when it could not be written.
 */
async function zeroL2Entry(w: Walk, l2Offset: number, table: Uint8Array, index: number): Promise<boolean> {
  const { layout } = w;
  const at = index * layout.l2EntryBytes;
  const v = new DataView(table.buffer);
  if (layout.extendedL2) {
    // Allocated subclusters become zero ones.
    v.setUint32(at + 8, v.getUint32(at + 8) | v.getUint32(at + 12));
    v.setUint32(at + 12, 0);
    v.setBigUint64(at, 0n);
  } else {
    v.setBigUint64(at, 1n);
  }
  const entryAtFile = l2Offset + at;
  if (overlapsMetadata(w, entryAtFile, layout.l2EntryBytes)) {
    w.log('ERROR: Overlap check failed');
    w.res.checkErrors++;
    throw ioError('EIO');
  }
  try {
    await w.file.write(entryAtFile, table.subarray(at, at + layout.l2EntryBytes));
    await w.file.flush();
  } catch (err) {
    w.log(`ERROR: Failed to overwrite L2 table entry: ${(err as Error).message}`);
    w.res.checkErrors++;
    return false;
  }
  w.res.corruptions--;
  w.res.corruptionsFixed++;
  return true;
}

/** check_refblocks: each refcount block is counted and must be referenced exactly once. */
async function checkRefblocks(w: Walk): Promise<void> {
  const cs = w.layout.clusterSize;
  const entries = w.table.entries;
  for (let i = 0; i < entries.length; i++) {
    const { offset, reserved } = entries[i]!;
    const cluster = Math.floor(offset / cs);
    if (reserved !== 0) {
      w.log(`ERROR refcount table entry ${i} has reserved bits set`);
      w.res.corruptions++;
      w.rebuild = true;
      continue;
    }
    if (offset % cs !== 0) {
      w.log(`ERROR refcount block ${i} is not cluster aligned; refcount table entry corrupted`);
      w.res.corruptions++;
      w.rebuild = true;
      continue;
    }
    if (cluster >= w.imrt.size) {
      w.res.corruptions++;
      w.log(`${w.fix.errors ? 'Repairing' : 'ERROR'} refcount block ${i} is outside image`);
      if (w.fix.errors) await growForRefblock(w, offset);
      continue;
    }
    if (offset !== 0) {
      countRange(w, offset, cs);
      const n = w.imrt.get(cluster);
      if (n !== 1) {
        w.log(`ERROR refcount block ${i} refcount=${n}`);
        w.res.corruptions++;
        w.rebuild = true;
      }
    }
  }
}

/** The repair of a refcount block past the end of the file: the file grows to hold it. */
async function growForRefblock(w: Walk, offset: number): Promise<void> {
  const cs = w.layout.clusterSize;
  try {
    await w.file.truncate(offset + cs);
  } catch (err) {
    w.rebuild = true;
    w.log(`ERROR could not resize image: ${(err as Error).message}`);
    return;
  }
  w.imrt.size = Math.max(w.imrt.size, Math.ceil(w.file.length() / cs));
  w.res.corruptions--;
  w.res.corruptionsFixed++;
  countRange(w, offset, cs);
}

/** qcow2_check_bitmaps_refcounts: the bitmap directory, each bitmap table and its clusters. */
async function countBitmaps(w: Walk): Promise<void> {
  const bitmaps = w.layout.ext.bitmaps;
  if (!bitmaps) return;
  countRange(w, bitmaps.directoryOffset, bitmaps.directorySize);
  const dir = await readBytes(w.file, bitmaps.directoryOffset, bitmaps.directorySize);
  const v = new DataView(dir.buffer);
  let pos = 0;
  for (let n = 0; n < bitmaps.nbBitmaps; n++) {
    if (pos + 24 > dir.length) {
      w.res.corruptions++;
      throw ioError('EINVAL');
    }
    const tableOffset = Number(v.getBigUint64(pos));
    const tableSize = v.getUint32(pos + 8);
    countRange(w, tableOffset, tableSize * 8);
    await countBitmapTable(w, tableOffset, tableSize);
    pos = Math.ceil((pos + 24 + v.getUint32(pos + 20) + v.getUint16(pos + 18)) / 8) * 8;
  }
}

/** BME_TABLE_ENTRY_RESERVED_MASK halves; bit 0 is "all ones". */
const BME_RESERVED = [0xff000000, 0x1fe] as const;

async function countBitmapTable(w: Walk, offset: number, size: number): Promise<void> {
  const cs = w.layout.clusterSize;
  const table = await readBytes(w.file, offset, size * 8);
  const v = new DataView(table.buffer);
  for (let i = 0; i < size; i++) {
    const e = entryAt(v, i * 8);
    const at = entryOffset(e);
    // check_table_entry: reserved bits, alignment, and "all ones" never with an offset.
    if (e.hi & BME_RESERVED[0] || e.lo & BME_RESERVED[1] || at % cs !== 0 || (e.lo & 1 && at !== 0)) {
      w.res.corruptions++;
      continue;
    }
    if (at !== 0) countRange(w, at, cs);
  }
}

/**
 * qcow2_check_metadata_overlap (QEMU's default "cached" checks) for a repair write of
 * [offset, offset + size): the header, the L1 tables, the refcount table and blocks, the
 * snapshot table and the bitmap directory. L2 tables are left out: repairs write only L2 tables
 * (which QEMU exempts) and clusters no reference counts (which cannot be one).
 */
export function overlapsMetadata(w: Walk, offset: number, size: number): boolean {
  const { layout } = w;
  const cs = layout.clusterSize;
  if (size === 0) return false;
  if (offset < cs) return true;
  const start = Math.floor(offset / cs) * cs;
  const end = Math.ceil((offset + size) / cs) * cs;
  const hits = (at: number, len: number) => len > 0 && at < end && start < at + len;
  const bitmaps = layout.ext.bitmaps;
  return (
    hits(layout.l1Offset, layout.l1Size * 8) ||
    hits(w.table.offset, w.table.entries.length * 8) ||
    hits(layout.snapshotsOffset, layout.snapshotsSize) ||
    layout.snapshots.some((sn) => hits(sn.l1TableOffset, sn.l1Size * 8)) ||
    w.table.entries.some((e) => e.offset !== 0 && hits(e.offset, cs)) ||
    (bitmaps !== undefined && hits(bitmaps.directoryOffset, bitmaps.directorySize))
  );
}

async function readOrFail(w: Walk, offset: number, len: number, message: string): Promise<Uint8Array> {
  try {
    return await readBytes(w.file, offset, len);
  } catch (err) {
    w.log(message);
    w.res.checkErrors++;
    throw err;
  }
}
