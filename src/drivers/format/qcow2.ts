/**
 * qcow2 (QEMU block/qcow2.c), read side: the host half of the sans-I/O engine (DESIGN.md §3,
 * src/qcow2/engine.ts). Open reads the header, extensions, L1 table and snapshot table from the
 * `file` child; reads ask the engine to map guest ranges and then read data from the file (or
 * the external data file), the backing node, or decompress clusters.
 *
 * A read-write open also loads the refcount table and hands writes to Qcow2Writer
 * (qcow2/writer.ts); it first repairs an image left dirty (lazy refcounts) and clears the
 * autoclear bits blockgraph does not maintain, as qcow2_do_open does.
 */
import type {
  BlockDriver,
  BlockDriverOps,
  ImageFacts,
  OpenContext,
  SnapshotCreateOptions,
} from '../../block/driver.ts';
import { BlockIOError, genericError, ioError, QmpError, STRERROR, errnoOf } from '../../block/errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { BlockStatus, ZeroOptions } from '../../block/types.ts';
import { registerFormatProbe } from '../../config/probe.ts';
import {
  EngineError,
  HEADER_BYTES,
  Qcow2Engine,
  Status,
  Table,
  Overlap,
  type Qcow2Header,
} from '../../qcow2/engine.ts';
import { siblingFileOptions } from './qcow2/backing.ts';
import { parseBitmapDirectory, type BitmapInfo } from './qcow2/bitmaps.ts';
import { cacheSizes, cleanInterval } from './qcow2/cache-options.ts';
import { openError } from './qcow2/errors.ts';
import {
  AUTOCLEAR_BITMAPS,
  parseExtensions,
  unsupportedFeatureText,
  type HeaderExtensions,
} from './qcow2/extensions.ts';
import { Qcow2Bitmaps } from './qcow2/bitmaps-store.ts';
import { QCOW2_OPTIONS } from './qcow2/options.ts';
import { qcow2Creator } from './qcow2/create.ts';
import { Qcow2Reader, type Extent } from './qcow2/reader.ts';
import { Qcow2Writer } from './qcow2/writer.ts';
import { CompressedWriter } from './qcow2/writer-compressed.ts';
import { WasmIo } from '../../wasm/io.ts';
import { findSnapshot, readSnapshotTable, snapshotInfo, type Qcow2Snapshot } from './qcow2/snapshots.ts';
import { snapshotCreate, snapshotDelete, snapshotGoto, type SnapshotImage } from './qcow2/snapshot-write.ts';
import { setBackingFile } from './qcow2/amend.ts';
import { shrinkFile } from './qcow2/shrink-file.ts';
import { dropVmState, readVmState, writeVmState, type VmStateSource } from './qcow2/vmstate.ts';

const INCOMPAT_DIRTY = 1n;
const INCOMPAT_CORRUPT = 2n;
const INCOMPAT_DATA_FILE = 4n;
const INCOMPAT_EXTL2 = 16n;
const COMPAT_LAZY_REFCOUNTS = 1n;
const AUTOCLEAR_DATA_FILE_RAW = 2n;
/** The autoclear features blockgraph maintains (QCOW2_AUTOCLEAR_MASK): data-file-raw, bitmaps. */
const AUTOCLEAR_KEPT = AUTOCLEAR_DATA_FILE_RAW | AUTOCLEAR_BITMAPS;
const UINT_MAX = 0xffffffff;

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

/** The image's children, replaced in place by live graph changes. */
interface ImageChildren {
  file: BlockNode;
  dataFile: BlockNode | undefined;
  backing: BlockNode | undefined;
  readonly clusterSize: number;
  readonly compression: 'deflate' | 'zstd';
}

/** Everything open learns from the image before it can serve requests. */
interface OpenedImage {
  header: Qcow2Header;
  ext: HeaderExtensions;
  backingName?: string;
  snapshots: Qcow2Snapshot[];
  bitmaps: BitmapInfo[];
}

