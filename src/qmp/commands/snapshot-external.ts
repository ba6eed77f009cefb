/**
 * Live external snapshots (qapi/block-core.json blockdev-snapshot, blockdev-snapshot-sync;
 * blockdev.c external_snapshot_prepare/commit/abort, QEMU 7.2 checks and texts in its order):
 * an overlay becomes the active layer in place of `node`, `node` its backing child (bdrv_append).
 * Commit reopens the old top read-only; abort puts `node` back and drops the overlay's backing.
 * The -sync variant first creates the overlay image next to nothing but the name it is given, by
 * the protocol of the node's own storage where that protocol can create (else `file`), recording
 * the old top as its backing file.
 */
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import { validateOptions } from '../../config/validate.ts';
import { findDriver } from '../../drivers/index.ts';
import type { BlockGraph } from '../../graph/graph.ts';
import { reopenReadOnly } from '../../graph/reopen.ts';
import { lookupNode } from './lookup.ts';
import type { PreparedAction, TransactionAction } from './transaction.ts';

export const blockdevSnapshotAction: TransactionAction = {
  type: 'blockdev-snapshot',
  help: 'make the existing node `overlay` the active layer over `node` (live external snapshot)',
  args: {
    node: { type: 'str', help: 'the drive or node-name to snapshot' },
    overlay: { type: 'str', help: 'the node-name of the overlay (unused, without a backing node)' },
  },
  async prepare(ctx, data) {
    const graph = ctx.graph;
    const name = data.node as string;
    const node = checkNode(lookupNode(graph, name, name));
    const overlayName = data.overlay as string;
    const overlay = lookupNode(graph, overlayName, overlayName);
    return append(graph, node, overlay, false);
  },
};

export const blockdevSnapshotSyncAction: TransactionAction = {
  type: 'blockdev-snapshot-sync',
  help: 'create the overlay image `snapshot-file` and make it the active layer over the node',
  args: {
    device: { type: 'str', optional: true, help: 'the drive to snapshot' },
    'node-name': { type: 'str', optional: true, help: 'the node to snapshot' },
    'snapshot-file': { type: 'str', help: 'the overlay image to create (or open with mode=existing)' },
    'snapshot-node-name': { type: 'str', optional: true, help: 'the node-name of the new overlay' },
    format: { type: 'str', optional: true, help: "the overlay's format (default qcow2)" },
    mode: {
      type: { enum: ['existing', 'absolute-paths'] },
      optional: true,
      help: 'absolute-paths (default): create the image; existing: open it',
    },
  },
  async prepare(ctx, data) {
    const graph = ctx.graph;
    const nodeName = data['node-name'] as string | undefined;
    const node = checkNode(lookupNode(graph, data.device as string | undefined, nodeName));
    const overlayName = data['snapshot-node-name'] as string | undefined;
    if (nodeName !== undefined && overlayName === undefined)
      throw genericError('New overlay node-name missing');
    if (overlayName !== undefined && (graph.nodes.has(overlayName) || graph.backends.has(overlayName))) {
      throw genericError('New overlay node-name already in use');
    }
    const path = data['snapshot-file'] as string;
    const format = (data.format as string | undefined) ?? 'qcow2';
    const protocol = protocolOf(node);
    if (data.mode !== 'existing') await createOverlay(node, protocol, path, format);
    const overlay = await graph.open({
      driver: format,
      ...(overlayName !== undefined && { 'node-name': overlayName }),
      file: { driver: protocol, filename: path },
      ...(findDriver(format)?.options.backing && { backing: null }),
    });
    try {
      return await append(graph, node, overlay, true);
    } catch (err) {
      await graph.release(overlay);
      throw err;
    }
  },
};

/** The node to snapshot must not be some overlay's backing node already (the op blocker's text). */
function checkNode(node: BlockNode): BlockNode {
  const overlay = node.parents.find(({ edge }) => edge.role === 'backing');
  if (overlay) {
    throw genericError(
      `Node '${node.nodeName}' is busy: node is used as backing hd of '${overlay.parent.parentName}'`,
    );
  }
  return node;
}

/**
 * The overlay checks, then bdrv_append. `owned`: the overlay was opened here and is released
 * on abort (blockdev-snapshot's stays, the monitor owns it).
 */
async function append(
  graph: BlockGraph,
  node: BlockNode,
  overlay: BlockNode,
  owned: boolean,
): Promise<PreparedAction> {
  if (overlay.parents.length > 0) throw genericError('The overlay is already in use');
  if (overlay.child('backing')) throw genericError('The overlay already has a backing image');
  if (!overlay.driver.options.backing) throw genericError('The overlay does not support backing images');
  if (!node.readOnly) await node.flush();
  await graph.applyChanges([
    { op: 'set-child', parent: overlay, name: 'backing', child: node },
    { op: 'replace-node', from: node, to: overlay },
  ]);
  return {
    // QEMU ignores a failure here too: the snapshot stands, the old top merely stays writable.
    commit: () => reopenReadOnly(graph, node),
    async abort() {
      await graph.applyChanges([
        { op: 'replace-node', from: overlay, to: node },
        { op: 'set-child', parent: overlay, name: 'backing', child: null },
      ]);
      if (owned) await graph.release(overlay);
    },
  };
}

/** The protocol the node's bytes live in, if it can create files; else `file` (Node). */
function protocolOf(node: BlockNode): string {
  let leaf: BlockNode | undefined = node;
  while (leaf && leaf.driver.kind !== 'protocol') leaf = leaf.primaryChild();
  return leaf?.driver.protocolCreator ? leaf.driver.name : 'file';
}

/**
 * bdrv_img_create for the overlay: empty storage by `protocol`, then a `format` image as large as
 * `node`, recording `node` (its filename and format) as its backing file.
 */
async function createOverlay(node: BlockNode, protocol: string, path: string, format: string): Promise<void> {
  const creator = findDriver(format)?.creator;
  if (!creator) throw genericError(`Format driver '${format}' does not support image creation`);
  if (!creator.options['backing-file']) {
    throw genericError(`Backing file not supported for file format '${format}'`);
  }
  const storage = findDriver(protocol)!.protocolCreator!;
  const where = { source: 'qmp', path: '', driverName: protocol } as const;
  const fileOptions = await storage.create(validateOptions(storage.options, { filename: path }, where));
  // A graph of its own, as blockdev-create's: the new file is no node of the user's graph.
  const { BlockGraph } = await import('../../graph/graph.ts');
  const scratch = new BlockGraph();
  const file = await scratch.open(fileOptions);
  try {
    const options = validateOptions(
      creator.options,
      {
        file: file.nodeName,
        size: node.length(),
        'backing-file': node.filename(),
        'backing-fmt': node.driver.name,
      },
      { source: 'qmp', path: '', driverName: format },
    );
    await creator.create(file, options, { children: new Map() });
  } finally {
    await scratch.release(file);
  }
}
