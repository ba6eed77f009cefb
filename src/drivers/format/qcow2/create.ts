/**
 * qcow2 image creation (QEMU 7.2 block/qcow2.c: qcow2_co_create). The options are QAPI
 * BlockdevCreateOptionsQcow2; they are checked in QEMU's order with its texts, then the image is
 * laid out by create-layout.ts exactly as QEMU lays it out (header, refcount table, refcount
 * block, L1; L2 tables and data clusters with preallocation) and written into the file node.
 * Encryption is not supported (`encrypt` is refused as an unexpected member).
 */
import type { ImageCreator } from '../../../block/driver.ts';
import { genericError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  COMPAT_LAZY_REFCOUNTS,
  encodeHeader,
  INCOMPAT_COMPRESSION,
  INCOMPAT_DATA_FILE,
  INCOMPAT_EXTL2,
} from './create-header.ts';
import { Qcow2Layout, type SparseImage } from './create-layout.ts';

export const PREALLOC_MODES = ['off', 'metadata', 'falloc', 'full'] as const;
export type PreallocMode = (typeof PREALLOC_MODES)[number];

/** QAPI BlockdevCreateOptionsQcow2 (without `encrypt`). */
export const QCOW2_CREATE_OPTIONS = {
  file: { type: 'child', role: 'file', required: true, help: 'node to create the image in' },
  'data-file': { type: 'child', role: 'data-file', help: 'node holding the guest data' },
  'data-file-raw': { type: 'bool', help: 'the data file stays valid as a raw image' },
  'extended-l2': { type: 'bool', help: 'extended L2 entries (32 subclusters per cluster)' },
  size: { type: 'size', required: true, help: 'virtual disk size' },
  version: { type: 'enum', values: ['v2', 'v3'], help: 'compatibility level' },
  'backing-file': { type: 'str', help: 'file name of the backing image, recorded in the header' },
  'backing-fmt': { type: 'str', help: 'format of the backing image' },
  'cluster-size': { type: 'size', help: 'cluster size (default 64k)' },
  preallocation: { type: 'enum', values: PREALLOC_MODES, help: 'preallocation mode' },
  'lazy-refcounts': { type: 'bool', help: 'postpone refcount updates' },
  'refcount-bits': { type: 'int', help: 'width of a refcount entry in bits (default 16)' },
  'compression-type': { type: 'enum', values: ['zlib', 'zstd'], help: 'compression method' },
} as const;

const DEFAULT_CLUSTER_SIZE = 65536;
const MIN_CLUSTER_BITS = 9;
const MAX_CLUSTER_BITS = 21;
/** Extended L2 needs 32 subclusters of at least 512 bytes. */
const MIN_EXTL2_CLUSTER = 32 * 512;
/** QCOW_MAX_L1_SIZE / sizeof(uint64_t). */
const MAX_L1_ENTRIES = (32 << 20) / 8;
const V3_HINT = '(use version=v3 or greater)';

/** The options after QEMU's checks, with its defaults. */
interface CreateParams {
  size: number;
  version: 2 | 3;
  clusterBits: number;
  extendedL2: boolean;
  preallocation: PreallocMode;
  lazyRefcounts: boolean;
  refcountOrder: number;
  dataFileRaw: boolean;
  zstd: boolean;
  backingFile?: string;
  backingFormat?: string;
}

export const qcow2Creator: ImageCreator = {
  options: QCOW2_CREATE_OPTIONS,
  async create(file, options, ctx) {
    const dataFile = ctx.children.get('data-file');
    const params = checkOptions(options, dataFile !== undefined);
    await writeImage(file, dataFile, params);
  },
};

/** qcow2_co_create's checks, in its order and with its texts. */
function checkOptions(o: Readonly<Record<string, unknown>>, hasDataFile: boolean): CreateParams {
  const size = o.size as number;
  if (size % 512 !== 0) throw genericError('Image size must be a multiple of 512 bytes');
  const version = o.version === 'v2' ? 2 : 3;
  const clusterSize = (o['cluster-size'] as number | undefined) ?? DEFAULT_CLUSTER_SIZE;
  const extendedL2 = o['extended-l2'] === true;
  if (extendedL2 && version < 3) {
    throw genericError(
      `Extended L2 entries are only supported with compatibility level 1.1 and above ${V3_HINT}`,
    );
  }
  const clusterBits = Math.log2(clusterSize);
  if (!Number.isInteger(clusterBits) || clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw genericError(
      `Cluster size must be a power of two between ${2 ** MIN_CLUSTER_BITS} and ${2 ** (MAX_CLUSTER_BITS - 10)}k`,
    );
  }
  if (extendedL2 && clusterSize < MIN_EXTL2_CLUSTER) {
    throw genericError(
      `Extended L2 entries are only supported with cluster sizes of at least ${MIN_EXTL2_CLUSTER} bytes`,
    );
  }
  let preallocation = (o.preallocation as PreallocMode | undefined) ?? 'off';
  const backingFile = o['backing-file'] as string | undefined;
  if (backingFile !== undefined && preallocation !== 'off' && !extendedL2) {
    throw genericError(
      'Backing file and preallocation can only be used at the same time if extended_l2 is on',
    );
  }
  if (o['backing-fmt'] !== undefined && backingFile === undefined) {
    throw genericError('Backing format cannot be used without backing file');
  }
  const lazyRefcounts = o['lazy-refcounts'] === true;
  if (version < 3 && lazyRefcounts) {
    throw genericError(`Lazy refcounts only supported with compatibility level 1.1 and above ${V3_HINT}`);
  }
  const refcountBits = (o['refcount-bits'] as number | undefined) ?? 16;
  if (refcountBits < 1 || refcountBits > 64 || (refcountBits & (refcountBits - 1)) !== 0) {
    throw genericError('Refcount width must be a power of two and may not exceed 64 bits');
  }
  if (version < 3 && refcountBits !== 16) {
    throw genericError(
      `Different refcount widths than 16 bits require compatibility level 1.1 or above ${V3_HINT}`,
    );
  }
  const dataFileRaw = o['data-file-raw'] === true;
  if (dataFileRaw && !hasDataFile) throw genericError('data-file-raw requires data-file');
  if (dataFileRaw && backingFile !== undefined) {
    throw genericError('Backing file and data-file-raw cannot be used at the same time');
  }
  // A raw data file must read like the image: the metadata maps it 1:1 (qcow2_co_create).
  if (dataFileRaw && preallocation === 'off') preallocation = 'metadata';
  if (hasDataFile && version < 3) {
    throw genericError(
      `External data files are only supported with compatibility level 1.1 and above ${V3_HINT}`,
    );
  }
  const zstd = o['compression-type'] === 'zstd';
  if (zstd && version < 3) {
    throw genericError(
      `Non-zlib compression type is only supported with compatibility level 1.1 and above ${V3_HINT}`,
    );
  }
  const l2Coverage = (clusterSize / (extendedL2 ? 16 : 8)) * clusterSize;
  if (Math.ceil(size / l2Coverage) > MAX_L1_ENTRIES) {
    throw genericError(
      "The image size is too large for file format 'qcow2' (try using a larger cluster size)",
    );
  }
  return {
    size,
    version,
    clusterBits,
    extendedL2,
    preallocation,
    lazyRefcounts,
    refcountOrder: Math.log2(refcountBits),
    dataFileRaw,
    zstd,
    backingFile,
    backingFormat: o['backing-fmt'] as string | undefined,
  };
}

