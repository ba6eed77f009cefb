/**
 * qcow2_do_open (QEMU block/qcow2.c), the host half of the sans-I/O engine (DESIGN.md §3,
 * src/qcow2/engine.ts): reads the header, extensions, L1 table and snapshot table from the
 * `file` child and builds the node (node.ts) over a Qcow2Reader. A read-write open also loads
 * the refcount table and hands writes to Qcow2Writer; it first repairs an image left dirty (lazy
 * refcounts) and clears the autoclear bits blockgraph does not maintain.
 */
import type { BlockDriverOps, OpenContext } from '../../../block/driver.ts';
import { genericError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import {
  EngineError,
  HEADER_BYTES,
  Qcow2Engine,
  Status,
  Table,
  type Qcow2Header,
} from '../../../qcow2/engine.ts';
import { WasmIo } from '../../../wasm/io.ts';
import { Qcow2Bitmaps } from './bitmaps-store.ts';
import { cleanInterval } from './cache-options.ts';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  COMPAT_LAZY_REFCOUNTS,
  INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY,
  INCOMPAT_EXTL2,
} from './create-header.ts';
import { openError, readOr } from './errors.ts';
import {
  AUTOCLEAR_BITMAPS,
  parseExtensions,
  unsupportedFeatureText,
  type HeaderExtensions,
} from './extensions.ts';
import { Qcow2Node, readFile, type ImageChildren, type OpenedImage } from './node.ts';
import { openBacking, openDataFile, readBackingName } from './open-children.ts';
import { checkEncryption, checkEncryptionOptions, configureCache, overlapChecks } from './open-options.ts';
import { Qcow2Reader } from './reader.ts';
import { findSnapshot, readSnapshotTable } from './snapshots.ts';
import { CompressedWriter } from './writer-compressed.ts';
import { Qcow2Writer } from './writer.ts';

/** The autoclear features blockgraph maintains (QCOW2_AUTOCLEAR_MASK): data-file-raw, bitmaps. */
const AUTOCLEAR_KEPT = AUTOCLEAR_DATA_FILE_RAW | AUTOCLEAR_BITMAPS;

/** qcow2_do_open, in QEMU's order, so the first problem reported is the one QEMU reports. */
export async function openImage(ctx: OpenContext, file: BlockNode): Promise<BlockDriverOps> {
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

  const image: OpenedImage = { header, ext, snapshots: [] };
  if (header.backingFileOffset !== 0) image.backingName = await readBackingName(readAt, header, clusterSize);
  image.snapshots = await readSnapshotTable(readAt, header.snapshotsOffset, header.nbSnapshots, size);

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
  const { checkImage } = await import('./check.ts');
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
