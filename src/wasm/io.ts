/**
 * Byte-buffer operations backed by the loops in assembly/io/bytes.ts. Buffers of any size pass
 * through the module's scratch area in chunks, so wasm memory stays small.
 */
import { instantiateBlockgraph, type BlockgraphExports } from './load.ts';

/** Bytes staged per call: bounds the scratch area (and so memory growth) for large buffers. */
export const CHUNK = 1 << 20;

export class WasmIo {
  constructor(readonly exports: BlockgraphExports) {}

  static async load(source?: URL | BufferSource): Promise<WasmIo> {
    return new WasmIo(await instantiateBlockgraph(source));
  }

  /** A view of all of linear memory, valid until the next call that may grow it. */
  bytes(): Uint8Array {
    return new Uint8Array(this.exports.memory.buffer);
  }

  /** True if every byte of `data` is zero (also for an empty buffer). */
  isZero(data: Uint8Array): boolean {
    for (let off = 0; off < data.length; off += CHUNK) {
      const chunk = data.subarray(off, off + CHUNK);
      if (this.exports.isZero(this.stage(chunk), chunk.length) === 0) return false;
    }
    return true;
  }

  /** Index of the first byte of `data` that is not `pattern`, or -1 if all are. */
  verifyPattern(data: Uint8Array, pattern: number): number {
    checkPattern(pattern);
    for (let off = 0; off < data.length; off += CHUNK) {
      const chunk = data.subarray(off, off + CHUNK);
      const at = this.exports.verifyPattern(this.stage(chunk), chunk.length, pattern);
      if (at >= 0) return off + at;
    }
    return -1;
  }

  /** Sets every byte of `data` to `pattern`. */
  fillPattern(data: Uint8Array, pattern: number): void {
    checkPattern(pattern);
    for (let off = 0; off < data.length; off += CHUNK) {
      const len = Math.min(CHUNK, data.length - off);
      const ptr = this.exports.scratch(len) >>> 0;
      this.exports.fillPattern(ptr, len, pattern);
      data.set(this.bytes().subarray(ptr, ptr + len), off);
    }
  }

  /** Copies `chunk` (at most CHUNK bytes) into the scratch area; returns its address. */
  private stage(chunk: Uint8Array): number {
    const ptr = this.exports.scratch(chunk.length) >>> 0;
    // scratch() may have grown memory: only a view taken now is attached.
    this.bytes().set(chunk, ptr);
    return ptr;
  }
}

/** The loops take a u8 and would silently truncate anything else. */
function checkPattern(pattern: number): void {
  if (!Number.isInteger(pattern) || pattern < 0 || pattern > 0xff) {
    throw new RangeError(`pattern must be a byte (0..255), got ${pattern}`);
  }
}
