/**
 * The fixed qcow2 header (qcow2.txt "Header"): parsed and validated in the order and with the
 * checks of QEMU's qcow2_do_open, so the first problem reported is the one QEMU reports.
 * Header extensions, the backing file name and the snapshot table are parsed by the host.
 */
import { be32, be64, setIo, Status, Table } from './io';
import { Image } from './image';

const MAGIC: u32 = 0x514649fb; // "QFI\xfb"
const MIN_CLUSTER_BITS: u32 = 9;
const MAX_CLUSTER_BITS: u32 = 21;
/** Bytes of the header the host must stage: QEMU's sizeof(QCowHeader), compression_type padded. */
export const HEADER_BYTES: usize = 112;

// Incompatible feature bits (qcow2.txt "Header", bytes 72-79).
export const INCOMPAT_DIRTY: u64 = 1 << 0;
export const INCOMPAT_CORRUPT: u64 = 1 << 1;
export const INCOMPAT_DATA_FILE: u64 = 1 << 2;
export const INCOMPAT_COMPRESSION: u64 = 1 << 3;
export const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_MASK: u64 = 0x1f;

// QEMU's implementation limits on table sizes (block/qcow2.h).
const MAX_REFTABLE_BYTES: u64 = 8 << 20;
const MAX_L1_BYTES: u64 = 32 << 20;
const SNAPSHOT_HEADER_BYTES: u64 = 40;
const MAX_SNAPSHOTS: u64 = 65536;
const INT_MAX: u64 = 0x7fffffff;
const INT64_MAX: u64 = 0x7fffffffffffffff;

/** Indices of headerField(); keep in step with src/qcow2/engine.ts HeaderField. */
export namespace Field {
  export const VERSION = 0;
  export const BACKING_OFFSET = 1;
  export const BACKING_SIZE = 2;
  export const CLUSTER_BITS = 3;
  export const SIZE = 4;
  export const CRYPT_METHOD = 5;
  export const L1_SIZE = 6;
  export const L1_OFFSET = 7;
  export const REFTABLE_OFFSET = 8;
  export const REFTABLE_CLUSTERS = 9;
  export const NB_SNAPSHOTS = 10;
  export const SNAPSHOTS_OFFSET = 11;
  export const INCOMPATIBLE = 12;
  export const COMPATIBLE = 13;
  export const AUTOCLEAR = 14;
  export const REFCOUNT_ORDER = 15;
  export const HEADER_LENGTH = 16;
  export const COMPRESSION_TYPE = 17;
  export const COUNT = 18;
}

/** Set by parseHeader, read by the host through headerField. */
const fields = new StaticArray<u64>(Field.COUNT);

/** Field `i` of the parsed header, as the image stores it (v2 images report v3 defaults). */
export function headerField(i: i32): u64 {
  return i >= 0 && i < Field.COUNT ? unchecked(fields[i]) : 0;
}

/**
 * Parses the HEADER_BYTES at `ptr` (the host zero-pads a short file, as QEMU's reads do).
 * `readWrite` is nonzero for a read-write open. Returns Status.OK and makes the image open, or
 * the first error qcow2_do_open would report, with its value in IO[0] where the text needs one:
 * the version, the cluster bits, the compression type, the unknown feature mask, the subcluster
 * size, or the Table a TABLE_* error is about.
 */
