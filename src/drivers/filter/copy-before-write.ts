/**
 * copy-before-write (QEMU 7.2 block/copy-before-write.c with block/block-copy.c): a filter over
 * its `file` child that, before a guest write, zero write or discard changes a cluster for the
 * first time, copies the cluster's old content to `target`. The content of `file` at the moment
 * the filter was opened therefore stays readable: through snapshot-access (the point-in-time
 * view of image fleecing), which reads not-yet-copied clusters from `file` and copied ones from
 * `target`, or from `target` itself when `target` has `file` as its backing node.
 *
 * `bitmap` limits the copy (and the snapshot) to the clusters dirty in that bitmap at open.
 * A failed copy fails the guest write (`on-cbw-error=break-guest-write`), or instead breaks
 * the snapshot, whose reads then fail with EACCES (`break-snapshot`); `cbw-timeout` seconds
 * bound a copy. Snapshot reads of a cluster a guest write is about to change complete before the
 * write goes on, and a copy in progress holds back a snapshot read of the same clusters.
 */
import { BdrvDirtyBitmap, BitmapCheck } from '../../bitmaps/dirty-bitmap.ts';
import { findBitmap } from '../../bitmaps/node-bitmaps.ts';
import type { BlockDriver, BlockDriverOps, ChildPermRequest } from '../../block/driver.ts';
import { genericError, ioError } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import { RangeLock } from '../../block/range-lock.ts';
import { Perm, PERM_ALL, type BlockStatus, type WriteFlags, type ZeroOptions } from '../../block/types.ts';
import { FileFilter, requiredChild } from './filter-base.ts';

/** BACKUP_CLUSTER_SIZE_DEFAULT (block/block-copy.c). */
const DEFAULT_CLUSTER = 65536;

const OPTIONS = {
  file: { type: 'child', role: 'file', required: true, help: 'the node whose old data is kept' },
  target: { type: 'child', role: 'target', required: true, help: 'where old clusters are copied' },
  bitmap: {
    type: 'object',
    help: 'copy only the clusters dirty in this bitmap {node, name}',
    fields: {
      node: { type: 'str', required: true, help: 'node of the bitmap' },
      name: { type: 'str', required: true, help: 'name of the bitmap' },
    },
  },
  'on-cbw-error': {
    type: 'enum',
    values: ['break-guest-write', 'break-snapshot'],
    default: 'break-guest-write',
    help: 'a failed copy fails the guest write, or breaks the snapshot instead',
  },
  'cbw-timeout': {
    type: 'int',
    min: 0,
    max: 0xffffffff,
    default: 0,
    help: 'seconds a copy may take before it counts as failed (0: no limit)',
  },
} as const;

export const copyBeforeWriteDriver = {
  name: 'copy-before-write',
  kind: 'filter',
  options: OPTIONS,
  capabilities: { writable: true, persistent: true, growable: false, discard: true, writeZeroes: true },

  /**
   * cbw_child_perm: the target is written and may be shared with anything but a resize; the
   * source passes its parents' needs through, reads consistently when they write, and lets
   * nobody else write or resize it under the filter.
   */
  childPerms(req: ChildPermRequest): { perm: number; shared: number } {
    if (req.role === 'target') return { perm: Perm.WRITE, shared: PERM_ALL & ~Perm.RESIZE };
    // Without parents (taking nothing, sharing all) QEMU keeps the default filter permissions,
    // so the filter can be opened beside a running drive and then inserted above it.
    if (req.parentPerm === 0 && req.parentShared === PERM_ALL) return { perm: 0, shared: PERM_ALL };
    const perm = req.parentPerm | (req.parentPerm & Perm.WRITE ? Perm.CONSISTENT_READ : 0);
    return { perm, shared: req.parentShared & ~(Perm.WRITE | Perm.RESIZE) };
  },

  async open(ctx): Promise<BlockDriverOps> {
    const file = requiredChild(ctx, 'file');
    const target = requiredChild(ctx, 'target');
    const ref = ctx.options.bitmap as { node: string; name: string } | undefined;
    const bitmap = ref && lookupReachable(file, target, ref);
    return new CopyBeforeWrite(file, target, {
      bitmap,
      breakSnapshot: ctx.options['on-cbw-error'] === 'break-snapshot',
      timeoutMs: (ctx.options['cbw-timeout'] as number) * 1000,
    });
  },
} as const satisfies BlockDriver;

/**
 * block_dirty_bitmap_lookup among the nodes connected to `file` and `target` (a driver sees no
 * global registry): QEMU's texts for an unknown node or bitmap.
 */
