/**
 * ChunkedImage (the buffering core of the `idb` protocol) over an in-memory ChunkStore that
 * commits atomically like IndexedDB: what the store holds is always the image as of a completed
 * flush, failed commits lose nothing, and requests racing a commit keep their data.
 */
import { describe, expect, it } from 'vitest';
import { ioError } from '../../../src/block/errors.ts';
import type { ChunkBatch } from '../../../src/drivers/protocol/chunk-batch.ts';
import { ChunkedImage, type ChunkStore } from '../../../src/drivers/protocol/chunk-image.ts';
import { checkBytes, prng, randomBytes } from '../../conformance/harness.ts';

const CS = 4096;

/** Chunks in a Map; commits apply all or nothing; buffers are copied in and out, as IDB clones. */
class MapStore implements ChunkStore {
  chunks = new Map<number, Uint8Array>();
  length = 0;
  commitCount = 0;
  /** Set to make the next commits fail with ENOSPC, applying nothing. */
  full = false;
  /** When set, reads wait for this promise first (to interleave a commit with a read). */
  gate: Promise<void> | null = null;

  async read(indices: readonly number[]): Promise<(Uint8Array | undefined)[]> {
    const snapshot = indices.map((i) => this.chunks.get(i)?.slice());
    if (this.gate) await this.gate;
    return snapshot;
  }

  async indicesIn(first: number, last: number): Promise<number[]> {
    return [...this.chunks.keys()].filter((i) => i >= first && i <= last).sort((a, b) => a - b);
  }

  async commit(batch: ChunkBatch, length: number): Promise<void> {
    await Promise.resolve();
    if (this.full) throw ioError('ENOSPC');
    for (const [first, end] of batch.ranges) {
      for (const i of [...this.chunks.keys()]) if (i >= first && i < end) this.chunks.delete(i);
    }
    for (const [i, chunk] of batch.chunks) {
      if (chunk) this.chunks.set(i, chunk.slice());
      else this.chunks.delete(i);
    }
    this.length = length;
    this.commitCount++;
  }

  /** The committed image as bytes (what a reopen after a crash would read). */
  image(): Uint8Array {
    const out = new Uint8Array(this.length);
    for (const [i, chunk] of this.chunks)
      out.set(chunk.subarray(0, Math.max(0, this.length - i * CS)), i * CS);
    return out;
  }
}

async function readAll(img: ChunkedImage): Promise<Uint8Array> {
  const out = new Uint8Array(img.length);
  await img.read(0, out);
  return out;
}

