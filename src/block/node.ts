/**
 * BlockNode: one node of the graph (QEMU's BlockDriverState). It wraps the operations a driver
 * returned from `open` with what every node needs, as QEMU's block/io.c does around drivers:
 * argument and bounds checks, read-only enforcement, zero padding of reads past the end,
 * defaults for optional operations, and an in-flight counter so graph changes can drain.
 */
import type { BdrvDirtyBitmap } from '../bitmaps/dirty-bitmap.ts';
import type { BlockDriver, BlockDriverOps } from './driver.ts';
import { ioError } from './errors.ts';
import { refreshedFilename } from './filename.ts';
import type { BlockStatus, ChildRole, WriteFlags, ZeroOptions } from './types.ts';

/** An edge of the graph: `parent` uses `node` as its child `name` in `role`. */
export interface BdrvChild {
  /** The option name the child was given under (`file`, `backing`, `image`, `test`, ...). */
  readonly name: string;
  readonly role: ChildRole;
  /** Changes only in the graph's live changes (graph/live.ts), with nothing in flight. */
  node: BlockNode;
  /** Permissions taken and shared (Perm bit masks); kept current by graph/permissions.ts. */
  perm: number;
  shared: number;
}

/** Who holds an edge into a node: another node, or a BlockBackend (a frontend, an export). */
export interface NodeParent {
  /** How QEMU names the user in permission errors: "node 'x'" or "block device 'y'". */
  describe(): string;
  /** For messages: the node-name of a node parent, the backend name otherwise. */
  readonly parentName: string;
  /** The node's length changed (QEMU's BdrvChildClass.resize, called by bdrv_parent_cb_resize). */
  resized?(): void;
  /**
   * Runs `section` with this parent quiesced (BdrvChildClass.drained_begin/end): its requests
   * in flight have completed and new ones wait until `section` settles. BlockBackends have it;
   * any other parent that issues requests (a job) should, so live graph changes can drain it.
   */
  drained?<T>(section: () => Promise<T>): Promise<T>;
}

const ZERO_CHUNK = 1 << 20;
const SECTOR = 512;

export class BlockNode implements NodeParent {
  readonly childList: BdrvChild[] = [];
  /** Edges into this node, each with the parent holding it. */
  readonly parents: { parent: NodeParent; edge: BdrvChild }[] = [];
  private inFlight = 0;
  private idle: (() => void)[] = [];
  private bitmaps: BdrvDirtyBitmap[] | undefined;
  /**
   * Requests that reached this node (reads; writes incl. zero and compressed writes), for the
   * demo's per-node picture. QEMU accounts only at BlockBackends (query-blockstats), so these
   * are blockgraph's own and not in any QMP answer.
   */
  readonly counters = { readOps: 0, readBytes: 0, writeOps: 0, writeBytes: 0 };

  constructor(
    readonly nodeName: string,
    readonly driver: BlockDriver,
    /** Replaced only by blockdev-reopen (graph/reopen.ts), with nothing in flight. */
    public ops: BlockDriverOps,
    public readOnly: boolean,
    /**
     * The options the node was opened with (after validation), for queries and reopen; live
     * changes replace the object (a changed child becomes its node-name, or null).
     */
    public options: Readonly<Record<string, unknown>>,
  ) {}

  /**
   * The node's dirty bitmaps (bs->dirty_bitmaps, src/bitmaps), newest first. Bitmaps the driver
   * loaded from the image (persistent ones) are adopted at first use.
   */
  get dirtyBitmaps(): BdrvDirtyBitmap[] {
    return (this.bitmaps ??= [...(this.ops.persistentBitmaps?.loaded ?? [])]);
  }

  get parentName(): string {
    return this.nodeName;
  }

  describe(): string {
    return `node '${this.nodeName}'`;
  }

  children(): Iterable<BdrvChild> {
    return this.childList;
  }

  child(name: string): BlockNode | undefined {
    return this.childList.find((c) => c.name === name)?.node;
  }

