/**
 * The mirror's own dirty tracking: one bit per `granularity` bytes of the source (what QEMU
 * keeps in a BdrvDirtyBitmap), with a count of dirty bytes for the progress.
 */
export class DirtyMap {
  private readonly bits: Uint8Array;
  private dirtyChunks = 0;

  constructor(
    readonly length: number,
    readonly granularity: number,
  ) {
    this.bits = new Uint8Array(Math.ceil(length / granularity));
  }

  /** Marks every chunk [offset, offset + bytes) touches. */
  set(offset: number, bytes: number): void {
    const last = Math.min(this.bits.length, Math.ceil((offset + bytes) / this.granularity));
    for (let i = Math.floor(offset / this.granularity); i < last; i++) {
      if (!this.bits[i]) this.dirtyChunks++;
      this.bits[i] = 1;
    }
  }

  clear(offset: number, bytes: number): void {
    const last = Math.min(this.bits.length, Math.ceil((offset + bytes) / this.granularity));
    for (let i = Math.floor(offset / this.granularity); i < last; i++) {
      if (this.bits[i]) this.dirtyChunks--;
      this.bits[i] = 0;
    }
  }

  /** Dirty bytes (the last chunk counted in full: close enough for progress, as in QEMU). */
  get count(): number {
    return Math.min(this.length, this.dirtyChunks * this.granularity);
  }

  /**
   * The first dirty run at or after chunk `from` (wrapping around), at most `maxBytes` long,
   * as [offset, bytes]; undefined when nothing is dirty.
   */
  next(from: number, maxBytes: number): [number, number] | undefined {
    if (this.dirtyChunks === 0) return undefined;
    const n = this.bits.length;
    const first = Math.floor(from / this.granularity);
    for (let k = 0; k < n; k++) {
      const i = (first + k) % n;
      if (!this.bits[i]) continue;
      let j = i + 1;
      const limit = i + Math.max(1, Math.floor(maxBytes / this.granularity));
      while (j < n && j < limit && this.bits[j]) j++;
      const offset = i * this.granularity;
      return [offset, Math.min(this.length, j * this.granularity) - offset];
    }
    return undefined;
  }
}
