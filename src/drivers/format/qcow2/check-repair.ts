/**
 * The comparing and repairing half of QEMU's qcow2 check (block/qcow2-refcount.c):
 * compare_refcounts (counted against stored refcounts; leaks and corruptions, fixed by setting
 * the stored value), check_oflag_copied (the COPIED flag must say "refcount is 1"), and
 * rebuild_refcount_structure (new refcount blocks and table written from the counted refcounts,
 * for when the stored structure itself is broken).
 */
import { errnoOf, ioError, STRERROR } from '../../../block/errors.ts';
import { encodeRefcountBlock, readBytes, type RefcountTable, type StoredRefcounts } from './check-layout.ts';
import {
  ClusterType,
  clusterType,
  entryAt,
  entryHex,
  entryOffset,
  overlapsMetadata,
  type FixMode,
  type Walk,
} from './check-walk.ts';

const HI_COPIED = 0x80000000;

/**
 * compare_refcounts: logs and counts every cluster whose stored refcount differs from the counted
 * one, fixing what `fix` allows. A stored 0 against references means the structure must be
 * rebuilt (sets `w.rebuild`). Returns the highest cluster in use.
 */
export async function compareRefcounts(w: Walk, stored: StoredRefcounts, fix: FixMode): Promise<number> {
  let highest = 0;
  for (let i = 0; i < w.imrt.size; i++) {
    let refcount1: bigint;
    try {
      refcount1 = await stored.get(i);
    } catch (err) {
      w.log(`Can't get refcount for cluster ${i}: ${STRERROR[errnoOf(err)]}`);
      w.res.checkErrors++;
      continue;
    }
    const refcount2 = BigInt(w.imrt.get(i));
    if (refcount1 > 0n || refcount2 > 0n) highest = i;
    if (refcount1 === refcount2) continue;
    let fixing: 'leaksFixed' | 'corruptionsFixed' | undefined;
    if (refcount1 === 0n) w.rebuild = true;
    else if (refcount1 > refcount2 && fix.leaks) fixing = 'leaksFixed';
    else if (refcount1 < refcount2 && fix.errors) fixing = 'corruptionsFixed';
    const what = fixing ? 'Repairing' : refcount1 < refcount2 ? 'ERROR' : 'Leaked';
    w.log(`${what} cluster ${i} refcount=${refcount1} reference=${refcount2}`);
    if (fixing) {
      await stored.set(i, refcount2);
      w.res[fixing]++;
      continue;
    }
    if (refcount1 < refcount2) w.res.corruptions++;
    else w.res.leaks++;
  }
  await stored.writeBack();
  return highest;
}

/**
 * check_oflag_copied: in the active L1 and L2 tables, COPIED must be set exactly where the
 * stored refcount is 1 (always, for clusters in an external data file). Repairs rewrite the
 * entries when `fix` says so — with leaks only, when the refcounts are known to be right.
 */
export async function checkOflagCopied(w: Walk, stored: StoredRefcounts, fix: FixMode): Promise<void> {
  const { layout, res } = w;
  const repair = fix.errors || (fix.leaks && !res.checkErrors && !res.corruptions && !res.leaks);
  const l1 = await readBytes(w.file, layout.l1Offset, layout.l1Size * 8);
  const l1View = new DataView(l1.buffer);
  for (let i = 0; i < layout.l1Size; i++) {
    const l1Entry = entryAt(l1View, i * 8);
    const l2Offset = entryOffset(l1Entry);
    if (l2Offset === 0) continue;
    const refcount = await storedOrUndefined(stored, l2Offset / layout.clusterSize);
    if (refcount !== undefined && (refcount === 1n) !== ((l1Entry.hi & HI_COPIED) !== 0)) {
      res.corruptions++;
      w.log(
        `${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${entryHex(l1Entry)} refcount=${refcount}`,
      );
      if (repair) {
        const hi = refcount === 1n ? l1Entry.hi | HI_COPIED : l1Entry.hi & ~HI_COPIED;
        l1View.setUint32(i * 8, hi >>> 0);
        await writeOrFail(w, layout.l1Offset + i * 8, l1.subarray(i * 8, i * 8 + 8), 'L1 table entry');
        res.corruptions--;
        res.corruptionsFixed++;
      }
    }
    await checkL2Copied(w, stored, l2Offset, repair);
  }
}

