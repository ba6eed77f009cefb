/**
 * The open image's geometry, set once by parseHeader (header.ts). One engine instance serves one
 * image: the host instantiates the module per qcow2 node, so these statics are that node's state.
 */
export class Image {
  static open: bool = false;
  static version: u32 = 0;
  static clusterBits: u32 = 0;
  static clusterSize: u64 = 0;
  /** log2 of the L2 entries per table: cluster_bits - 3, or - 4 with extended L2 entries. */
  static l2Bits: u32 = 0;
  static extendedL2: bool = false;
  static dataFile: bool = false;
  static refcountOrder: u32 = 4;
  static l1Offset: u64 = 0;
  /** Compressed descriptor layout (qcow2.txt "Compressed Clusters Descriptor"). */
  static csizeShift: u32 = 0;
  static csizeMask: u64 = 0;
  static coffsetMask: u64 = 0;
}

/** QCOW_OFLAG_COPIED, QCOW_OFLAG_COMPRESSED, QCOW_OFLAG_ZERO (qcow2.txt "Cluster mapping"). */
export const OFLAG_COPIED: u64 = 1 << 63;
export const OFLAG_COMPRESSED: u64 = 1 << 62;
export const OFLAG_ZERO: u64 = 1;
/** Bits 9-55 of an L1 or L2 entry: the host offset of a table or cluster. */
export const OFFSET_MASK: u64 = 0x00fffffffffffe00;
