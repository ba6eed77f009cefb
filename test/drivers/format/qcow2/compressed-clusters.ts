/**
 * Compressed clusters made by the reference implementation: `qemu-img convert -c` writes an
 * image, and just enough of the qcow2 layout (docs/interop/qcow2.txt: header, L1, L2, "Compressed
 * Clusters Descriptor") is parsed here, independently of the engine, to cut out each compressed
 * cluster's bytes exactly as QEMU's reader passes them to its decoder. Shared by the unit test
 * and the Chromium e2e test (which runs in Node on the Playwright side).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CompressionType } from '../../../../src/drivers/format/qcow2/compress.ts';

export interface CompressedCluster {
  /** Guest offset of the cluster: where its content is in the source. */
  readonly guestOffset: number;
  /** Where the compressed data starts in the image file. */
  readonly hostOffset: number;
  /** The descriptor's bytes: from its host offset to the end of its last sector. */
  readonly src: Uint8Array;
}

const QEMU_COMPRESSION_TYPE: Record<CompressionType, string> = { deflate: 'zlib', zstd: 'zstd' };

/**
 * Guest content that exercises the decoders: 16 KiB segments cycling through text, random bytes,
 * zeros, short repeating patterns, low-entropy bytes and half-random data (deterministic).
 */
export function makeSource(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const text = new TextEncoder().encode(
    'The qcow2 image format stores compressed clusters as raw deflate or zstd streams. ',
  );
  let seed = 0x2545f491;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 0xff;
  const SEGMENT = 16 << 10;
  for (let seg = 0; seg * SEGMENT < bytes; seg++) {
    const base = seg * SEGMENT;
    for (let i = 0; i < SEGMENT && base + i < bytes; i++) {
      const kind = seg % 6;
      out[base + i] =
        kind === 0
          ? text[(i + seg) % text.length]
          : kind === 1
            ? random()
            : kind === 2
              ? 0
              : kind === 3
                ? [0xde, 0xad, 0xbe, 0xef, seg & 0xff][i % 5]
                : kind === 4
                  ? random() & 0x03
                  : i % 2
                    ? random()
                    : i & 0xff;
    }
  }
  return out;
}

/**
 * Writes `raw` to `dir`, converts it with `qemu-img convert -c` to a qcow2 image of the given
 * compression type and cluster size, and returns that image's compressed clusters.
 */
export function qemuCompressedClusters(
  dir: string,
  raw: Uint8Array,
  type: CompressionType,
  clusterSize: number,
): CompressedCluster[] {
  const rawPath = join(dir, 'source.raw');
  const imagePath = join(dir, `${type}-${clusterSize}.qcow2`);
  writeFileSync(rawPath, raw);
  const options = `compression_type=${QEMU_COMPRESSION_TYPE[type]},cluster_size=${clusterSize}`;
  execFileSync('qemu-img', ['convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', options, rawPath, imagePath]);
  const image = readFileSync(imagePath);
  return compressedClusters(new Uint8Array(image.buffer, image.byteOffset, image.byteLength));
}

/**
 * How many clusters' descriptors reach into the compressed data of the next cluster in the file:
 * for those, the bytes after the stream are the head of another stream, not padding.
 */
export function overlapping(clusters: readonly CompressedCluster[]): number {
  const byHost = [...clusters].sort((a, b) => a.hostOffset - b.hostOffset);
  return byHost.filter(
    (c, i) => i + 1 < byHost.length && c.hostOffset + c.src.length > byHost[i + 1].hostOffset,
  ).length;
}

/** Every compressed cluster of the active L1 table of a v2/v3 image without extended L2. */
export function compressedClusters(image: Uint8Array): CompressedCluster[] {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const clusterBits = view.getUint32(20);
  const clusterSize = 2 ** clusterBits;
  const l1Size = view.getUint32(36);
  const l1Offset = Number(view.getBigUint64(40));
  const entriesPerL2 = clusterSize / 8;
  const clusters: CompressedCluster[] = [];
  for (let i = 0; i < l1Size; i++) {
    const l2Offset = Number(view.getBigUint64(l1Offset + 8 * i) & 0x00ff_ffff_ffff_fe00n);
    if (l2Offset === 0) continue;
    for (let j = 0; j < entriesPerL2; j++) {
      const entry = view.getBigUint64(l2Offset + 8 * j);
      if (!(entry & (1n << 62n))) continue;
      clusters.push({
        guestOffset: (i * entriesPerL2 + j) * clusterSize,
        ...descriptor(image, entry, clusterBits),
      });
    }
  }
  return clusters;
}

/**
 * The bytes of a compressed descriptor (x = 62 - (cluster_bits - 8)): host offset in bits
 * 0..x-1, additional 512-byte sectors in bits x..61. Past the end of the file QEMU reads zeros.
 */
function descriptor(
  image: Uint8Array,
  entry: bigint,
  clusterBits: number,
): { hostOffset: number; src: Uint8Array } {
  const x = BigInt(62 - (clusterBits - 8));
  const offset = Number(entry & ((1n << x) - 1n));
  const sectors = Number((entry >> x) & ((1n << BigInt(clusterBits - 8)) - 1n)) + 1;
  const src = new Uint8Array(sectors * 512 - (offset % 512));
  src.set(image.subarray(offset, offset + src.length));
  return { hostOffset: offset, src };
}
