/**
 * The in-memory refcount table of `qemu-img check` (QEMU's "IMRT", block/qcow2-refcount.c):
 * one counter per host cluster, saturating at the image's refcount_max as QEMU's does. Kept in
 * chunks created on first use, so memory follows the clusters actually referenced, not the
 * highest cluster index (a sparse or mostly-empty file costs next to nothing).
 */

const CHUNK_BITS = 16;
const CHUNK = 1 << CHUNK_BITS;
const UINT32_MAX = 0xffffffff;

export class RefcountArray {
  private readonly chunks = new Map<number, Uint32Array>();
  /** Entries (clusters) covered; grows as references past it are counted (realloc_refcount_array). */
  size: number;
  /** The largest count an entry can hold: the image's refcount_max (capped at 2^32-1). */
  readonly max: number;

  constructor(refcountBits: number, size: number) {
    this.max = Math.min(2 ** refcountBits - 1, UINT32_MAX);
    this.size = size;
  }

  get(cluster: number): number {
    return this.chunks.get(Math.floor(cluster / CHUNK))?.[cluster % CHUNK] ?? 0;
  }

  set(cluster: number, value: number): void {
    const key = Math.floor(cluster / CHUNK);
    let chunk = this.chunks.get(key);
    if (!chunk) {
      if (value === 0) return;
      chunk = new Uint32Array(CHUNK);
      this.chunks.set(key, chunk);
    }
    chunk[cluster % CHUNK] = value;
  }

  /** Adds one reference; false (and no change) when the entry is already at `max`. */
  increment(cluster: number): boolean {
    const n = this.get(cluster);
    if (n >= this.max) return false;
    this.set(cluster, n + 1);
    return true;
  }

  /** Forgets every count (the size stays), as QEMU's memset before recounting. */
  clear(): void {
    this.chunks.clear();
  }

  /** The first cluster in [from, end) with a count, or `end` (skips chunks never used). */
  nextUsed(from: number, end: number): number {
    for (let c = from; c < end;) {
      const key = Math.floor(c / CHUNK);
      const chunkEnd = Math.min(end, (key + 1) * CHUNK);
      const chunk = this.chunks.get(key);
      if (chunk) {
        for (let i = c; i < chunkEnd; i++) if (chunk[i - key * CHUNK] !== 0) return i;
      }
      c = chunkEnd;
    }
    return end;
  }
}
