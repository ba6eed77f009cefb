/**
 * The chunk cache: fetched chunks kept in least-recently-used order up to a byte budget, plus the
 * chunks being fetched right now, so that concurrent reads of one chunk share one request
 * (coalescing) instead of each starting its own.
 */

export class ChunkCache {
  /** Map iteration order is insertion order: the first key is the least recently used. */
  private readonly lru = new Map<number, Uint8Array>();
  private readonly inFlight = new Map<number, Promise<Uint8Array>>();
  private bytes = 0;

  constructor(private readonly budget: number) {}

  /** The chunk, if cached (and then marked most recently used). */
  get(index: number): Uint8Array | undefined {
    const data = this.lru.get(index);
    if (data) {
      this.lru.delete(index);
      this.lru.set(index, data);
    }
    return data;
  }

  /** The pending fetch of a chunk, if one is running. */
  pending(index: number): Promise<Uint8Array> | undefined {
    return this.inFlight.get(index);
  }

  /** Whether the chunk is cached or being fetched: a read would not need a new request. */
  covered(index: number): boolean {
    return this.lru.has(index) || this.inFlight.has(index);
  }

  /**
   * Registers the fetch of `indices` (one request, answering every chunk in order). Each chunk's
   * promise is shared with later readers until it settles; a fetched chunk enters the cache,
   * a failed one leaves no trace, so the next read tries again.
   */
  track(indices: readonly number[], fetched: Promise<Uint8Array[]>): void {
    indices.forEach((index, i) => {
      const one = fetched.then((chunks) => chunks[i]!);
      this.inFlight.set(index, one);
      one.then(
        (data) => {
          this.inFlight.delete(index);
          this.put(index, data);
        },
        () => this.inFlight.delete(index),
      );
    });
  }

  private put(index: number, data: Uint8Array): void {
    if (data.length > this.budget) return;
    const old = this.lru.get(index);
    if (old) this.bytes -= old.length;
    this.lru.delete(index);
    this.lru.set(index, data);
    this.bytes += data.length;
    for (const [key, value] of this.lru) {
      if (this.bytes <= this.budget) break;
      this.lru.delete(key);
      this.bytes -= value.length;
    }
  }

  /** Bytes held by cached chunks (not counting fetches in flight). */
  get size(): number {
    return this.bytes;
  }

  clear(): void {
    this.lru.clear();
    this.bytes = 0;
  }
}
