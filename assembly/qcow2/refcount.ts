/**
 * Refcounts and cluster allocation (qcow2.txt "Host cluster management", QEMU's
 * block/qcow2-refcount.c): the refcount table lives in memory, refcount blocks in the refcount
 * cache. Allocation searches for free clusters from `freeIndex` on as alloc_clusters_noref does,
 * then counts them at once, so a cluster is never handed out twice.
 *
 * A missing refcount block is created inside the range it describes (at its first cluster not
 * being allocated), so it counts itself; a full refcount table is replaced by a larger one placed,
 * with the blocks describing it, just past the clusters the old table covered (qcow2_refcount_area).
 * Decrements are not applied here: they are queued (takeFrees) and the host applies them with
 * decref() only once the metadata that stopped using the clusters is on disk, so a freed cluster
 * is never reused while an old reference to it may still be read after a crash.
 */
import { getIo, setIo, Status } from './io';
import { Image } from './image';
import { cacheStatus, rc, zalloc } from './cache';

/** REFT_OFFSET_MASK. */
const REFT_OFFSET_MASK: u64 = 0xfffffffffffffe00;

/** The refcount table, big-endian as on disk, its entry count and where it is. */
let rt: usize = 0;
let rtEntries: u64 = 0;
/** 1 + the last nonzero table entry, or -1 when unknown (the host just filled the table). */
let rtUsed: i64 = -1;
export let rtOffset: u64 = 0;
export let rtClusters: u64 = 0;
/** log2 of the entries of a refcount block. */
let blockBits: u32 = 0;
let order: u32 = 4;
/** QEMU's free_cluster_index: no cluster below it is known to be free. */
let freeIndex: u64 = 0;
/** Table entries changed since the host last took them: [dirtyLo, dirtyHi). */
let dirtyLo: u64 = U64.MAX_VALUE;
let dirtyHi: u64 = 0;
/** The table was replaced: the host writes all of it, then points the header at it. */
let moved: bool = false;

/** Queued decrements: (first cluster, count) pairs, drained by the host. */
let frees: usize = 0;
let freeCount: i32 = 0;
let freeCap: i32 = 0;

/** Counts refcounts reaching 0: compressed.ts stops packing into a cluster that may have been freed. */
export let freeEpoch: u64 = 0;

/** Results of the helpers below, which return a Status. */
let value: u64 = 0;
export let allocated: u64 = 0;

const MISSING: i32 = -1;
const STOP: i32 = -2;
let stopStatus: i32 = 0;

/**
 * Makes the refcount table of IO[1] clusters at IO[0] the image's, with refcount blocks cached in
 * `slots` cluster-sized slots. On OK, IO[0] is where the host must store the table's bytes.
 */
export function useRefcountTable(slots: i32): i32 {
  if (!Image.open) return Status.NOT_OPEN;
  if (!rc.configure(slots, <usize>Image.clusterSize, 1 << 24)) return Status.CACHE_TOO_BIG;
  rtOffset = getIo(0);
  rtClusters = getIo(1);
  rtEntries = (rtClusters << Image.clusterBits) >> 3;
  rt = zalloc(<usize>(rtEntries << 3));
  rtUsed = -1;
  order = Image.refcountOrder;
  blockBits = Image.clusterBits + 3 - order;
  setIo(0, rt);
  return Status.OK;
}

export function refcountReady(): bool {
  return rt != 0;
}

function entry(index: u64): u64 {
  return bswap<u64>(load<u64>(rt + <usize>(index << 3)));
}

function setEntry(index: u64, v: u64): void {
  store<u64>(rt + <usize>(index << 3), bswap<u64>(v));
  if (rtUsed >= 0 && v != 0 && <i64>index >= rtUsed) rtUsed = <i64>index + 1;
  if (index < dirtyLo) dirtyLo = index;
  if (index + 1 > dirtyHi) dirtyHi = index + 1;
}

function maxRefcount(): u64 {
  return order == 6 ? U64.MAX_VALUE : ((<u64>1) << (1 << order)) - 1;
}