describe('ChunkedImage', () => {
  it('random writes, zero writes, discards and resizes match a shadow, in memory and after each flush', async () => {
    const store = new MapStore();
    const img = new ChunkedImage(store, CS, 0);
    const rand = prng(1234);
    let shadow = new Uint8Array(0);
    let flushed = new Uint8Array(0);
    const resize = (n: number) => {
      const next = new Uint8Array(n);
      next.set(shadow.subarray(0, Math.min(n, shadow.length)));
      shadow = next;
    };
    for (let op = 0; op < 400; op++) {
      const kind = rand(10);
      const offset = rand(20 * CS);
      const len = 1 + rand(3 * CS);
      if (kind < 5) {
        const data = randomBytes(rand, len);
        await img.write(offset, data);
        if (offset + len > shadow.length) resize(offset + len);
        shadow.set(data, offset);
      } else if (kind < 7) {
        await img.zero(offset, len, kind === 5);
        if (kind === 5 && offset + len > shadow.length) resize(offset + len);
        shadow.fill(0, offset, offset + len);
      } else if (kind === 7) {
        const n = rand(25 * CS);
        await img.truncate(n);
        resize(n);
      } else if (kind === 8) {
        await img.flush();
        flushed = shadow.slice();
      }
      // The store only ever holds a flushed state.
      checkBytes(store.image(), flushed, `store after op ${op}`);
    }
    checkBytes(await readAll(img), shadow, 'image');
    await img.flush();
    const reopened = new ChunkedImage(store, CS, store.length);
    checkBytes(await readAll(reopened), shadow, 'reopened');
  });

  it('stores no all-zero chunks, and a shrink deletes every chunk past the new end', async () => {
    const store = new MapStore();
    const img = new ChunkedImage(store, CS, 0);
    await img.write(0, new Uint8Array(3 * CS).fill(1));
    await img.write(10 * CS, new Uint8Array(CS));
    await img.write(2 ** 40, new Uint8Array([9]));
    await img.flush();
    expect([...store.chunks.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 2 ** 40 / CS]);
    await img.truncate(CS + 100);
    await img.flush();
    expect([...store.chunks.keys()].sort()).toEqual([0, 1]);
    expect(
      store.chunks
        .get(1)!
        .subarray(100)
        .every((b) => b === 0),
    ).toBe(true);
    await img.truncate(3 * CS);
    const back = new Uint8Array(2 * CS);
    await img.read(CS, back);
    expect(back.subarray(0, 100).every((b) => b === 1)).toBe(true);
    expect(back.subarray(100).every((b) => b === 0)).toBe(true);
  });

  it('a discard of a huge range is one range delete, and reads zeros at once', async () => {
    const store = new MapStore();
    const img = new ChunkedImage(store, CS, 0);
    await img.write(5 * CS, new Uint8Array(CS).fill(3));
    await img.write(2 ** 42, new Uint8Array(CS).fill(4));
    await img.flush();
    await img.zero(CS, 2 ** 42 - CS, false);
    const got = new Uint8Array(CS);
    await img.read(5 * CS, got);
    expect(got.every((b) => b === 0)).toBe(true);
    await img.flush();
    expect([...store.chunks.keys()]).toEqual([2 ** 42 / CS]);
  });

  it('a failed flush changes nothing stored; the next flush commits it with the writes after it', async () => {
    const store = new MapStore();
    const img = new ChunkedImage(store, CS, 0);
    const a = randomBytes(prng(1), 3 * CS + 7);
    await img.write(100, a);
    await img.flush();
    const before = store.image();
    store.full = true;
    const b = randomBytes(prng(2), 2 * CS);
    await img.write(CS, b);
    await img.truncate(10 * CS);
    await expect(img.flush()).rejects.toMatchObject({ errno: 'ENOSPC' });
    checkBytes(store.image(), before, 'store after the failed flush');
    const c = randomBytes(prng(3), 100);
    await img.write(CS + 50, c);
    await expect(img.flush()).rejects.toMatchObject({ errno: 'ENOSPC' });
    store.full = false;
    await img.flush();
    const expected = new Uint8Array(10 * CS);
    expected.set(a, 100);
    expected.set(b, CS);
    expected.set(c, CS + 50);
    checkBytes(store.image(), expected, 'store after the retry');
  });

  it('a partial write whose chunk read straddles a commit builds on the committed chunk', async () => {
    const store = new MapStore();
    const img = new ChunkedImage(store, CS, 0);
    await img.write(0, new Uint8Array(CS).fill(1));
    await img.flush();
    let open!: () => void;
    store.gate = new Promise((resolve) => (open = resolve));
    // The partial write reads chunk 0 (still all 1s) and waits at the gate; meanwhile a whole-chunk
    // write replaces the chunk and a flush commits it.
    const partial = img.write(10, new Uint8Array([7, 7]));
    await img.write(0, new Uint8Array(CS).fill(2));
    store.gate = null;
    await img.flush();
    open();
    await partial;
    const got = await readAll(img);
    const expected = new Uint8Array(CS).fill(2);
    expected.set([7, 7], 10);
    checkBytes(got, expected, 'chunk 0');
  });

  it('block status: data where chunks exist (stored or pending), zeros elsewhere', async () => {
    const store = new MapStore();
    const img = new ChunkedImage(store, CS, 100 * CS);
    await img.write(2 * CS, new Uint8Array(2 * CS).fill(5));
    await img.flush();
    await img.write(4 * CS + 1, new Uint8Array([1]));
    await img.zero(2 * CS, CS, false);
    const walk: [number, boolean][] = [];
    for (let offset = 0; offset < 8 * CS;) {
      const st = await img.status(offset, 8 * CS - offset);
      walk.push([st.bytes / CS, st.data]);
      offset += st.bytes;
    }
    expect(walk).toEqual([
      [3, false],
      [2, true],
      [3, false],
    ]);
  });
});