/** Lays the image out as QEMU does and writes it, then sizes the file (and the data file). */
async function writeImage(file: BlockNode, dataFile: BlockNode | undefined, p: CreateParams): Promise<void> {
  const layout = new Qcow2Layout({
    clusterBits: p.clusterBits,
    refcountOrder: p.refcountOrder,
    extendedL2: p.extendedL2,
    dataFile: dataFile !== undefined,
  });
  const l1Entries = Math.ceil(p.size / layout.l2Coverage);
  if (l1Entries > 0) layout.growL1(l1Entries);
  let zeroes: { start: number; end: number } | undefined;
  let fileLength = 0;
  let dataLength = p.size;
  if (p.preallocation === 'metadata' || (dataFile && p.preallocation !== 'off')) {
    const end = layout.preallocateMetadata(p.size);
    if (dataFile) dataLength = Math.max(end, p.size);
    else fileLength = end;
  } else if (p.preallocation !== 'off') {
    const data = layout.preallocateFull(p.size);
    fileLength = data.end;
    if (p.preallocation === 'full') zeroes = data;
  }
  const image = layout.finish();
  image.write(0, encodeHeader(headerFields(layout, p, dataFile), layout.clusterSize));
  await writeSparse(file, image, Math.max(fileLength, image.length));
  if (zeroes) await file.writeZeroes(zeroes.start, zeroes.end - zeroes.start);
  if (dataFile) await growTo(dataFile, dataLength, p.preallocation === 'full');
}

function headerFields(layout: Qcow2Layout, p: CreateParams, dataFile: BlockNode | undefined) {
  let incompatible = 0n;
  if (dataFile) incompatible |= INCOMPAT_DATA_FILE;
  if (p.zstd) incompatible |= INCOMPAT_COMPRESSION;
  if (p.extendedL2) incompatible |= INCOMPAT_EXTL2;
  return {
    version: p.version,
    clusterBits: p.clusterBits,
    size: p.size,
    l1Size: layout.l1.length,
    l1Offset: layout.l1Offset,
    reftableOffset: layout.reftableOffset,
    reftableClusters: (layout.reftable.length * 8) / layout.clusterSize,
    refcountOrder: p.refcountOrder,
    incompatible,
    compatible: p.lazyRefcounts ? COMPAT_LAZY_REFCOUNTS : 0n,
    autoclear: p.dataFileRaw ? AUTOCLEAR_DATA_FILE_RAW : 0n,
    compressionType: p.zstd ? 1 : 0,
    backingFile: p.backingFile,
    backingFormat: p.backingFile === undefined ? undefined : p.backingFormat,
    dataFile: dataFile?.filename(),
  } as const;
}

/** Writes the clusters `image` holds (runs of adjacent ones at once), then grows to `length`. */
async function writeSparse(file: BlockNode, image: SparseImage, length: number): Promise<void> {
  const cs = image.clusterSize;
  const indices = [...image.clusters.keys()].sort((a, b) => a - b);
  for (let i = 0; i < indices.length;) {
    let j = i + 1;
    while (j < indices.length && indices[j] === indices[j - 1] + 1) j++;
    const start = indices[i] * cs;
    const end = Math.min(indices[j - 1] * cs + cs, image.length);
    const run = new Uint8Array(end - start);
    for (let k = i; k < j; k++) {
      const cluster = image.clusters.get(indices[k])!;
      const at = (indices[k] - indices[i]) * cs;
      run.set(cluster.subarray(0, Math.min(cs, run.length - at)), at);
    }
    await file.write(start, run);
    i = j;
  }
  await growTo(file, length, false);
}

/** Makes `node` at least `length` bytes long; `zeroes`: write the zeros (preallocation=full). */
async function growTo(node: BlockNode, length: number, zeroes: boolean): Promise<void> {
  const old = node.length();
  if (old >= length) return;
  if (zeroes) await node.writeZeroes(old, length - old);
  else await node.truncate(length);
}
