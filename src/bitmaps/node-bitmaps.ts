/**
 * Dirty bitmaps as the block layer manages them on a node (block/dirty-bitmap.c): create,
 * find, release, and the successor dance of jobs that consume a bitmap (create_successor,
 * abdicate, reclaim). The bits themselves are in dirty-bitmap.ts; the node marks them on writes.
 */
import { genericError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { BdrvDirtyBitmap, BitmapCheck } from './dirty-bitmap.ts';

/** bdrv_find_dirty_bitmap. */
export function findBitmap(node: BlockNode, name: string): BdrvDirtyBitmap | undefined {
  return node.dirtyBitmaps.find((b) => b.name === name);
}

/**
 * bdrv_create_dirty_bitmap: a new enabled bitmap over the whole node, listed first.
 * `name` undefined makes an anonymous one. Throws "Bitmap already exists: x".
 */
export function createBitmap(node: BlockNode, granularity: number, name?: string): BdrvDirtyBitmap {
  if (name !== undefined && findBitmap(node, name)) throw genericError(`Bitmap already exists: ${name}`);
  const bitmap = new BdrvDirtyBitmap(name, granularity, node.length());
  node.dirtyBitmaps.unshift(bitmap);
  return bitmap;
}

/** bdrv_release_dirty_bitmap: the bitmap is gone from the node. */
export function releaseBitmap(node: BlockNode, bitmap: BdrvDirtyBitmap): void {
  const list = node.dirtyBitmaps;
  const i = list.indexOf(bitmap);
  if (i >= 0) list.splice(i, 1);
}

/**
 * bdrv_get_default_bitmap_granularity: the node's cluster size clamped to [4 KiB, 64 KiB], or
 * 64 KiB for nodes without clusters.
 */
export function defaultGranularity(node: BlockNode): number {
  const cluster = clusterSizeOf(node);
  return cluster === undefined ? 65536 : Math.min(65536, Math.max(4096, cluster));
}

function clusterSizeOf(node: BlockNode): number | undefined {
  for (let n: BlockNode | undefined = node; n; n = filtered(n)) {
    const size = n.ops.imageFacts?.().clusterSize;
    if (size) return size;
  }
  return undefined;
}

/** The child a filter passes requests to (bdrv_get_info goes through filters). */
function filtered(node: BlockNode): BlockNode | undefined {
  return node.driver.kind === 'filter' ? node.primaryChild() : undefined;
}

/**
 * bdrv_dirty_bitmap_create_successor: the bitmap becomes busy and stops recording; an anonymous
 * enabled successor records the writes from now on, so the job can read a frozen image of it.
 */
export function createSuccessor(node: BlockNode, bitmap: BdrvDirtyBitmap): BdrvDirtyBitmap {
  bitmap.check(BitmapCheck.BUSY);
  if (bitmap.successor) throw genericError('Cannot create a successor for a bitmap that already has one');
  const successor = createBitmap(node, bitmap.granularity);
  if (bitmap.disabled) successor.disabled = true;
  bitmap.successor = successor;
  bitmap.busy = true;
  bitmap.disabled = true;
  return successor;
}

/**
 * bdrv_dirty_bitmap_abdicate: the bitmap's bits become its successor's (what was written since
 * the job began), as for a backup that succeeded.
 */
export function abdicate(node: BlockNode, bitmap: BdrvDirtyBitmap): void {
  const successor = takeSuccessor(node, bitmap);
  bitmap.clear();
  bitmap.merge(successor);
  bitmap.disabled = successor.disabled;
}

/**
 * bdrv_reclaim_dirty_bitmap: the successor's bits are merged back, so nothing written during the
 * job is lost and nothing the job consumed is cleared (a failed or cancelled backup).
 */
export function reclaim(node: BlockNode, bitmap: BdrvDirtyBitmap): void {
  const successor = takeSuccessor(node, bitmap);
  bitmap.merge(successor);
  bitmap.disabled = successor.disabled;
}

function takeSuccessor(node: BlockNode, bitmap: BdrvDirtyBitmap): BdrvDirtyBitmap {
  const successor = bitmap.successor;
  if (!successor) throw genericError(`Cannot reclaim a successor when none is present`);
  releaseBitmap(node, successor);
  bitmap.successor = undefined;
  bitmap.busy = false;
  return successor;
}
