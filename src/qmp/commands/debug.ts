/**
 * x-debug-query-block-graph (block.c bdrv_get_xdbg_block_graph): backends and nodes with
 * numeric ids handed out in order of first sight — backends first, then nodes in registration
 * order, each edge's child numbered when the edge is seen — and lists built by prepending, as
 * QEMU builds them, so both the ids and the order match QEMU's output for the same graph.
 */
import type { BdrvChild } from '../../block/node.ts';
import { PERM_NAMES } from '../../block/types.ts';
import type { QmpCommand } from './types.ts';

/** QAPI BlockPermission names, by the bit of each. */
const QAPI_PERM: Readonly<Record<string, string>> = {
  'consistent read': 'consistent-read',
  write: 'write',
  'write unchanged': 'write-unchanged',
  resize: 'resize',
};

/** A mask as QEMU lists it: bits in enum order, prepended, so the highest bit comes first. */
function permList(mask: number): string[] {
  return PERM_NAMES.filter(([bit]) => mask & bit)
    .map(([, name]) => QAPI_PERM[name])
    .reverse();
}

interface GraphNode {
  id: number;
  type: 'block-backend' | 'block-driver';
  name: string;
}

export const xDebugQueryBlockGraph: QmpCommand = {
  name: 'x-debug-query-block-graph',
  help: 'the whole graph: backends and nodes, and the edges with their permissions',
  args: {},
  run(ctx) {
    const ids = new Map<object, number>();
    const idOf = (x: object): number => {
      if (!ids.has(x)) ids.set(x, ids.size + 1);
      return ids.get(x) as number;
    };
    const nodes: GraphNode[] = [];
    const edges: Record<string, unknown>[] = [];
    const addEdge = (parent: object, edge: BdrvChild) => {
      const from = idOf(parent);
      const to = idOf(edge.node);
      edges.unshift({
        parent: from,
        child: to,
        name: edge.name,
        perm: permList(edge.perm),
        'shared-perm': permList(edge.shared),
      });
    };
    for (const blk of ctx.graph.backends.values()) {
      nodes.unshift({ id: idOf(blk), type: 'block-backend', name: blk.name });
      const root = blk.root && blk.root.parents.find((p) => p.parent === blk);
      if (root) addEdge(blk, root.edge);
    }
    for (const node of ctx.graph.nodes.values()) {
      nodes.unshift({ id: idOf(node), type: 'block-driver', name: node.nodeName });
      // QEMU keeps children newest first (QLIST_INSERT_HEAD).
      for (const edge of [...node.childList].reverse()) addEdge(node, edge);
    }
    return { nodes, edges };
  },
};
