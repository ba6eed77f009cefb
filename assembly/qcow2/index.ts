/** The qcow2 engine's exports (DESIGN.md §3: sans-I/O). The host binding is src/qcow2/engine.ts. */
import { IO } from './io';
import { cacheOf, l2, untag, zalloc } from './cache';
import * as refcount from './refcount';
import * as write from './write';
import { overlaps } from './overlap';
export { parseHeader as qcow2ParseHeader, headerField as qcow2HeaderField } from './header';
export { useL1 as qcow2UseL1, map as qcow2Map } from './map';
export {
  prepareWrite as qcow2PrepareWrite,
  commit as qcow2Commit,
  abort as qcow2Abort,
  zeroClusters as qcow2ZeroClusters,
  growL1 as qcow2GrowL1,
  takeL1 as qcow2TakeL1,
  unshareL2 as qcow2UnshareL2,
  shrinkL1 as qcow2ShrinkL1,
} from './write';
export { setOverlapChecks as qcow2SetOverlapChecks } from './overlap';
export {
  prepareCompressed as qcow2PrepareCompressed,
  commitCompressed as qcow2CommitCompressed,
  abortCompressed as qcow2AbortCompressed,
} from './compressed';
export {
  useRefcountTable as qcow2UseRefcountTable,
  refcountOf as qcow2RefcountOf,
  takeFrees as qcow2TakeFrees,
  decref as qcow2Decref,
  incref as qcow2Incref,
  allocClusters as qcow2AllocClusters,
  takeRefcountTable as qcow2TakeRefcountTable,
} from './refcount';

/** Address of the 16 u64 request/result slots (io.ts). */
export function qcow2Io(): usize {
  return IO;
}

/** Sets up the L2 cache: `slots` slices of `bytes` each; 0 if the bookkeeping would be too big. */
export function qcow2ConfigureCache(slots: i32, bytes: i32): i32 {
  return l2.configure(slots, <usize>bytes, 0) ? 1 : 0;
}

/** The host finished loading tagged slot `slot` (ok != 0) or failed to. */
export function qcow2Loaded(slot: i32, ok: i32): void {
  cacheOf(slot).loaded(untag(slot), ok != 0);
}

/** Frees cache slots unused since the previous call (cache-clean-interval); returns how many. */
export function qcow2CleanUnused(): i32 {
  return l2.cleanUnused() + (refcount.refcountReady() ? cacheOf(1 << 24).cleanUnused() : 0);
}

/** A buffer of `len` bytes that lives as long as the instance (header staging); may grow memory. */
export function qcow2Alloc(len: i32): usize {
  return zalloc(<usize>len);
}

/**
 * The first dirty slot at or after `from` of cache `which` (0: L2, 1: refcount), or -1; IO[0] its
 * host offset, IO[1] its memory, IO[2] its bytes, IO[3] its generation (for qcow2Cleaned).
 */
export function qcow2NextDirty(which: i32, from: i32): i32 {
  const c = cacheOf(which << 24);
  const s = c.nextDirty(from);
  if (s >= 0) {
    store<u64>(IO, c.keyOf(s));
    store<u64>(IO + 8, c.slotAddress(s));
    store<u64>(IO + 16, c.entryBytes);
    store<u64>(IO + 24, c.generation(s));
  }
  return s;
}

/** The host wrote slot `slot` of cache `which` as it was at generation `gen`. */
export function qcow2Cleaned(which: i32, slot: i32, gen: i32): void {
  cacheOf(which << 24).cleaned(slot, <u32>gen);
}

/** A write-back of the L1 (which 0) or refcount table (1) failed: mark it dirty again. */
export function qcow2TableFailed(which: i32, moved: i32): void {
  if (which == 0) write.l1Failed(moved != 0);
  else refcount.refcountTableFailed(moved != 0);
}

/** write.linkL2 with the L1 index in IO[0] and the new table in IO[1]. */
export function qcow2LinkL2(): void {
  write.linkL2(load<u64>(IO), load<u64>(IO + 8));
}

/** qcow2_check_metadata_overlap for [IO[0], IO[0] + IO[1]) minus `ignore`: an OL_* bit or 0. */
export function qcow2Overlaps(ignore: i32): i32 {
  return overlaps(load<u64>(IO), load<u64>(IO + 8), ignore);
}
