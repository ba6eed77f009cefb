/**
 * Writing through the engine (qcow2_co_pwritev_part, qcow2_co_pwrite_zeroes, qcow2_co_pdiscard,
 * qcow2_co_flush_to_os): the engine plans, this performs the I/O in the order it dictates.
 *
 * Guest data goes to owned clusters in place; otherwise the engine allocates, the head and tail
 * of the new region are read through the reader (the guest view before the write: backing file,
 * zeros, old or compressed cluster) and the whole region is written before the engine links it.
 * Dirty metadata stays in the engine's caches until written back, in the crash-safe order of
 * DESIGN.md §3: refcount blocks, refcount table (and header), [flush], L2 slices, [flush], L1
 * (and header). Clusters freed meanwhile are decremented only after that, so a crash leaks
 * clusters but never leaves a reference to a reused one.
 */
import { ioError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import {
  CacheId,
  Overlap,
  Status,
  ZeroMode,
  type Qcow2Engine,
  type TableState,
  type WriteAnswer,
} from '../../../qcow2/engine.ts';
import type { Qcow2Reader } from './reader.ts';

/** QEMU's metadata_ol_names (block/qcow2-refcount.c). */
const OVERLAP_NAMES: Readonly<Record<number, string>> = {
  [Overlap.MAIN_HEADER]: 'qcow2_header',
  [Overlap.ACTIVE_L1]: 'active L1 table',
  [Overlap.ACTIVE_L2]: 'active L2 table',
  [Overlap.REFCOUNT_TABLE]: 'refcount table',
  [Overlap.REFCOUNT_BLOCK]: 'refcount block',
};

// Header fields rewritten in place (qcow2.txt "Header"): all in the first sector, so each
// rewrite is one atomic sector write.
const HDR_SIZE = 24;
const HDR_L1_SIZE = 36;
const HDR_REFTABLE = 48;
const HDR_INCOMPAT = 72;
const INCOMPAT_DIRTY = 1n;
const INCOMPAT_CORRUPT = 2n;

export interface WriterOptions {
  readonly file: BlockNode;
  /** Where guest clusters go (the external data file, or `file`). */
  readonly data: BlockNode;
  readonly backing: BlockNode | undefined;
  readonly clusterSize: number;
  readonly subclusterSize: number;
  readonly version: number;
  /** Lazy refcounts: refcount blocks need not be on disk before the L2 entries using them. */
  readonly lazy: boolean;
  /** The incompatible feature bits as on disk at open. */
  readonly incompat: bigint;
  /** pass-discard-request / pass-discard-other. */
  readonly passDiscardRequest: boolean;
  readonly passDiscardOther: boolean;
  /** Reports BLOCK_IMAGE_CORRUPTED (once) with msg, offset and size. */
  readonly onCorruption: (msg: string, offset: number, size: number) => void;
}

/** A decrement waiting for the metadata that unlinked the clusters to be durable. */
interface PendingFree {
  first: number;
  count: number;
  /** Discard the file's clusters once their refcount reaches 0. */
  pass: boolean;
}

export class Qcow2Writer {
  /** Allocations in flight by engine id: settle at commit or abort. */
  private readonly allocs = new Map<number, Promise<void>>();
  private pendingFrees: PendingFree[] = [];
  /** L2 tables being copied by unshareL2, by L1 index. */
  private readonly unsharing = new Map<number, Promise<void>>();
  /** The metadata write-back in progress (one at a time). */
  private writeback: Promise<void> | undefined;
  private incompat: bigint;
  private broken = false;

  constructor(
    private readonly engine: Qcow2Engine,
    private readonly reader: Qcow2Reader,
    private readonly o: WriterOptions,
  ) {
    this.incompat = o.incompat;
    reader.onBusy = () => this.relieveCache();
  }

  /** Writes guest bytes [offset, offset + src.length). */
  async write(offset: number, src: Uint8Array): Promise<void> {
    const pending: Promise<void>[] = [];
    let failure: unknown;
    try {
      for (let pos = 0; pos < src.length;) {
        const a = await this.step(() => this.engine.prepareWrite(offset + pos, src.length - pos));
        const part = src.subarray(pos, pos + a.bytes);
        if (a.status === Status.IN_PLACE) {
          this.o.data.debugEvent('write_aio');
          pending.push(this.o.data.write(a.host, part));
        } else pending.push(this.allocate(a, offset + pos, part));
        pos += a.bytes;
      }
    } catch (err) {
      failure = err;
    }
    const results = await Promise.allSettled(pending);
    if (failure !== undefined) throw failure;
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /**
   * Write-zeroes: whole (sub)clusters become zero clusters (freed with `unmap`), the unaligned
   * edges and anything the engine cannot mark are written as zeros.
   */
  async writeZeroes(offset: number, bytes: number, unmap: boolean): Promise<void> {
    const unit = this.o.subclusterSize;
    const start = Math.ceil(offset / unit) * unit;
    const end = Math.floor((offset + bytes) / unit) * unit;
    if (this.o.version < 3 || start >= end) return this.writeZeroBuffer(offset, bytes);
    if (start > offset) await this.writeZeroBuffer(offset, start - offset);
    const mode = (unmap ? ZeroMode.ZERO_UNMAP : ZeroMode.ZERO) | (this.o.backing ? ZeroMode.HAS_BACKING : 0);
    await this.zeroRange(start, end, mode, this.o.passDiscardOther);
    if (end < offset + bytes) await this.writeZeroBuffer(end, offset + bytes - end);
  }

  /** Discard (qcow2_co_pdiscard): whole clusters only; the rest is ignored, as QEMU's -ENOTSUP is. */
  async discard(offset: number, bytes: number): Promise<void> {
    const cs = this.o.clusterSize;
    const start = Math.ceil(offset / cs) * cs;
    const end = Math.floor((offset + bytes) / cs) * cs;
    if (start >= end) return;
    const mode = ZeroMode.DISCARD | (this.o.backing ? ZeroMode.HAS_BACKING : 0);
    await this.zeroRange(start, end, mode, this.o.passDiscardRequest);
  }

  /** Writes all dirty metadata in crash-safe order, then flushes the file: all before is durable. */
  async flush(): Promise<void> {
    await this.writeMetadata();
    await this.o.file.flush();
    if (this.o.data !== this.o.file) await this.o.data.flush();
  }

  /** Makes the L1 table `entries` long (a resize), writing it and the header at once. */
  async growL1(entries: number): Promise<void> {
    await this.step(() => this.engine.growL1(entries));
    // The old table's decrement, applied once the new one is durable.
    this.takeFrees(false);
    await this.flush();
  }

  /**
   * The metadata half of a shrink from `oldSize` to `size` (qcow2_co_truncate): whole clusters
   * past the new end are discarded, L2 tables wholly past it freed (their L1 entries cleared),
   * and the L2 cache forgotten, as freed tables may be reused.
   */
  async shrink(size: number, oldSize: number, l2Bytes: number): Promise<void> {
    const start = Math.ceil(size / this.o.clusterSize) * this.o.clusterSize;
    if (start < oldSize) await this.zeroRange(start, oldSize, ZeroMode.DISCARD, true);
    await this.flush();
    this.engine.shrinkL1(Math.ceil(size / l2Bytes));
    this.takeFrees(true);
    await this.flush();
    this.engine.dropL2Cache();
  }

  /** Rewrites the virtual size in the header (after growL1 made room). */
  async setSize(bytes: number): Promise<void> {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(bytes));
    await this.o.file.write(HDR_SIZE, b);
    await this.o.file.flush();
  }

  /** Close: everything written back; a lazy-refcounts image is marked clean again. */
  async close(): Promise<void> {
    if (this.broken) return;
    await this.flush();
    if ((this.incompat & INCOMPAT_DIRTY) !== 0n) {
      await this.setIncompat(this.incompat & ~INCOMPAT_DIRTY);
      await this.o.file.flush();
    }
  }

  /**
   * Runs one engine step until it answers something other than a load or a wait: loads the
   * metadata it asks for, waits for the loads and allocations in its way, writes metadata back
   * when every cache slot is dirty. Throws on refusals and corruption. Also drives the
   * compressed allocations of writer-compressed.ts.
   */
  async step(
    ask: () => WriteAnswer,
    onBusy: () => Promise<void> = () => this.relieveCache(),
  ): Promise<WriteAnswer> {
    if (this.broken) throw ioError('EIO');
    for (;;) {
      const a = ask();
      switch (a.status) {
        case Status.NEED_LOAD:
          await this.reader.loadSlot(a.slot, a.host, a.loadBytes, a.loadPtr);
          break;
        case Status.WAIT:
          await this.reader.waitSlot(a.slot);
          break;
        case Status.BUSY:
          if (!(await this.reader.waitAnyLoad())) await onBusy();
          break;
        case Status.WAIT_ALLOC: {
          const pending = this.allocs.get(a.id);
          // Not ours to wait on would mean a lost allocation: yield instead of spinning.
          await (pending ? pending.catch(() => {}) : new Promise((resolve) => setTimeout(resolve, 1)));
          break;
        }
        case Status.OVERLAP:
          throw await this.overlap(a.bytes, a.host, a.regionStart);
        case Status.SHARED_L2:
          await this.unshareL2(a.bytes);
          break;
        case Status.OK:
        case Status.IN_PLACE:
        case Status.ALLOC:
        case Status.FALLBACK:
        case Status.REFCOUNT_UNDERFLOW:
          // A copy: the engine reuses its answer object, and other requests run before ours resumes.
          return { ...a };
        default:
          throw ioError('EIO', `qcow2: engine status ${a.status} while writing`);
      }
    }
  }

  /**
   * Every cache slot is dirty or pinned: write the dirty ones back, or else wait for an
   * allocation in flight to release its pinned slot (never spin: those need real I/O to finish).
   */
  private async relieveCache(): Promise<void> {
    if (this.engine.dirtySlots(CacheId.L2).length + this.engine.dirtySlots(CacheId.REFCOUNT).length > 0) {
      return this.writeMetadata();
    }
    if (this.allocs.size > 0) {
      await Promise.race([...this.allocs.values()].map((p) => p.catch(() => {})));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }

  /** Performs allocation `a` for guest `offset`: region written, then linked (or aborted). */
  private allocate(a: WriteAnswer, offset: number, part: Uint8Array): Promise<void> {
    const done = (async () => {
      try {
        // qcow2_alloc_clusters: update_refcount looks up (or allocates) the refcount block at once.
        this.o.file.debugEvent('cluster_alloc');
        this.o.file.debugEvent('refblock_alloc');
        if (a.newL2 !== 0) await this.zeroNewL2(a.newL2);
        const region = new Uint8Array(a.regionEnd - a.regionStart);
        const head = offset - a.regionStart;
        const tailAt = head + part.length;
        const cow = head > 0 || tailAt < region.length;
        // The copies read the guest view as it is now: the L2 entries are not changed yet.
        if (cow && this.o.backing) this.o.file.debugEvent('cow_read');
        if (head > 0) await this.reader.read(a.regionStart, region.subarray(0, head));
        if (tailAt < region.length) await this.reader.read(offset + part.length, region.subarray(tailAt));
        region.set(part, head);
        this.allocationWriteEvents(cow);
        await this.o.data.write(a.host, region);
        this.engine.commit(a.id);
      } catch (err) {
        this.engine.abort(a.id);
        throw err;
      } finally {
        this.allocs.delete(a.id);
        this.takeFrees(false);
      }
    })();
    this.allocs.set(a.id, done);
    return done;
  }

  private async zeroRange(start: number, end: number, mode: number, pass: boolean): Promise<void> {
    for (let pos = start; pos < end;) {
      const a = await this.step(() => this.engine.zeroClusters(pos, end - pos, mode));
      if (a.status === Status.ALLOC) {
        await this.createL2(a.id, a.host);
        continue;
      }
      this.takeFrees(pass);
      if (a.status === Status.FALLBACK) await this.writeZeroBuffer(pos, a.bytes);
      pos += a.bytes;
    }
  }

  /** Zeroes the new L2 table `table` of allocation `id` on disk, then links it (or aborts). */
  private createL2(id: number, table: number): Promise<void> {
    const done = (async () => {
      try {
        await this.zeroNewL2(table);
        this.engine.commit(id);
      } catch (err) {
        this.engine.abort(id);
        throw err;
      } finally {
        this.allocs.delete(id);
        this.takeFrees(false);
      }
    })();
    this.allocs.set(id, done);
    return done;
  }

  /**
   * The blkdebug events QEMU's qcow2 signals before the data write of an allocation: without
   * copy-on-write regions write_aio; with them and a backing file cow_write (data merged into the
   * COW write, perform_cow); without a backing file handle_alloc_space's cluster_alloc_space
   * (zeroing the cluster) and then write_aio. Whether an old cluster's data is copied is not known
   * here, so COW without a backing file always counts as zero COW.
   */
  private allocationWriteEvents(cow: boolean): void {
    if (cow && this.o.backing) return this.o.file.debugEvent('cow_write');
    if (cow) this.o.file.debugEvent('cluster_alloc_space');
    this.o.data.debugEvent('write_aio');
  }

  /** l2_allocate's write of a new, empty L2 table. */
  private zeroNewL2(table: number): Promise<void> {
    this.o.file.debugEvent('l2_alloc_write');
    return this.o.file.write(table, new Uint8Array(this.o.clusterSize));
  }

  private async writeZeroBuffer(offset: number, bytes: number): Promise<void> {
    const chunk = Math.min(bytes, 1 << 20);
    const zeros = new Uint8Array(chunk);
    for (let done = 0; done < bytes; done += chunk) {
      const n = Math.min(chunk, bytes - done);
      await this.write(offset + done, n === chunk ? zeros : zeros.subarray(0, n));
    }
  }

  private takeFrees(pass: boolean): void {
    for (const [first, count] of this.engine.takeFrees()) this.pendingFrees.push({ first, count, pass });
  }

  /**
   * Copy-on-write of the shared L2 table of L1 entry `l1i` (l2_allocate for an entry without
   * COPIED): the table is copied verbatim into a new cluster and the L1 entry pointed at it; the
   * shared table's decrement waits for the new L1 entry to be durable. Requests meeting the same
   * shared table meanwhile wait for this copy.
   */
  private unshareL2(l1i: number): Promise<void> {
    let copying = this.unsharing.get(l1i);
    if (!copying) {
      copying = this.copyL2(l1i).finally(() => this.unsharing.delete(l1i));
      this.unsharing.set(l1i, copying);
    }
    return copying;
  }

  private async copyL2(l1i: number): Promise<void> {
    const a = await this.step(() => this.engine.unshareL2(l1i));
    try {
      const table = new Uint8Array(this.o.clusterSize);
      // l2_allocate's events for a table copied from the shared one.
      this.o.file.debugEvent('l2_alloc_cow_read');
      await this.o.file.read(a.regionStart, table);
      this.o.file.debugEvent('l2_alloc_write');
      await this.o.file.write(a.host, table);
    } catch (err) {
      this.pendingFrees.push({ first: a.host / this.o.clusterSize, count: 1, pass: false });
      throw err;
    }
    this.engine.linkL2(l1i, a.host);
    this.takeFrees(false);
  }

  /**
   * Adds `addend` (+1 or -1) to the refcount of `cluster` at once, in the refcount cache
   * (update_refcount, for snapshot bookkeeping: the caller orders the metadata). Returns the
   * new refcount; EIO when it would leave 0..max.
   */
  async changeRefcount(cluster: number, addend: 1 | -1): Promise<number> {
    const a = await this.step(() => (addend > 0 ? this.engine.incref(cluster) : this.engine.decref(cluster)));
    if (a.status !== Status.OK) throw ioError('EIO', `qcow2: refcount of cluster ${cluster} out of range`);
    return a.bytes;
  }

  /** The refcount of `cluster` as the cache has it. */
  async refcount(cluster: number): Promise<number> {
    return (await this.step(() => this.engine.refcountOf(cluster))).bytes;
  }

  /** Allocates `n` contiguous clusters for metadata the caller writes; their host offset. */
  async allocClusters(n: number): Promise<number> {
    return (await this.step(() => this.engine.allocClusters(n))).host;
  }

  /** One write-back at a time; a caller arriving during one waits for it and starts another. */
  private async writeMetadata(): Promise<void> {
    while (this.writeback) await this.writeback.catch(() => {});
    this.writeback = this.writeBack();
    try {
      await this.writeback;
    } finally {
      this.writeback = undefined;
    }
  }

  private async writeBack(): Promise<void> {
    const { file } = this.o;
    const blocks = this.engine.dirtySlots(CacheId.REFCOUNT);
    if (this.o.lazy && blocks.length > 0 && (this.incompat & INCOMPAT_DIRTY) === 0n) {
      // Lazy refcounts: the dirty bit is durable before any refcount may lag behind the L2s.
      await this.setIncompat(this.incompat | INCOMPAT_DIRTY);
      await file.flush();
    }
    const ordered = !this.o.lazy;
    // Taken first: a changed table means the engine allocated refcount blocks, whose events
    // come before the blocks are written (alloc_refcount_block, qcow2_refcount_area).
    const table = this.engine.takeRefcountTable();
    try {
      if (table.bytes.length > 0) refblockAllocEvents(file, table.moved);
      if (await this.writeSlots(CacheId.REFCOUNT, blocks, Overlap.REFCOUNT_BLOCK)) {
        if (ordered) await file.flush();
      }
    } catch (err) {
      if (table.bytes.length > 0) this.engine.tableFailed('refcount', table.moved);
      throw err;
    }
    await this.writeRefcountTable(table, ordered);
    const slices = this.engine.dirtySlots(CacheId.L2);
    if (slices.length > 0) {
      // Guest data, and the zeroed new L2 tables, before the L2 entries pointing at them.
      await file.flush();
      if (this.o.data !== file) await this.o.data.flush();
      await this.writeSlots(CacheId.L2, slices, Overlap.ACTIVE_L2);
    }
    await this.writeL1();
    await this.applyFrees();
  }

  /** Writes copies of dirty slots; true if there were any. */
  private async writeSlots(
    which: number,
    slots: ReturnType<Qcow2Engine['dirtySlots']>,
    own: number,
  ): Promise<boolean> {
    for (const s of slots) await this.checkOverlap(s.host, s.bytes.length, own);
    // qcow2_cache_entry_flush's events.
    const event = which === CacheId.L2 ? 'l2_update' : 'refblock_update_part';
    await Promise.all(
      slots.map(async (s) => {
        this.o.file.debugEvent(event);
        await this.o.file.write(s.host, s.bytes);
        this.engine.cleaned(which, s.slot, s.gen);
      }),
    );
    return slots.length > 0;
  }

  /**
   * Writes the refcount table entries `t` holds: new blocks hooked into the table
   * (REFBLOCK_ALLOC_HOOKUP), or a grown table and then the header switched to it.
   */
  private async writeRefcountTable(t: TableState, ordered: boolean): Promise<void> {
    if (t.bytes.length === 0) return;
    try {
      await this.checkOverlap(t.offset + t.lo * 8, t.bytes.length, Overlap.REFCOUNT_TABLE);
      this.o.file.debugEvent(t.moved ? 'refblock_alloc_write_table' : 'refblock_alloc_hookup');
      await this.o.file.write(t.offset + t.lo * 8, t.bytes);
      if (t.moved) {
        // The new table and its blocks are on disk before the header points at them.
        await this.o.file.flush();
        this.o.file.debugEvent('refblock_alloc_switch_table');
        const h = new Uint8Array(12);
        const v = new DataView(h.buffer);
        v.setBigUint64(0, BigInt(t.offset));
        v.setUint32(8, t.clusters);
        await this.o.file.write(HDR_REFTABLE, h);
      }
      if (ordered || t.moved) await this.o.file.flush();
    } catch (err) {
      this.engine.tableFailed('refcount', t.moved);
      throw err;
    }
  }

  private async writeL1(): Promise<void> {
    const t = this.engine.takeL1();
    if (t.bytes.length === 0) return;
    try {
      // The L2 slices the entries point at are on disk first.
      await this.o.file.flush();
      await this.checkOverlap(t.offset + t.lo * 8, t.bytes.length, Overlap.ACTIVE_L1);
      // qcow2_grow_l1_table: the new table's clusters were allocated (L1_GROW_ALLOC_TABLE) and
      // the refcount blocks written above; its write is the first I/O after both events.
      if (t.moved) this.o.file.debugEvent('l1_grow_alloc_table');
      this.o.file.debugEvent(t.moved ? 'l1_grow_write_table' : 'l1_update');
      await this.o.file.write(t.offset + t.lo * 8, t.bytes);
      if (t.moved) {
        await this.o.file.flush();
        this.o.file.debugEvent('l1_grow_activate_table');
        const h = new Uint8Array(12);
        const v = new DataView(h.buffer);
        v.setUint32(0, t.entries);
        v.setBigUint64(4, BigInt(t.offset));
        await this.o.file.write(HDR_L1_SIZE, h);
      }
    } catch (err) {
      this.engine.tableFailed('l1', t.moved);
      throw err;
    }
  }

  /**
   * Applies the queued decrements once the metadata that dropped the references is durable, then
   * writes the refcount blocks and discards freed clusters on the file where asked to.
   */
  private async applyFrees(): Promise<void> {
    if (this.pendingFrees.length === 0) return;
    await this.o.file.flush();
    const frees = this.pendingFrees;
    this.pendingFrees = [];
    const discards: Array<[number, number]> = [];
    for (let i = 0; i < frees.length; i++) {
      const f = frees[i]!;
      for (let c = f.first; c < f.first + f.count; c++) {
        let a: WriteAnswer;
        try {
          // Inside the write-back: a full cache is relieved by writing refcount blocks only.
          a = await this.step(
            () => this.engine.decref(c),
            () => this.writeRefcountBlocks(),
          );
        } catch (err) {
          // Keep what is not applied yet for the next write-back.
          this.pendingFrees.push({ ...f, first: c, count: f.first + f.count - c }, ...frees.slice(i + 1));
          throw err;
        }
        if (a.status === Status.OK && a.bytes === 0 && f.pass) discards.push([c, 1]);
      }
    }
    await this.writeRefcountBlocks();
    const cs = this.o.clusterSize;
    for (const [c] of discards) await this.o.file.discard(c * cs, cs).catch(() => {});
  }

  private async writeRefcountBlocks(): Promise<void> {
    const blocks = this.engine.dirtySlots(CacheId.REFCOUNT);
    await this.writeSlots(CacheId.REFCOUNT, blocks, Overlap.REFCOUNT_BLOCK);
  }

  private async checkOverlap(offset: number, bytes: number, own: number): Promise<void> {
    const hit = this.engine.overlaps(offset, bytes, own);
    if (hit !== 0) throw await this.overlap(offset, bytes, hit);
  }

  /**
   * qcow2_pre_write_overlap_check failing: the image is marked corrupt, BLOCK_IMAGE_CORRUPTED
   * emitted, the node stops serving, and the request fails with EIO.
   */
  private async overlap(offset: number, bytes: number, kind: number): Promise<Error> {
    const msg = `Preventing invalid write on metadata (overlaps with ${OVERLAP_NAMES[kind] ?? 'metadata'})`;
    this.broken = true;
    this.o.onCorruption(msg, offset, bytes);
    await this.setIncompat(this.incompat | INCOMPAT_CORRUPT).catch(() => {});
    await this.o.file.flush().catch(() => {});
    return ioError(
      'EIO',
      `qcow2: Marking image as corrupt: ${msg}; further corruption events will be suppressed`,
    );
  }

  private async setIncompat(bits: bigint): Promise<void> {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, bits);
    await this.o.file.write(HDR_INCOMPAT, b);
    this.incompat = bits;
  }
}

/**
 * The events of alloc_refcount_block before new refcount blocks are written: their write, and
 * when the table had to grow for them, the growth and the write of the blocks covering the new
 * table (qcow2_refcount_area). In QEMU each is followed by the write of the refcount blocks, as
 * here. (REFBLOCK_ALLOC itself comes at every allocation: see allocate.)
 */
function refblockAllocEvents(file: BlockNode, tableMoved: boolean): void {
  file.debugEvent('refblock_alloc_write');
  if (!tableMoved) return;
  file.debugEvent('reftable_grow');
  file.debugEvent('refblock_alloc_write_blocks');
}
