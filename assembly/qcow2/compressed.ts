/**
 * Compressed cluster writes, sans I/O: QEMU's qcow2_alloc_compressed_cluster_offset
 * (block/qcow2-cluster.c) and qcow2_alloc_bytes (block/qcow2-refcount.c).
 *
 * Compressed data is packed byte-wise: each compressed cluster starts where the previous one
 * ended (`freeByte`, QEMU's free_byte_offset), and may run on into the next host cluster when
 * that is the next free one. Every host cluster a compressed cluster touches gets +1 to its
 * refcount, so a host cluster shared by several is freed only when all are gone (write.ts's
 * freeOld decrements the same range). A compressed write may only fill a cluster that holds
 * nothing (QEMU: "Compression can't overwrite anything"): unallocated or plain zero.
 *
 * Unlike QEMU, which sets the L2 entry before writing the data, the entry is set only at
 * commit, after the host wrote the data: until then readers see the old (empty) cluster, and
 * the write-back order (refcounts, data, then L2) holds for compressed clusters too. The guest
 * cluster, and the L1 entry of a new L2 table, stay locked meanwhile (write.ts's conflict()
 * sees these allocations through compressedConflict).
 */
import { be64, getIo, setIo, Status } from './io';
import { Image, OFFSET_MASK, OFLAG_COMPRESSED, OFLAG_COPIED } from './image';
import { cacheStatus, l2 } from './cache';
import { l1Count, l1Table } from './map';
import { overlapStatus, overlaps } from './overlap';
import {
  allocate,
  allocated,
  freeEpoch,
  incref,
  queueFree,
  refcountMax,
  refcountOf,
  refcountReady,
} from './refcount';
import { conflict, linkL2 } from './write';

const MAX_ALLOCS = 64;
/** Ids handed to the host start here, so they never equal write.ts's (0..63). */
const ID_BASE = 64;

const used = new StaticArray<bool>(MAX_ALLOCS);
const guest = new StaticArray<u64>(MAX_ALLOCS);
const slots = new StaticArray<i32>(MAX_ALLOCS);
const indexes = new StaticArray<u32>(MAX_ALLOCS);
const descriptors = new StaticArray<u64>(MAX_ALLOCS);
const newL2 = new StaticArray<u64>(MAX_ALLOCS);
const l1Index = new StaticArray<u64>(MAX_ALLOCS);

/** QEMU's free_byte_offset: where the next compressed cluster may start (0: a new cluster). */
let freeByte: u64 = 0;
/** refcount.ts's freeEpoch when freeByte was set: any free since may have released its cluster. */
let freeByteEpoch: u64 = 0;
/** A data cluster (index) or an L2 table (offset) allocated by a call that then had to ask the host. */
let spareCluster: u64 = 0;
let spareTable: u64 = 0;
/** allocBytes' result. */
let byteOffset: u64 = 0;

/**
 * Plans the compressed write of IO[1] bytes (1 .. cluster size - 1) for the guest cluster at
 * IO[0] (cluster aligned). Answers
 *   ALLOC: write the compressed bytes at host offset IO[1]; first zero the new L2 table cluster at
 *     IO[5] if nonzero; then commitCompressed(IO[4]) (or abortCompressed(IO[4]) on failure);
 *   CLUSTER_IN_USE: the cluster holds data (or is compressed) already;
 *   WAIT_ALLOC (IO[0]), NEED_LOAD / WAIT / BUSY, SHARED_L2, BEYOND_L1, OVERLAP as prepareWrite.
 */
export function prepareCompressed(): i32 {
  if (!Image.open || !refcountReady() || Image.dataFile) return Status.NOT_OPEN;
  const cb = Image.clusterBits;
  const cluster = getIo(0) >> cb;
  const size = getIo(1);
  const l1i = cluster >> Image.l2Bits;
  if (l1i >= l1Count()) return Status.BEYOND_L1;
  const busy = conflict(cluster, 1, l1i);
  const id = freeRecord();
  if (busy >= 0 || id < 0) {
    setIo(0, busy >= 0 ? busy : ID_BASE);
    return Status.WAIT_ALLOC;
  }
  const shift: u32 = Image.extendedL2 ? 4 : 3;
  const sliceEntries = <u64>(l2.entryBytes >> shift);
  const l2i = cluster & (((<u64>1) << Image.l2Bits) - 1);
  const inSlice = <u32>(l2i & (sliceEntries - 1));
  const sliceOffset = (l2i - inSlice) << shift;
  const l1e = be64(l1Table() + <usize>(l1i << 3));
  const l2Off = l1e & OFFSET_MASK;
  let slot: i32 = -1;
  if (l2Off != 0) {
    if ((l1e & OFLAG_COPIED) == 0) {
      setIo(0, l1i);
      setIo(1, l2Off);
      return Status.SHARED_L2;
    }
    slot = l2.get(l2Off + sliceOffset);
    if (slot < 0) return cacheStatus();
    // qcow2_alloc_compressed_cluster_offset fails on any entry with a host offset.
    if ((entryAt(l2.slotAddress(slot), inSlice) & OFFSET_MASK) != 0) return Status.CLUSTER_IN_USE;
  } else {
    if (!l2.canCreate(1)) return Status.BUSY;
    const st = reserveTable();
    if (st != Status.OK) return st;
  }
  const st = allocBytes(size);
  if (st != Status.OK) return st;
  const at = byteOffset;
  const ov = overlaps(at, size, 0);
  if (ov != 0) return overlapStatus(at, size, ov);
  let table: u64 = 0;
  if (slot < 0) {
    table = spareTable;
    spareTable = 0;
    slot = l2.create(table + sliceOffset, false);
  }
  l2.pin(slot);
  // The descriptor counts the 512-byte sectors after the first that the data touches.
  const sectors = ((at + size - 1) >> 9) - (at >> 9);
  unchecked((used[id] = true));
  unchecked((guest[id] = cluster));
  unchecked((slots[id] = slot));
  unchecked((indexes[id] = inSlice));
  unchecked((descriptors[id] = at | OFLAG_COMPRESSED | (sectors << Image.csizeShift)));
  unchecked((newL2[id] = table));
  unchecked((l1Index[id] = l1i));
  setIo(0, 0);
  setIo(1, at);
  setIo(4, ID_BASE + id);
  setIo(5, table);
  return Status.ALLOC;
}

