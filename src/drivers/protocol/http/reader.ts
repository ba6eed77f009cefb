/**
 * Reads of the image, chunk by chunk, over a ChunkSource: cached chunks are copied, chunks being
 * fetched are waited for (coalescing), and the missing ones are fetched in runs of consecutive
 * chunks, each run one request, extended by the read heads' read-ahead window.
 */
import type { ChunkCache } from './cache.ts';
import type { ReadHeads } from './readahead.ts';
import type { ChunkSource } from './source.ts';

export class ChunkReader {
  private readonly chunks: number;

  constructor(
    private readonly source: ChunkSource,
    private readonly cache: ChunkCache,
    private readonly heads: ReadHeads,
  ) {
    this.chunks = Math.ceil(source.size / source.chunkSize);
  }

  /**
   * Fills `dst` with the bytes at `offset` (zeros past the end of the image). Rejects with the
   * HttpFailure of the first chunk that could not be fetched.
   */
  async read(offset: number, dst: Uint8Array): Promise<void> {
    const end = Math.min(offset + dst.length, this.source.size);
    dst.fill(0, Math.max(0, end - offset));
    if (end <= offset) return;
    const cs = this.source.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    this.fetchMissing(first, last, this.heads.advise(offset, end - offset));
    // Take every chunk (or its pending fetch) now, before anything can evict one.
    const parts: Promise<void>[] = [];
    for (let i = first; i <= last; i++) {
      const from = Math.max(offset, i * cs);
      const to = Math.min(end, (i + 1) * cs);
      const put = (data: Uint8Array | null) => {
        if (data) dst.set(data.subarray(from - i * cs, to - i * cs), from - offset);
        else dst.fill(0, from - offset, to - offset);
      };
      const data = this.source.absent(i) ? null : this.cache.get(i);
      if (data !== undefined) put(data);
      else parts.push(this.cache.pending(i)!.then(put));
    }
    await Promise.all(parts);
  }

  /**
   * Starts requests for the chunks of [first, last] that are neither cached nor being fetched,
   * and for the read-ahead window after them: with the demand chunks when some are missing (one
   * request serves both), or on its own once less than half the window is still ahead of the
   * read, so a stream advancing a little at a time still makes large requests.
   */
  private fetchMissing(first: number, last: number, ahead: number): void {
    const cs = this.source.chunkSize;
    let to = last;
    if (ahead > 0) {
      const aheadEnd = Math.min(this.chunks - 1, last + Math.ceil(ahead / cs));
      const gap = this.firstMissing(last + 1, aheadEnd);
      const demandMissing = this.firstMissing(first, last) !== undefined;
      if (gap !== undefined && (demandMissing || (gap - last - 1) * cs < ahead / 2)) to = aheadEnd;
    }
    for (let i = first; i <= to;) {
      if (!this.missing(i)) {
        i++;
        continue;
      }
      const run: number[] = [];
      while (i <= to && run.length < this.source.maxRun && this.missing(i)) run.push(i++);
      this.cache.track(run, this.source.fetch(run[0]!, run.length));
    }
  }

  private missing(index: number): boolean {
    return !this.source.absent(index) && !this.cache.covered(index);
  }

  private firstMissing(from: number, to: number): number | undefined {
    for (let i = from; i <= to; i++) if (this.missing(i)) return i;
    return undefined;
  }
}
