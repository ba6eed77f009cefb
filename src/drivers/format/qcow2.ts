/**
 * qcow2 (QEMU block/qcow2.c): the driver entry. Opening is qcow2/open.ts, the node's operations
 * qcow2/node.ts, creation qcow2/create.ts; the image format itself is the wasm engine's
 * (src/qcow2/engine.ts, DESIGN.md §3).
 */
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import { registerFormatProbe } from '../../config/probe.ts';
import { qcow2Creator } from './qcow2/create.ts';
import { Qcow2Node } from './qcow2/node.ts';
import { openImage } from './qcow2/open.ts';
import { QCOW2_OPTIONS } from './qcow2/options.ts';
import type { SnapshotImage } from './qcow2/snapshot-write.ts';

// QEMU's qcow2_probe: the magic and a version of at least 2 score 100.
registerFormatProbe('qcow2', (head) =>
  head.length >= 8 &&
  head[0] === 0x51 &&
  head[1] === 0x46 &&
  head[2] === 0x49 &&
  head[3] === 0xfb &&
  new DataView(head.buffer, head.byteOffset, 8).getUint32(4) >= 2
    ? 100
    : 0,
);

export const qcow2Driver = {
  name: 'qcow2',
  kind: 'format',
  options: QCOW2_OPTIONS,
  creator: qcow2Creator,
  capabilities: { writable: true, persistent: true, growable: false, discard: true, writeZeroes: true },

  async open(ctx): Promise<BlockDriverOps> {
    const file = ctx.children.get('file');
    if (!file) throw genericError('A block device must be specified for "file"');
    return openImage(ctx, file);
  },
} as const satisfies BlockDriver;

/**
 * The whole-image metadata state of a read-write qcow2 node, for the image tools that rewrite
 * its tables (amend); undefined for other nodes and read-only ones.
 */
export function qcow2Image(node: BlockNode): SnapshotImage | undefined {
  return node.ops instanceof Qcow2Node ? node.ops.snapshotImage : undefined;
}
