/**
 * Write planning (QEMU's qcow2_alloc_host_offset, handle_copied, handle_alloc and
 * qcow2_alloc_cluster_link_l2 in block/qcow2-cluster.c), sans I/O:
 *
 * prepareWrite() answers, for the start of a guest write, either IN_PLACE (the clusters are
 * allocated and owned: write the data there, no metadata changes) or ALLOC (clusters were
 * allocated and counted; the host copies the untouched head and tail of the region from the
 * guest view, writes it all to the host offset, then commit()s, which links the clusters in the
 * cached L2 slice). Until commit the L2 entries are unchanged, so reads see the old data; the
 * guest clusters (and the L1 entry of a new L2 table) stay locked, so a second writer waits
 * (WAIT_ALLOC) instead of allocating them again. With extended L2 entries only the touched
 * subclusters are marked, and the region to copy is only the partly touched unallocated ones.
 *
 * zeroClusters() sets zero flags / zero subclusters or unlinks clusters (write-zeroes, discard);
 * growL1() replaces the L1 table by a larger one. The dirty L2 slices, refcount blocks, L1 and
 * refcount table are written back by the host in a crash-safe order (takeL1, takeRefcountTable,
 * nextDirty); freed clusters are handed over as queued decrements (refcount.ts).
 */
import { be64, getIo, setIo, Status } from './io';
import { Image, OFFSET_MASK, OFLAG_COMPRESSED, OFLAG_COPIED, OFLAG_ZERO } from './image';
import { cacheStatus, l2, zalloc } from './cache';
import { l1Count, l1Table, setL1 } from './map';
import { overlapStatus, overlaps } from './overlap';
import { allocate, allocated, queueFree, refcountReady } from './refcount';
import { compressedConflict } from './compressed';

const MAX_ALLOCS = 64;
const MAX_RUN: u64 = 32;
/** QCOW_L2_BITMAP_ALL_ZEROES. */
const ALL_ZEROES: u64 = 0xffffffff00000000;

// How a cluster is written (the first cluster decides for the run).
const INPLACE = 0;
/** Owned cluster whose L2 entry must change (zero flag, unallocated or zero subclusters). */
const KEEP = 1;
/** New cluster; untouched subclusters keep their state (extended L2, nothing stored before). */
const NEW_SUB = 2;
/** New cluster replacing the whole old one (unallocated, compressed or shared). */
const NEW_FULL = 3;

/** In-flight allocations (QCowL2Meta), by id. */
const used = new StaticArray<bool>(MAX_ALLOCS);
const guest = new StaticArray<u64>(MAX_ALLOCS);
const count = new StaticArray<u64>(MAX_ALLOCS);
const host = new StaticArray<u64>(MAX_ALLOCS);
const kinds = new StaticArray<i32>(MAX_ALLOCS);
const slots = new StaticArray<i32>(MAX_ALLOCS);
const firsts = new StaticArray<u32>(MAX_ALLOCS);
const regionStart = new StaticArray<u64>(MAX_ALLOCS);
const regionEnd = new StaticArray<u64>(MAX_ALLOCS);
const newL2 = new StaticArray<u64>(MAX_ALLOCS);
const l1Index = new StaticArray<u64>(MAX_ALLOCS);

/** A cluster allocated for a new L2 table by a prepareWrite that then had to ask the host first. */
let spareL2: u64 = 0;
/** L1 entries changed since the host last took them, and whether the table was replaced. */
let l1DirtyLo: u64 = U64.MAX_VALUE;
let l1DirtyHi: u64 = 0;
let l1Moved: bool = false;
/**
 * Plans the write of guest bytes [IO[0], IO[0] + IO[1]). Answers one of
 *   IN_PLACE: IO[0] bytes from IO[0] on go to host offset IO[1];
 *   ALLOC: IO[0] bytes from IO[0] on are part of allocation IO[4]: write the guest region
 *     [IO[2], IO[3]) (the request plus the head and tail to copy from the current guest view) at
 *     host offset IO[1]; first zero the new L2 table cluster at IO[5] if nonzero; then commit(IO[4]);
 *   WAIT_ALLOC: allocation IO[0] is in the way: ask again once it was committed or aborted;
 *   NEED_LOAD / WAIT / BUSY as map(); OVERLAP (IO[0] offset, IO[1] bytes, IO[2] OL_* bit);
 *   SHARED_L2 (the L2 table at IO[1], L1 entry IO[0], is shared with a snapshot: the host copies
 *     it with unshareL2 and asks again); BEYOND_L1; a corruption status.
 */
