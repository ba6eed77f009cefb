/**
 * Just enough of the Zstandard frame format (RFC 8878 §3.1) to find where a frame ends, as
 * libzstd's ZSTD_findFrameCompressedSize does: fzstd decodes everything it is given, while the
 * bytes a qcow2 descriptor covers go on past the last frame.
 */

const FRAME_MAGIC = 0xfd2fb528;
/** Skippable frames use the 16 magic numbers 0x184D2A50..0x184D2A5F (RFC 8878 §3.1.2). */
const SKIPPABLE_MAGIC = 0x184d2a50;
/** RFC 8878 §3.1.1.1.2 asks decoders to support windows of at least 8 MiB; we allow no more. */
const MAX_WINDOW = 8 << 20;

export interface ZstdFrame {
  /** Offset just past the frame (after its checksum, if any). */
  readonly end: number;
  readonly skippable: boolean;
  /** Frame_Content_Size, when the header has it. */
  readonly contentSize?: number;
}

/**
 * Parses the frame starting at `at` in `src` and walks its block headers. `room` is how many
 * output bytes the caller can still take: a frame declaring more is refused before decoding, and
 * so is a window beyond MAX_WINDOW, so a hostile header cannot make the decoder allocate much.
 * Throws an Error naming the problem if the frame is malformed, truncated or unsupported.
 */
export function findZstdFrame(src: Uint8Array, at: number, room: number): ZstdFrame {
  const magic = readLE(src, at, 4);
  if (magic >>> 4 === SKIPPABLE_MAGIC >>> 4) {
    return { end: within(src, at + 8 + readLE(src, at + 4, 4), at), skippable: true };
  }
  if (magic !== FRAME_MAGIC) throw new Error(`no zstd frame at byte ${at}`);
  const descriptor = readLE(src, at + 4, 1);
  if (descriptor & 0x08) throw new Error(`zstd frame at byte ${at} sets a reserved header bit`);
  const singleSegment = (descriptor >> 5) & 1;
  const dictIdBytes = [0, 1, 2, 4][descriptor & 3];
  const sizeBytes = [singleSegment, 2, 4, 8][descriptor >> 6];
  let p = at + 5;
  let window = 0;
  if (!singleSegment) {
    const w = readLE(src, p++, 1);
    const base = 2 ** (10 + (w >> 3));
    window = base + (base / 8) * (w & 7);
  }
  if (readLE(src, p, dictIdBytes) !== 0) throw new Error(`zstd frame at byte ${at} needs a dictionary`);
  p += dictIdBytes;
  // A 2-byte size is stored minus 256 (RFC 8878 §3.1.1.1.4).
  const contentSize = sizeBytes ? readLE(src, p, sizeBytes) + (sizeBytes === 2 ? 256 : 0) : undefined;
  p += sizeBytes;
  if (contentSize !== undefined && contentSize > room) {
    throw new Error(`zstd frame at byte ${at} holds ${contentSize} bytes, more than the ${room} left`);
  }
  if (window > MAX_WINDOW) throw new Error(`zstd frame at byte ${at} needs a ${window}-byte window`);
  const end = endOfBlocks(src, p, at);
  return { end: within(src, end + ((descriptor >> 2) & 1) * 4, at), skippable: false, contentSize };
}

/** Walks block headers (RFC 8878 §3.1.1.2) from `p`; returns the offset after the last block. */
function endOfBlocks(src: Uint8Array, p: number, frameAt: number): number {
  for (;;) {
    const header = readLE(src, p, 3);
    const type = (header >> 1) & 3;
    if (type === 3) throw new Error(`zstd frame at byte ${frameAt} has a reserved block type`);
    // An RLE block stores its one byte; raw and compressed blocks store Block_Size bytes.
    p = within(src, p + 3 + (type === 1 ? 1 : header >>> 3), frameAt);
    if (header & 1) return p;
  }
}

/** Reads a little-endian unsigned field; throws if it runs past the end of `src`. */
function readLE(src: Uint8Array, at: number, bytes: number): number {
  within(src, at + bytes, at);
  let value = 0;
  for (let i = bytes - 1; i >= 0; i--) value = value * 256 + src[at + i];
  return value;
}

function within(src: Uint8Array, end: number, frameAt: number): number {
  if (end > src.length) throw new Error(`zstd frame at byte ${frameAt} is truncated`);
  return end;
}
