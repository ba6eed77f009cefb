/** The cluster size filters align to, as bdrv_get_info answers it through filters. */
import type { BlockNode } from '../../block/node.ts';

/**
 * `node`'s cluster size: its driver's, or for a filter without one, that of the node it filters
 * (bdrv_get_info falls through to bdrv_filter_bs); 1 when nothing below has clusters.
 */
export function clusterSize(node: BlockNode): number {
  const own = node.ops.imageFacts?.().clusterSize;
  if (own) return own;
  const below = node.driver.kind === 'filter' ? node.primaryChild() : undefined;
  return below ? clusterSize(below) : 1;
}
