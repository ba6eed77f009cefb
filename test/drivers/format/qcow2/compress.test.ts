import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockIOError } from '../../../../src/block/errors.ts';
import { decompressCluster, type CompressionType } from '../../../../src/drivers/format/qcow2/compress.ts';
import { makeSource, overlapping, qemuCompressedClusters } from './compressed-clusters.ts';

const TYPES: CompressionType[] = ['deflate', 'zstd'];
const CLUSTER_SIZES = [4096, 65536, 2 << 20];
const source = makeSource(6 << 20);
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'blockgraph-compress-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Rejects with a BlockIOError EIO whose message matches `message`. */
async function expectEio(promise: Promise<void>, message: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BlockIOError);
  expect((err as BlockIOError).errno).toBe('EIO');
  expect((err as BlockIOError).message).toMatch(message);
}

describe.each(TYPES)('%s clusters written by qemu-img convert -c', (type) => {
  it.each(CLUSTER_SIZES)(
    'decode to the source, trailing sector bytes included (cluster %i)',
    async (size) => {
      const clusters = qemuCompressedClusters(dir, source, type, size);
      // Most of the source compresses: text, patterns and low-entropy segments are in every cluster size.
      expect(clusters.length).toBeGreaterThanOrEqual(Math.min(source.length / size / 2, 3));
      // The descriptors cover whole sectors, so a cluster's bytes run into the next one's stream.
      expect(overlapping(clusters)).toBeGreaterThan(0);
      const dst = new Uint8Array(size);
      for (const cluster of clusters) {
        dst.fill(0xcc);
        await decompressCluster(type, cluster.src, dst);
        expect(mismatch(dst, source.subarray(cluster.guestOffset, cluster.guestOffset + size))).toBe(-1);
      }
    },
  );

  it('ignores any bytes after the end of the stream', async () => {
    const [cluster] = qemuCompressedClusters(dir, source.subarray(0, 65536), type, 65536);
    const src = new Uint8Array(cluster.src.length + 4096).fill(0xff);
    src.set(cluster.src);
    const dst = new Uint8Array(65536);
    await decompressCluster(type, src, dst);
    expect(mismatch(dst, source.subarray(0, 65536))).toBe(-1);
  });

  it('fails with EIO on invalid and truncated input', async () => {
    const dst = new Uint8Array(65536);
    const [cluster] = qemuCompressedClusters(dir, source.subarray(0, 65536), type, 65536);
    await expectEio(
      decompressCluster(type, cluster.src.subarray(0, cluster.src.length >> 2), dst),
      /invalid/,
    );
    await expectEio(
      decompressCluster(type, new Uint8Array(512).fill(0xff), dst),
      new RegExp(`invalid ${type}`),
    );
    await expectEio(decompressCluster(type, new Uint8Array(0), dst), /invalid/);
  });
});