export function parseHeader(ptr: usize, readWrite: i32): i32 {
  Image.open = false;
  if (be32(ptr) != MAGIC) return Status.NOT_QCOW2;
  const version = be32(ptr + 4);
  if (version < 2 || version > 3) return fail1(Status.BAD_VERSION, version);
  const clusterBits = be32(ptr + 20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    return fail1(Status.BAD_CLUSTER_BITS, clusterBits);
  }
  const clusterSize: u64 = 1 << clusterBits;
  let incompat: u64 = 0,
    compat: u64 = 0,
    autoclear: u64 = 0;
  let refcountOrder: u32 = 4,
    headerLength: u32 = 72;
  if (version == 3) {
    incompat = be64(ptr + 72);
    compat = be64(ptr + 80);
    autoclear = be64(ptr + 88);
    refcountOrder = be32(ptr + 96);
    headerLength = be32(ptr + 100);
    if (headerLength < 104) return Status.HEADER_TOO_SHORT;
  }
  if (<u64>headerLength > clusterSize) return Status.HEADER_EXCEEDS_CLUSTER;
  const backingOffset = be64(ptr + 8);
  if (backingOffset > clusterSize) return Status.BAD_BACKING_OFFSET;

  // qcow2.txt "Additional fields": compression_type is present when header_length covers it.
  const compression: u32 = headerLength > 104 ? load<u8>(ptr + 104) : 0;
  if (compression > 1) return fail1(Status.UNKNOWN_COMPRESSION, compression);
  if (compression == 0 && (incompat & INCOMPAT_COMPRESSION) != 0) return Status.COMPRESSION_BIT_SET;
  if (compression != 0 && (incompat & INCOMPAT_COMPRESSION) == 0) return Status.COMPRESSION_BIT_MISSING;

  if ((incompat & ~INCOMPAT_MASK) != 0) return fail1(Status.UNSUPPORTED_FEATURE, incompat & ~INCOMPAT_MASK);
  if ((incompat & INCOMPAT_CORRUPT) != 0 && readWrite != 0) return Status.CORRUPT_RW;
  const extendedL2 = (incompat & INCOMPAT_EXTL2) != 0;
  // qcow2.txt "Extended L2 Entries": 32 subclusters, each at least 512 bytes.
  const subclusterSize = extendedL2 ? clusterSize >> 5 : clusterSize;
  if (subclusterSize < 512) return fail1(Status.BAD_SUBCLUSTER_SIZE, subclusterSize);
  if (refcountOrder > 6) return Status.REFCOUNT_ORDER;

  const l2Bits = clusterBits - (extendedL2 ? 4 : 3);
  const reftableOffset = be64(ptr + 48);
  const reftableClusters: u64 = be32(ptr + 56);
  if (reftableClusters == 0) return Status.NO_REFCOUNT_TABLE;
  let s = validateTable(reftableOffset, reftableClusters, clusterSize, MAX_REFTABLE_BYTES, clusterSize);
  if (s != Status.OK) return fail1(s, Table.REFCOUNT);
  const snapshotsOffset = be64(ptr + 64);
  const nbSnapshots: u64 = be32(ptr + 60);
  s = validateTable(
    snapshotsOffset,
    nbSnapshots,
    SNAPSHOT_HEADER_BYTES,
    SNAPSHOT_HEADER_BYTES * MAX_SNAPSHOTS,
    clusterSize,
  );
  if (s != Status.OK) return fail1(s, Table.SNAPSHOTS);
  const l1Size: u64 = be32(ptr + 36);
  const l1Offset = be64(ptr + 40);
  s = validateTable(l1Offset, l1Size, 8, MAX_L1_BYTES, clusterSize);
  if (s != Status.OK) return fail1(s, Table.ACTIVE_L1);

  const size = be64(ptr + 24);
  // size_to_l1: the L1 entries needed to map `size` bytes.
  const shift = clusterBits + l2Bits;
  const l1VmStateIndex = (size >> shift) + ((size & (((<u64>1) << shift) - 1)) != 0 ? 1 : 0);
  if (l1VmStateIndex > INT_MAX) return Status.IMAGE_TOO_BIG;
  if (l1Size < l1VmStateIndex) return Status.L1_TOO_SMALL;

  fields[Field.VERSION] = version;
  fields[Field.BACKING_OFFSET] = backingOffset;
  fields[Field.BACKING_SIZE] = be32(ptr + 16);
  fields[Field.CLUSTER_BITS] = clusterBits;
  fields[Field.SIZE] = size;
  fields[Field.CRYPT_METHOD] = be32(ptr + 32);
  fields[Field.L1_SIZE] = l1Size;
  fields[Field.L1_OFFSET] = l1Offset;
  fields[Field.REFTABLE_OFFSET] = reftableOffset;
  fields[Field.REFTABLE_CLUSTERS] = reftableClusters;
  fields[Field.NB_SNAPSHOTS] = nbSnapshots;
  fields[Field.SNAPSHOTS_OFFSET] = snapshotsOffset;
  fields[Field.INCOMPATIBLE] = incompat;
  fields[Field.COMPATIBLE] = compat;
  fields[Field.AUTOCLEAR] = autoclear;
  fields[Field.REFCOUNT_ORDER] = refcountOrder;
  fields[Field.HEADER_LENGTH] = headerLength;
  fields[Field.COMPRESSION_TYPE] = compression;

  Image.version = version;
  Image.clusterBits = clusterBits;
  Image.clusterSize = clusterSize;
  Image.l2Bits = l2Bits;
  Image.extendedL2 = extendedL2;
  Image.dataFile = (incompat & INCOMPAT_DATA_FILE) != 0;
  Image.refcountOrder = refcountOrder;
  Image.l1Offset = l1Offset;
  Image.csizeShift = 62 - (clusterBits - 8);
  Image.csizeMask = ((<u64>1) << (clusterBits - 8)) - 1;
  Image.coffsetMask = ((<u64>1) << Image.csizeShift) - 1;
  Image.open = true;
  return Status.OK;
}

/**
 * qcow2_validate_table: a table of `entries` entries of `entryLen` bytes at `offset` must fit
 * QEMU's limit, not overflow int64, and start on a cluster boundary.
 */
export function validateTable(
  offset: u64,
  entries: u64,
  entryLen: u64,
  maxBytes: u64,
  clusterSize: u64,
): i32 {
  if (entries > maxBytes / entryLen) return Status.TABLE_TOO_LARGE;
  const size = entries * entryLen;
  if (INT64_MAX - size < offset) return Status.TABLE_OFFSET_INVALID;
  if ((offset & (clusterSize - 1)) != 0) return Status.TABLE_OFFSET_INVALID;
  return Status.OK;
}

function fail1(status: i32, value: u64): i32 {
  setIo(0, value);
  return status;
}
