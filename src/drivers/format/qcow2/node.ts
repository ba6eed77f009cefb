/**
 * The operations of an open qcow2 node (QEMU block/qcow2.c's BlockDriver callbacks): reads
 * through Qcow2Reader, writes through Qcow2Writer, block status, resize, internal snapshots,
 * VM state, backing-file changes and live child replacement. open.ts builds it.
 */
import type { BlockDriverOps, ImageFacts, SnapshotCreateOptions } from '../../../block/driver.ts';
import { genericError, ioError, STRERROR } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import type { BlockStatus, ZeroOptions } from '../../../block/types.ts';
import { Status, type Qcow2Header } from '../../../qcow2/engine.ts';
import type { WasmIo } from '../../../wasm/io.ts';
import { setBackingFile } from './amend.ts';
import type { Qcow2Bitmaps } from './bitmaps-store.ts';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  COMPAT_LAZY_REFCOUNTS,
  INCOMPAT_CORRUPT,
  INCOMPAT_DATA_FILE,
  INCOMPAT_DIRTY,
  INCOMPAT_EXTL2,
} from './create-header.ts';
import type { HeaderExtensions } from './extensions.ts';
import type { Extent, Qcow2Reader } from './reader.ts';
import { shrinkFile } from './shrink-file.ts';
import { snapshotCreate, snapshotDelete, snapshotGoto, type SnapshotImage } from './snapshot-write.ts';
import { readSnapshotTable, snapshotInfo, type Qcow2Snapshot } from './snapshots.ts';
import { dropVmState, readVmState, writeVmState, type VmStateSource } from './vmstate.ts';
import type { CompressedWriter } from './writer-compressed.ts';
import type { Qcow2Writer } from './writer.ts';

/** The image's children, replaced in place by live graph changes. */
export interface ImageChildren {
  file: BlockNode;
  dataFile: BlockNode | undefined;
  backing: BlockNode | undefined;
  readonly clusterSize: number;
  readonly compression: 'deflate' | 'zstd';
}

/** Everything open learns from the image before it can serve requests. */
export interface OpenedImage {
  header: Qcow2Header;
  ext: HeaderExtensions;
  backingName?: string;
  snapshots: Qcow2Snapshot[];
}

/** Reads `len` bytes at `offset` of `node`; offsets beyond 2^53 fail as QEMU's beyond 2^63 do. */
export async function readFile(node: BlockNode, offset: number, len: number): Promise<Uint8Array> {
  if (offset + len > Number.MAX_SAFE_INTEGER) throw ioError('EIO');
  const buf = new Uint8Array(len);
  await node.read(offset, buf);
  return buf;
}

/** Node options the write path honours (COMMON_NODE_OPTIONS). */
export interface WritePolicy {
  readonly detectZeroes: string;
  /** discard=unmap: discards and detect-zeroes=unmap may free clusters. */
  readonly unmap: boolean;
  readonly zeroScan: WasmIo;
}

/** The per-node operations over an open image. */
export class Qcow2Node implements BlockDriverOps {
  /** What snapshot operations work on (read-write nodes). */
  snapshotImage: SnapshotImage | undefined;
  /** Compressed writes (read-write nodes). */
  compressedWriter: CompressedWriter | undefined;
  /** Persistent dirty bitmaps (qcow2/bitmaps-store.ts). */
  persistentBitmaps!: Qcow2Bitmaps;
  /** The children the reader, writers and snapshot code read at each use. */
  children!: ImageChildren;

  constructor(
    private readonly reader: Qcow2Reader,
    private readonly writer: Qcow2Writer | undefined,
    private readonly image: OpenedImage,
    private size: number,
    private readonly clusterSize: number,
    private readonly stopCleaning: (() => void) | undefined,
    private readonly policy: WritePolicy,
  ) {}

  length(): number {
    return this.size;
  }

  read(offset: number, dst: Uint8Array): Promise<void> {
    return this.reader.read(offset, dst);
  }

  /** detect-zeroes turns an all-zero write into write-zeroes (bdrv_aligned_pwritev). */
  async write(offset: number, src: Uint8Array): Promise<void> {
    const w = this.writable();
    if (this.policy.detectZeroes !== 'off' && this.policy.zeroScan.isZero(src)) {
      const unmap = this.policy.detectZeroes === 'unmap' && this.policy.unmap;
      return w.writeZeroes(offset, src.length, unmap);
    }
    return w.write(offset, src);
  }

  /** WriteFlags.compressed (qcow2_co_pwritev_compressed_part): see qcow2/writer-compressed.ts. */
  async writeCompressed(offset: number, src: Uint8Array): Promise<void> {
    this.writable();
    return this.compressedWriter!.write(offset, src);
  }