/** The first offset where `a` and `b` differ, or -1 (toEqual is slow on megabytes). */
function mismatch(a: Uint8Array, b: Uint8Array): number {
  if (Buffer.from(a.buffer, a.byteOffset, a.length).equals(b)) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

describe('deflate follows qcow2_zlib_decompress', () => {
  const data = source.subarray(0, 4096);

  it('fails when the stream ends before the cluster is full', async () => {
    const short = deflateRawSync(data.subarray(0, 1000), { windowBits: 12 });
    await expectEio(
      decompressCluster('deflate', short, new Uint8Array(4096)),
      /ends after 1000 of 4096 bytes/,
    );
  });

  it('accepts a stream that goes on past the cluster, as QEMU does', async () => {
    // QEMU accepts Z_BUF_ERROR with a full buffer (checked with qemu-img 7.2 on a patched image).
    const long = deflateRawSync(Buffer.concat([data, new Uint8Array(100).fill(7)]), { windowBits: 12 });
    const dst = new Uint8Array(4096);
    await decompressCluster('deflate', long, dst);
    expect(mismatch(dst, data)).toBe(-1);
  });

  it('stops once a 2 MiB cluster is full, as zlib does, whatever follows in a long stream', async () => {
    const cluster = source.subarray(0, 2 << 20);
    const stream = deflateRawSync(source.subarray(0, 4 << 20), { windowBits: 12 });
    // The stream's last quarter is replaced: zlib never reads that far, so QEMU accepts it too.
    const src = new Uint8Array(stream.length).fill(0xff);
    src.set(stream.subarray(0, (stream.length * 3) >> 2));
    const dst = new Uint8Array(cluster.length);
    await decompressCluster('deflate', src, dst);
    expect(mismatch(dst, cluster)).toBe(-1);
    // Without the cut, the end of the stream has more than a cluster's worth of input after it.
    expect(stream.length >> 2).toBeGreaterThan(128 << 10);
  });

  it('fails when a long stream ends before a 2 MiB cluster is full', async () => {
    const short = deflateRawSync(source.subarray(0, (2 << 20) - 1), { windowBits: 12 });
    expect(short.length).toBeGreaterThan(128 << 10);
    await expectEio(
      decompressCluster('deflate', short, new Uint8Array(2 << 20)),
      /ends after 2097151 of 2097152 bytes/,
    );
  });

  it('accepts distances beyond a 4 KiB window, as zlib does with the whole cluster as history', async () => {
    // QEMU inflates with windowBits -12 but one call into the whole cluster; qemu-img 7.2 reads
    // such a stream, so a 32 KiB-window stream from another writer must decode too.
    const repeated = new Uint8Array(65536);
    for (let i = 0; i < repeated.length; i += 8192) repeated.set(source.subarray(16384, 16384 + 8192), i);
    const dst = new Uint8Array(65536);
    await decompressCluster('deflate', deflateRawSync(repeated, { windowBits: 15 }), dst);
    expect(mismatch(dst, repeated)).toBe(-1);
  });
});

describe('zstd follows qcow2_zstd_decompress', () => {
  const data = source.subarray(0, 4096);

  it('decodes several frames and skips skippable ones until the cluster is full', async () => {
    const src = concat(
      skippableFrame(3),
      rawFrame(data.subarray(0, 1000)),
      rawFrame(data.subarray(1000), {}),
      junk(64),
    );
    const dst = new Uint8Array(4096);
    await decompressCluster('zstd', src, dst);
    expect(mismatch(dst, data)).toBe(-1);
  });

  it('fails when the frames end before the cluster is full', async () => {
    await expectEio(
      decompressCluster('zstd', rawFrame(data.subarray(1)), new Uint8Array(4096)),
      /the frames end after 4095 of 4096 bytes/,
    );
    await expectEio(
      decompressCluster('zstd', rawFrame(data.subarray(1), {}), new Uint8Array(4096)),
      /the frames end after 4095 of 4096 bytes/,
    );
    // What follows the short frame is read as the next frame, and is not one.
    await expectEio(
      decompressCluster('zstd', concat(rawFrame(data.subarray(1), {}), junk(64)), new Uint8Array(4096)),
      /no zstd frame at byte 4107/,
    );
  });

  it('fails when a frame produces more than the cluster', async () => {
    const longer = concat(data, new Uint8Array(1));
    await expectEio(
      decompressCluster('zstd', rawFrame(longer), new Uint8Array(4096)),
      /holds 4097 bytes, more than the 4096 left/,
    );
    await expectEio(
      decompressCluster('zstd', rawFrame(longer, {}), new Uint8Array(4096)),
      /produce more than 4096 bytes/,
    );
  });

  it('fails when a frame holds other than its declared content size', async () => {
    const lying = rawFrame(data.subarray(0, 4000), { contentSize: 4096 });
    await expectEio(
      decompressCluster('zstd', lying, new Uint8Array(4096)),
      /declares 4096 bytes, holds 4000/,
    );
  });

  it('refuses dictionaries, reserved bits and oversized windows before decoding', async () => {
    const dst = new Uint8Array(4096);
    await expectEio(
      decompressCluster('zstd', rawFrame(data, { dictionaryId: 7 }), dst),
      /needs a dictionary/,
    );
    const reserved = rawFrame(data);
    reserved[4] |= 0x08;
    await expectEio(decompressCluster('zstd', reserved, dst), /reserved header bit/);
    // A 16 MiB window (Window_Descriptor 0x70), which fzstd would allocate: past the 8 MiB cap.
    await expectEio(
      decompressCluster('zstd', rawFrame(data, { windowDescriptor: 0x70 }), dst),
      /needs a 16777216-byte window/,
    );
  });
});

interface FrameOptions {
  /** Frame_Content_Size to write (4-byte field); omit the field with `{}`. */
  contentSize?: number;
  dictionaryId?: number;
  windowDescriptor?: number;
}

/**
 * A zstd frame (RFC 8878 §3.1.1) of raw blocks: by default with a 4-byte Frame_Content_Size of
 * the payload's length; `{}` leaves the size out.
 */
function rawFrame(payload: Uint8Array, options: FrameOptions = { contentSize: payload.length }): Uint8Array {
  const { contentSize, dictionaryId, windowDescriptor = (17 - 10) << 3 } = options;
  const header = [0x28, 0xb5, 0x2f, 0xfd];
  header.push(
    (contentSize === undefined ? 0 : 2 << 6) | (dictionaryId === undefined ? 0 : 1),
    windowDescriptor,
  );
  if (dictionaryId !== undefined) header.push(dictionaryId);
  if (contentSize !== undefined) header.push(...le(contentSize, 4));
  const parts: Uint8Array[] = [new Uint8Array(header)];
  for (let at = 0; at < payload.length || at === 0; at += 2048) {
    const block = payload.subarray(at, at + 2048);
    const last = at + 2048 >= payload.length ? 1 : 0;
    parts.push(new Uint8Array(le((block.length << 3) | last, 3)), block);
  }
  return concat(...parts);
}

function skippableFrame(size: number): Uint8Array {
  return concat(new Uint8Array([0x5a, 0x2a, 0x4d, 0x18, ...le(size, 4)]), junk(size));
}

function junk(bytes: number): Uint8Array {
  return new Uint8Array(bytes).fill(0xa5);
}

function le(value: number, bytes: number): number[] {
  return Array.from({ length: bytes }, (_, i) => (value >>> (8 * i)) & 0xff);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
