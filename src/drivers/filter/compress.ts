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
import type { BlockStatus, WriteFlags, ZeroOptions } from '../../block/types.ts';
import { clusterSize } from './cluster-size.ts';

const OPTIONS = {
  file: { type: 'child', role: 'file', required: true, help: 'the node writes are compressed into' },
} as const;

export const compressDriver = {
  name: 'compress',
  kind: 'filter',
  options: OPTIONS,
  capabilities: { writable: true, persistent: true, growable: true, discard: true, writeZeroes: true },

  async open(ctx): Promise<BlockDriverOps> {
    const file = ctx.children.get('file');
    if (!file) throw genericError('A block device must be specified for "file"');
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

class Compress implements BlockDriverOps {
  constructor(private file: BlockNode) {}

  /** compress_refresh_limits: `file`'s cluster size, read at each use so a new child counts. */
  get requestAlignment(): number {
    return clusterSize(this.file);
  }

  length(): number {
    return this.file.length();
  }

  read(offset: number, dst: Uint8Array): Promise<void> {
    return this.file.read(offset, dst);
  }

  /** Whole clusters, compressed; a partial head or tail cluster is read, patched and compressed. */
  write(offset: number, src: Uint8Array, flags: WriteFlags): Promise<void> {
    return alignedWrite(this.file, offset, src, { ...flags, compressed: true }, this.requestAlignment);
  }

  writeCompressed(offset: number, src: Uint8Array): Promise<void> {
    return this.write(offset, src, {});
  }

  writeZeroes(offset: number, bytes: number, opts: ZeroOptions): Promise<void> {
    return this.file.writeZeroes(offset, bytes, opts);
  }

  discard(offset: number, bytes: number): Promise<void> {
    return this.file.discard(offset, bytes);
  }

  flush(): Promise<void> {
    return this.file.flush();
  }

  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    return this.file.blockStatus(offset, bytes);
  }

  truncate(bytes: number): Promise<void> {
    return this.file.truncate(bytes);
  }

  /** A live graph change: the new `file` must compress too. */
  replaceChild(name: string, node: BlockNode | null): void {
    if (name !== 'file' || !node) throw genericError(`Cannot change the '${name}' child of a compress node`);
    checkCanCompress(node);
    this.file = node;
  }
}
