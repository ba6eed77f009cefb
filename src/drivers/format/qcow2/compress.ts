/**
 * Decompression of qcow2 compressed clusters (docs/interop/qcow2.txt, "Compressed Clusters
 * Descriptor" and the header's compression_type: 0 zlib, 1 zstd), with QEMU's acceptance rules
 * from block/qcow2-threads.c (qcow2_zlib_decompress, qcow2_zstd_decompress).
 *
 * A descriptor counts whole 512-byte sectors, so the bytes it covers run past the end of the
 * compressed stream into whatever follows (often the head of the next compressed cluster):
 * both decoders here stop where QEMU's do and ignore that tail.
 *
 * Pure JavaScript (fflate, fzstd), so Node and the browser Worker decode identically: Node 20's
 * zlib has no zstd, and Chromium's DecompressionStream rejects bytes after the end of a deflate
 * stream (see e2e/compress.spec.ts).
 */
import { Inflate, inflateSync } from 'fflate';
import { Decompress } from 'fzstd';
import { BlockIOError } from '../../../block/errors.ts';
import { findZstdFrame } from './zstd-frame.ts';

export type CompressionType = 'deflate' | 'zstd';

/**
 * Decompresses one cluster: `src` is the bytes the descriptor covers (may extend past the end of
 * the compressed stream), `dst` is exactly one cluster. Throws BlockIOError('EIO', message naming
 * what failed) if the stream is invalid or produces fewer than dst.length bytes; zstd frames
 * that produce more also fail, as in QEMU. A deflate stream that goes on past dst.length is
 * accepted, as QEMU's inflate accepts it (Z_BUF_ERROR with a full buffer; checked with
 * qemu-img 7.2).
 */
export async function decompressCluster(
  type: CompressionType,
  src: Uint8Array,
  dst: Uint8Array,
): Promise<void> {
  try {
    if (type === 'deflate') inflateCluster(src, dst);
    else unzstdCluster(src, dst);
  } catch (err) {
    if (err instanceof BlockIOError) throw err;
    throw corrupt(type, (err as Error).message);
  }
}

function corrupt(type: CompressionType, what: string): BlockIOError {
  return new BlockIOError('EIO', `qcow2: invalid ${type} compressed cluster: ${what}`);
}

/**
 * Input taken per step when inflating longer streams. fflate cannot stop when the output is full,
 * so each step may decode up to deflate's 1032:1 ratio times this past the cluster (~68 MB,
 * well under a second), however long `src` is; smaller inputs are inflated in one step.
 */
const INFLATE_STEP = (64 << 10) + 512;

/** Raw deflate (no zlib header), as written with windowBits -12; decoding fills `dst`. */
function inflateCluster(src: Uint8Array, dst: Uint8Array): void {
  const produced = src.length <= INFLATE_STEP ? inflateAtOnce(src, dst) : inflateInSteps(src, dst);
  if (produced < dst.length) {
    throw corrupt('deflate', `the stream ends after ${produced} of ${dst.length} bytes`);
  }
}

/** Straight into `dst`, the fast path; returns the bytes produced (at most dst.length). */
function inflateAtOnce(src: Uint8Array, dst: Uint8Array): number {
  // fflate returns the untouched output buffer for empty input. Unlike zlib it also wants the
  // stream's end: a stream cut right after the cluster's last byte fails here, not in QEMU
  // (QEMU never writes one; its compressor always finishes the stream).
  if (src.length === 0) throw corrupt('deflate', 'no compressed data');
  return inflateSync(src, { out: dst }).length;
}

/** Step by step, stopping once `dst` is full as zlib does; returns the bytes produced. */
function inflateInSteps(src: Uint8Array, dst: Uint8Array): number {
  let produced = 0;
  const inflater = new Inflate((chunk) => {
    dst.set(chunk.subarray(0, dst.length - produced), produced);
    produced += chunk.length;
  });
  // Never marked final: input that runs out is then reported as a short cluster by the caller.
  for (let at = 0; at < src.length && produced < dst.length; at += INFLATE_STEP) {
    inflater.push(src.subarray(at, at + INFLATE_STEP));
  }
  return produced;
}

/**
 * zstd: one or more frames (skippable ones allowed) until `dst` is full, as
 * qcow2_zstd_decompress loops over ZSTD_decompressStream; bytes after that frame are ignored.
 */
function unzstdCluster(src: Uint8Array, dst: Uint8Array): void {
  let inPos = 0;
  let outPos = 0;
  while (outPos < dst.length) {
    if (inPos >= src.length) {
      throw corrupt('zstd', `the frames end after ${outPos} of ${dst.length} bytes`);
    }
    const frame = findZstdFrame(src, inPos, dst.length - outPos);
    if (!frame.skippable) {
      const produced = decodeFrame(src.subarray(inPos, frame.end), dst, outPos);
      if (frame.contentSize !== undefined && produced !== frame.contentSize) {
        throw corrupt(
          'zstd',
          `frame at byte ${inPos} declares ${frame.contentSize} bytes, holds ${produced}`,
        );
      }
      outPos += produced;
    }
    inPos = frame.end;
  }
}

/** Decodes one whole frame into dst at `at`; returns the bytes it produced. */
function decodeFrame(frame: Uint8Array, dst: Uint8Array, at: number): number {
  let pos = at;
  // The streaming decoder hands over each block's exact output, so overruns are seen.
  const decoder = new Decompress((block) => {
    if (block.length > dst.length - pos) {
      throw corrupt('zstd', `the frames produce more than ${dst.length} bytes`);
    }
    dst.set(block, pos);
    pos += block.length;
  });
  decoder.push(frame, true);
  return pos - at;
}