/** The L2 half of check_oflag_copied, for the table at `l2Offset`. */
async function checkL2Copied(
  w: Walk,
  stored: StoredRefcounts,
  l2Offset: number,
  repair: boolean,
): Promise<void> {
  const { layout, res } = w;
  let table: Uint8Array;
  try {
    table = await readBytes(w.file, l2Offset, layout.clusterSize);
  } catch (err) {
    w.log(`ERROR: Could not read L2 table: ${STRERROR[errnoOf(err)]}`);
    res.checkErrors++;
    throw err;
  }
  const v = new DataView(table.buffer);
  let dirty = 0;
  for (let j = 0; j < layout.l2Size; j++) {
    const at = j * layout.l2EntryBytes;
    const e = entryAt(v, at);
    const type = clusterType(layout, e);
    if (type !== ClusterType.NORMAL && type !== ClusterType.ZERO_ALLOC) continue;
    const refcount = layout.dataFile
      ? 1n
      : await storedOrUndefined(stored, Math.floor(entryOffset(e) / layout.clusterSize));
    if (refcount === undefined || (refcount === 1n) === ((e.hi & HI_COPIED) !== 0)) continue;
    res.corruptions++;
    w.log(
      `${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED data cluster: l2_entry=${entryHex(e)} refcount=${refcount}`,
    );
    if (repair) {
      v.setUint32(at, (refcount === 1n ? e.hi | HI_COPIED : e.hi & ~HI_COPIED) >>> 0);
      dirty++;
    }
  }
  if (dirty === 0) return;
  if (overlapsMetadata(w, l2Offset, layout.clusterSize)) {
    w.log(`ERROR: Could not write L2 table; metadata overlap check failed: ${STRERROR.EIO}`);
    res.checkErrors++;
    throw ioError('EIO');
  }
  await writeOrFail(w, l2Offset, table, 'L2 table');
  res.corruptions -= dirty;
  res.corruptionsFixed += dirty;
}

/** A stored refcount, or undefined where it cannot be read (already reported by the compare). */
async function storedOrUndefined(stored: StoredRefcounts, cluster: number): Promise<bigint | undefined> {
  try {
    return await stored.get(cluster);
  } catch {
    return undefined;
  }
}

async function writeOrFail(w: Walk, offset: number, data: Uint8Array, what: string): Promise<void> {
  try {
    await w.file.write(offset, data);
  } catch (err) {
    w.log(`ERROR: Could not write ${what}: ${STRERROR[errnoOf(err)]}`);
    w.res.checkErrors++;
    throw err;
  }
}

/**
 * rebuild_refcount_structure: writes refcount blocks for every counted cluster and a refcount
 * table for them, all placed in clusters free in the counted refcounts (which then count them
 * too), and points the header at the new table (and, given `refcountOrder`, at the width
 * `w.layout` has). The old structure is left leaked; the caller recounts and frees it.
 * Returns the new table.
 */
