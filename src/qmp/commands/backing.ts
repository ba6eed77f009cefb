/**
 * change-backing-file (qapi/block-core.json; blockdev.c qmp_change_backing_file): rewrites the
 * backing file name recorded in the header of `image-node-name`, an image in the chain of the
 * root `device`. The graph is not changed: the backing child stays the node it was.
 */
import { errnoOf, genericError, ioError, STRERROR } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import { lookupNode, lookupRootNode } from './lookup.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

/** The next node down the chain: the backing child, or what a filter or raw passes through to. */
function below(node: BlockNode): BlockNode | undefined {
  const backing = node.childList.find((c) => c.role === 'backing')?.node;
  if (backing) return backing;
  return node.driver.kind === 'filter' || node.driver.name === 'raw' ? node.primaryChild() : undefined;
}

/** bdrv_chain_contains. */
function chainContains(top: BlockNode, node: BlockNode): boolean {
  for (let n: BlockNode | undefined = top; n; n = below(n)) if (n === node) return true;
  return false;
}

export const changeBackingFile: QmpCommand = {
  name: 'change-backing-file',
  help: "record `backing-file` as the backing file in the header of an image of `device`'s chain",
  args: {
    device: { type: 'str', help: 'the drive or root node-name whose chain holds the image' },
    'image-node-name': { type: 'str', help: 'the image whose header is rewritten' },
    'backing-file': { type: 'str', help: 'the backing file name to record' },
  },
  async run(ctx, args) {
    const device = args.device as string;
    const backingFile = args['backing-file'] as string;
    const root = lookupRootNode(ctx.graph, device);
    const image = lookupNode(ctx.graph, undefined, args['image-node-name'] as string);
    if (!image.childList.some((c) => c.role === 'backing')) {
      throw genericError('not allowing backing file change on an image without a backing file');
    }
    if (!chainContains(root, image)) {
      throw genericError(`'${device}' and image file are not in the same chain`);
    }
    // QEMU reopens a read-only image read-write for the change; blockgraph cannot reopen nodes.
    if (image.readOnly) throw genericError('Block node is read-only');
    await image.drain();
    try {
      if (!image.ops.changeBackingFile) throw ioError('ENOTSUP');
      // QEMU 7.2 records the image's own format as the backing format (measured: a raw
      // backing file becomes 'qcow2').
      await image.ops.changeBackingFile(backingFile, image.driver.name);
    } catch (err) {
      throw genericError(`Could not change backing file to '${backingFile}': ${STRERROR[errnoOf(err)]}`);
    }
    return NOTHING;
  },
};
