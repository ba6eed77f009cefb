/**
 * blockdev-snapshot-internal-sync as a transaction action (blockdev.c internal_snapshot_*): the
 * command does the work at prepare; abort deletes the snapshot it made.
 */
import { lookupRootNode } from './lookup.ts';
import { blockdevSnapshotInternalSync, snapshotNode } from './snapshot.ts';
import type { TransactionAction } from './transaction.ts';

export const internalSnapshotAction: TransactionAction = {
  type: blockdevSnapshotInternalSync.name,
  help: blockdevSnapshotInternalSync.help,
  args: blockdevSnapshotInternalSync.args as TransactionAction['args'],
  async prepare(ctx, data) {
    await blockdevSnapshotInternalSync.run(ctx, data);
    const node = snapshotNode(lookupRootNode(ctx.graph, data.device as string))!;
    return { abort: () => node.ops.snapshotDelete!(undefined, data.name as string) };
  },
};
