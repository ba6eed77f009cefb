/**
 * Internal snapshots over QMP (qapi/block-core.json; blockdev.c internal_snapshot_action and
 * qmp_blockdev_snapshot_delete_internal_sync): the checks and texts of QEMU 7.2, in its order,
 * around the format driver's snapshot operations (qcow2: qcow2/snapshot-write.ts).
 */
import type { SnapshotInfo } from '../../block/driver.ts';
import { errnoOf, genericError, STRERROR } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import { lookupRootNode } from './lookup.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

/**
 * The node whose driver keeps the snapshots: `node` itself, or else (bdrv_snapshot_fallback)
 * the node below a driver whose only child is its primary one, as raw's and filters' is.
 */
export function snapshotNode(node: BlockNode): BlockNode | undefined {
  if (node.ops.snapshotCreate) return node;
  const primary = node.primaryChild();
  if (!primary || [...node.children()].length !== 1) return undefined;
  return snapshotNode(primary);
}

/**
 * bdrv_snapshot_find_by_id_and_name over the node's snapshot list: both selectors must match
 * when both are given. A node without snapshots fails as bdrv_snapshot_list does.
 */
function findSnapshot(node: BlockNode, id?: string, name?: string): SnapshotInfo | undefined {
  const target = snapshotNode(node);
  if (!target) throw genericError(`Failed to get a snapshot list: ${STRERROR.ENOTSUP}`);
  const list = target.ops.imageFacts?.().snapshots ?? [];
  return list.find((s) => (id === undefined || s.id === id) && (name === undefined || s.name === name));
}

export const blockdevSnapshotInternalSync: QmpCommand = {
  name: 'blockdev-snapshot-internal-sync',
  help: 'take an internal snapshot `name` of the root node or drive `device` (qcow2)',
  args: {
    device: { type: 'str', help: 'the drive or root node-name' },
    name: { type: 'str', help: 'the new snapshot name (unique on the device)' },
  },
  async run(ctx, args) {
    const device = args.device as string;
    const name = args.name as string;
    const node = lookupRootNode(ctx.graph, device);
    await node.drain();
    if (node.readOnly) throw genericError(`Device '${device}' is read only`);
    const target = snapshotNode(node);
    if (!target) {
      throw genericError(
        `Block format '${node.driver.name}' used by device '${device}' does not support internal snapshots`,
      );
    }
    if (name === '') throw genericError('Name is empty');
    if (findSnapshot(node, undefined, name)) {
      throw genericError(`Snapshot with name '${name}' already exists on device '${device}'`);
    }
    const now = Date.now();
    try {
      // blockgraph has no guest clock of its own (v86 keeps it): vm-clock 0, as qemu-img records;
      // icount -1: not recorded (no replay).
      await target.ops.snapshotCreate!(name, {
        dateSec: Math.floor(now / 1000),
        dateNsec: (now % 1000) * 1e6,
        vmClockNsec: 0,
        icount: -1,
      });
    } catch (err) {
      throw genericError(
        `Failed to create snapshot '${name}' on device '${device}': ${STRERROR[errnoOf(err)]}`,
      );
    }
    return NOTHING;
  },
};

export const blockdevSnapshotDeleteInternalSync: QmpCommand = {
  name: 'blockdev-snapshot-delete-internal-sync',
  help: 'delete the internal snapshot matching `id` and/or `name`; returns its SnapshotInfo',
  args: {
    device: { type: 'str', help: 'the drive or root node-name' },
    id: { type: 'str', optional: true, help: 'the snapshot id' },
    name: { type: 'str', optional: true, help: 'the snapshot name' },
  },
  async run(ctx, args) {
    const device = args.device as string;
    const id = args.id as string | undefined;
    const name = args.name as string | undefined;
    const node = lookupRootNode(ctx.graph, device);
    if (id === undefined && name === undefined) throw genericError('Name or id must be provided');
    await node.drain();
    const sn = findSnapshot(node, id, name);
    if (!sn) {
      throw genericError(
        `Snapshot with id '${id ?? 'null'}' and name '${name ?? 'null'}' does not exist on device '${device}'`,
      );
    }
    await snapshotNode(node)!.ops.snapshotDelete!(id, name);
    return sn;
  },
};