  async writeZeroes(offset: number, bytes: number, opts: ZeroOptions): Promise<void> {
    return this.writable().writeZeroes(offset, bytes, opts.unmap === true && this.policy.unmap);
  }

  /** discard=ignore (the default) drops discards, as bdrv_co_pdiscard does without BDRV_O_UNMAP. */
  async discard(offset: number, bytes: number): Promise<void> {
    if (this.policy.unmap) await this.writable().discard(offset, bytes);
  }

  async flush(): Promise<void> {
    await this.writer?.flush();
  }

  /**
   * qcow2_co_truncate: growing, the L1 table grows first, then the size in the header;
   * shrinking, the clusters past the new end are freed first (the L1 table keeps its size) and
   * the file is cut after its last used cluster.
   */
  async truncate(bytes: number): Promise<void> {
    const w = this.writable();
    if (bytes % 512 !== 0) throw ioError('EINVAL', 'The new size must be a multiple of 512');
    const h = this.image.header;
    if (h.version < 3 && this.image.snapshots.length > 0) {
      throw genericError("Can't resize a v2 image which has snapshots");
    }
    const l2Bytes = this.clusterSize * (this.clusterSize / (this.extendedL2() ? 16 : 8));
    if (bytes < this.size) {
      await w.shrink(bytes, this.size, l2Bytes);
      await shrinkFile(this.snapshotImage!);
    } else await w.growL1(Math.ceil(bytes / l2Bytes));
    await w.setSize(bytes);
    this.size = bytes;
    if (this.snapshotImage) this.snapshotImage.size = bytes;
  }

