/**
 * Block queries (qapi/block-core.json, block/qapi.c): query-named-block-nodes, query-block,
 * query-blockstats. Node lists come in QEMU's orders: query-named-block-nodes builds its list by
 * prepending, so the newest node comes first; query-blockstats appends, oldest first.
 */
import { BlockAcctStats, type BlockDeviceStats } from '../../block/backend-stats.ts';
import type { BlockNode } from '../../block/node.ts';
import { nodeInfo } from '../../block/node-info.ts';
import type { QmpCommand } from './types.ts';

export const queryNamedBlockNodes: QmpCommand = {
  name: 'query-named-block-nodes',
  help: 'every node with its BlockDeviceInfo; without flat, images nest their backing chain',
  args: { flat: { type: 'bool', optional: true, help: 'leave out the backing-image chain' } },
  run(ctx, args) {
    const flat = args.flat === true;
    return [...ctx.graph.nodes.values()].reverse().map((node) => (flat ? flatInfo(node) : nodeInfo(node)));
  },
};

/** bdrv_block_device_info(flat): the chain walk is skipped, and with it the depth count. */
function flatInfo(node: BlockNode): Record<string, unknown> {
  const info = nodeInfo(node);
  const image = { ...(info.image as Record<string, unknown>) };
  delete image['backing-image'];
  return { ...info, backing_file_depth: 0, image };
}

export const queryBlock: QmpCommand = {
  name: 'query-block',
  help: 'every named BlockBackend (drive) with the node inserted in it',
  args: {},
  run: (ctx) => [...ctx.graph.backends.values()].map((blk) => blk.queryBlock()),
};

export const queryBlockstats: QmpCommand = {
  name: 'query-blockstats',
  help: 'I/O statistics per drive, or with query-nodes per node',
  args: { 'query-nodes': { type: 'bool', optional: true, help: 'report every node instead of every drive' } },
  run(ctx, args) {
    if (args['query-nodes'] === true) return [...ctx.graph.nodes.values()].map((n) => nodeStats(n, false));
    return [...ctx.graph.backends.values()].map((blk) => {
      const info = blk.queryBlock();
      const entry: Record<string, unknown> = { device: blk.name };
      if (info.qdev !== undefined) entry.qdev = info.qdev;
      // The node part comes from the root, the counters from the backend (qmp_query_blockstats).
      return Object.assign(entry, blk.root ? nodeStats(blk.root, true) : {}, { stats: blk.stats() });
    });
  },
};

/**
 * bdrv_query_bds_stats: nodes keep no counters of their own here, so `stats` is zero as for a
 * node no backend accounts. `parent` is the data child's entry; `backing` only at drive level.
 */
function nodeStats(node: BlockNode, driveLevel: boolean): Record<string, unknown> {
  const entry: Record<string, unknown> = { 'node-name': node.nodeName, stats: zeroStats() };
  const data = dataChild(node);
  if (data) entry.parent = nodeStats(data, driveLevel);
  const backing = node.childList.find((c) => c.role === 'backing')?.node;
  if (driveLevel && backing) entry.backing = nodeStats(backing, driveLevel);
  return entry;
}

/** The child holding the node's data: a data-file, else the primary child (file, image). */
function dataChild(node: BlockNode): BlockNode | undefined {
  const byRole = (role: string) => node.childList.find((c) => c.role === role)?.node;
  return byRole('data-file') ?? byRole('file') ?? byRole('image');
}

function zeroStats(): BlockDeviceStats {
  return { ...new BlockAcctStats().snapshot(), account_invalid: false, account_failed: false };
}