/** Entry `i` of the refcount block at `block` (get_refcount_ro0..ro6: sub-byte widths LSB first). */
function getRef(block: usize, i: u64): u64 {
  const j = <usize>i;
  switch (order) {
    case 0:
      return (load<u8>(block + (j >> 3)) >> (<u8>(j & 7))) & 1;
    case 1:
      return (load<u8>(block + (j >> 2)) >> (<u8>((j & 3) << 1))) & 3;
    case 2:
      return (load<u8>(block + (j >> 1)) >> (<u8>((j & 1) << 2))) & 15;
    case 3:
      return load<u8>(block + j);
    case 4:
      return bswap<u16>(load<u16>(block + (j << 1)));
    case 5:
      return bswap<u32>(load<u32>(block + (j << 2)));
  }
  return bswap<u64>(load<u64>(block + (j << 3)));
}

function setRef(block: usize, i: u64, v: u64): void {
  const j = <usize>i;
  if (order < 3) {
    const bits: u32 = 1 << order;
    const per: usize = 8 >> order;
    const at = block + j / per;
    const shift = <u32>(j % per) * bits;
    const mask: u32 = ((1 << bits) - 1) << shift;
    store<u8>(at, <u8>(((<u32>load<u8>(at)) & ~mask) | (((<u32>v) << shift) & mask)));
  } else if (order == 3) store<u8>(block + j, <u8>v);
  else if (order == 4) store<u16>(block + (j << 1), bswap<u16>(<u16>v));
  else if (order == 5) store<u32>(block + (j << 2), bswap<u32>(<u32>v));
  else store<u64>(block + (j << 3), bswap<u64>(v));
}

/** The cache slot of refcount block `index`, MISSING when the table has none, or STOP. */
function blockSlot(index: u64): i32 {
  if (index >= rtEntries) return MISSING;
  const off = entry(index) & REFT_OFFSET_MASK;
  if (off == 0) return MISSING;
  if ((off & (Image.clusterSize - 1)) != 0) {
    setIo(0, off);
    setIo(1, index);
    stopStatus = Status.REFBLOCK_UNALIGNED;
    return STOP;
  }
  const s = rc.get(off);
  if (s < 0) {
    stopStatus = cacheStatus();
    return STOP;
  }
  return s;
}

/** qcow2_get_refcount: the refcount of `cluster` into `value`. */
function readRef(cluster: u64): i32 {
  const s = blockSlot(cluster >> blockBits);
  if (s == STOP) return stopStatus;
  value = s == MISSING ? 0 : getRef(rc.slotAddress(s), cluster & (((<u64>1) << blockBits) - 1));
  return Status.OK;
}

/** Host-visible refcount of IO[0] (tests, check): OK with IO[0] = the refcount. */
export function refcountOf(): i32 {
  const st = readRef(getIo(0));
  if (st == Status.OK) setIo(0, value);
  return st;
}

/** alloc_clusters_noref's search: `n` free clusters in a row from freeIndex on, into `allocated`. */
function findFree(n: u64): i32 {
  let start = freeIndex;
  let i: u64 = 0;
  while (i < n) {
    const st = readRef(start + i);
    if (st != Status.OK) return st;
    if (value != 0) {
      // Like QEMU, gaps too small for this request are skipped until something is freed.
      start = start + i + 1;
      freeIndex = start;
      i = 0;
    } else i++;
  }
  allocated = start;
  return Status.OK;
}

/**
 * Allocates `n` contiguous clusters (n at most half a refcount block's entries) with refcount 1.
 * OK: `allocated` is the first cluster index. Otherwise NEED_LOAD/WAIT/BUSY (ask again once the
 * host did what it says; nothing was allocated) or a corruption status.
 */
export function allocate(n: u64): i32 {
  rc.beginOp();
  const st = allocateRun(n);
  rc.endOp();
  return st;
}

