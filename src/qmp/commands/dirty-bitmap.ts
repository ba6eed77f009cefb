/**
 * Dirty bitmap commands (qapi/block-core.json; block/monitor/bitmap-qmp-cmds.c):
 * block-dirty-bitmap-add, -remove, -clear, -enable, -disable, -merge, with QEMU's checks in
 * QEMU's order and its texts.
 */
import { BdrvDirtyBitmap, BitmapCheck } from '../../bitmaps/dirty-bitmap.ts';
import { createBitmap, defaultGranularity, findBitmap, releaseBitmap } from '../../bitmaps/node-bitmaps.ts';
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { BlockGraph } from '../../graph/graph.ts';
import { checkArgs, type ArgsSchema } from '../args.ts';
import { lookupNode } from './lookup.ts';
import { NOTHING, type QmpCommand } from './types.ts';

const NODE_AND_NAME: ArgsSchema = {
  node: { type: 'str', help: 'the drive or node-name the bitmap belongs to' },
  name: { type: 'str', help: 'the bitmap' },
};

/** block_dirty_bitmap_lookup: the node (any error becomes "Node 'x' not found") and the bitmap. */
export function lookupBitmap(
  graph: BlockGraph,
  nodeName: string,
  name: string,
): { node: BlockNode; bitmap: BdrvDirtyBitmap } {
  let node: BlockNode;
  try {
    node = lookupNode(graph, nodeName, nodeName);
  } catch {
    throw genericError(`Node '${nodeName}' not found`);
  }
  const bitmap = findBitmap(node, name);
  if (!bitmap) throw genericError(`Dirty bitmap '${name}' not found`);
  return { node, bitmap };
}

/** bdrv_get_device_or_node_name: the drive the node is the medium of, else its node-name. */
function deviceOrNodeName(graph: BlockGraph, node: BlockNode): string {
  for (const blk of graph.backends.values()) if (blk.root === node) return blk.name;
  return node.nodeName;
}

export const blockDirtyBitmapAdd: QmpCommand = {
  name: 'block-dirty-bitmap-add',
  help: 'create a dirty bitmap on a node (granularity, persistent, disabled)',
  args: {
    ...NODE_AND_NAME,
    granularity: { type: 'int', optional: true, help: 'bytes per bit: a power of 2, at least 512' },
    persistent: { type: 'bool', optional: true, help: 'store the bitmap in the image (qcow2)' },
    disabled: { type: 'bool', optional: true, help: 'create it without recording writes' },
  },
  run(ctx, args) {
    const asked = args.granularity as number | undefined;
    // QAPI's uint32 is checked while parsing, before the command runs.
    if (asked !== undefined && (asked < 0 || asked > 0xffffffff)) {
      throw genericError("Parameter 'granularity' expects uint32_t");
    }
    const name = args.name as string;
    if (name === '') throw genericError('Bitmap name cannot be empty');
    const node = lookupNode(ctx.graph, args.node as string, args.node as string);
    if (asked !== undefined && (asked < 512 || (asked & (asked - 1)) !== 0)) {
      throw genericError('Granularity must be power of 2 and at least 512');
    }
    const granularity = asked ?? defaultGranularity(node);
    if (args.persistent === true) {
      const store = node.ops.persistentBitmaps;
      const where = deviceOrNodeName(ctx.graph, node);
      if (!store) throw genericError(`Can't store persistent bitmaps to ${where}: Operation not supported`);
      store.canStore(name, granularity, node.dirtyBitmaps, where);
    }
    const bitmap = createBitmap(node, granularity, name);
    bitmap.disabled = args.disabled === true;
    bitmap.persistent = args.persistent === true;
    return NOTHING;
  },
};

export const blockDirtyBitmapRemove: QmpCommand = {
  name: 'block-dirty-bitmap-remove',
  help: 'delete a dirty bitmap (and from the image, if persistent)',
  args: NODE_AND_NAME,
  async run(ctx, args) {
    const { node, bitmap } = lookupBitmap(ctx.graph, args.node as string, args.name as string);
    bitmap.check(BitmapCheck.BUSY | BitmapCheck.RO);
    if (bitmap.persistent) await node.ops.persistentBitmaps?.remove(bitmap.name!);
    releaseBitmap(node, bitmap);
    return NOTHING;
  },
};

export const blockDirtyBitmapClear: QmpCommand = {
  name: 'block-dirty-bitmap-clear',
  help: 'mark every chunk of a dirty bitmap clean',
  args: NODE_AND_NAME,
  run(ctx, args) {
    const { bitmap } = lookupBitmap(ctx.graph, args.node as string, args.name as string);
    bitmap.check(BitmapCheck.DEFAULT);
    bitmap.clear();
    return NOTHING;
  },
};

/** enable and disable: allowed on read-only bitmaps (BDRV_BITMAP_ALLOW_RO). */
function recordingCommand(name: string, help: string, disabled: boolean): QmpCommand {
  return {
    name,
    help,
    args: NODE_AND_NAME,
    run(ctx, args) {
      const { bitmap } = lookupBitmap(ctx.graph, args.node as string, args.name as string);
      bitmap.check(BitmapCheck.ALLOW_RO);
      bitmap.disabled = disabled;
      return NOTHING;
    },
  };
}

export const blockDirtyBitmapEnable = recordingCommand(
  'block-dirty-bitmap-enable',
  'let a dirty bitmap record writes',
  false,
);
export const blockDirtyBitmapDisable = recordingCommand(
  'block-dirty-bitmap-disable',
  'stop a dirty bitmap recording writes',
  true,
);

const MERGE_ARGS: ArgsSchema = {
  node: { type: 'str', help: 'the node of the target (and of sources named by a plain string)' },
  target: { type: 'str', help: 'the bitmap merged into' },
  bitmaps: { type: { list: 'str' }, help: 'sources: bitmap names, or {"node", "name"} objects' },
};

/** A BlockDirtyBitmapOrStr: a bitmap of `node`, or an external {node, name}. */
type MergeSource = string | { node: string; name: string };

export const blockDirtyBitmapMerge: QmpCommand = {
  name: 'block-dirty-bitmap-merge',
  help: 'merge dirty bitmaps into a target bitmap (all or nothing)',
  // The sources are an alternate (str or object), which the generic checker has no type for.
  args: 'boxed',
  run(ctx, args) {
    const sources = mergeSources(args);
    const { node, bitmap: target } = lookupBitmap(ctx.graph, args.node as string, args.target as string);
    // Into an anonymous copy first, so the target is unchanged when a source fails.
    const merged = new BdrvDirtyBitmap(undefined, target.granularity, target.size);
    for (const source of sources) {
      const src =
        typeof source === 'string'
          ? findBitmap(node, source)
          : lookupBitmap(ctx.graph, source.node, source.name).bitmap;
      if (!src) throw genericError(`Dirty bitmap '${source as string}' not found`);
      merged.merge(src);
    }
    target.merge(merged);
    return NOTHING;
  },
};

/** Checks merge's arguments as QAPI does: members in order, list items as BlockDirtyBitmapOrStr. */
function mergeSources(args: Record<string, unknown>): MergeSource[] {
  const list = args.bitmaps;
  checkArgs(MERGE_ARGS, { ...args, ...(Array.isArray(list) && { bitmaps: [] }) });
  return (list as unknown[]).map((item) => {
    if (typeof item === 'string') return item;
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw genericError("Invalid parameter type for 'null', expected: BlockDirtyBitmapOrStr");
    }
    const ref = checkArgs(NODE_AND_NAME, item as Record<string, unknown>);
    return { node: ref.node as string, name: ref.name as string };
  });
}