/** Links compressed allocation `id` (its data is written): the L2 entry, and a new table's L1 entry. */
export function commitCompressed(id: i32): i32 {
  const i = id - ID_BASE;
  if (i < 0 || i >= MAX_ALLOCS || !unchecked(used[i])) return Status.NOT_OPEN;
  const slot = unchecked(slots[i]);
  const entry = l2.slotAddress(slot) + ((<usize>unchecked(indexes[i])) << (Image.extendedL2 ? 4 : 3));
  // Compressed entries never have QCOW_OFLAG_COPIED; with extended L2 their bitmap is 0.
  store<u64>(entry, bswap<u64>(unchecked(descriptors[i])));
  if (Image.extendedL2) store<u64>(entry + 8, 0);
  const table = unchecked(newL2[i]);
  if (table != 0) linkL2(unchecked(l1Index[i]), table);
  l2.markDirty(slot);
  release(i);
  return Status.OK;
}

/**
 * The data of compressed allocation `id` could not be written: the refcounts it took are queued
 * for a decrement, and a new L2 table is dropped and freed.
 */
export function abortCompressed(id: i32): void {
  const i = id - ID_BASE;
  if (i < 0 || i >= MAX_ALLOCS || !unchecked(used[i])) return;
  const d = unchecked(descriptors[i]);
  const start = d & Image.coffsetMask;
  const stop = (start & ~(<u64>511)) + (((d >> Image.csizeShift) & Image.csizeMask) + 1) * 512;
  const cb = Image.clusterBits;
  queueFree(start >> cb, ((stop - 1) >> cb) - (start >> cb) + 1);
  const table = unchecked(newL2[i]);
  if (table != 0) {
    l2.drop(unchecked(slots[i]));
    queueFree(table >> cb, 1);
  }
  release(i);
}

/** An in-flight compressed allocation of guest clusters [c, c + n) or building L1 entry `l1i`: its host id, or -1. */
export function compressedConflict(c: u64, n: u64, l1i: u64): i32 {
  for (let i = 0; i < MAX_ALLOCS; i++) {
    if (!unchecked(used[i])) continue;
    const g = unchecked(guest[i]);
    if ((g >= c && g < c + n) || (unchecked(newL2[i]) != 0 && unchecked(l1Index[i]) == l1i))
      return ID_BASE + i;
  }
  return -1;
}

/**
 * qcow2_alloc_bytes: `size` bytes at `freeByte` when they fit in its cluster, else continuing into
 * the next free cluster when that follows it, else at the start of a new cluster; +1 to the
 * refcount of each cluster they touch. OK: `byteOffset` is where they go. Or a load status
 * (ask again: a new cluster found meanwhile is kept in spareCluster).
 */
function allocBytes(size: u64): i32 {
  const cb = Image.clusterBits;
  const cs = Image.clusterSize;
  let offset = freeByteEpoch == freeEpoch ? freeByte : 0;
  if (offset != 0) {
    setIo(0, offset >> cb);
    const st = refcountOf();
    if (st != Status.OK) return st;
    const r = getIo(0);
    // A full refcount cannot take another user; 0 cannot happen without a free, but never reuse.
    if (r == refcountMax() || r == 0) offset = 0;
  }
  const room = offset == 0 ? 0 : cs - (offset & (cs - 1));
  let fresh: u64 = 0;
  if (room < size) {
    if (spareCluster == 0) {
      const st = allocate(1);
      if (st != Status.OK) return st;
      spareCluster = allocated;
    }
    fresh = spareCluster;
    // The fresh cluster's refcount of 1 is this data's reference to it.
    if (offset == 0 || offset + room != fresh << cb) offset = fresh << cb;
  }
  if (offset >> cb != fresh) {
    // The data starts in the partly used cluster: one more user of it.
    setIo(0, offset >> cb);
    const st = incref();
    if (st != Status.OK) return st;
  }
  spareCluster = 0;
  freeByte = (offset + size) & (cs - 1) ? offset + size : 0;
  freeByteEpoch = freeEpoch;
  byteOffset = offset;
  return Status.OK;
}

/** A cluster for a new L2 table in spareTable: OK, or as allocate(), or OVERLAP. */
function reserveTable(): i32 {
  if (spareTable != 0) return Status.OK;
  const st = allocate(1);
  if (st != Status.OK) return st;
  const at = allocated << Image.clusterBits;
  const ov = overlaps(at, Image.clusterSize, 0);
  if (ov != 0) return overlapStatus(at, Image.clusterSize, ov);
  spareTable = at;
  return Status.OK;
}

function entryAt(slice: usize, index: u32): u64 {
  return be64(slice + ((<usize>index) << (Image.extendedL2 ? 4 : 3)));
}

function freeRecord(): i32 {
  for (let i = 0; i < MAX_ALLOCS; i++) if (!unchecked(used[i])) return i;
  return -1;
}

function release(i: i32): void {
  l2.unpin(unchecked(slots[i]));
  unchecked((used[i] = false));
}