function allocateRun(n: u64): i32 {
  let last: u64 = 0;
  for (;;) {
    const st = findFree(n);
    if (st != Status.OK) return st;
    last = (allocated + n - 1) >> blockBits;
    if (last < rtEntries) break;
    const g = growTable(last);
    if (g != Status.OK) return g;
  }
  const start = allocated;
  for (let i = start >> blockBits; i <= last; i++) {
    const st = ensureBlock(i, start, n);
    if (st != Status.OK) return st;
  }
  // Creating a block may have evicted another: look all up again before changing anything.
  for (let i = start >> blockBits; i <= last; i++) {
    const s = blockSlot(i);
    if (s == STOP) return stopStatus;
  }
  const mask = ((<u64>1) << blockBits) - 1;
  for (let c = start; c < start + n; c++) {
    const s = blockSlot(c >> blockBits);
    setRef(rc.slotAddress(s), c & mask, 1);
    rc.markDirty(s);
  }
  allocated = start;
  freeIndex = start + n;
  return Status.OK;
}

/**
 * The refcount block `index` in the cache: loaded, or created for a range that has none at its
 * first cluster outside [runStart, runStart + n), counting itself.
 */
function ensureBlock(index: u64, runStart: u64, n: u64): i32 {
  const s = blockSlot(index);
  if (s == STOP) return stopStatus;
  if (s >= 0) return Status.OK;
  let at = index << blockBits;
  if (at >= runStart && at < runStart + n) at = runStart + n;
  const slot = rc.create(at << Image.clusterBits);
  if (slot < 0) return cacheStatus();
  setRef(rc.slotAddress(slot), at & (((<u64>1) << blockBits) - 1), 1);
  setEntry(index, at << Image.clusterBits);
  return Status.OK;
}

/**
 * Replaces the full refcount table by one with room for entry `need` (qcow2_refcount_area): the
 * new blocks and then the new table go to the first clusters the old table cannot describe (all
 * free), the blocks describing themselves and the table. The old table is queued for freeing.
 */
function growTable(need: u64): i32 {
  const cs = Image.clusterSize;
  const per: u64 = (<u64>1) << blockBits;
  const base = rtEntries << blockBits;
  let entries = rtEntries * 2 > need + 1 ? rtEntries * 2 : need + 1;
  let tableClusters: u64 = 0;
  let blocks: u64 = 0;
  for (;;) {
    tableClusters = (entries * 8 + cs - 1) / cs;
    blocks = (tableClusters + per - 2) / (per - 1);
    const last = (base + blocks + tableClusters - 1) >> blockBits;
    if (last < entries) break;
    entries = last + 1;
  }
  entries = (tableClusters * cs) >> 3;
  if (!rc.canCreate(<i32>blocks)) return Status.BUSY;
  const table = zalloc(<usize>(entries << 3));
  memory.copy(table, rt, <usize>(rtEntries << 3));
  const oldOffset = rtOffset;
  const oldClusters = rtClusters;
  rt = table;
  rtEntries = entries;
  const mask = per - 1;
  for (let k: u64 = 0; k < blocks; k++) {
    const slot = rc.create((base + k) << Image.clusterBits);
    const block = rc.slotAddress(slot);
    const first = (base >> blockBits) + k;
    // Count the new blocks and the new table that fall in this block's range.
    for (let c = base; c < base + blocks + tableClusters; c++) {
      if (c >> blockBits == first) setRef(block, c & mask, 1);
    }
    setEntry(first, (base + k) << Image.clusterBits);
  }
  rtOffset = (base + blocks) << Image.clusterBits;
  rtClusters = tableClusters;
  moved = true;
  dirtyLo = 0;
  dirtyHi = entries;
  queueFree(oldOffset >> Image.clusterBits, oldClusters);
  return Status.OK;
}

/** Queues `count` clusters from `first` for a decrement once the host made their unlinking durable. */
export function queueFree(first: u64, count: u64): void {
  if (count == 0) return;
  if (freeCount == freeCap) {
    const cap = freeCap == 0 ? 64 : freeCap * 2;
    const grown = zalloc((<usize>cap) << 4);
    if (frees != 0) memory.copy(grown, frees, (<usize>freeCount) << 4);
    frees = grown;
    freeCap = cap;
  }
  store<u64>(frees + ((<usize>freeCount) << 4), first);
  store<u64>(frees + ((<usize>freeCount) << 4) + 8, count);
  freeCount++;
}

