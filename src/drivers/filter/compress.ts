/**
 * compress (QEMU 7.2 block/filter-compress.c): a filter whose writes reach its `file` child as
 * compressed writes (BDRV_REQ_WRITE_COMPRESSED), so `file` must be a format that can store
 * compressed clusters (qcow2). Requests are aligned to `file`'s clusters, as QEMU's
 * compress_refresh_limits makes them: a write covering part of a cluster reads the rest and
 * compresses the whole cluster. As in QEMU, a cluster that is already allocated cannot be
 * rewritten compressed (qcow2 fails that write with EIO). Reads, zero writes, discards, flush,
 * block status and truncate pass to `file` unchanged.
 */
import { alignedWrite } from '../../block/alignment.ts';
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { WriteFlags } from '../../block/types.ts';
import { clusterSize } from './cluster-size.ts';
import { FileFilter, FILTER_CAPABILITIES, requiredChild } from './filter-base.ts';

const OPTIONS = {
  file: { type: 'child', role: 'file', required: true, help: 'the node writes are compressed into' },
} as const;

export const compressDriver = {
  name: 'compress',
  kind: 'filter',
  options: OPTIONS,
  capabilities: FILTER_CAPABILITIES,

  async open(ctx): Promise<BlockDriverOps> {
    const file = requiredChild(ctx, 'file');
    checkCanCompress(file);
    return new Compress(file);
  },
} as const satisfies BlockDriver;

/** compress_open: block_driver_can_compress of the child's driver. */
function checkCanCompress(file: BlockNode): void {
  if (!file.ops.writeCompressed) {
    throw genericError(`Compression is not supported for underlying format: ${file.driver.name}`);
  }
}

class Compress extends FileFilter {
  constructor(file: BlockNode) {
    super(file, 'a compress node');
  }

  /** compress_refresh_limits: `file`'s cluster size, read at each use so a new child counts. */
  get requestAlignment(): number {
    return clusterSize(this.file);
  }

  /** Whole clusters, compressed; a partial head or tail cluster is read, patched and compressed. */
  override write(offset: number, src: Uint8Array, flags: WriteFlags): Promise<void> {
    return alignedWrite(this.file, offset, src, { ...flags, compressed: true }, this.requestAlignment);
  }

  writeCompressed(offset: number, src: Uint8Array): Promise<void> {
    return this.write(offset, src, {});
  }

  /** A live graph change: the new `file` must compress too. */
  protected override checkChild(node: BlockNode): void {
    checkCanCompress(node);
  }
}