export async function rebuildRefcountStructure(
  w: Walk,
  perBlock: number,
  refcountOrder?: number,
): Promise<RefcountTable> {
  const cs = w.layout.clusterSize;
  const reftable: number[] = [];
  let grown = await writeRefblocks(w, perBlock, 0, w.imrt.size, reftable);
  let offset = 0;
  let clusters = 0;
  // Placing the table changes the counts of the clusters it takes, whose refcount blocks are
  // then written again; that may grow the table, which then needs a new place.
  while (grown) {
    clusters = Math.ceil((reftable.length * 8) / cs);
    offset = allocate(w, clusters, { first: 0 });
    grown = await writeRefblocks(w, perBlock, offset / cs, offset / cs + clusters, reftable);
  }
  const bytes = new Uint8Array(reftable.length * 8);
  const v = new DataView(bytes.buffer);
  reftable.forEach((at, i) => v.setBigUint64(i * 8, BigInt(at)));
  await rebuildWrite(w, offset, bytes, 'ERROR writing reftable');
  // With `refcountOrder` (amend changing refcount_bits, whose blocks `w.layout` describes) the
  // header's width goes in the same write as the table: bytes 48..100 hold both.
  const header = refcountOrder === undefined ? new Uint8Array(12) : await readBytes(w.file, 48, 52);
  new DataView(header.buffer).setBigUint64(0, BigInt(offset));
  new DataView(header.buffer).setUint32(8, clusters);
  if (refcountOrder !== undefined) new DataView(header.buffer).setUint32(48, refcountOrder);
  await rebuildWrite(w, 48, header, 'ERROR setting reftable', true);
  await w.file.flush();
  return { offset, entries: reftable.map((at) => ({ offset: at, reserved: 0 })) };
}

/**
 * rebuild_refcounts_write_refblocks: writes the refcount block of each counted cluster in
 * [first, end), allocating blocks not in `reftable` yet. Returns whether `reftable` grew.
 */
async function writeRefblocks(
  w: Walk,
  perBlock: number,
  first: number,
  end: number,
  reftable: number[],
): Promise<boolean> {
  const { imrt, layout } = w;
  const cs = layout.clusterSize;
  const free = { first: 0 };
  let grown = false;
  for (let cluster = imrt.nextUsed(first, end); cluster < end; cluster = imrt.nextUsed(cluster + 1, end)) {
    const index = Math.floor(cluster / perBlock);
    const start = index * perBlock;
    let at = reftable[index] ?? 0;
    if (at === 0) {
      // Never put a block into a range whose refcount block is already written.
      free.first = Math.max(free.first, start);
      at = allocate(w, 1, free);
      end = Math.max(end, at / cs + 1);
      if (reftable.length <= index) {
        const entries = Math.ceil(((index + 1) * 8) / cs) * (cs / 8);
        while (reftable.length < entries) reftable.push(0);
        grown = true;
      }
      reftable[index] = at;
    }
    const block = encodeRefcountBlock(cs, 2 ** layout.refcountOrder, perBlock, (i) => imrt.get(start + i));
    await rebuildWrite(w, at, block, 'ERROR writing refblock');
    cluster = start + perBlock - 1;
  }
  return grown;
}

/** alloc_clusters_imrt: `count` free clusters from `free.first` on (growing the image). */
function allocate(w: Walk, count: number, free: { first: number }): number {
  const { imrt } = w;
  let cluster = free.first;
  let contiguous = 0;
  let firstGap = true;
  for (; cluster < imrt.size && contiguous < count; cluster++) {
    if (imrt.get(cluster) === 0) {
      contiguous++;
      if (firstGap) {
        free.first = cluster;
        firstGap = false;
      }
    } else {
      contiguous = 0;
    }
  }
  if (contiguous < count) imrt.size = cluster + count - contiguous;
  cluster -= contiguous;
  for (let i = 0; i < count; i++) imrt.set(cluster + i, 1);
  return cluster * w.layout.clusterSize;
}

/** A write of the rebuild, refused over metadata (except the header update) as QEMU's. */
async function rebuildWrite(
  w: Walk,
  offset: number,
  data: Uint8Array,
  what: string,
  header = false,
): Promise<void> {
  try {
    if (!header && overlapsMetadata(w, offset, data.length)) throw ioError('EIO');
    await w.file.write(offset, data);
  } catch (err) {
    w.res.checkErrors++;
    throw ioError(errnoOf(err), `${what}: ${STRERROR[errnoOf(err)]}`);
  }
}
