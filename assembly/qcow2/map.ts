/**
 * Guest-to-host mapping (qcow2.txt "Cluster mapping", "Extended L2 Entries", "Compressed
 * Clusters Descriptor"), as QEMU's qcow2_get_host_offset and count_contiguous_subclusters do it:
 * one call answers the longest run starting at the guest offset whose (sub)clusters have the same
 * type and, where they have a host offset, contiguous host offsets — bounded by the request and
 * by the L2 slice. Compressed clusters are answered one at a time.
 */
import { be64, getIo, setIo, Status, Table } from './io';
import { Image, OFFSET_MASK, OFLAG_COMPRESSED, OFLAG_COPIED, OFLAG_ZERO } from './image';
import { validateTable } from './header';
import { cacheStatus, l2, zalloc } from './cache';

const MAX_L1_BYTES: u64 = 32 << 20;
/** QCOW_L2_BITMAP_ALL_ALLOC: the allocation half of an extended L2 bitmap. */
const ALL_ALLOC: u64 = 0xffffffff;

/** The L1 table in use (big-endian, as read from the file) and its entry count. */
let l1: usize = 0;
let l1Entries: u64 = 0;

export function l1Table(): usize {
  return l1;
}

export function l1Count(): u64 {
  return l1Entries;
}

/** Switches to an L1 table already in memory (a grown copy of the active one; write.ts). */
export function setL1(table: usize, entries: u64): void {
  l1 = table;
  l1Entries = entries;
}

/**
 * Makes the L1 table of IO[1] entries at host offset IO[0] the one mapping goes through: the
 * active one (`table` = Table.ACTIVE_L1, already validated by parseHeader) or an internal
 * snapshot's (Table.SNAPSHOT_L1, validated here as qcow2_snapshot_load_tmp does).
 * On OK, IO[0] is where the host must store the table's IO[1] * 8 bytes before the next map.
 * Cached L2 slices stay valid: they are keyed by host offset.
 */
export function useL1(table: i32): i32 {
  if (!Image.open) return Status.NOT_OPEN;
  const offset = getIo(0);
  const entries = getIo(1);
  const s = validateTable(offset, entries, 8, MAX_L1_BYTES, Image.clusterSize);
  if (s != Status.OK) {
    setIo(0, table);
    return s;
  }
  l1 = zalloc(<usize>(entries << 3));
  l1Entries = entries;
  setIo(0, l1);
  return Status.OK;
}

/**
 * Maps the guest range [IO[0], IO[0] + IO[1]) (IO[1] > 0). Returns an extent status with
 *   IO[0] = bytes the answer covers (from IO[0] on; > 0),
 *   IO[1] = host offset (DATA, ZERO_ALLOC, UNALLOC_ALLOC: of the first byte; COMPRESSED: of the
 *           compressed data), IO[2] = compressed bytes (COMPRESSED);
 * or NEED_LOAD: read IO[2] bytes at host offset IO[1] into linear memory at IO[3], then call
 *   loaded(IO[0], 1) (or loaded(IO[0], 0) on failure) and map again;
 * or WAIT: another request is loading slot IO[0]; map again once it has;
 * or BUSY: every cache slot is being loaded; map again once any load finishes;
 * or a corruption status with IO[0] = the L2 table offset, IO[1] = the L1 or L2 index, IO[2] = the
 *   bad host offset or guest offset where the text needs one.
 */
export function map(): i32 {
  if (!Image.open || (l1 == 0 && l1Entries != 0)) return Status.NOT_OPEN;
  const offset = getIo(0);
  const bytes = getIo(1);
  const cb = Image.clusterBits;
  const inCluster = offset & (Image.clusterSize - 1);
  const sliceEntries = <u64>(l2.entryBytes >> (Image.extendedL2 ? 4 : 3));
  const cluster = offset >> cb;
  const l2Index = cluster & (((<u64>1) << Image.l2Bits) - 1);
  const indexInSlice = l2Index & (sliceEntries - 1);
  // bytes_available in qcow2_get_host_offset: up to the end of the L2 slice.
  let avail = ((sliceEntries - indexInSlice) << cb) - inCluster;
  if (avail > bytes) avail = bytes;

  const l1Index = cluster >> Image.l2Bits;
  const l2Offset = l1Index < l1Entries ? be64(l1 + <usize>(l1Index << 3)) & OFFSET_MASK : 0;
  if (l2Offset == 0) return extent(Status.UNALLOC_PLAIN, avail, 0, 0);
  if ((l2Offset & (Image.clusterSize - 1)) != 0) return corrupt(Status.L2_UNALIGNED, l2Offset, l1Index, 0);

  const key = l2Offset + ((l2Index - indexInSlice) << (Image.extendedL2 ? 4 : 3));
  const slot = l2.get(key);
  if (slot < 0) return cacheStatus();
  const slice = l2.slotAddress(slot);
  const clusters = (inCluster + avail + Image.clusterSize - 1) >> cb;
  return walk(slice, <u32>indexInSlice, <u32>clusters, offset, avail, l2Offset, l2Index);
}