  /**
   * qcow2_co_block_status plus bdrv_co_block_status's rules for unallocated ranges: those are
   * answered by the backing node with `depth` + 1, and `allocated` then says whether the layer
   * at that depth has them (qemu-img map's `present`).
   */
  async blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const e: Extent = await this.reader.extent(offset, bytes);
    const n = e.bytes;
    const at = e.host;
    switch (e.status) {
      case Status.DATA:
        return { bytes: n, data: true, zero: false, allocated: true, depth: 0, offset: at };
      case Status.COMPRESSED:
        return { bytes: n, data: true, zero: false, allocated: true, depth: 0 };
      case Status.ZERO_ALLOC:
        return { bytes: n, data: false, zero: true, allocated: true, depth: 0, offset: at };
      case Status.ZERO_PLAIN:
        return { bytes: n, data: false, zero: true, allocated: true, depth: 0 };
    }
    const backing = this.reader.backing;
    if (!backing) {
      // A preallocated but unallocated subcluster still has its host offset (OFFSET_VALID).
      const unalloc = { bytes: n, data: false, zero: true, allocated: false, depth: 0 };
      return e.status === Status.UNALLOC_ALLOC ? { ...unalloc, offset: at } : unalloc;
    }
    const below = await backing.blockStatus(offset, n);
    return { ...below, bytes: Math.min(below.bytes, n), depth: below.depth + 1 };
  }

  async snapshotCreate(name: string, opts: SnapshotCreateOptions = {}): Promise<void> {
    const now = Date.now();
    await this.snapshotOp(async (img) => {
      await snapshotCreate(img, {
        name,
        id: opts.id,
        dateSec: opts.dateSec ?? Math.floor(now / 1000),
        dateNsec: opts.dateNsec ?? (now % 1000) * 1e6,
        vmStateSize: opts.vmStateSize,
        vmClockNsec: opts.vmClockNsec,
        icount: opts.icount === undefined ? undefined : BigInt(opts.icount),
      });
      // The snapshot holds the VM state now; the active layer lets it go (qcow2/vmstate.ts).
      if (opts.vmStateSize) await dropVmState(img, opts.vmStateSize);
    });
  }

  async snapshotGoto(idOrName: string): Promise<void> {
    await this.snapshotOp((img) => snapshotGoto(img, idOrName));
  }

  async snapshotDelete(id?: string, name?: string): Promise<void> {
    // qcow2_snapshot_delete's first write (the snapshot table) is what a read-only node refuses.
    if (!this.snapshotImage)
      throw genericError(`Failed to remove snapshot from snapshot list: ${STRERROR.EPERM}`);
    await this.snapshotOp((img) => snapshotDelete(img, id, name));
  }

  /** qcow2_save_vmstate: see qcow2/vmstate.ts. */
  async saveVmState(pos: number, src: Uint8Array): Promise<void> {
    if (!this.snapshotImage) throw ioError('EPERM', 'qcow2: the node is read-only');
    await writeVmState(this.snapshotImage, pos, src);
  }

  /** qcow2_load_vmstate, or a snapshot's state without loading it: see qcow2/vmstate.ts. */
  async loadVmState(pos: number, dst: Uint8Array, snapshotId?: string): Promise<void> {
    const writer = this.writer;
    const source: VmStateSource = {
      reader: this.reader,
      size: this.size,
      clusterSize: this.clusterSize,
      extendedL2: this.extendedL2(),
      snapshots: this.image.snapshots,
      flush: writer && (() => writer.flush()),
    };
    await readVmState(source, pos, dst, snapshotId);
  }

  /** qcow2_change_backing_file: the header is rewritten once all metadata is written back. */
  async changeBackingFile(name: string, format: string): Promise<void> {
    const img = this.snapshotImage;
    if (!img) throw ioError('EPERM');
    const raw = (this.image.header.autoclearFeatures & AUTOCLEAR_DATA_FILE_RAW) !== 0n;
    // An image whose data file is raw cannot depend on a backing file; the name must fit PATH_MAX.
    if (raw || new TextEncoder().encode(name).length > 1023) throw ioError('EINVAL');
    await img.writer.flush();
    await setBackingFile(img.file, name, format);
    this.image.backingName = name;
    this.image.ext.backingFormat = format;
  }

  /**
   * Live graph changes: a new `file` (a filter inserted above the same bytes) or a `backing`
   * attached, swapped or dropped (blockdev-snapshot, stream, commit). The header's backing file
   * name is not touched, as bdrv_set_backing_hd leaves it (change-backing-file rewrites it).
   */
  replaceChild(name: string, node: BlockNode | null): void {
    if (name === 'backing') this.children.backing = node ?? undefined;
    else if (name === 'file' && node) this.children.file = node;
    else throw genericError(`Cannot change the '${name}' child of a qcow2 node`);
  }

  /** Runs a snapshot operation, then re-reads the snapshot table it may have rewritten. */
  private async snapshotOp(op: (img: SnapshotImage) => Promise<void>): Promise<void> {
    const img = this.snapshotImage;
    if (!img) throw ioError('EPERM', 'qcow2: the node is read-only');
    try {
      await op(img);
    } finally {
      img.snapshots = await readSnapshotTable(
        (offset, len) => readFile(img.file, offset, len),
        img.tableOffset,
        img.count,
        img.size,
      );
      this.image.snapshots = img.snapshots;
    }
  }

  async close(): Promise<void> {
    this.stopCleaning?.();
    await this.writer?.close();
  }

  private extendedL2(): boolean {
    return (this.image.header.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n;
  }

  private writable(): Qcow2Writer {
    if (!this.writer) throw ioError('EPERM', 'qcow2: the node is read-only');
    return this.writer;
  }

  /** ImageInfoSpecificQCow2 (qcow2_get_specific_info), members in qemu-img's output order. */
  info(): Record<string, unknown> {
    const h = this.image.header;
    const compression = h.compressionType === 1 ? 'zstd' : 'zlib';
    if (h.version === 2) return { compat: '0.10', 'compression-type': compression, 'refcount-bits': 16 };
    const out: Record<string, unknown> = {
      compat: '1.1',
      'compression-type': compression,
      'lazy-refcounts': (h.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0n,
    };
    const bitmaps = this.persistentBitmaps.info();
    if (bitmaps.length > 0) out.bitmaps = bitmaps;
    out['refcount-bits'] = 2 ** h.refcountOrder;
    if ((h.incompatibleFeatures & INCOMPAT_DATA_FILE) !== 0n) {
      if (this.image.ext.dataFile !== undefined) out['data-file'] = this.image.ext.dataFile;
      out['data-file-raw'] = (h.autoclearFeatures & AUTOCLEAR_DATA_FILE_RAW) !== 0n;
    }
    out.corrupt = (h.incompatibleFeatures & INCOMPAT_CORRUPT) !== 0n;
    out['extended-l2'] = (h.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n;
    return out;
  }

  imageFacts(): ImageFacts {
    const { header, ext, backingName, snapshots } = this.image;
    return {
      clusterSize: this.clusterSize,
      dirty: (header.incompatibleFeatures & INCOMPAT_DIRTY) !== 0n,
      ...(backingName !== undefined && { backingFilename: backingName }),
      ...(ext.backingFormat !== undefined && { backingFormat: ext.backingFormat }),
      snapshots: snapshots.map(snapshotInfo),
    };
  }
}