/** Hands the queued decrements to the host: returns their count, IO[0] = address of the pairs. */
export function takeFrees(): i32 {
  const n = freeCount;
  setIo(0, frees);
  freeCount = 0;
  return n;
}

/**
 * Decrements the refcount of cluster IO[0] (update_refcount with -1). OK: IO[0] = the new
 * refcount; a cluster reaching 0 becomes allocatable again. A cluster already at 0 is left so and
 * answers REFCOUNT_UNDERFLOW (a leak-free image never gets there).
 */
export function decref(): i32 {
  return addRef(false);
}

/**
 * Increments the refcount of cluster IO[0] (update_refcount with +1, as
 * qcow2_update_snapshot_refcount does for clusters a new snapshot shares). OK: IO[0] = the new
 * refcount. A cluster without a refcount block, or at refcount 0, is not in use: answers
 * REFCOUNT_UNDERFLOW; at the width's maximum REFCOUNT_OVERFLOW. Nothing changes on errors.
 */
export function incref(): i32 {
  return addRef(true);
}

/** incref (`up`) or decref of the cluster in IO[0]; only clusters in use can change. */
function addRef(up: bool): i32 {
  const cluster = getIo(0);
  const s = blockSlot(cluster >> blockBits);
  if (s == STOP) return stopStatus;
  if (s == MISSING) return Status.REFCOUNT_UNDERFLOW;
  const block = rc.slotAddress(s);
  const i = cluster & (((<u64>1) << blockBits) - 1);
  const v = getRef(block, i);
  if (v == 0) return Status.REFCOUNT_UNDERFLOW;
  if (up && v == maxRefcount()) return Status.REFCOUNT_OVERFLOW;
  const next = up ? v + 1 : v - 1;
  setRef(block, i, next);
  rc.markDirty(s);
  if (next == 0) freeEpoch++;
  if (next == 0 && cluster < freeIndex) freeIndex = cluster;
  setIo(0, next);
  return Status.OK;
}

/**
 * Allocates IO[0] contiguous clusters (qcow2_alloc_clusters) for metadata the host writes itself
 * (snapshot L1 tables, the snapshot table). OK: IO[0] = the host offset; or as allocate().
 */
export function allocClusters(): i32 {
  const st = allocate(getIo(0));
  if (st == Status.OK) setIo(0, allocated << Image.clusterBits);
  return st;
}

/** The largest refcount this image's width holds (for the host's checks). */
export function refcountMax(): u64 {
  return maxRefcount();
}

/**
 * The table state for the host's write-back: IO[0] address, IO[1] entries, IO[2..3] the dirty
 * entry range (taken: cleared now), IO[4] moved (taken too), IO[5] offset, IO[6] clusters.
 */
export function takeRefcountTable(): void {
  setIo(0, rt);
  setIo(1, rtEntries);
  setIo(2, dirtyLo < dirtyHi ? dirtyLo : 0);
  setIo(3, dirtyLo < dirtyHi ? dirtyHi : 0);
  setIo(4, moved ? 1 : 0);
  setIo(5, rtOffset);
  setIo(6, rtClusters);
  dirtyLo = U64.MAX_VALUE;
  dirtyHi = 0;
  moved = false;
}

/** A write-back of the table failed: all of it is dirty again (and moved, if `wasMoved`). */
export function refcountTableFailed(wasMoved: bool): void {
  dirtyLo = 0;
  dirtyHi = rtEntries;
  if (wasMoved) moved = true;
}

/** Whether a refcount block starts at `offset` of the table's entries (overlap checks). */
export function isRefcountBlock(start: u64, end: u64): bool {
  // Every write's overlap check comes here: scan only the used part of the table, not all of
  // it (8192 entries for one 64 KiB table cluster, mostly zero).
  if (rtUsed < 0) {
    rtUsed = <i64>rtEntries;
    while (rtUsed > 0 && entry(<u64>rtUsed - 1) == 0) rtUsed--;
  }
  for (let i: u64 = 0; i < <u64>rtUsed; i++) {
    const off = entry(i) & REFT_OFFSET_MASK;
    if (off != 0 && off < end && off + Image.clusterSize > start) return true;
  }
  return false;
}