function lookupReachable(
  file: BlockNode,
  target: BlockNode,
  ref: { node: string; name: string },
): BdrvDirtyBitmap {
  const seen = new Set<BlockNode>();
  const walk = (n: BlockNode): BlockNode | undefined => {
    if (seen.has(n)) return undefined;
    seen.add(n);
    if (n.nodeName === ref.node) return n;
    for (const c of n.children()) {
      const hit = walk(c.node);
      if (hit) return hit;
    }
    for (const { parent } of n.parents) {
      const hit = 'childList' in parent ? walk(parent as BlockNode) : undefined;
      if (hit) return hit;
    }
    return undefined;
  };
  const node = walk(file) ?? walk(target);
  if (!node) throw genericError(`Node '${ref.node}' not found`);
  const bitmap = findBitmap(node, ref.name);
  if (!bitmap) throw genericError(`Dirty bitmap '${ref.name}' not found`);
  bitmap.check(BitmapCheck.DEFAULT);
  return bitmap;
}

interface CbwPolicy {
  readonly bitmap: BdrvDirtyBitmap | undefined;
  readonly breakSnapshot: boolean;
  readonly timeoutMs: number;
}

/** The filter's state; snapshot-access reads the point-in-time view through its `snapshot*` methods. */
export class CopyBeforeWrite extends FileFilter {
  readonly clusterSize: number;
  /** Clusters whose old data is still only in `file` (block-copy's copy_bitmap). */
  private readonly toCopy: BdrvDirtyBitmap;
  /** Clusters whose old data is in `target` (done_bitmap). */
  private readonly done: BdrvDirtyBitmap;
  /** Clusters the snapshot may read (access_bitmap): all, or those of `bitmap`, minus discards. */
  private readonly access: BdrvDirtyBitmap;
  private readonly locks = new RangeLock();
  /** The first copy failure under break-snapshot: the snapshot is unusable from then on. */
  private snapshotError: Error | undefined;
  /** Whether the last failed copy failed writing `target` (else reading `file`): a job's error policy. */
  failedOnTarget = false;
  /** Told the bytes of every copy, guest-triggered or not (a backup job's progress). */
  onCopied: ((bytes: number) => void) | undefined;

  constructor(
    file: BlockNode,
    private readonly target: BlockNode,
    private readonly policy: CbwPolicy,
  ) {
    super(file, 'a copy-before-write node');
    this.clusterSize = Math.max(DEFAULT_CLUSTER, target.ops.imageFacts?.().clusterSize ?? 0);
    const len = file.length();
    this.toCopy = new BdrvDirtyBitmap(undefined, this.clusterSize, len);
    if (policy.bitmap) this.toCopy.merge(policy.bitmap);
    else this.toCopy.set(0, len);
    this.done = new BdrvDirtyBitmap(undefined, this.clusterSize, len);
    this.access = new BdrvDirtyBitmap(undefined, this.clusterSize, len);
    this.access.merge(this.toCopy);
  }

  override async write(offset: number, src: Uint8Array, flags: WriteFlags): Promise<void> {
    await this.copyBeforeWrite(offset, src.length);
    await this.file.write(offset, src, flags);
  }

  override async writeZeroes(offset: number, bytes: number, opts: ZeroOptions): Promise<void> {
    await this.copyBeforeWrite(offset, bytes);
    await this.file.writeZeroes(offset, bytes, opts);
  }

  override async discard(offset: number, bytes: number): Promise<void> {
    await this.copyBeforeWrite(offset, bytes);
    await this.file.discard(offset, bytes);
  }

  /** Not resizable: the copy bitmaps cover the source as it was at open. */
  override truncate(): Promise<void> {
    return Promise.reject(ioError('ENOTSUP', 'Image format driver does not support resize'));
  }

  /**
   * cbw_snapshot_read_lock + read: the snapshot's bytes at [offset, offset + dst.length), from
   * `target` where copied, else from `file` while holding back writes to those clusters.
   * EACCES where the snapshot has no data (outside `bitmap`, discarded, or broken).
   */
  async snapshotRead(offset: number, dst: Uint8Array): Promise<void> {
    const [start, end] = this.clusters(offset, dst.length);
    this.checkAccess(start, end);
    await this.locks.run(start, end, async () => {
      for (let pos = 0; pos < dst.length;) {
        const at = offset + pos;
        const runEnd = Math.min(
          offset + dst.length,
          (Math.floor(at / this.clusterSize) + 1) * this.clusterSize,
        );
        const from = this.done.get(at) ? this.target : this.file;
        await from.read(at, dst.subarray(pos, runEnd - offset));
        pos = runEnd - offset;
      }
    });
  }