export function prepareWrite(): i32 {
  if (!Image.open || !refcountReady()) return Status.NOT_OPEN;
  const offset = getIo(0);
  const end = offset + getIo(1);
  const cb = Image.clusterBits;
  const cs = Image.clusterSize;
  const cluster = offset >> cb;
  const l1i = cluster >> Image.l2Bits;
  if (l1i >= l1Count()) return Status.BEYOND_L1;
  const busy = conflict(cluster, 1, l1i);
  if (busy >= 0) return waitFor(busy);
  const shift: u32 = Image.extendedL2 ? 4 : 3;
  const sliceEntries = <u64>(l2.entryBytes >> shift);
  const l2i = cluster & (((<u64>1) << Image.l2Bits) - 1);
  const inSlice = l2i & (sliceEntries - 1);
  let clusters = (end - (cluster << cb) + cs - 1) >> cb;
  if (clusters > sliceEntries - inSlice) clusters = sliceEntries - inSlice;
  if (clusters > MAX_RUN) clusters = MAX_RUN;

  const l1e = be64(l1Table() + <usize>(l1i << 3));
  const l2Off = l1e & OFFSET_MASK;
  let slice: usize = 0;
  let slot: i32 = -1;
  if (l2Off != 0) {
    if ((l1e & OFLAG_COPIED) == 0) return sharedL2(l1i, l2Off);
    slot = l2.get(l2Off + ((l2i - inSlice) << shift));
    if (slot < 0) return cacheStatus();
    slice = l2.slotAddress(slot);
  } else {
    const st = reserveL2();
    if (st != Status.OK) return st;
  }
  const first = <u32>inSlice;
  const kind = classify(slice, first, mask(cluster, offset, end));
  let n: u64 = 1;
  if (kind == INPLACE) {
    let h = entryAt(slice, first) & OFFSET_MASK;
    while (n < clusters) {
      const e = entryAt(slice, first + <u32>n);
      if (classify(slice, first + <u32>n, mask(cluster + n, offset, end)) != INPLACE) break;
      if ((e & OFFSET_MASK) != h + n * cs) break;
      n++;
    }
    setIo(0, covered(cluster, n, offset, end));
    setIo(1, h + (offset & (cs - 1)));
    return Status.IN_PLACE;
  }
  const id = freeRecord();
  if (id < 0) return waitFor(0);
  const oldHost = entryAt(slice, first) & (OFFSET_MASK | OFLAG_COMPRESSED);
  if (kind != KEEP && oldHost == 0) {
    while (n < clusters) {
      const e = entryAt(slice, first + <u32>n);
      if ((e & (OFFSET_MASK | OFLAG_COMPRESSED)) != 0) break;
      if (classify(slice, first + <u32>n, mask(cluster + n, offset, end)) != kind) break;
      if (conflict(cluster + n, 1, U64.MAX_VALUE) >= 0) break;
      n++;
    }
  }
  let at: u64 = 0;
  if (kind == KEEP) at = entryAt(slice, first) & OFFSET_MASK;
  else if (Image.dataFile) at = cluster << cb;
  else {
    const st = allocate(n);
    if (st != Status.OK) return st;
    at = allocated << cb;
    const ov = overlaps(at, n * cs, 0);
    if (ov != 0) return overlapStatus(at, n * cs, ov);
  }
  let l2New: u64 = 0;
  if (slot < 0) {
    l2New = spareL2;
    spareL2 = 0;
    slot = l2.create(l2New + ((l2i - inSlice) << shift), false);
  }
  l2.pin(slot);
  const scBits = Image.extendedL2 ? cb - 5 : cb;
  const sub = Image.extendedL2 && kind != NEW_FULL;
  const lastCluster = cluster + n - 1;
  const clusterEnd = (lastCluster + 1) << cb;
  const lastByte = (end < clusterEnd ? end : clusterEnd) - 1;
  let rs = sub ? (offset >> scBits) << scBits : cluster << cb;
  let re = sub ? ((lastByte >> scBits) + 1) << scBits : clusterEnd;
  if (sub && kind == KEEP) {
    // Only unallocated or zero subclusters are copied (calculate_l2_meta with keep_old): an
    // allocated one is written in place, and copying its rest from the guest view could put back
    // stale bytes over a concurrent in-place write to them.
    const alloc = <u32>bitmapAt(slice, first);
    const firstSub = <u32>((offset >> scBits) & 31);
    const lastSub = <u32>((lastByte >> scBits) & 31);
    if ((alloc & ((<u32>1) << firstSub)) != 0) rs = offset;
    if ((alloc & ((<u32>1) << lastSub)) != 0) re = lastByte + 1;
  }
  unchecked((used[id] = true));
  unchecked((guest[id] = cluster));
  unchecked((count[id] = n));
  unchecked((host[id] = at));
  unchecked((kinds[id] = kind));
  unchecked((slots[id] = slot));
  unchecked((firsts[id] = first));
  unchecked((regionStart[id] = rs));
  unchecked((regionEnd[id] = re));
  unchecked((newL2[id] = l2New));
  unchecked((l1Index[id] = l1i));
  setIo(0, covered(cluster, n, offset, end));
  setIo(1, at + (rs - (cluster << cb)));
  setIo(2, rs);
  setIo(3, re);
  setIo(4, id);
  setIo(5, l2New);
  return Status.ALLOC;
}

