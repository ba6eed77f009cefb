/** block_resize (qapi/block-core.json; blockdev.c qmp_block_resize). */
import { genericError } from '../../block/errors.ts';
import { lookupNode } from './lookup.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

export const blockResize: QmpCommand = {
  name: 'block_resize',
  help: 'resize a drive medium or a node to `size` bytes (growing a qcow2 image grows its L1 table)',
  args: {
    device: { type: 'str', optional: true, help: 'the drive whose medium is resized' },
    'node-name': { type: 'str', optional: true, help: 'the node to resize' },
    size: { type: 'int', help: 'the new size in bytes' },
  },
  async run(ctx, args) {
    const node = lookupNode(
      ctx.graph,
      args.device as string | undefined,
      args['node-name'] as string | undefined,
    );
    const size = args.size as number;
    if (size < 0) throw genericError("Parameter 'size' expects a >0 size");
    // bdrv_co_truncate's refusal, before the driver is asked.
    if (node.readOnly) throw genericError('Image is read-only');
    await node.truncate(size);
    return NOTHING;
  },
};
