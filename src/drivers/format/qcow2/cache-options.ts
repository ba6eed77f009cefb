/**
 * The metadata cache sizes from the options `cache-size`, `l2-cache-size`,
 * `refcount-cache-size` and `l2-cache-entry-size`, computed and checked as QEMU 7.2's
 * read_cache_sizes and qcow2_update_options_prepare do (block/qcow2.c), with their texts.
 */
import { genericError } from '../../../block/errors.ts';
import type { Qcow2Engine } from '../../../qcow2/engine.ts';

/** DEFAULT_L2_CACHE_MAX_SIZE (Linux), MIN_L2_CACHE_SIZE and MIN_REFCOUNT_CACHE_SIZE (entries). */
const DEFAULT_L2_CACHE_MAX_SIZE = 32 << 20;
const MIN_L2_CACHE_SIZE = 2;
const MIN_REFCOUNT_CACHE_SIZE = 4;
const INT_MAX = 0x7fffffff;

export interface CacheOptions {
  'cache-size'?: number;
  'l2-cache-size'?: number;
  'refcount-cache-size'?: number;
  'l2-cache-entry-size'?: number;
}

export interface CacheSizes {
  /** L2 cache entries (slots) and the bytes of each (an L2 slice). */
  readonly l2Entries: number;
  readonly l2EntryBytes: number;
  /** Refcount block cache entries (of one cluster each). */
  readonly refcountEntries: number;
}

/**
 * The cache geometry for an image of `virtualSize` bytes (whole sectors) with `clusterSize`
 * clusters and `l2EntryBytes` per L2 entry (8, or 16 with extended L2 entries).
 */
export function cacheSizes(
  opts: CacheOptions,
  clusterSize: number,
  virtualSize: number,
  l2EntryBytes: number,
): CacheSizes {
  const minRefcountCache = MIN_REFCOUNT_CACHE_SIZE * clusterSize;
  const maxL2Entries = Math.ceil(virtualSize / clusterSize);
  // An L2 table is one cluster: the cache that covers the image is a whole number of clusters.
  const maxL2Cache = Math.ceil((maxL2Entries * l2EntryBytes) / clusterSize) * clusterSize;
  const combinedSet = opts['cache-size'] !== undefined;
  const l2Set = opts['l2-cache-size'] !== undefined;
  const refcountSet = opts['refcount-cache-size'] !== undefined;
  const combined = opts['cache-size'] ?? 0;
  const l2Max = opts['l2-cache-size'] ?? DEFAULT_L2_CACHE_MAX_SIZE;
  let refcount = opts['refcount-cache-size'] ?? 0;
  let entryBytes = opts['l2-cache-entry-size'] ?? clusterSize;
  let l2 = Math.min(maxL2Cache, l2Max);

  if (combinedSet) {
    if (l2Set && refcountSet) {
      throw genericError('cache-size, l2-cache-size and refcount-cache-size may not be set at the same time');
    } else if (l2Set && l2Max > combined) {
      throw genericError('l2-cache-size may not exceed cache-size');
    } else if (refcount > combined) {
      throw genericError('refcount-cache-size may not exceed cache-size');
    }
    if (l2Set) {
      refcount = combined - l2;
    } else if (refcountSet) {
      l2 = combined - refcount;
    } else if (combined >= maxL2Cache + minRefcountCache) {
      // As much as possible for the L2 cache, the rest for refcounts.
      l2 = maxL2Cache;
      refcount = combined - l2;
    } else {
      refcount = Math.min(combined, minRefcountCache);
      l2 = combined - refcount;
    }
  }
  // A cache that cannot cover the whole disk uses 4 KiB slices: cheaper misses.
  if (l2 < maxL2Cache && opts['l2-cache-entry-size'] === undefined) {
    entryBytes = Math.min(clusterSize, 4096);
  }
  if (entryBytes < 512 || entryBytes > clusterSize || (entryBytes & (entryBytes - 1)) !== 0) {
    throw genericError(
      `L2 cache entry size must be a power of two between 512 and the cluster size (${clusterSize})`,
    );
  }
  const l2Entries = Math.max(MIN_L2_CACHE_SIZE, Math.floor(l2 / entryBytes));
  if (l2Entries > INT_MAX) throw genericError('L2 cache size too big');
  const refcountEntries = Math.max(MIN_REFCOUNT_CACHE_SIZE, Math.floor(refcount / clusterSize));
  if (refcountEntries > INT_MAX) throw genericError('Refcount cache size too big');
  return { l2Entries, l2EntryBytes: entryBytes, refcountEntries };
}

/** QEMU's default cache-clean-interval, in seconds. */
const DEFAULT_CACHE_CLEAN_INTERVAL = 600;

/** A timer dropping unused cache entries every cache-clean-interval seconds (0: none). */
export function cleanInterval(
  engine: Qcow2Engine,
  opts: Readonly<Record<string, unknown>>,
): (() => void) | undefined {
  const seconds = (opts['cache-clean-interval'] as number | undefined) ?? DEFAULT_CACHE_CLEAN_INTERVAL;
  if (seconds === 0) return undefined;
  const timer = setInterval(() => engine.cleanUnused(), seconds * 1000);
  // Node: an idle cache timer must not keep the process alive.
  (timer as { unref?: () => void }).unref?.();
  return () => clearInterval(timer);
}