/**
 * Links allocation `id` into its L2 slice (qcow2_alloc_cluster_link_l2): the data is on disk.
 * Old clusters it replaces (compressed or shared) are queued for a decrement.
 */
export function commit(id: i32): i32 {
  if (id < 0 || id >= MAX_ALLOCS || !unchecked(used[id])) return Status.NOT_OPEN;
  const slot = unchecked(slots[id]);
  const slice = l2.slotAddress(slot);
  const kind = unchecked(kinds[id]);
  const cb = Image.clusterBits;
  const n = unchecked(count[id]);
  for (let i: u64 = 0; i < n; i++) {
    const index = unchecked(firsts[id]) + <u32>i;
    const old = entryAt(slice, index);
    const c = unchecked(guest[id]) + i;
    const m = regionMask(c, unchecked(regionStart[id]), unchecked(regionEnd[id]));
    if (kind == KEEP) {
      if (Image.extendedL2) setBitmap(slice, index, (bitmapAt(slice, index) & ~((<u64>m) << 32)) | m);
      else setEntry(slice, index, old & ~OFLAG_ZERO);
      continue;
    }
    if (kind == NEW_FULL) freeOld(old);
    setEntry(slice, index, (unchecked(host[id]) + (i << cb)) | OFLAG_COPIED);
    if (Image.extendedL2) {
      const bm = kind == NEW_SUB ? (bitmapAt(slice, index) & ~((<u64>m) << 32)) | m : <u64>0xffffffff;
      setBitmap(slice, index, bm);
    }
  }
  const table = unchecked(newL2[id]);
  if (table != 0) setL1Entry(unchecked(l1Index[id]), table | OFLAG_COPIED);
  l2.markDirty(slot);
  release(id);
  return Status.OK;
}

