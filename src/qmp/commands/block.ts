/** Node lifecycle commands (qapi/block-core.json): blockdev-add, blockdev-del. */
import { genericError } from '../../block/errors.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

export const blockdevAdd: QmpCommand = {
  name: 'blockdev-add',
  help: 'open a node (and its inline children) from BlockdevOptions; it lives until blockdev-del',
  args: 'boxed',
  async run(ctx, args) {
    // QAPI checks the driver union before qmp_blockdev_add sees the options; only the root
    // must be named there (inline children may be auto-named).
    if (args.driver !== undefined && !Object.hasOwn(args, 'node-name')) {
      throw genericError("'node-name' must be specified for the root node");
    }
    await ctx.graph.blockdevAdd(args, 'qmp');
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
