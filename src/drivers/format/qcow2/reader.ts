/**
 * Reading through the engine (qcow2_co_preadv_part): each request is mapped into extents, the
 * metadata the engine asks for is loaded into its cache slots, and the data extents are read
 * from the file (or external data file) with contiguous host runs merged into one child read,
 * unallocated ones from the backing node, compressed clusters decompressed.
 *
 * Concurrency: several requests share the engine's cache. A slice being loaded is known by its
 * slot's promise; a request needing it waits for that load instead of starting another, and
 * the engine never evicts a slot that is being loaded.
 */
import { BlockIOError, ioError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import { Status, type Qcow2Engine } from '../../../qcow2/engine.ts';
import { decompressCluster } from './compress.ts';
import { corruptionError, corruptionText } from './errors.ts';

/** A mapped guest range (a copy of the engine's answer). */
export interface Extent {
  readonly status: number;
  readonly bytes: number;
  /** Host offset where the status has one; for COMPRESSED the compressed data's. */
  readonly host: number;
  /** COMPRESSED: bytes of compressed data. */
  readonly csize: number;
}

export interface ReaderNodes {
  readonly file: BlockNode;
  /** Where guest clusters live when the image has an external data file. */
  readonly dataFile: BlockNode | undefined;
  readonly backing: BlockNode | undefined;
  readonly clusterSize: number;
  readonly compression: 'deflate' | 'zstd';
}

export class Qcow2Reader {
  /** Loads in flight by cache slot. */
  private readonly loading = new Map<number, Promise<void>>();
  /** Set once fatal corruption was found: like QEMU (bs->drv = NULL), the node serves nothing more. */
  private broken = false;
  /** Corruption was reported once already; QEMU suppresses the later events. */
  private signaled = false;

  constructor(
    private readonly engine: Qcow2Engine,
    /** Also what a reader of one of the image's snapshots reads through (qcow2/vmstate.ts). */
    readonly nodes: ReaderNodes,
    /** Corruption marks the image corrupt and stops the node (writable nodes only). */
    private readonly fatal: boolean,
    private readonly onCorruption: (message: string) => void,
  ) {}

  /** Read at each use: live graph changes may attach, swap or drop the backing node. */
  get backing(): BlockNode | undefined {
    return this.nodes.backing;
  }

  /** The extent starting at `offset`, at most `bytes` long, loading metadata as needed. */
  async extent(offset: number, bytes: number): Promise<Extent> {
    if (this.broken) throw ioError('ENOMEDIUM');
    for (;;) {
      const a = this.engine.map(offset, bytes);
      switch (a.status) {
        case Status.DATA:
        case Status.ZERO_PLAIN:
        case Status.ZERO_ALLOC:
        case Status.UNALLOC_PLAIN:
        case Status.UNALLOC_ALLOC:
        case Status.COMPRESSED:
          return { status: a.status, bytes: a.bytes, host: a.host, csize: a.csize };
        case Status.NEED_LOAD:
          await this.loadSlot(a.slot, a.host, a.bytes, a.csize);
          break;
        case Status.WAIT:
          await this.waitSlot(a.slot);
          break;
        case Status.BUSY:
          // Every slot is loading, or (while writing) dirty: wait for a load or for a write-back.
          if (!(await this.waitAnyLoad())) await this.onBusy();
          break;
        default:
          throw this.corrupt(corruptionText(a) ?? `qcow2 engine status ${a.status}`);
      }
    }
  }

  /** Reads guest bytes [offset, offset + dst.length). */
  async read(offset: number, dst: Uint8Array): Promise<void> {
    const reads: Promise<void>[] = [];
    let mapError: unknown;
    try {
      await this.startReads(offset, dst, reads);
    } catch (err) {
      mapError = err;
    }
    // Even when mapping failed, let started reads finish before the caller reuses dst.
    const results = await Promise.allSettled(reads);
    if (mapError !== undefined) throw mapError;
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /** Maps the request extent by extent, pushing one read per piece; contiguous data is merged. */
  private async startReads(offset: number, dst: Uint8Array, reads: Promise<void>[]): Promise<void> {
    let run: { pos: number; host: number; bytes: number } | undefined;
    for (let pos = 0; pos < dst.length;) {
      const e = await this.extent(offset + pos, dst.length - pos);
      const part = dst.subarray(pos, pos + e.bytes);
      if (e.status === Status.DATA && run && run.host + run.bytes === e.host && run.pos + run.bytes === pos) {
        run.bytes += e.bytes;
      } else {
        if (run) reads.push(this.readData(run.host, dst.subarray(run.pos, run.pos + run.bytes)));
        run = e.status === Status.DATA ? { pos, host: e.host, bytes: e.bytes } : undefined;
        if (e.status === Status.COMPRESSED) reads.push(this.readCompressed(e, offset + pos, part));
        else if (e.status !== Status.DATA) reads.push(this.readUnallocated(e.status, offset + pos, part));
      }
      pos += e.bytes;
    }
    if (run) reads.push(this.readData(run.host, dst.subarray(run.pos, run.pos + run.bytes)));
  }

  private readData(host: number, dst: Uint8Array): Promise<void> {
    const node = this.nodes.dataFile ?? this.nodes.file;
    node.debugEvent('read_aio');
    return node.read(host, dst);
  }

  /** Zero clusters read zeros; unallocated ones the backing node's bytes, or zeros without one. */
  private async readUnallocated(status: number, offset: number, dst: Uint8Array): Promise<void> {
    const zero = status === Status.ZERO_PLAIN || status === Status.ZERO_ALLOC;
    if (zero || !this.backing) dst.fill(0);
    else {
      this.nodes.file.debugEvent('read_backing_aio');
      await this.backing.read(offset, dst);
    }
  }

  /** qcow2_co_preadv_compressed: the whole cluster is decompressed, the wanted part copied. */
  private async readCompressed(e: Extent, offset: number, dst: Uint8Array): Promise<void> {
    const { clusterSize, compression, file } = this.nodes;
    const src = new Uint8Array(e.csize);
    file.debugEvent('read_compressed');
    await file.read(e.host, src);
    const cluster = new Uint8Array(clusterSize);
    try {
      await decompressCluster(compression, src, cluster);
    } catch (err) {
      // QEMU only says EIO here; name the descriptor so the bad cluster can be found.
      const why = err instanceof Error ? err.message : String(err);
      throw ioError(
        'EIO',
        `${why} (compressed cluster at host offset 0x${e.host.toString(16)}, ${e.csize} bytes)`,
      );
    }
    const at = offset % clusterSize;
    dst.set(cluster.subarray(at, at + dst.length));
  }

  /** Waits for the load of `slot` to settle either way. */
  waitSlot(slot: number): Promise<void> {
    return settled(this.loading.get(slot));
  }

  /** Waits for any load in flight to settle; false at once if none is. */
  async waitAnyLoad(): Promise<boolean> {
    if (this.loading.size === 0) return false;
    await Promise.race([...this.loading.values()].map(settled));
    return true;
  }

  /** Set by the writer: frees cache slots by writing dirty metadata back. */
  onBusy: () => Promise<void> = () => new Promise((resolve) => setTimeout(resolve, 1));

  /** Loads `bytes` at `host` into cache slot `slot` (memory `ptr`); one load per slot at a time. */
  loadSlot(slot: number, host: number, bytes: number, ptr: number): Promise<void> {
    const { file } = this.nodes;
    const p = (async () => {
      try {
        if (host + bytes > Number.MAX_SAFE_INTEGER) throw ioError('EIO');
        const buf = new Uint8Array(bytes);
        // Refcount cache slots are tagged from 2^24 on (assembly/qcow2/cache.ts REFCOUNT_TAG).
        file.debugEvent(slot >= 1 << 24 ? 'refblock_load' : 'l2_load');
        await file.read(host, buf);
        this.engine.fillSlot(slot, ptr, buf);
      } catch (err) {
        this.engine.failSlot(slot);
        throw err;
      } finally {
        this.loading.delete(slot);
      }
    })();
    this.loading.set(slot, p);
    return p;
  }

  /**
   * qcow2_signal_corruption: reports the problem once; when fatal, the node refuses all further
   * requests, otherwise only this request fails.
   */
  private corrupt(message: string): BlockIOError {
    if (this.fatal) this.broken = true;
    if (!this.signaled) this.onCorruption(message);
    this.signaled = true;
    return corruptionError(message, this.fatal);
  }
}

/** A promise that resolves when `p` settles either way (waiting on another request's load). */
function settled(p: Promise<void> | undefined): Promise<void> {
  return p
    ? p.then(
        () => {},
        () => {},
      )
    : Promise.resolve();
}