/** The data of allocation `id` could not be written: its new clusters are queued for freeing. */
export function abort(id: i32): void {
  if (id < 0 || id >= MAX_ALLOCS || !unchecked(used[id])) return;
  const table = unchecked(newL2[id]);
  if (table != 0) {
    l2.drop(unchecked(slots[id]));
    queueFree(table >> Image.clusterBits, 1);
  }
  const kind = unchecked(kinds[id]);
  if (kind != KEEP && !Image.dataFile)
    queueFree(unchecked(host[id]) >> Image.clusterBits, unchecked(count[id]));
  release(id);
}

// zeroClusters modes; ZERO_HAS_BACKING may be or-ed in.
const ZERO: i32 = 0;
const ZERO_UNMAP: i32 = 1;
const DISCARD: i32 = 2;
const ZERO_HAS_BACKING: i32 = 8;
/** zeroClusters: the host must write zeros itself for this range. */
const FALLBACK: i32 = 13;

/**
 * Write-zeroes (`mode` ZERO, ZERO_UNMAP) or discard (DISCARD) of guest [IO[0], IO[0] + IO[1]),
 * aligned to subclusters (zeroes with extended L2) or clusters, as zero_in_l2_slice and
 * discard_in_l2_slice do; ZERO_HAS_BACKING when the image has a backing file. Works up to the
 * end of one L2 slice: OK with IO[0] = bytes done, FALLBACK (IO[0] bytes: write real zeros
 * there), ALLOC (a new L2 table, see createL2: ask again after its commit), WAIT_ALLOC,
 * NEED_LOAD / WAIT / BUSY, SHARED_L2. Freed clusters are queued.
 */
export function zeroClusters(mode: i32): i32 {
  if (!Image.open || !refcountReady()) return Status.NOT_OPEN;
  const backing = (mode & ZERO_HAS_BACKING) != 0;
  const op = mode & 7;
  const offset = getIo(0);
  const end = offset + getIo(1);
  const cb = Image.clusterBits;
  const cs = Image.clusterSize;
  const cluster = offset >> cb;
  const l1i = cluster >> Image.l2Bits;
  const shift: u32 = Image.extendedL2 ? 4 : 3;
  const sliceEntries = <u64>(l2.entryBytes >> shift);
  const l2i = cluster & (((<u64>1) << Image.l2Bits) - 1);
  const inSlice = l2i & (sliceEntries - 1);
  let clusters = (end - (cluster << cb) + cs - 1) >> cb;
  if (clusters > sliceEntries - inSlice) clusters = sliceEntries - inSlice;
  const done = covered(cluster, clusters, offset, end);
  const busy = conflict(cluster, clusters, l1i);
  if (busy >= 0) return waitFor(busy);
  const l1e = l1i < l1Count() ? be64(l1Table() + <usize>(l1i << 3)) : 0;
  const l2Off = l1e & OFFSET_MASK;
  if (l2Off == 0) {
    // Nothing allocated: reads give zeros already unless a backing file shows through; then
    // the L2 table is created for the zero entries, as get_cluster_table does.
    if (backing) return createL2(l1i, (l2i - inSlice) << shift);
    setIo(0, done);
    return Status.OK;
  }
  if ((l1e & OFLAG_COPIED) == 0) return sharedL2(l1i, l2Off);
  const slot = l2.get(l2Off + ((l2i - inSlice) << shift));
  if (slot < 0) return cacheStatus();
  const slice = l2.slotAddress(slot);
  const first = <u32>inSlice;
  // Partial clusters (extended L2 only) must be owned clusters or hold no data of their own.
  for (let i: u64 = 0; i < clusters; i++) {
    const m = mask(cluster + i, offset, end);
    if (m == 0xffffffff) continue;
    const e = entryAt(slice, first + <u32>i);
    if ((e & OFLAG_COMPRESSED) != 0 || ((e & OFFSET_MASK) != 0 && (e & OFLAG_COPIED) == 0)) {
      setIo(0, done);
      return FALLBACK;
    }
  }
  for (let i: u64 = 0; i < clusters; i++) {
    const index = first + <u32>i;
    const e = entryAt(slice, index);
    const m = mask(cluster + i, offset, end);
    if (m != 0xffffffff) {
      // Some subclusters of an extended L2 entry: zero (or discard) just those.
      const bm = bitmapAt(slice, index);
      setBitmap(slice, index, (bm & ~(<u64>m)) | (op == DISCARD && !backing ? 0 : (<u64>m) << 32));
      continue;
    }
    const owned = (e & OFFSET_MASK) != 0 && (e & (OFLAG_COPIED | OFLAG_COMPRESSED)) == OFLAG_COPIED;
    if (op == ZERO && owned) {
      // Keep the cluster, read zeros from it (QCOW2_CLUSTER_ZERO_ALLOC).
      if (Image.extendedL2) setBitmap(slice, index, ALL_ZEROES);
      else setEntry(slice, index, e | OFLAG_ZERO);
      continue;
    }
    freeOld(e);
    const zero = op != DISCARD || backing || Image.version >= 3;
    if (Image.extendedL2) {
      setEntry(slice, index, 0);
      setBitmap(slice, index, zero && (op != DISCARD || backing || (e & OFFSET_MASK) != 0) ? ALL_ZEROES : 0);
    } else setEntry(slice, index, zero && Image.version >= 3 ? OFLAG_ZERO : 0);
  }
  l2.markDirty(slot);
  setIo(0, done);
  return Status.OK;
}

