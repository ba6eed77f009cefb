/**
 * Metadata overlap checks (QEMU's qcow2_check_metadata_overlap): before the engine lets a cluster
 * be written as data or as new metadata, it must not overlap the structures selected by the
 * overlap-check option. Only active structures are known to the engine.
 */
import { be64, setIo, Status } from './io';
import { Image, OFFSET_MASK } from './image';
import { l1Count, l1Table } from './map';
import { isRefcountBlock, rtClusters, rtOffset } from './refcount';

// QEMU's QCow2MetadataOverlap bits.
export const OL_MAIN_HEADER: i32 = 1;
export const OL_ACTIVE_L1: i32 = 2;
export const OL_ACTIVE_L2: i32 = 4;
export const OL_REFCOUNT_TABLE: i32 = 8;
export const OL_REFCOUNT_BLOCK: i32 = 16;

/** Overlap checks to make (OL_* bits), from the overlap-check option. */
let overlapChecks: i32 = 0x1f;

export function setOverlapChecks(mask: i32): void {
  overlapChecks = mask;
}

/**
 * The first QCOW2_OL_* structure among `overlapChecks` & ~ignore that [offset, offset + size)
 * overlaps (qcow2_check_metadata_overlap), or 0. Inactive tables are not known to the engine.
 */
export function overlaps(offset: u64, size: u64, ignore: i32): i32 {
  const checks = overlapChecks & ~ignore;
  const end = offset + size;
  const cs = Image.clusterSize;
  if ((checks & OL_MAIN_HEADER) != 0 && offset < cs) return OL_MAIN_HEADER;
  if ((checks & OL_ACTIVE_L1) != 0 && l1Count() != 0) {
    if (hit(offset, end, Image.l1Offset, l1Count() * 8)) return OL_ACTIVE_L1;
  }
  if ((checks & OL_REFCOUNT_TABLE) != 0 && hit(offset, end, rtOffset, rtClusters * cs)) {
    return OL_REFCOUNT_TABLE;
  }
  if ((checks & OL_ACTIVE_L2) != 0) {
    for (let i: u64 = 0; i < l1Count(); i++) {
      const t = be64(l1Table() + <usize>(i << 3)) & OFFSET_MASK;
      if (t != 0 && hit(offset, end, t, cs)) return OL_ACTIVE_L2;
    }
  }
  if ((checks & OL_REFCOUNT_BLOCK) != 0 && isRefcountBlock(offset, end)) return OL_REFCOUNT_BLOCK;
  return 0;
}

function hit(start: u64, end: u64, at: u64, bytes: u64): bool {
  return bytes != 0 && start < at + bytes && at < end;
}

export function overlapStatus(offset: u64, size: u64, kind: i32): i32 {
  setIo(0, offset);
  setIo(1, size);
  setIo(2, kind);
  return Status.OVERLAP;
}
