/**
 * Request alignment and read-modify-write (QEMU's bdrv_co_preadv/pwritev padding in block/io.c).
 * A BlockBackend accepts byte-granular requests; a node may need them aligned (blkdebug's `align`,
 * a host device with 4 KiB sectors). Unaligned head and tail blocks go through a bounce buffer:
 * reads read the whole block, writes read it, patch it and write it back. The aligned middle is
 * passed through without copying. The caller serialises overlapping requests (request-tracker.ts)
 * so two read-modify-writes of one block cannot interleave.
 */
import type { BlockNode } from './node.ts';
import type { WriteFlags, ZeroOptions } from './types.ts';

/**
 * The alignment requests to `node` need: its driver's `requestAlignment`, and for raw and filter
 * nodes, which forward requests unchanged, also that of the children they forward to
 * (QEMU merges the limits of data and filtered children in bdrv_refresh_limits).
 */
export function requestAlignment(node: BlockNode): number {
  let align = node.ops.requestAlignment ?? 1;
  if (node.driver.kind === 'filter' || node.driver.name === 'raw') {
    for (const c of node.childList)
      if (c.role !== 'backing') align = Math.max(align, requestAlignment(c.node));
  }
  return align;
}

const alignDown = (x: number, a: number): number => x - (x % a);
const alignUp = (x: number, a: number): number => alignDown(x + a - 1, a);

/** A piece of a request: `padded` pieces are whole blocks that only partly belong to it. */
interface Segment {
  start: number;
  end: number;
  padded: boolean;
}

/**
 * The byte range [start, end) a request covers once padded to `align`. Padding never extends
 * past the end of the node (`length`): a node whose size is not a multiple of its alignment
 * accepts a short last block, as reads past EOF do in QEMU.
 */
export function paddedRange(offset: number, end: number, align: number, length: number) {
  return { start: alignDown(offset, align), end: Math.min(alignUp(end, align), Math.max(length, end)) };
}

/** Splits [offset, end) into at most a padded head block, an aligned middle and a padded tail block. */
function split(offset: number, end: number, align: number, length: number): Segment[] {
  if (offset === end) return [];
  const clamp = (x: number) => Math.min(x, Math.max(length, end));
  const midStart = alignUp(offset, align);
  const midEnd = alignDown(end, align);
  if (midStart >= midEnd) return [{ ...paddedRange(offset, end, align, length), padded: true }];
  const out: Segment[] = [];
  if (offset < midStart) out.push({ start: midStart - align, end: midStart, padded: true });
  out.push({ start: midStart, end: midEnd, padded: false });
  if (end > midEnd) out.push({ start: midEnd, end: clamp(midEnd + align), padded: true });
  return out;
}

/** Reads a padded segment into a bounce buffer; returns it and the request's part of it. */
async function bounce(node: BlockNode, seg: Segment, offset: number, end: number) {
  const buf = new Uint8Array(seg.end - seg.start);
  await node.read(seg.start, buf);
  const from = Math.max(seg.start, offset);
  const to = Math.min(seg.end, end);
  return { buf, at: from - seg.start, from: from - offset, to: to - offset };
}

export async function alignedRead(node: BlockNode, offset: number, dst: Uint8Array, align: number) {
  const end = offset + dst.length;
  for (const seg of split(offset, end, align, node.length())) {
    if (!seg.padded) {
      await node.read(seg.start, dst.subarray(seg.start - offset, seg.end - offset));
      continue;
    }
    const b = await bounce(node, seg, offset, end);
    dst.set(b.buf.subarray(b.at, b.at + b.to - b.from), b.from);
  }
}

export async function alignedWrite(
  node: BlockNode,
  offset: number,
  src: Uint8Array,
  flags: WriteFlags,
  align: number,
) {
  const end = offset + src.length;
  for (const seg of split(offset, end, align, node.length())) {
    if (!seg.padded) {
      await node.write(seg.start, src.subarray(seg.start - offset, seg.end - offset), flags);
      continue;
    }
    const b = await bounce(node, seg, offset, end);
    b.buf.set(src.subarray(b.from, b.to), b.at);
    await node.write(seg.start, b.buf, flags);
  }
}

export async function alignedWriteZeroes(
  node: BlockNode,
  offset: number,
  bytes: number,
  opts: ZeroOptions,
  align: number,
) {
  const end = offset + bytes;
  for (const seg of split(offset, end, align, node.length())) {
    if (!seg.padded) {
      await node.writeZeroes(seg.start, seg.end - seg.start, opts);
      continue;
    }
    const b = await bounce(node, seg, offset, end);
    b.buf.fill(0, b.at, b.at + b.to - b.from);
    await node.write(seg.start, b.buf);
  }
}

/** Discards only the whole blocks inside the range: a discard is advisory (bdrv_co_pdiscard). */
export async function alignedDiscard(node: BlockNode, offset: number, bytes: number, align: number) {
  for (const seg of split(offset, offset + bytes, align, node.length())) {
    if (!seg.padded) await node.discard(seg.start, seg.end - seg.start);
  }
}