  /**
   * Bytes, rounded up to whole 512-byte sectors as QEMU's bdrv_getlength() reports every node
   * (total_sectors): a 1000-byte file is a 1024-byte node whose tail reads as zeros.
   */
  length(): number {
    return Math.ceil(this.ops.length() / SECTOR) * SECTOR;
  }

  /** bs->filename after bdrv_refresh_filename: a plain name, or `json:{...}` (block/filename.ts). */
  filename(): string {
    return refreshedFilename(this);
  }

  /** The child holding this node's data (bdrv_primary_child): its `file` or `image`. */
  primaryChild(): BlockNode | undefined {
    return this.childList.find((c) => c.role === 'file' || c.role === 'image')?.node;
  }

  /**
   * Signals a blkdebug event on this node (bdrv_debug_event; only blkdebug listens). As in
   * block/io.c, write and writeZeroes signal pwritev/pwritev_zero and pwritev_done on the node
   * written to, and flush signals flush_to_os and flush_to_disk on the primary child; format
   * drivers signal their own on their file child (raw: read_aio, write_aio).
   */
  debugEvent(event: string): void {
    this.ops.debugEvent?.(event);
  }

  /** Reads `dst.length` bytes at `offset`; past the end of the node reads zeros (as QEMU pads). */
  async read(offset: number, dst: Uint8Array): Promise<void> {
    checkRange(offset, dst.length);
    this.counters.readOps++;
    this.counters.readBytes += dst.length;
    const inside = Math.max(0, Math.min(dst.length, this.length() - offset));
    dst.fill(0, inside);
    if (inside === 0) return;
    await this.track(() => this.ops.read(offset, inside === dst.length ? dst : dst.subarray(0, inside)));
  }

  async write(offset: number, src: Uint8Array, flags: WriteFlags = {}): Promise<void> {
    this.checkWrite(offset, src.length);
    if (flags.compressed) {
      // bdrv_driver_pwritev_compressed: only drivers that can compress take the flag.
      const wc = this.ops.writeCompressed;
      if (!wc) throw ioError('ENOTSUP', `Node '${this.nodeName}' does not support compressed writes`);
      return this.writeEvents('pwritev', offset, src.length, () => wc.call(this.ops, offset, src));
    }
    const write = this.ops.write;
    if (!write) throw ioError('EPERM', `Node '${this.nodeName}' does not support writes`);
    await this.writeEvents('pwritev', offset, src.length, () => write.call(this.ops, offset, src, flags));
  }

  async writeZeroes(offset: number, bytes: number, opts: ZeroOptions = {}): Promise<void> {
    this.checkWrite(offset, bytes);
    const wz = this.ops.writeZeroes;
    if (wz)
      return this.writeEvents('pwritev_zero', offset, bytes, () => wz.call(this.ops, offset, bytes, opts));
    // No native zeroing: write a bounded zero buffer repeatedly (bdrv_co_do_pwrite_zeroes fallback).
    const zeros = new Uint8Array(Math.min(bytes, ZERO_CHUNK));
    for (let done = 0; done < bytes; done += zeros.length) {
      const n = Math.min(zeros.length, bytes - done);
      await this.write(offset + done, n === zeros.length ? zeros : zeros.subarray(0, n));
    }
  }

  async discard(offset: number, bytes: number): Promise<void> {
    this.checkWrite(offset, bytes);
    const discard = this.ops.discard;
    if (!discard) return;
    // bdrv_co_pdiscard returns before the request counts (and marks bitmaps) without discard=unmap.
    const unmap = this.options.discard === 'unmap' || this.options.discard === 'on';
    try {
      await this.track(() => discard.call(this.ops, offset, bytes));
    } finally {
      if (unmap) this.setDirty(offset, bytes);
    }
  }

  async flush(): Promise<void> {
    this.primaryChild()?.debugEvent('flush_to_os');
    this.primaryChild()?.debugEvent('flush_to_disk');
    const flush = this.ops.flush;
    if (flush) await this.track(() => flush.call(this.ops));
  }