  /**
   * cbw_co_snapshot_block_status: the status of the child holding the snapshot's data, for at
   * most one cluster; data copied to `target` is allocated there even where `target` says not.
   */
  async snapshotBlockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const [start, end] = this.clusters(offset, bytes);
    this.checkAccess(start, Math.min(end, start + this.clusterSize));
    const n = Math.min(bytes, start + this.clusterSize - offset);
    if (!this.done.get(offset)) return this.file.blockStatus(offset, n);
    const status = await this.target.blockStatus(offset, n);
    return { ...status, allocated: true };
  }

  /**
   * cbw_co_pdiscard_snapshot: whole clusters of the snapshot are dropped: no longer readable,
   * no longer copied, and discarded in `target`.
   */
  async snapshotDiscard(offset: number, bytes: number): Promise<void> {
    const start = Math.ceil(offset / this.clusterSize) * this.clusterSize;
    const end = Math.floor((offset + bytes) / this.clusterSize) * this.clusterSize;
    if (start >= end) return;
    await this.locks.run(start, end, async () => {
      this.access.reset(start, end - start);
      this.toCopy.reset(start, end - start);
    });
    await this.target.discard(start, Math.min(end, this.target.length()) - start);
  }

  /**
   * backup_init_bcs_bitmap for sync=bitmap: only the clusters dirty in `bitmap` (as it is now)
   * are kept from here on, and only they are readable through the snapshot.
   */
  restrictTo(bitmap: BdrvDirtyBitmap): void {
    this.toCopy.clear();
    this.toCopy.merge(bitmap);
    this.access.clear();
    this.access.merge(this.toCopy);
  }

  /** sync=top: clusters `file` itself does not hold (its backing chain's) are not copied. */
  async skipUnallocated(): Promise<void> {
    const len = this.file.length();
    for (let at = 0; at < len;) {
      const s = await this.file.blockStatus(at, len - at);
      if (!(s.allocated && s.depth === 0)) this.toCopy.reset(at, s.bytes);
      at += s.bytes;
    }
  }

  /** The runs still to copy, in bytes clipped to the node (the job's remaining work). */
  pending(): { offset: number; bytes: number }[] {
    return [...this.toCopy.extents()];
  }

  /**
   * block_copy: copies whatever of [offset, offset + bytes) is still to copy, waiting for and
   * holding off overlapping snapshot reads and copies. Errors are the caller's to handle.
   */
  async copy(offset: number, bytes: number): Promise<void> {
    const [start, end] = this.clusters(offset, bytes);
    await this.locks.run(start, end, () => this.withTimeout(this.copyDirty(start, end)));
  }

  private checkAccess(start: number, end: number): void {
    if (this.snapshotError) throw ioError('EACCES', 'The snapshot is broken by a failed copy');
    for (let at = start; at < end; at += this.clusterSize) {
      if (!this.access.get(at)) throw ioError('EACCES', `The snapshot has no data at ${at}`);
    }
  }

  /**
   * cbw_do_copy_before_write: the clusters of [offset, offset + bytes) still holding snapshot
   * data only in `file` are copied to `target` first. Throws (failing the guest request) only
   * under break-guest-write.
   */
  private async copyBeforeWrite(offset: number, bytes: number): Promise<void> {
    if (this.snapshotError || bytes === 0) return;
    try {
      await this.copy(offset, bytes);
    } catch (err) {
      if (!this.policy.breakSnapshot) throw err;
      this.snapshotError ??= err as Error;
    }
  }

  /** block_copy over [start, end): each dirty run read from `file` and written to `target`. */
  private async copyDirty(start: number, end: number): Promise<void> {
    for (let at = start; at < end;) {
      if (!this.toCopy.get(at)) {
        at += this.clusterSize;
        continue;
      }
      let runEnd = at + this.clusterSize;
      while (runEnd < end && this.toCopy.get(runEnd)) runEnd += this.clusterSize;
      runEnd = Math.min(runEnd, this.file.length());
      const buf = new Uint8Array(runEnd - at);
      this.failedOnTarget = false;
      await this.file.read(at, buf);
      this.failedOnTarget = true;
      if (buf.every((b) => b === 0)) await this.target.writeZeroes(at, buf.length);
      else await this.target.write(at, buf);
      this.toCopy.reset(at, buf.length);
      this.done.set(at, buf.length);
      this.onCopied?.(buf.length);
      at = runEnd;
    }
  }

  /** cbw-timeout: a copy that takes longer fails with ETIMEDOUT's stand-in, EIO. */
  private withTimeout(copy: Promise<void>): Promise<void> {
    if (this.policy.timeoutMs === 0) return copy;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(ioError('EIO', 'copy-before-write: copy timed out')),
        this.policy.timeoutMs,
      );
    });
    return Promise.race([copy, expired]).finally(() => clearTimeout(timer));
  }

  /** [offset, offset + bytes) widened to whole clusters. */
  private clusters(offset: number, bytes: number): [number, number] {
    const cs = this.clusterSize;
    return [Math.floor(offset / cs) * cs, Math.ceil((offset + bytes) / cs) * cs];
  }
}
