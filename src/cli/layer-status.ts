/**
 * Block status as qemu-img map and compare see it: per layer of the backing chain
 * (qemu-img.c: get_block_status; block/io.c: bdrv_co_block_status). A node's blockStatus
 * already answers for its whole chain; this asks again one layer down wherever the answer came
 * from below, so that `allocated` is the flag of the layer that holds the range (map's "present")
 * and, as in QEMU, a range past the end of a shorter backing file is zeros of the layer above.
 */
import type { BlockNode } from '../block/node.ts';
import type { BlockStatus } from '../block/types.ts';

/** Filters pass everything to their child; qemu-img looks through them (bdrv_skip_filters). */
export function skipFilters(node: BlockNode): BlockNode {
  let n = node;
  for (let c = n.primaryChild(); n.driver.kind === 'filter' && c; c = n.primaryChild()) n = c;
  return n;
}

/** The backing node of `node`, filters skipped (bdrv_cow_bs), if any. */
export function backingOf(node: BlockNode): BlockNode | undefined {
  const backing = skipFilters(node).childList.find((c) => c.role === 'backing')?.node;
  return backing && skipFilters(backing);
}

/**
 * The status of [offset, offset + bytes) of `node`: `depth` is the layer that answered and
 * `allocated` that layer's own flag. `bytes` of the answer is at most `bytes`.
 */
export async function layerStatus(node: BlockNode, offset: number, bytes: number): Promise<BlockStatus> {
  let layer = skipFilters(node);
  let n = bytes;
  for (let depth = 0; ; depth++) {
    const s = await layer.blockStatus(offset, n);
    n = Math.min(s.bytes, n);
    const below = backingOf(layer);
    if (s.depth === 0 || !below) return { ...s, bytes: n, depth };
    // Past the end of the backing file the overlay reads zeros itself (want_zero in block/io.c).
    if (offset >= below.length()) return { bytes: n, data: false, zero: true, allocated: false, depth };
    layer = below;
  }
}