/** The run starting at `offset` over `clusters` L2 entries of `slice` (count_contiguous_subclusters). */
function walk(
  slice: usize,
  first: u32,
  clusters: u32,
  offset: u64,
  avail: u64,
  l2Offset: u64,
  l2Index: u64,
): i32 {
  const cb = Image.clusterBits;
  const scBits = Image.extendedL2 ? cb - 5 : cb;
  const perCluster: u32 = Image.extendedL2 ? 32 : 1;
  const inCluster = offset & (Image.clusterSize - 1);
  const firstSc = <u32>(inCluster >> scBits);
  let expectedType: i32 = 0;
  let expectedHost: u64 = 0;
  let hostStart: u64 = 0;
  let csize: u64 = 0;
  let count: u64 = 0; // subclusters in the run
  for (let i: u32 = 0; i < clusters; i++) {
    const entry = entryAt(slice, first + i);
    const bitmap = Image.extendedL2 ? be64(slice + ((<usize>(first + i)) << 4) + 8) : 0;
    const sc = i == 0 ? firstSc : 0;
    const type = subclusterType(entry, bitmap, sc);
    if (type < 0) return corrupt(Status.INVALID_SUBCLUSTER, l2Offset, l2Index + i, 0);
    const host = entry & OFFSET_MASK;
    if (i == 0) {
      expectedType = type;
      expectedHost = host;
      if (type == Status.COMPRESSED) {
        if (Image.dataFile) return corrupt(Status.COMPRESSED_WITH_DATA_FILE, l2Offset, l2Index, 0);
        // qcow2_parse_compressed_l2_entry.
        hostStart = entry & Image.coffsetMask;
        const sectors = ((entry >> Image.csizeShift) & Image.csizeMask) + 1;
        csize = sectors * 512 - (hostStart & 511);
        const n = Image.clusterSize - inCluster;
        return extent(type, n < avail ? n : avail, hostStart, csize);
      }
      if (type == Status.ZERO_PLAIN || type == Status.ZERO_ALLOC) {
        if (Image.version < 3 && !Image.extendedL2) return corrupt(Status.ZERO_IN_V2, l2Offset, l2Index, 0);
      }
      if (hasHost(type)) {
        if ((host & (Image.clusterSize - 1)) != 0)
          return corrupt(Status.CLUSTER_UNALIGNED, l2Offset, l2Index, host);
        const guestCluster = offset - inCluster;
        if (Image.dataFile && host != guestCluster) {
          return corrupt(Status.DATA_FILE_MISMATCH, l2Offset, l2Index, host, guestCluster);
        }
        hostStart = host + inCluster;
      }
    } else if (type != expectedType) {
      break;
    } else if (hasHost(type)) {
      expectedHost += Image.clusterSize;
      if (host != expectedHost) break;
    }
    const same = rangeOfType(entry, bitmap, sc, type, perCluster);
    count += same;
    if (sc + same < perCluster) break;
  }
  // count subclusters from the start of the first one; the answer starts at `offset`.
  let n = (count << scBits) - (inCluster & (((<u64>1) << scBits) - 1));
  if (n > avail) n = avail;
  return extent(expectedType, n, hasHost(expectedType) ? hostStart : 0, 0);
}

function entryAt(slice: usize, index: u32): u64 {
  return be64(slice + ((<usize>index) << (Image.extendedL2 ? 4 : 3)));
}

function hasHost(type: i32): bool {
  return type == Status.DATA || type == Status.ZERO_ALLOC || type == Status.UNALLOC_ALLOC;
}

/** qcow2_get_cluster_type + qcow2_get_subcluster_type; -1 for QCOW2_SUBCLUSTER_INVALID. */
function subclusterType(entry: u64, bitmap: u64, sc: u32): i32 {
  if ((entry & OFLAG_COMPRESSED) != 0) return Status.COMPRESSED;
  const host = entry & OFFSET_MASK;
  // Offset 0 is valid in an external data file; QCOW_OFLAG_COPIED tells it from unallocated.
  const normal = host != 0 || (Image.dataFile && (entry & OFLAG_COPIED) != 0);
  if (!Image.extendedL2) {
    if ((entry & OFLAG_ZERO) != 0) return host != 0 ? Status.ZERO_ALLOC : Status.ZERO_PLAIN;
    return normal ? Status.DATA : Status.UNALLOC_PLAIN;
  }
  if (normal) {
    if (((bitmap >> 32) & bitmap) != 0) return -1;
    if (((bitmap >> (32 + sc)) & 1) != 0) return Status.ZERO_ALLOC;
    if (((bitmap >> sc) & 1) != 0) return Status.DATA;
    return Status.UNALLOC_ALLOC;
  }
  if ((bitmap & ALL_ALLOC) != 0) return -1;
  if (((bitmap >> (32 + sc)) & 1) != 0) return Status.ZERO_PLAIN;
  return Status.UNALLOC_PLAIN;
}

/** qcow2_get_subcluster_range_type: how many subclusters from `sc` on have type `type`. */
function rangeOfType(entry: u64, bitmap: u64, sc: u32, type: i32, perCluster: u32): u64 {
  if (perCluster == 1) return 1;
  let n: u32 = 1;
  while (sc + n < perCluster && subclusterType(entry, bitmap, sc + n) == type) n++;
  return n;
}

function extent(type: i32, bytes: u64, host: u64, csize: u64): i32 {
  setIo(0, bytes);
  setIo(1, host);
  setIo(2, csize);
  return type;
}

function corrupt(status: i32, l2Offset: u64, index: u64, host: u64, guest: u64 = 0): i32 {
  setIo(0, l2Offset);
  setIo(1, index);
  setIo(2, host);
  setIo(3, guest);
  return status;
}