  async blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    checkRange(offset, bytes);
    const len = this.length();
    if (offset >= len)
      return { bytes: Math.max(bytes, 1), data: false, zero: true, allocated: false, depth: 0 };
    const n = Math.min(bytes, len - offset);
    const bs = this.ops.blockStatus;
    if (!bs) {
      if (this.driver.kind !== 'protocol')
        return { bytes: n, data: true, zero: false, allocated: true, depth: 0 };
      // A protocol's bytes are where they are (block/io.c: OFFSET_VALID for protocol drivers);
      // the tail rounding length() up to a sector reads zeros (file-posix: trailing hole).
      const end = this.ops.length();
      if (offset >= end) return { bytes: n, data: false, zero: true, allocated: true, depth: 0, offset };
      return { bytes: Math.min(n, end - offset), data: true, zero: false, allocated: true, depth: 0, offset };
    }
    return this.track(() => bs.call(this.ops, offset, n));
  }

  async truncate(bytes: number): Promise<void> {
    if (this.readOnly) throw ioError('EPERM', `Node '${this.nodeName}' is read-only`);
    const truncate = this.ops.truncate;
    if (!truncate) throw ioError('ENOTSUP', `Image format driver does not support resize`);
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw ioError('EINVAL');
    await this.track(() => truncate.call(this.ops, bytes));
    for (const bitmap of this.dirtyBitmaps) bitmap.truncate(this.length());
    for (const { parent } of this.parents) parent.resized?.();
  }

  /** No request is in flight on this node. */
  isIdle(): boolean {
    return this.inFlight === 0;
  }

  /** Resolves when no request is in flight on this node. */
  drain(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /**
   * Drains, stores the persistent dirty bitmaps (qcow2_inactivate), closes the driver. A failed
   * store does not stop the close; it is reported afterwards with QEMU's text.
   */
  async close(): Promise<void> {
    await this.drain();
    let lost: unknown;
    if (this.ops.persistentBitmaps) {
      await this.ops.persistentBitmaps.store(this.dirtyBitmaps).catch((err: unknown) => (lost = err));
    }
    await this.ops.close?.();
    if (lost !== undefined) {
      const why = lost instanceof Error ? lost.message : String(lost);
      throw ioError('EIO', `Lost persistent bitmaps during inactivation of node '${this.nodeName}': ${why}`);
    }
  }

  private checkWrite(offset: number, bytes: number): void {
    checkRange(offset, bytes);
    if (this.readOnly) throw ioError('EPERM', `Node '${this.nodeName}' is read-only`);
    if (offset + bytes > this.length() && !this.driver.capabilities.growable) {
      throw ioError('EIO', `Request beyond end of node '${this.nodeName}'`);
    }
  }

  /**
   * Runs a write-type request between its blkdebug events (bdrv_aligned_pwritev); the range is
   * dirty afterwards even if the request failed, as bdrv_co_write_req_finish marks it.
   */
  private async writeEvents(
    event: string,
    offset: number,
    bytes: number,
    op: () => Promise<void>,
  ): Promise<void> {
    this.counters.writeOps++;
    this.counters.writeBytes += bytes;
    this.debugEvent(event);
    try {
      await this.track(op);
    } finally {
      this.setDirty(offset, bytes);
      this.debugEvent('pwritev_done');
    }
  }

  /** bdrv_set_dirty: every enabled bitmap of the node (successors included) records the range. */
  private setDirty(offset: number, bytes: number): void {
    for (const bitmap of this.dirtyBitmaps) if (bitmap.enabled()) bitmap.set(offset, bytes);
  }

  private async track<T>(op: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await op();
    } finally {
      if (--this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
    }
  }
}

/** Offsets are JS numbers: they must be safe integers (< 2^53), like QEMU's int64 checks. */
function checkRange(offset: number, bytes: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(bytes) || offset < 0 || bytes < 0) {
    throw ioError('EINVAL', `Invalid request: offset ${offset}, bytes ${bytes}`);
  }
  if (offset + bytes > Number.MAX_SAFE_INTEGER) throw ioError('EIO');
}
