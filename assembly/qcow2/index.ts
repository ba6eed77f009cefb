/** The qcow2 engine's exports (DESIGN.md §3: sans-I/O). The host binding is src/qcow2/engine.ts. */
import { IO } from './io';
import * as cache from './cache';
export { parseHeader as qcow2ParseHeader, headerField as qcow2HeaderField } from './header';
export { useL1 as qcow2UseL1, map as qcow2Map } from './map';

/** Address of the 16 u64 request/result slots (io.ts). */
export function qcow2Io(): usize {
  return IO;
}

/** Sets up the L2 cache: `slots` slices of `bytes` each; 0 if the bookkeeping would be too big. */
export function qcow2ConfigureCache(slots: i32, bytes: i32): i32 {
  return cache.configure(slots, <usize>bytes) ? 1 : 0;
}

/** The host finished loading `slot` (ok != 0) or failed to. */
export function qcow2Loaded(slot: i32, ok: i32): void {
  cache.loaded(slot, ok != 0);
}

/** Frees cache slots unused since the previous call (cache-clean-interval); returns how many. */
export function qcow2CleanUnused(): i32 {
  return cache.cleanUnused();
}

/** A buffer of `len` bytes that lives as long as the instance (header staging); may grow memory. */
export function qcow2Alloc(len: i32): usize {
  return cache.zalloc(<usize>len);
}
