/** Shared vocabulary of the block layer, named as in QEMU's include/block/block-common.h. */

/** Child roles. `file`/`backing`/`data-file` are generic; the others belong to one driver. */
export type ChildRole = 'file' | 'backing' | 'data-file' | 'image' | 'test' | 'raw' | 'target';

/**
 * Permissions a parent takes on a child (BLK_PERM_*). QEMU >= 6.2 has no graph-mod.
 * A bit mask so "needed" and "shared" sets combine cheaply.
 */
export const Perm = {
  CONSISTENT_READ: 1,
  WRITE: 2,
  WRITE_UNCHANGED: 4,
  RESIZE: 8,
} as const;
export const PERM_ALL = 15;
export const PERM_NAMES: ReadonlyArray<readonly [number, string]> = [
  [Perm.CONSISTENT_READ, 'consistent read'],
  [Perm.WRITE, 'write'],
  [Perm.WRITE_UNCHANGED, 'write unchanged'],
  [Perm.RESIZE, 'resize'],
];

/** Flags on a write request. `fua` forces the data to stable storage before completion. */
export interface WriteFlags {
  fua?: boolean;
  /**
   * Store the data compressed (BDRV_REQ_WRITE_COMPRESSED): whole clusters, or the last partial
   * cluster of the image; only drivers with `writeCompressed` accept it, others fail ENOTSUP.
   */
  compressed?: boolean;
}

export interface ZeroOptions {
  /** May deallocate the range instead of writing zeros (BDRV_REQ_MAY_UNMAP). */
  unmap?: boolean;
}

/**
 * The status of the range starting at the queried offset (bdrv_block_status_above).
 * `bytes` is how far the answer holds; it is at least 1 and at most the queried length.
 */
export interface BlockStatus {
  bytes: number;
  /** Reads return data stored in this node (or below it with `depth` > 0). */
  data: boolean;
  /** Reads return zeros. */
  zero: boolean;
  /**
   * Allocated at the layer `depth` names (what qemu-img map calls `present`): a range that falls
   * through to a backing child carries that child's answer with `depth` + 1.
   */
  allocated: boolean;
  /** How many backing links down the data lives (0: this node). */
  depth: number;
  /** Host offset in the protocol node, where meaningful. */
  offset?: number;
}

/** What a driver can do; the conformance suites pick their cases from these. */
export interface DriverCapabilities {
  /** Written data can be read back. */
  readonly writable: boolean;
  /** Data survives close and reopen with the same options. */
  readonly persistent: boolean;
  /** `truncate` may grow the node. */
  readonly growable: boolean;
  readonly discard: boolean;
  readonly writeZeroes: boolean;
}