/** qcow2_do_open, in QEMU's order, so the first problem reported is the one QEMU reports. */
async function openImage(ctx: OpenContext, file: BlockNode): Promise<BlockDriverOps> {
  const opts = ctx.options;
  const engine = await Qcow2Engine.create();
  const readAt = (offset: number, len: number) => readFile(file, offset, len);
  let head = await readOr(() => readAt(0, HEADER_BYTES), 'Could not read qcow2 header');
  if (!ctx.readOnly && (await repairIfDirty(file, head))) {
    head = await readOr(() => readAt(0, HEADER_BYTES), 'Could not read qcow2 header');
  }
  let header: Qcow2Header;
  try {
    header = engine.parseHeader(head, !ctx.readOnly);
  } catch (err) {
    if (!(err instanceof EngineError)) throw err;
    if (err.status !== Status.UNSUPPORTED_FEATURE) throw openError(err.status, err.value);
    // Name the features from the image's own table; a broken table just leaves them unnamed.
    const ext = await readExtensionsLoosely(file, head);
    throw genericError(unsupportedFeatureText(ext?.features ?? [], err.value));
  }
  const clusterSize = 2 ** header.clusterBits;
  const size = Math.floor(header.size / 512) * 512;

  await readOr(
    () =>
      engine.useL1(Table.ACTIVE_L1, header.l1TableOffset, header.l1Size, (dst) =>
        file.read(header.l1TableOffset, dst),
      ),
    'Could not read L1 table',
  );
  const cacheGeometry = configureCache(engine, opts, header, clusterSize, size);
  checkEncryptionOptions(header, opts);

  const extEnd = header.backingFileOffset || clusterSize;
  const extArea = await readAt(header.headerLength, Math.max(0, extEnd - header.headerLength));
  const ext = parseExtensions(extArea, header.autoclearFeatures, clusterSize);
  const dataFile = await openDataFile(ctx, file, header, ext);
  checkEncryption(header, ext);

  const image: OpenedImage = { header, ext, snapshots: [], bitmaps: [] };
  if (header.backingFileOffset !== 0) image.backingName = await readBackingName(readAt, header, clusterSize);
  image.snapshots = await readSnapshotTable(readAt, header.snapshotsOffset, header.nbSnapshots, size);
  if (ext.bitmaps) {
    const { directoryOffset, directorySize, nbBitmaps } = ext.bitmaps;
    image.bitmaps = parseBitmapDirectory(await readAt(directoryOffset, directorySize), nbBitmaps);
  }

  let length = size;
  const snapshot = opts['x-snapshot'] as { id?: string; name?: string } | undefined;
  if (snapshot) {
    // bdrv_snapshot_load_tmp: only on a read-only node; the snapshot's L1 table and size.
    if (!ctx.readOnly) throw genericError('Device is not readonly');
    const sn = findSnapshot(image.snapshots, snapshot.id, snapshot.name);
    await readOr(
      () =>
        engine.useL1(Table.SNAPSHOT_L1, sn.l1TableOffset, sn.l1Size, (dst) =>
          file.read(sn.l1TableOffset, dst),
        ),
      'Failed to load snapshot',
    );
    length = sn.diskSize;
  }

  const backing = await openBacking(ctx, file, image);
  const compression = header.compressionType === 1 ? 'zstd' : 'deflate';
  // Corruption is fatal only on a writable node (qcow2_signal_corruption: fatal && bdrv_is_writable).
  const fatal = !ctx.readOnly;
  // The one place the children live: everything below reads them from here at each use, so
  // live graph changes (Qcow2Node.replaceChild) reach the reader, writers and snapshot code.
  const nodes: ImageChildren = { file, dataFile, backing, clusterSize, compression };
  const reader = new Qcow2Reader(engine, nodes, fatal, (msg) =>
    ctx.emit('BLOCK_IMAGE_CORRUPTED', { device: '', 'node-name': ctx.nodeName, msg, fatal }),
  );
  const writer = ctx.readOnly
    ? undefined
    : await openWriter(ctx, engine, reader, image, nodes, cacheGeometry);
  const node = new Qcow2Node(reader, writer, image, length, clusterSize, cleanInterval(engine, opts), {
    detectZeroes: (opts['detect-zeroes'] as string | undefined) ?? 'off',
    unmap: opts.discard === 'unmap' || opts.discard === 'on',
    zeroScan: new WasmIo(engine.wasmExports()),
  });
  node.children = nodes;
  node.persistentBitmaps = await Qcow2Bitmaps.load(
    {
      get file() {
        return nodes.file;
      },
      writer,
      clusterSize,
      version: header.version,
      length: size,
      autoclear: writer ? header.autoclearFeatures & AUTOCLEAR_KEPT : header.autoclearFeatures,
    },
    ext.bitmaps,
  );
  if (writer) {
    node.snapshotImage = {
      get file() {
        return nodes.file;
      },
      engine,
      writer,
      clusterSize,
      extendedL2: (header.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n,
      hasDataFile: dataFile !== undefined,
      get hasBacking() {
        return nodes.backing !== undefined;
      },
      size,
      refcountSlots: cacheGeometry,
      resize: (bytes) => node.truncate(bytes),
      tableOffset: header.snapshotsOffset,
      count: header.nbSnapshots,
      snapshots: image.snapshots,
    };
    node.compressedWriter = new CompressedWriter(engine, writer, {
      get file() {
        return nodes.file;
      },
      clusterSize,
      compression,
      hasDataFile: dataFile !== undefined,
      length: () => node.length(),
    });
  }
  return node;
}

/**
 * A dirty image (lazy refcounts, not closed cleanly) opened read-write is repaired first, as
 * qcow2_do_open runs qcow2_check with BDRV_FIX_ERRORS | BDRV_FIX_LEAKS. True if it did.
 */
async function repairIfDirty(file: BlockNode, head: Uint8Array): Promise<boolean> {
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length < 80 || v.getUint32(4) < 3 || (v.getBigUint64(72) & INCOMPAT_DIRTY) === 0n) return false;
  if ((v.getBigUint64(72) & INCOMPAT_CORRUPT) !== 0n) return false;
  const { checkImage } = await import('./qcow2/check.ts');
  await checkImage(file, { repair: 'all' });
  return true;
}

