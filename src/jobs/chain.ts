/** Walking a backing chain (QEMU's bdrv_backing_chain_next, bdrv_find_base, bdrv_chain_contains). */
import type { BlockNode } from '../block/node.ts';

/** The node's backing child (`backing` role), if any. */
export function backingOf(node: BlockNode): BlockNode | undefined {
  return node.childList.find((e) => e.role === 'backing')?.node;
}

/** How many backing links lead from `top` down to `node`; undefined when `node` is not below. */
export function depthBelow(top: BlockNode, node: BlockNode): number | undefined {
  let depth = 0;
  for (let n: BlockNode | undefined = top; n; n = backingOf(n), depth++) if (n === node) return depth;
  return undefined;
}

/** The node above `node` in `top`'s chain (its overlay), or undefined when `node` is `top`. */
export function overlayOf(top: BlockNode, node: BlockNode): BlockNode | undefined {
  for (let n: BlockNode | undefined = top; n; n = backingOf(n)) if (backingOf(n) === node) return n;
  return undefined;
}

/**
 * Whether [offset, offset + bytes) of `top` reads data stored strictly above `base` (depth in
 * top's chain below `baseDepth`) but not in `top` itself; returns how many bytes the answer
 * covers. What stream and commit must copy.
 */
export async function allocatedBetween(
  top: BlockNode,
  offset: number,
  bytes: number,
  firstDepth: number,
  baseDepth: number,
): Promise<{ bytes: number; copy: boolean }> {
  const s = await top.blockStatus(offset, bytes);
  const copy = s.allocated && s.depth >= firstDepth && s.depth < baseDepth;
  return { bytes: Math.min(s.bytes, bytes), copy };
}
