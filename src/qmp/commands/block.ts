/** Node lifecycle commands (qapi/block-core.json): blockdev-add, blockdev-del. */
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { OptionSource } from '../../config/validate.ts';
import type { BlockGraph } from '../../graph/graph.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

/**
 * qmp_blockdev_add, shared by QMP and --blockdev: the root node must be named (inline children
 * may be auto-named). QAPI has checked the driver union before this check, so a missing driver
 * is reported first.
 */
export function addRootNode(
  graph: BlockGraph,
  options: Record<string, unknown>,
  source: OptionSource,
): Promise<BlockNode> {
  if (options.driver !== undefined && !Object.hasOwn(options, 'node-name')) {
    throw genericError("'node-name' must be specified for the root node");
  }
  return graph.blockdevAdd(options, source);
}

export const blockdevAdd: QmpCommand = {
  name: 'blockdev-add',
  help: 'open a node (and its inline children) from BlockdevOptions; it lives until blockdev-del',
  args: 'boxed',
  async run(ctx, args) {
    await addRootNode(ctx.graph, args, 'qmp');
    return NOTHING;
  },
};

export const blockdevDel: QmpCommand = {
  name: 'blockdev-del',
  help: 'close a node made by blockdev-add that nothing uses any more',
  args: { 'node-name': { type: 'str', help: 'the node to delete' } },
  async run(ctx, args) {
    await ctx.graph.blockdevDel(args['node-name'] as string);
    return NOTHING;
  },
};
