/**
 * A growable image kept as fixed-size chunks in a store that commits batches atomically (the
 * `idb` protocol's IndexedDB, or anything else implementing ChunkStore). Absent chunks read as
 * zeros. Writes, zero writes, discards and resizes collect in memory in a pending ChunkBatch and
 * reach the store only on `flush`, in one commit: after a crash the stored image is exactly as of
 * some completed flush. The cost is memory: everything written since the last flush is held.
 *
 * While a flush commits, its batch stays readable (pending → committing → store); a failed commit
 * (ENOSPC when over quota) puts its batch back under the writes that came after it, so a later
 * flush retries all of it and nothing acknowledged is lost while the image stays open.
 */
import type { BlockStatus } from '../../block/types.ts';
import { ChunkBatch } from './chunk-batch.ts';

/** The committed chunks of one image. */
export interface ChunkStore {
  /**
   * The stored chunks at `indices` (undefined where absent), read as one consistent snapshot.
   * The returned buffers belong to the caller.
   */
  read(indices: readonly number[]): Promise<(Uint8Array | undefined)[]>;
  /** The indices of the stored chunks in [first, last], ascending. */
  indicesIn(first: number, last: number): Promise<number[]>;
  /**
   * Applies `batch` (its ranges deleted first, then its chunks stored or deleted) and records
   * the image length, atomically and durably: on success all of it is on stable storage, on
   * failure none of it is. Errors are BlockIOErrors (ENOSPC when out of space).
   */
  commit(batch: ChunkBatch, length: number): Promise<void>;
}

/** Chunks one blockStatus call looks at: bounds the work (and the store query) per call. */
const STATUS_WINDOW = 1024;