/**
 * Has a cluster ready in spareL2 for a new L2 table (and a cache slot free for it): OK, BUSY,
 * or as allocate(), or OVERLAP.
 */
function reserveL2(): i32 {
  if (!l2.canCreate(1)) return Status.BUSY;
  if (spareL2 != 0) return Status.OK;
  const st = allocate(1);
  if (st != Status.OK) return st;
  spareL2 = allocated << Image.clusterBits;
  const ov = overlaps(spareL2, Image.clusterSize, 0);
  if (ov != 0) return overlapStatus(spareL2, Image.clusterSize, ov);
  return Status.OK;
}

/**
 * An empty L2 table for L1 entry `l1i` as an allocation without data clusters, its slice at
 * `sliceOffset` cached: ALLOC with IO[0] = the allocation, IO[1] = the table (the host zeroes
 * it, then commits, which links it in the L1 table). Or as reserveL2, or WAIT_ALLOC.
 */
function createL2(l1i: u64, sliceOffset: u64): i32 {
  const id = freeRecord();
  if (id < 0) return waitFor(0);
  const st = reserveL2();
  if (st != Status.OK) return st;
  const table = spareL2;
  spareL2 = 0;
  const slot = l2.create(table + sliceOffset, false);
  l2.pin(slot);
  unchecked((used[id] = true));
  unchecked((guest[id] = 0));
  unchecked((count[id] = 0));
  unchecked((host[id] = 0));
  unchecked((kinds[id] = KEEP));
  unchecked((slots[id] = slot));
  unchecked((firsts[id] = 0));
  unchecked((newL2[id] = table));
  unchecked((l1Index[id] = l1i));
  setIo(0, id);
  setIo(1, table);
  return Status.ALLOC;
}

/** The L2 table `table` of L1 entry `l1i` is shared: IO[0] = l1i, IO[1] = table. */
function sharedL2(l1i: u64, table: u64): i32 {
  setIo(0, l1i);
  setIo(1, table);
  return Status.SHARED_L2;
}

/**
 * Copy-on-write of a shared L2 table, as l2_allocate does for an L1 entry without COPIED:
 * IO[0] = L1 index. OK: IO[0] = a new cluster for the copy and IO[1] = the old table; the host
 * copies the table there and then calls linkL2. Or as allocate(), or OVERLAP.
 */
export function unshareL2(): i32 {
  const l1i = getIo(0);
  if (l1i >= l1Count()) return Status.BEYOND_L1;
  const old = be64(l1Table() + <usize>(l1i << 3));
  const st = allocate(1);
  if (st != Status.OK) return st;
  const at = allocated << Image.clusterBits;
  const ov = overlaps(at, Image.clusterSize, 0);
  if (ov != 0) return overlapStatus(at, Image.clusterSize, ov);
  setIo(0, at);
  setIo(1, old & OFFSET_MASK);
  return Status.OK;
}

