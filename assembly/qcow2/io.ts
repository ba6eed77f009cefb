/**
 * The request/result area shared with the host: 16 u64 slots in linear memory. 64-bit values
 * (offsets, sizes, feature masks) cross the boundary here instead of as BigInt arguments; each
 * export documents which slots it reads and writes.
 */

export const IO_SLOTS = 16;
export const IO: usize = memory.data(IO_SLOTS * 8, 8);

export function getIo(i: i32): u64 {
  return load<u64>(IO + ((<usize>i) << 3));
}

export function setIo(i: i32, v: u64): void {
  store<u64>(IO + ((<usize>i) << 3), v);
}

/** Big-endian loads: every number in a qcow2 file is big-endian (qcow2.txt "General"). */
export function be32(ptr: usize): u32 {
  return bswap<u32>(load<u32>(ptr));
}

export function be64(ptr: usize): u64 {
  return bswap<u64>(load<u64>(ptr));
}

/**
 * Every answer the engine gives. Values below 16 are normal outcomes; the others are errors whose
 * QEMU text the host builds from the code and the values left in the IO area (src/qcow2/errors.ts).
 * Keep in step with src/qcow2/engine.ts.
 */
export namespace Status {
  export const OK = 0;
  // Map extents (qcow2_get_host_offset's QCow2SubclusterType).
  export const DATA = 1;
  export const ZERO_PLAIN = 2;
  export const ZERO_ALLOC = 3;
  export const UNALLOC_PLAIN = 4;
  export const UNALLOC_ALLOC = 5;
  export const COMPRESSED = 6;
  // Map needs metadata first.
  export const NEED_LOAD = 7;
  export const WAIT = 8;
  export const BUSY = 9;
  // Write planning (write.ts).
  export const IN_PLACE = 10;
  export const ALLOC = 11;
  export const WAIT_ALLOC = 12;
  // Open errors (qcow2_do_open, in its order).
  export const NOT_QCOW2 = 16;
  export const BAD_VERSION = 17;
  export const BAD_CLUSTER_BITS = 18;
  export const HEADER_TOO_SHORT = 19;
  export const HEADER_EXCEEDS_CLUSTER = 20;
  export const BAD_BACKING_OFFSET = 21;
  export const UNKNOWN_COMPRESSION = 22;
  export const COMPRESSION_BIT_SET = 23;
  export const COMPRESSION_BIT_MISSING = 24;
  export const UNSUPPORTED_FEATURE = 25;
  export const CORRUPT_RW = 26;
  export const BAD_SUBCLUSTER_SIZE = 27;
  export const REFCOUNT_ORDER = 28;
  export const NO_REFCOUNT_TABLE = 29;
  export const TABLE_TOO_LARGE = 30;
  export const TABLE_OFFSET_INVALID = 31;
  export const IMAGE_TOO_BIG = 32;
  export const L1_TOO_SMALL = 33;
  export const CACHE_TOO_BIG = 34;
  export const NOT_OPEN = 35;
  // Corruption found while mapping (qcow2_signal_corruption texts).
  export const L2_UNALIGNED = 48;
  export const CLUSTER_UNALIGNED = 49;
  export const INVALID_SUBCLUSTER = 50;
  export const ZERO_IN_V2 = 51;
  export const DATA_FILE_MISMATCH = 52;
  export const COMPRESSED_WITH_DATA_FILE = 53;
  export const REFBLOCK_UNALIGNED = 54;
  export const REFCOUNT_UNDERFLOW = 55;
  export const REFCOUNT_OVERFLOW = 56;
  // Refused writes.
  export const SHARED_L2 = 64;
  export const OVERLAP = 65;
  export const BEYOND_L1 = 66;
  /** A compressed write to a cluster that holds data (compressed.ts). */
  export const CLUSTER_IN_USE = 67;
}

/** Which table a TABLE_* error is about (IO[0]); the host names it as qcow2_validate_table does. */
export namespace Table {
  export const REFCOUNT = 0;
  export const SNAPSHOTS = 1;
  export const ACTIVE_L1 = 2;
  export const SNAPSHOT_L1 = 3;
}