/**
 * The write side of a read-write open: unknown autoclear bits cleared (qcow2.txt: a writer that
 * does not maintain an autoclear feature must clear its bit; blockgraph keeps only data-file-raw),
 * the refcount table loaded, the overlap checks and lazy refcounts set up.
 */
async function openWriter(
  ctx: OpenContext,
  engine: Qcow2Engine,
  reader: Qcow2Reader,
  image: OpenedImage,
  n: ImageChildren,
  refcountSlots: number,
): Promise<Qcow2Writer> {
  const h = image.header;
  const opts = ctx.options;
  if (h.version >= 3 && (h.autoclearFeatures & ~AUTOCLEAR_KEPT) !== 0n) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, h.autoclearFeatures & AUTOCLEAR_KEPT);
    await n.file.write(88, b);
    await n.file.flush();
  }
  const clusterSize = 2 ** h.clusterBits;
  await readOr(
    () =>
      engine.useRefcountTable(h.refcountTableOffset, h.refcountTableClusters, refcountSlots, (dst) =>
        n.file.read(h.refcountTableOffset, dst),
      ),
    'Could not read refcount table',
  );
  engine.setOverlapChecks(overlapChecks(opts['overlap-check']));
  const extendedL2 = (h.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n;
  const lazy =
    (opts['lazy-refcounts'] as boolean | undefined) ?? (h.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0n;
  const unmap = opts.discard === 'unmap' || opts.discard === 'on';
  return new Qcow2Writer(engine, reader, {
    get file() {
      return n.file;
    },
    get data() {
      return n.dataFile ?? n.file;
    },
    get backing() {
      return n.backing;
    },
    clusterSize,
    subclusterSize: extendedL2 ? clusterSize / 32 : clusterSize,
    version: h.version,
    lazy,
    incompat: h.incompatibleFeatures,
    passDiscardRequest: (opts['pass-discard-request'] as boolean | undefined) ?? unmap,
    passDiscardOther: (opts['pass-discard-other'] as boolean | undefined) ?? false,
    onCorruption: (msg, offset, size) =>
      ctx.emit('BLOCK_IMAGE_CORRUPTED', {
        device: '',
        'node-name': ctx.nodeName,
        msg,
        offset,
        size,
        fatal: true,
      }),
  });
}

/** The overlap-check option (qcow2_update_options_prepare): a template name or { template }. */
function overlapChecks(option: unknown): number {
  const template =
    typeof option === 'string'
      ? option
      : ((option as { template?: string } | undefined)?.template ?? 'cached');
  if (template === 'none') return 0;
  // 'constant': the structures whose place never changes without a header update.
  if (template === 'constant') return Overlap.MAIN_HEADER | Overlap.ACTIVE_L1 | Overlap.REFCOUNT_TABLE;
  return 0x1f;
}

/** Reads `len` bytes at `offset` of `node`; offsets beyond 2^53 fail as QEMU's beyond 2^63 do. */
async function readFile(node: BlockNode, offset: number, len: number): Promise<Uint8Array> {
  if (offset + len > Number.MAX_SAFE_INTEGER) throw ioError('EIO');
  const buf = new Uint8Array(len);
  await node.read(offset, buf);
  return buf;
}

/** Runs a read of open; a failure becomes QEMU's "<what>: <strerror>" (error_setg_errno). */
async function readOr<T>(op: () => Promise<T>, what: string): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof EngineError) throw openError(err.status, err.value);
    if (err instanceof QmpError && !(err instanceof BlockIOError)) throw err;
    throw genericError(`${what}: ${STRERROR[errnoOf(err)]}`);
  }
}