/**
 * Points L1 entry `l1i` at the copy `table` made after unshareL2 (owned: COPIED), queueing the
 * decrement of the shared table it replaces.
 */
export function linkL2(l1i: u64, table: u64): void {
  const old = be64(l1Table() + <usize>(l1i << 3)) & OFFSET_MASK;
  setL1Entry(l1i, table | OFLAG_COPIED);
  if (old != 0) queueFree(old >> Image.clusterBits, 1);
}

/**
 * qcow2_grow_l1_table (exact size): a new L1 table of IO[0] entries in new clusters, the old one
 * queued for freeing. OK: IO[0] = the new table's offset; or as allocate().
 */
export function growL1(): i32 {
  const entries = getIo(0);
  if (entries <= l1Count()) return Status.OK;
  const cs = Image.clusterSize;
  const clusters = (entries * 8 + cs - 1) / cs;
  const st = allocate(clusters);
  if (st != Status.OK) return st;
  const offset = allocated << Image.clusterBits;
  const table = zalloc(<usize>(entries << 3));
  memory.copy(table, l1Table(), <usize>(l1Count() << 3));
  const oldClusters = (l1Count() * 8 + cs - 1) / cs;
  if (l1Count() != 0) queueFree(Image.l1Offset >> Image.clusterBits, oldClusters);
  setL1(table, entries);
  Image.l1Offset = offset;
  l1Moved = true;
  l1DirtyLo = 0;
  l1DirtyHi = entries;
  setIo(0, offset);
  return Status.OK;
}

/**
 * qcow2_shrink_l1_table: L1 entries from IO[0] on are cleared (the table keeps its size) and
 * their L2 tables queued for freeing. The guest range they mapped must be discarded and
 * written back first, so no dirty slice of a freed table remains.
 */
export function shrinkL1(): void {
  const from = getIo(0);
  for (let i = from; i < l1Count(); i++) {
    const t = be64(l1Table() + <usize>(i << 3)) & OFFSET_MASK;
    if (t == 0) continue;
    setL1Entry(i, 0);
    queueFree(t >> Image.clusterBits, 1);
  }
}

/**
 * The L1 state for the host's write-back: IO[0] address, IO[1] entries, IO[2..3] the dirty entry
 * range, IO[4] moved, IO[5] offset. Taking clears the dirty state; l1Failed() restores it.
 */
export function takeL1(): void {
  setIo(0, l1Table());
  setIo(1, l1Count());
  setIo(2, l1DirtyLo < l1DirtyHi ? l1DirtyLo : 0);
  setIo(3, l1DirtyLo < l1DirtyHi ? l1DirtyHi : 0);
  setIo(4, l1Moved ? 1 : 0);
  setIo(5, Image.l1Offset);
  l1DirtyLo = U64.MAX_VALUE;
  l1DirtyHi = 0;
  l1Moved = false;
}

export function l1Failed(wasMoved: bool): void {
  l1DirtyLo = 0;
  l1DirtyHi = l1Count();
  if (wasMoved) l1Moved = true;
}

/** How the cluster at `index` of `slice` (0: no L2 table yet) is written, touching subclusters `m`. */
function classify(slice: usize, index: u32, m: u32): i32 {
  const e = entryAt(slice, index);
  if ((e & OFLAG_COMPRESSED) != 0) return NEW_FULL;
  const normal = (e & OFFSET_MASK) != 0 || (Image.dataFile && (e & OFLAG_COPIED) != 0);
  if (!normal) return Image.extendedL2 ? NEW_SUB : NEW_FULL;
  if ((e & OFLAG_COPIED) == 0) return NEW_FULL;
  if (!Image.extendedL2) return (e & OFLAG_ZERO) != 0 ? KEEP : INPLACE;
  const bm = bitmapAt(slice, index);
  return ((<u32>bm) & m) == m && ((<u32>(bm >> 32)) & m) == 0 ? INPLACE : KEEP;
}

