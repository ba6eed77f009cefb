/**
 * A batch of changes to a chunked image (chunk-image.ts): whole chunks to store or delete, and
 * ranges of chunk indices to delete, as one flush commits them. Invariant: a chunk entry is never
 * inside a range added after it (adding a range drops the entries it covers), so a store applies
 * a batch correctly by deleting the ranges first and then storing the entries.
 */

/** Ranges covering at most this many chunks become single entries rather than a range. */
const MAX_ENTRIES_PER_RANGE = 64;

export class ChunkBatch {
  /** Chunk index → its new bytes (a buffer of its own, chunk-sized), or null: delete it. */
  readonly chunks = new Map<number, Uint8Array | null>();
  /** Chunk index ranges [first, end) to delete; `end` may be Infinity (a shrink). */
  readonly ranges: [number, number][] = [];

  get empty(): boolean {
    return this.chunks.size === 0 && this.ranges.length === 0;
  }

  /**
   * What this batch says chunk `index` holds: its bytes, null for zeros (deleted), or undefined
   * when the batch does not touch it.
   */
  lookup(index: number): Uint8Array | null | undefined {
    const entry = this.chunks.get(index);
    if (entry !== undefined) return entry;
    return this.ranges.some(([first, end]) => index >= first && index < end) ? null : undefined;
  }

  /** Makes chunks [first, end) read as zeros. */
  deleteRange(first: number, end: number): void {
    if (end <= first) return;
    if (end - first <= MAX_ENTRIES_PER_RANGE) {
      for (let i = first; i < end; i++) this.chunks.set(i, null);
      return;
    }
    for (const index of this.chunks.keys()) if (index >= first && index < end) this.chunks.delete(index);
    this.ranges.push([first, end]);
  }

  /** The batch that applies `older` and then `newer` (a failed commit followed by later writes). */
  static merge(older: ChunkBatch, newer: ChunkBatch): ChunkBatch {
    const out = new ChunkBatch();
    for (const [index, data] of older.chunks) out.chunks.set(index, data);
    out.ranges.push(...older.ranges);
    for (const [first, end] of newer.ranges) out.deleteRange(first, end);
    for (const [index, data] of newer.chunks) out.chunks.set(index, data);
    return out;
  }
}