export class ChunkedImage {
  private pending = new ChunkBatch();
  /** The batch a flush is committing right now. */
  private committing: ChunkBatch | null = null;
  /** Commits finished (either way): a chunk read from the store before one may be stale. */
  private commits = 0;
  private committedLength: number;
  private lastFlush: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: ChunkStore,
    readonly chunkSize: number,
    /** The image length in bytes, including unflushed growth. */
    public length: number,
  ) {
    this.committedLength = length;
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    const missing: Piece[] = [];
    for (const p of this.pieces(offset, dst.length)) {
      const chunk = this.cached(p.index);
      if (chunk === undefined) missing.push(p);
      else copyOut(chunk, p, dst);
    }
    if (missing.length === 0) return;
    const stored = await this.store.read(missing.map((p) => p.index));
    missing.forEach((p, k) => copyOut(stored[k] ?? null, p, dst));
  }

  async write(offset: number, src: Uint8Array): Promise<void> {
    const partial: Promise<void>[] = [];
    for (const p of this.pieces(offset, src.length)) {
      const bytes = src.subarray(p.pos, p.pos + p.len);
      // A whole chunk needs no old contents; slice() gives it a buffer of its own.
      if (p.len === this.chunkSize) this.pending.chunks.set(p.index, bytes.slice());
      else partial.push(this.modify(p.index, (chunk) => chunk.set(bytes, p.start)));
    }
    await Promise.all(partial);
    this.length = Math.max(this.length, offset + src.length);
  }

  /** Makes [offset, offset + bytes) read as zeros, deleting the chunks it covers whole. */
  async zero(offset: number, bytes: number, grow: boolean): Promise<void> {
    const cs = this.chunkSize;
    const end = offset + bytes;
    const firstWhole = Math.ceil(offset / cs);
    const endWhole = Math.floor(end / cs);
    // Only the partly covered chunks at either end are touched byte by byte: a range may span
    // billions of chunks.
    const edges: Promise<void>[] = [];
    const fill = (index: number, from: number, to: number) =>
      edges.push(this.modify(index, (chunk) => chunk.fill(0, from, to)));
    if (bytes === 0) return;
    if (firstWhole > endWhole) fill(endWhole, offset % cs, end % cs);
    else {
      if (offset % cs) fill(firstWhole - 1, offset % cs, cs);
      if (end % cs) fill(endWhole, 0, end % cs);
      this.pending.deleteRange(firstWhole, endWhole);
    }
    await Promise.all(edges);
    if (grow) this.length = Math.max(this.length, end);
  }

  /** Sets the length; what a shrink cuts off reads as zeros if the image grows again. */
  async truncate(bytes: number): Promise<void> {
    if (bytes < this.length) {
      const cs = this.chunkSize;
      const tail = bytes % cs;
      if (tail) await this.modify(Math.floor(bytes / cs), (chunk) => chunk.fill(0, tail));
      this.pending.deleteRange(Math.ceil(bytes / cs), Infinity);
    }
    this.length = bytes;
  }

  /**
   * Data where a chunk exists (stored or pending), zeros elsewhere; holes count as allocated, as
   * in file-posix. Looks at most STATUS_WINDOW chunks ahead.
   */
  async status(offset: number, bytes: number): Promise<BlockStatus> {
    const cs = this.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.min(Math.floor((offset + bytes - 1) / cs), first + STATUS_WINDOW - 1);
    const stored = new Set(await this.store.indicesIn(first, last));
    const hasData = (index: number): boolean => {
      const chunk = this.cached(index);
      return chunk === undefined ? stored.has(index) : chunk !== null;
    };
    const data = hasData(first);
    let index = first + 1;
    while (index <= last && hasData(index) === data) index++;
    const stop = Math.min(index * cs, offset + bytes);
    return { bytes: stop - offset, data, zero: !data, allocated: true, depth: 0, offset };
  }

  /**
   * Commits everything written before the call, in one store commit, after any earlier flush.
   * Rejects with the store's error (the changes stay pending for the next flush).
   */
  flush(): Promise<void> {
    const run = this.lastFlush.then(() => this.commit());
    this.lastFlush = run.catch(() => {});
    return run;
  }

  private async commit(): Promise<void> {
    if (this.pending.empty && this.length === this.committedLength) return;
    const batch = this.pending;
    const length = this.length;
    // All-zero chunks are deleted rather than stored: they read the same and cost no quota.
    for (const [index, chunk] of batch.chunks) if (chunk && isZero(chunk)) batch.chunks.set(index, null);
    this.pending = new ChunkBatch();
    this.committing = batch;
    try {
      await this.store.commit(batch, length);
      this.committedLength = length;
    } catch (err) {
      this.pending = ChunkBatch.merge(batch, this.pending);
      throw err;
    } finally {
      this.committing = null;
      this.commits++;
    }
  }

  /** What memory says chunk `index` holds: bytes, null for zeros, undefined: ask the store. */
  private cached(index: number): Uint8Array | null | undefined {
    const chunk = this.pending.lookup(index);
    return chunk !== undefined ? chunk : this.committing?.lookup(index);
  }

  /**
   * Applies `change` to a pending, private copy of chunk `index`, made from its current contents.
   * `change` runs synchronously with finding the copy, so no flush can take the copy in between.
   */
  private async modify(index: number, change: (chunk: Uint8Array) => void): Promise<void> {
    for (;;) {
      const own = this.pending.chunks.get(index);
      if (own) return change(own);
      const known = this.cached(index);
      if (known !== undefined) return change(this.adopt(index, known?.slice() ?? null));
      const epoch = this.commits;
      const [stored] = await this.store.read([index]);
      // Another request may have made a copy meanwhile, or a commit may have changed the store.
      if (epoch === this.commits && this.cached(index) === undefined) {
        return change(this.adopt(index, stored ?? null));
      }
    }
  }

  /** Makes `chunk` (a zero chunk if null) the pending copy of chunk `index`. */
  private adopt(index: number, chunk: Uint8Array | null): Uint8Array {
    const own = chunk ?? new Uint8Array(this.chunkSize);
    this.pending.chunks.set(index, own);
    return own;
  }

  /** The chunk-sized pieces of a byte range. */
  private *pieces(offset: number, bytes: number): Generator<Piece> {
    const cs = this.chunkSize;
    for (let pos = 0; pos < bytes;) {
      const at = offset + pos;
      const index = Math.floor(at / cs);
      const start = at - index * cs;
      const len = Math.min(cs - start, bytes - pos);
      yield { index, start, len, pos };
      pos += len;
    }
  }
}

/** Part of a request inside one chunk: `len` bytes at `start` in chunk `index`, `pos` in the request. */
interface Piece {
  index: number;
  start: number;
  len: number;
  pos: number;
}

/** Copies a piece of `chunk` (null: zeros) into the request buffer. */
function copyOut(chunk: Uint8Array | null, p: Piece, dst: Uint8Array): void {
  if (chunk) dst.set(chunk.subarray(p.start, p.start + p.len), p.pos);
  else dst.fill(0, p.pos, p.pos + p.len);
}

/** Chunks are powers of two of at least 512 bytes in buffers of their own: word-aligned. */
function isZero(chunk: Uint8Array): boolean {
  const words = new Uint32Array(chunk.buffer, chunk.byteOffset, chunk.length >>> 2);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  return true;
}