/** Subclusters of guest cluster `c` that [offset, end) touches (all bits without extended L2). */
function mask(c: u64, offset: u64, end: u64): u32 {
  if (!Image.extendedL2) return 0xffffffff;
  return regionMask(c, offset, end);
}

function regionMask(c: u64, start: u64, end: u64): u32 {
  const cb = Image.clusterBits;
  const cStart = c << cb;
  const lo = start > cStart ? start - cStart : 0;
  const cEnd = cStart + Image.clusterSize;
  const hi = (end < cEnd ? end : cEnd) - cStart;
  const scBits = cb - 5;
  const a = <u32>(lo >> scBits);
  const b = <u32>((hi - 1) >> scBits);
  return b == 31 ? ~(((<u32>1) << a) - 1) : (((<u32>1) << (b + 1)) - 1) & ~(((<u32>1) << a) - 1);
}

/** Guest bytes from `offset` to the end of the request or of `n` clusters from `c`. */
function covered(c: u64, n: u64, offset: u64, end: u64): u64 {
  const stop = (c + n) << Image.clusterBits;
  return (stop < end ? stop : end) - offset;
}

/** qcow2_free_any_cluster's choice: the host clusters an old L2 entry held a reference to. */
function freeOld(e: u64): void {
  const cb = Image.clusterBits;
  if ((e & OFLAG_COMPRESSED) != 0) {
    const start = e & Image.coffsetMask;
    const sectors = ((e >> Image.csizeShift) & Image.csizeMask) + 1;
    const stop = (start & ~(<u64>511)) + sectors * 512;
    const first = start >> cb;
    queueFree(first, ((stop - 1) >> cb) - first + 1);
    return;
  }
  const h = e & OFFSET_MASK;
  if (h != 0 && !Image.dataFile) queueFree(h >> cb, 1);
}

function entryAt(slice: usize, index: u32): u64 {
  if (slice == 0) return 0;
  return be64(slice + ((<usize>index) << (Image.extendedL2 ? 4 : 3)));
}

function bitmapAt(slice: usize, index: u32): u64 {
  if (slice == 0) return 0;
  return be64(slice + ((<usize>index) << 4) + 8);
}

function setEntry(slice: usize, index: u32, v: u64): void {
  store<u64>(slice + ((<usize>index) << (Image.extendedL2 ? 4 : 3)), bswap<u64>(v));
}

function setBitmap(slice: usize, index: u32, v: u64): void {
  store<u64>(slice + ((<usize>index) << 4) + 8, bswap<u64>(v));
}

function setL1Entry(index: u64, v: u64): void {
  store<u64>(l1Table() + <usize>(index << 3), bswap<u64>(v));
  if (index < l1DirtyLo) l1DirtyLo = index;
  if (index + 1 > l1DirtyHi) l1DirtyHi = index + 1;
}

/**
 * An in-flight allocation overlapping guest clusters [c, c + n) or building L1 entry `l1i`,
 * compressed ones (compressed.ts) included.
 */
export function conflict(c: u64, n: u64, l1i: u64): i32 {
  for (let id = 0; id < MAX_ALLOCS; id++) {
    if (!unchecked(used[id])) continue;
    const g = unchecked(guest[id]);
    if (g < c + n && c < g + unchecked(count[id])) return id;
    if (unchecked(newL2[id]) != 0 && unchecked(l1Index[id]) == l1i) return id;
  }
  return compressedConflict(c, n, l1i);
}

function freeRecord(): i32 {
  for (let id = 0; id < MAX_ALLOCS; id++) if (!unchecked(used[id])) return id;
  return -1;
}

function release(id: i32): void {
  l2.unpin(unchecked(slots[id]));
  unchecked((used[id] = false));
}

function waitFor(id: i32): i32 {
  setIo(0, id);
  return Status.WAIT_ALLOC;
}
