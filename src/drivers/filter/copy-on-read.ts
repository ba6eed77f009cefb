/**
 * copy-on-read (QEMU 7.2 block/copy-on-read.c with block/io.c bdrv_co_do_copy_on_readv): a filter
 * over its `file` child that makes every read populate `file` from the backing chain below it,
 * so an image served over HTTP becomes local as it is used.
 *
 * A read of a range `file` does not hold itself is widened to `file`'s clusters; those clusters
 * are read through `file` (so from its backing chain) and written back into it unchanged (all-zero
 * runs as zero writes), and the requested part is returned. Without `bottom` every such range is
 * copied, even one no layer holds (QEMU 7.2 does the same: it becomes a zero cluster); with
 * `bottom` only ranges held by a backing layer down to and including `bottom` are, the rest is
 * read through. Writes, zero writes, discards, flush, block status and truncate pass to `file`.
 *
 * A copy and a write through this node to the same cluster never interleave (QEMU marks the copy
 * serialising), so a copy never writes back data older than a write that overtook it.
 */
import type { BlockDriver, BlockDriverOps, ChildPermRequest } from '../../block/driver.ts';
import { genericError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import { RangeLock } from '../../block/range-lock.ts';
import { Perm, type BlockStatus, type WriteFlags, type ZeroOptions } from '../../block/types.ts';
import { clusterSize } from './cluster-size.ts';
import { FileFilter, FILTER_CAPABILITIES, requiredChild } from './filter-base.ts';

const OPTIONS = {
  file: { type: 'child', role: 'file', required: true, help: 'the node reads populate' },
  bottom: {
    type: 'str',
    help: 'node-name of the lowest backing layer to copy from (default: the whole chain)',
  },
} as const;

/** cor_child_perm: PERM_PASSTHROUGH. */
const PASSTHROUGH = Perm.CONSISTENT_READ | Perm.WRITE | Perm.RESIZE;

export const copyOnReadDriver = {
  name: 'copy-on-read',
  kind: 'filter',
  options: OPTIONS,
  capabilities: FILTER_CAPABILITIES,

  /** The parents' needs pass through; copying needs write-unchanged, which others may share. */
  childPerms(req: ChildPermRequest): { perm: number; shared: number } {
    return {
      perm: (req.parentPerm & PASSTHROUGH) | Perm.WRITE_UNCHANGED,
      shared: (req.parentShared & PASSTHROUGH) | Perm.WRITE_UNCHANGED,
    };
  },

  async open(ctx): Promise<BlockDriverOps> {
    const file = requiredChild(ctx, 'file');
    const bottom = ctx.options.bottom as string | undefined;
    if (bottom !== undefined && chainDepth(file, bottom) === undefined) {
      throw genericError(`Bottom node '${bottom}' not found`);
    }
    return new CopyOnRead(file, bottom);
  },
} as const satisfies BlockDriver;

/** How many backing links below `top` the node `name` is (0: `top` itself); undefined if absent. */
function chainDepth(top: BlockNode, name: string): number | undefined {
  let depth = 0;
  for (let n: BlockNode | undefined = top; n; n = n.child('backing'), depth++) {
    if (n.nodeName === name) return depth;
  }
  return undefined;
}

class CopyOnRead extends FileFilter {
  private readonly locks = new RangeLock();

  constructor(
    file: BlockNode,
    private readonly bottom: string | undefined,
  ) {
    super(file, 'a copy-on-read node');
  }

  override async read(offset: number, dst: Uint8Array): Promise<void> {
    for (let pos = 0; pos < dst.length;) {
      const status = await this.file.blockStatus(offset + pos, dst.length - pos);
      const part = dst.subarray(pos, pos + status.bytes);
      if (this.wantsCopy(status)) await this.copy(offset + pos, part);
      else await this.file.read(offset + pos, part);
      pos += status.bytes;
    }
  }

  override write(offset: number, src: Uint8Array, flags: WriteFlags): Promise<void> {
    return this.serialised(offset, src.length, () => this.file.write(offset, src, flags));
  }

  writeCompressed(offset: number, src: Uint8Array): Promise<void> {
    return this.serialised(offset, src.length, () => this.file.write(offset, src, { compressed: true }));
  }

  override writeZeroes(offset: number, bytes: number, opts: ZeroOptions): Promise<void> {
    return this.serialised(offset, bytes, () => this.file.writeZeroes(offset, bytes, opts));
  }

  override discard(offset: number, bytes: number): Promise<void> {
    return this.serialised(offset, bytes, () => this.file.discard(offset, bytes));
  }

  /**
   * Whether a range with `status` (as `file` reports it) is copied: not held by `file` itself,
   * and without `bottom` always, with it only when a layer down to `bottom` holds it. A `bottom`
   * that a later graph change took out of the chain limits the copy to nothing.
   */
  private wantsCopy(status: BlockStatus): boolean {
    if (status.allocated && status.depth === 0) return false;
    if (this.bottom === undefined) return true;
    const limit = chainDepth(this.file, this.bottom) ?? 0;
    return status.allocated && status.depth <= limit;
  }

  /**
   * bdrv_co_do_copy_on_readv: reads the clusters around [offset, offset + dst.length) through
   * `file`, writes back those `file` does not hold, and returns the requested bytes.
   */
  private async copy(offset: number, dst: Uint8Array): Promise<void> {
    const cluster = clusterSize(this.file);
    const start = Math.floor(offset / cluster) * cluster;
    const end = Math.min(Math.ceil((offset + dst.length) / cluster) * cluster, this.file.length());
    const bounce = new Uint8Array(end - start);
    await this.locks.run(start, end, async () => {
      // Asked again under the lock: a copy that held it may have filled part of the range.
      for (let pos = 0; pos < bounce.length;) {
        const [bytes, local] = await this.localRun(start + pos, bounce.length - pos);
        const run = bounce.subarray(pos, pos + bytes);
        await this.file.read(start + pos, run);
        if (!local) await this.writeBack(start + pos, run);
        pos += bytes;
      }
    });
    dst.set(bounce.subarray(offset - start, offset - start + dst.length));
  }

  /**
   * bdrv_is_allocated on `file`: how many bytes from `offset` (at most `bytes`) `file` holds
   * itself, or does not hold, and which of the two. Runs the backing layers split are merged, so
   * a cluster read as all zeros is written back as one zero write.
   */
  private async localRun(offset: number, bytes: number): Promise<[number, boolean]> {
    const isLocal = (s: BlockStatus) => s.allocated && s.depth === 0;
    const first = await this.file.blockStatus(offset, bytes);
    let n = first.bytes;
    while (n < bytes) {
      const next = await this.file.blockStatus(offset + n, bytes - n);
      if (isLocal(next) !== isLocal(first)) break;
      n += next.bytes;
    }
    return [n, isLocal(first)];
  }

  /**
   * Zero runs become zero writes, as bdrv_co_do_copy_on_readv does when the driver has them; it
   * signals cor_write on `file` first (seen when `file` is blkdebug).
   */
  private writeBack(offset: number, data: Uint8Array): Promise<void> {
    this.file.debugEvent('cor_write');
    if (data.every((b) => b === 0)) return this.file.writeZeroes(offset, data.length);
    return this.file.write(offset, data);
  }

  /** Runs a write-type request once no copy overlapping its clusters is in progress. */
  private async serialised(offset: number, bytes: number, op: () => Promise<void>): Promise<void> {
    const cluster = clusterSize(this.file);
    const start = Math.floor(offset / cluster) * cluster;
    return this.locks.run(start, Math.ceil((offset + bytes) / cluster) * cluster, op);
  }
}
