/** Finding the node a QMP command names (blockdev.c bdrv_lookup_bs, qmp_get_root_bs). */
import { genericError } from '../../block/errors.ts';
import { BlockNode } from '../../block/node.ts';
import type { BlockGraph } from '../../graph/graph.ts';

/**
 * bdrv_lookup_bs: the medium of the drive `device` if there is one, else the node `nodeName`;
 * QEMU's error names both (an absent one as '').
 */
export function lookupNode(graph: BlockGraph, device?: string, nodeName?: string): BlockNode {
  const root = device === undefined ? undefined : graph.backends.get(device)?.root;
  if (root) return root;
  const node = nodeName === undefined ? undefined : graph.nodes.get(nodeName);
  if (node) return node;
  throw genericError(`Cannot find device='${device ?? ''}' nor node-name='${nodeName ?? ''}'`);
}

/**
 * qmp_get_root_bs: `name` as a drive or a node-name, which must be a root node (no parent but
 * BlockBackends: bdrv_is_root_node).
 */
export function lookupRootNode(graph: BlockGraph, name: string): BlockNode {
  const node = lookupNode(graph, name, name);
  if (node.parents.some(({ parent }) => parent instanceof BlockNode)) {
    throw genericError('Need a root block node');
  }
  return node;
}
