/**
 * memory: a sparse, growable RAM disk (blockgraph's own; QEMU has no equivalent). The bytes live in
 * a Map of fixed-size chunks and a missing chunk reads as zeros, so a 1 TiB image costs nothing
 * until it is written. Writes past the end grow it; discard and zero writes free whole chunks.
 *
 * Without `store` the data dies with the node. With `store: 'name'` it lives in a registry of this
 * module and outlives the node: opening another node with the same store sees the same bytes, for
 * as long as the JavaScript realm (page, worker, Node process) lives or until deleteMemoryStore().
 */
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import type { BlockStatus } from '../../block/types.ts';
import { withDefaults } from '../options.ts';

/** Chunk size: large enough to keep the Map small, small enough that sparse writes stay cheap. */
const CHUNK = 64 * 1024;

/** The bytes of one memory image. */
class MemoryStore {
  readonly chunks = new Map<number, Uint8Array>();

  constructor(public length: number) {}

  read(offset: number, dst: Uint8Array): void {
    forEachPiece(offset, dst.length, (index, start, len, pos) => {
      const chunk = this.chunks.get(index);
      if (chunk) dst.set(chunk.subarray(start, start + len), pos);
      else dst.fill(0, pos, pos + len);
    });
  }

  write(offset: number, src: Uint8Array): void {
    forEachPiece(offset, src.length, (index, start, len, pos) => {
      let chunk = this.chunks.get(index);
      if (!chunk) this.chunks.set(index, (chunk = new Uint8Array(CHUNK)));
      chunk.set(src.subarray(pos, pos + len), start);
    });
    this.length = Math.max(this.length, offset + src.length);
  }

  /** Makes [offset, offset+bytes) read as zeros: frees the chunks it covers, zeroes partial ones. */
  zero(offset: number, bytes: number): void {
    const end = offset + bytes;
    for (const index of this.allocatedIn(offset, bytes)) {
      const base = index * CHUNK;
      const from = Math.max(offset, base) - base;
      const to = Math.min(end, base + CHUNK) - base;
      if (from === 0 && to === CHUNK) this.chunks.delete(index);
      else this.chunks.get(index)?.fill(0, from, to);
    }
  }

  truncate(bytes: number): void {
    // Zero what is cut off, so that growing again reads zeros rather than old data.
    if (bytes < this.length) this.zero(bytes, this.length - bytes);
    this.length = bytes;
  }

  /** Data where a chunk exists, zeros elsewhere; holes count as allocated, as in file-posix. */
  status(offset: number, bytes: number): BlockStatus {
    const end = offset + bytes;
    const first = Math.floor(offset / CHUNK);
    const data = this.chunks.has(first);
    let stop: number;
    if (data) {
      let index = first + 1;
      while (index * CHUNK < end && this.chunks.has(index)) index++;
      stop = index * CHUNK;
    } else {
      const next = this.allocatedIn(offset, bytes).filter((i) => i > first);
      stop = next.length ? Math.min(...next) * CHUNK : end;
    }
    return { bytes: Math.min(stop, end) - offset, data, zero: !data, allocated: true, depth: 0, offset };
  }

  /** Indices of the allocated chunks overlapping the range, by whichever walk is shorter. */
  private allocatedIn(offset: number, bytes: number): number[] {
    if (bytes === 0) return [];
    const first = Math.floor(offset / CHUNK);
    const last = Math.floor((offset + bytes - 1) / CHUNK);
    if (last - first + 1 > this.chunks.size) {
      return [...this.chunks.keys()].filter((i) => i >= first && i <= last);
    }
    const out: number[] = [];
    for (let i = first; i <= last; i++) if (this.chunks.has(i)) out.push(i);
    return out;
  }
}

/** Calls `fn(chunkIndex, offsetInChunk, length, offsetInRequest)` for each chunk a range touches. */
function forEachPiece(
  offset: number,
  bytes: number,
  fn: (index: number, start: number, len: number, pos: number) => void,
): void {
  for (let pos = 0; pos < bytes;) {
    const at = offset + pos;
    const index = Math.floor(at / CHUNK);
    const start = at - index * CHUNK;
    const len = Math.min(CHUNK - start, bytes - pos);
    fn(index, start, len, pos);
    pos += len;
  }
}

/** Named stores (option `store`), shared by every node opened with the same name. */
const STORES = new Map<string, MemoryStore>();

/** Forgets a named store and its data; returns whether it existed. Open nodes keep their bytes. */
export function deleteMemoryStore(name: string): boolean {
  return STORES.delete(name);
}

function storeFor(name: string | undefined, size: number): MemoryStore {
  if (name === undefined) return new MemoryStore(size);
  let store = STORES.get(name);
  if (!store) STORES.set(name, (store = new MemoryStore(size)));
  return store;
}

const OPTIONS = {
  size: { type: 'size', default: 0, help: 'initial length in bytes (of a new store)' },
  store: {
    type: 'str',
    help: 'keep the data under this name: nodes opened later with the same store see it',
  },
} as const;

export const memoryDriver = {
  name: 'memory',
  kind: 'protocol',
  options: OPTIONS,
  // Persistent across reopen only with `store`.
  capabilities: { writable: true, persistent: false, growable: true, discard: true, writeZeroes: true },

  async open(ctx): Promise<BlockDriverOps> {
    const opts = withDefaults(OPTIONS, ctx.options);
    const store = storeFor(opts.store as string | undefined, opts.size as number);
    return {
      length: () => store.length,
      read: async (offset, dst) => store.read(offset, dst),
      write: async (offset, src) => store.write(offset, src),
      // Freed chunks and zeroed bytes read the same, so unmap or not, the cheaper one is done.
      writeZeroes: async (offset, bytes) => {
        store.zero(offset, bytes);
        store.length = Math.max(store.length, offset + bytes);
      },
      discard: async (offset, bytes) => store.zero(offset, bytes),
      blockStatus: async (offset, bytes) => store.status(offset, bytes),
      truncate: async (bytes) => store.truncate(bytes),
    };
  },
} as const satisfies BlockDriver;