/** The extensions of an image whose header the engine refused (for feature names only). */
async function readExtensionsLoosely(
  file: BlockNode,
  head: Uint8Array,
): Promise<HeaderExtensions | undefined> {
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const clusterSize = 2 ** v.getUint32(20);
  const headerLength = v.getUint32(100);
  const backingOffset = Number(v.getBigUint64(8));
  const end = backingOffset || clusterSize;
  try {
    return parseExtensions(await readFile(file, headerLength, end - headerLength), 0n, clusterSize);
  } catch {
    return undefined;
  }
}

/** Cache options (qcow2_update_options_prepare): sizes, the clean interval, lazy refcounts. */
function configureCache(
  engine: Qcow2Engine,
  opts: Readonly<Record<string, unknown>>,
  header: Qcow2Header,
  clusterSize: number,
  size: number,
): number {
  const extendedL2 = (header.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n;
  const sizes = cacheSizes(opts, clusterSize, size, extendedL2 ? 16 : 8);
  if (!engine.configureCache(sizes.l2Entries, sizes.l2EntryBytes)) {
    throw genericError('Could not allocate metadata caches');
  }
  const interval = opts['cache-clean-interval'];
  if (typeof interval === 'number' && interval > UINT_MAX) throw genericError('Cache clean interval too big');
  if (opts['lazy-refcounts'] === true && header.version < 3) {
    throw genericError('Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level');
  }
  return sizes.refcountEntries;
}

/** The `encrypt` options against the header's method (qcow2_update_options_prepare). */
function checkEncryptionOptions(header: Qcow2Header, opts: Readonly<Record<string, unknown>>): void {
  const format = (opts.encrypt as { format?: unknown } | undefined)?.format;
  if (header.cryptMethod === 0) {
    if (typeof format === 'string') {
      throw genericError(`No encryption in image header, but options specified format '${format}'`);
    }
    return;
  }
  if (header.cryptMethod > 2) throw genericError(`Unsupported encryption method ${header.cryptMethod}`);
  const method = header.cryptMethod === 1 ? 'aes' : 'luks';
  if (typeof format === 'string' && format !== method) {
    throw genericError(`Header reported '${method}' encryption format but options specify '${format}'`);
  }
}

/** Encrypted images are refused: blockgraph has no qcow2 encryption (QEMU's texts where it has one). */
function checkEncryption(header: Qcow2Header, ext: HeaderExtensions): void {
  if (header.cryptMethod === 0) return;
  if (header.cryptMethod === 2 && !ext.cryptoHeader) {
    throw genericError('Missing CRYPTO header for crypt method 2');
  }
  throw genericError('Encrypted qcow2 images are not supported');
}

/** The data-file child: given, named by the image, required, or refused, as qcow2_do_open decides. */
async function openDataFile(
  ctx: OpenContext,
  file: BlockNode,
  header: Qcow2Header,
  ext: HeaderExtensions,
): Promise<BlockNode | undefined> {
  let dataFile = ctx.children.get('data-file') ?? undefined;
  if ((header.incompatibleFeatures & INCOMPAT_DATA_FILE) !== 0n) {
    if (!dataFile && ext.dataFile !== undefined) {
      // A data file is a protocol node holding guest clusters (BDRV_CHILD_DATA): no probing.
      const options = await siblingFileOptions(file, ext.dataFile);
      if (!ctx.openChild) throw genericError(`Cannot open data file '${ext.dataFile}'`);
      dataFile = await ctx.openChild({ ...options, 'read-only': ctx.readOnly }, 'data-file', 'data-file');
    }
    if (!dataFile) throw genericError("'data-file' is required for this image");
    return dataFile;
  }
  if (dataFile) throw genericError("'data-file' can only be set for images with an external data file");
  if ((header.autoclearFeatures & AUTOCLEAR_DATA_FILE_RAW) !== 0n) {
    throw genericError('data-file-raw requires a data file');
  }
  return undefined;
}

async function readBackingName(
  readAt: (offset: number, len: number) => Promise<Uint8Array>,
  header: Qcow2Header,
  clusterSize: number,
): Promise<string> {
  const len = header.backingFileSize;
  // The name must fit bs->backing_file (PATH_MAX) and the first cluster.
  if (len > Math.min(1023, clusterSize - header.backingFileOffset)) {
    throw genericError('Backing file name too long');
  }
  const bytes = await readOr(() => readAt(header.backingFileOffset, len), 'Could not read backing file name');
  return new TextDecoder().decode(bytes);
}

/**
 * The backing node (bdrv_open_backing_file): the `backing` option when given (null: none), else
 * the file the image names, resolved next to it by the same protocol, opened read-only in the
 * format the image records or, without one, the probed format.
 */
async function openBacking(
  ctx: OpenContext,
  file: BlockNode,
  image: OpenedImage,
): Promise<BlockNode | undefined> {
  if (ctx.children.has('backing')) return ctx.children.get('backing') ?? undefined;
  const name = image.backingName;
  if (name === undefined || name === '') return undefined;
  if (!ctx.openChild) {
    throw genericError(`Could not open backing file: cannot resolve '${name}' next to '${file.filename()}'`);
  }
  try {
    const options: Record<string, unknown> = {
      file: await siblingFileOptions(file, name),
      'read-only': true,
    };
    if (image.ext.backingFormat) options.driver = image.ext.backingFormat;
    return await ctx.openChild(options, 'backing', 'backing');
  } catch (err) {
    throw genericError(`Could not open backing file: ${(err as Error).message}`);
  }
}

/** Node options the write path honours (COMMON_NODE_OPTIONS). */
interface WritePolicy {
  readonly detectZeroes: string;
  /** discard=unmap: discards and detect-zeroes=unmap may free clusters. */
  readonly unmap: boolean;
  readonly zeroScan: WasmIo;
}

/** The per-node operations over an open image. */
class Qcow2Node implements BlockDriverOps {
  /** What snapshot operations work on (read-write nodes). */
  snapshotImage: SnapshotImage | undefined;
  /** Compressed writes (read-write nodes). */
  compressedWriter: CompressedWriter | undefined;
  /** Persistent dirty bitmaps (qcow2/bitmaps-store.ts). */
  persistentBitmaps: Qcow2Bitmaps | undefined;
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
    const bitmaps = this.persistentBitmaps?.info() ?? this.image.bitmaps;
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
