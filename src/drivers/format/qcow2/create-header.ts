/**
 * The header cluster of a fresh qcow2 image as qcow2_update_header writes it (docs/interop/
 * qcow2.txt "Header" and "Header extensions"): the fixed fields (72 bytes for version 2, 112 with
 * the compression type and its padding for version 3), then the extensions in QEMU's order —
 * backing format, external data file name, feature name table (v3, clusters over 4k) — the end marker, and the
 * backing file name right after it. The rest of the cluster is zero.
 */

export const INCOMPAT_DIRTY = 1n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_DATA_FILE = 1n << 2n;
export const INCOMPAT_COMPRESSION = 1n << 3n;
export const INCOMPAT_EXTL2 = 1n << 4n;
export const COMPAT_LAZY_REFCOUNTS = 1n;
export const AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;

const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_DATA_FILE = 0x44415441;
const EXT_FEATURE_TABLE = 0x6803f857;

/** QEMU 7.2's feature name table: [type (0 incompatible, 1 compatible, 2 autoclear), bit, name]. */
const FEATURES: readonly (readonly [number, number, string])[] = [
  [0, 0, 'dirty bit'],
  [0, 1, 'corrupt bit'],
  [0, 2, 'external data file'],
  [0, 3, 'compression type'],
  [0, 4, 'extended L2 entries'],
  [1, 0, 'lazy refcounts'],
  [2, 0, 'bitmaps'],
  [2, 1, 'raw external data'],
];
const FEATURE_NAME_BYTES = 46;

export interface HeaderFields {
  readonly version: 2 | 3;
  readonly clusterBits: number;
  readonly size: number;
  readonly l1Size: number;
  readonly l1Offset: number;
  readonly reftableOffset: number;
  readonly reftableClusters: number;
  readonly refcountOrder: number;
  readonly incompatible: bigint;
  readonly compatible: bigint;
  readonly autoclear: bigint;
  /** 0 zlib, 1 zstd. */
  readonly compressionType: number;
  readonly backingFile?: string;
  readonly backingFormat?: string;
  readonly dataFile?: string;
}

/** The whole header cluster; the caller keeps names short enough to fit (see create.ts). */
export function encodeHeader(h: HeaderFields, clusterSize: number): Uint8Array {
  const out = new Uint8Array(clusterSize);
  const view = new DataView(out.buffer);
  const enc = new TextEncoder();
  const length = h.version >= 3 ? 112 : 72;
  view.setUint32(0, 0x514649fb);
  view.setUint32(4, h.version);
  view.setUint32(20, h.clusterBits);
  view.setBigUint64(24, BigInt(h.size));
  view.setUint32(36, h.l1Size);
  view.setBigUint64(40, BigInt(h.l1Offset));
  view.setBigUint64(48, BigInt(h.reftableOffset));
  view.setUint32(56, h.reftableClusters);
  if (h.version >= 3) {
    view.setBigUint64(72, h.incompatible);
    view.setBigUint64(80, h.compatible);
    view.setBigUint64(88, h.autoclear);
    view.setUint32(96, h.refcountOrder);
    view.setUint32(100, length);
    out[104] = h.compressionType;
  }
  let at = length;
  const extension = (type: number, data: Uint8Array): void => {
    view.setUint32(at, type);
    view.setUint32(at + 4, data.length);
    out.set(data, at + 8);
    at += 8 + Math.ceil(data.length / 8) * 8;
  };
  if (h.backingFormat !== undefined) extension(EXT_BACKING_FORMAT, enc.encode(h.backingFormat));
  if (h.dataFile !== undefined) extension(EXT_DATA_FILE, enc.encode(h.dataFile));
  // QEMU leaves the table out of small header clusters (seen with qemu-img 7.2: none up to 4k).
  if (h.version >= 3 && clusterSize > 4096) extension(EXT_FEATURE_TABLE, featureTable());
  at += 8; // end of extensions: type 0, length 0
  if (h.backingFile !== undefined) {
    const name = enc.encode(h.backingFile);
    view.setBigUint64(8, BigInt(at));
    view.setUint32(16, name.length);
    out.set(name, at);
  }
  return out;
}

function featureTable(): Uint8Array {
  const entry = 2 + FEATURE_NAME_BYTES;
  const out = new Uint8Array(FEATURES.length * entry);
  FEATURES.forEach(([type, bit, name], i) => {
    out[i * entry] = type;
    out[i * entry + 1] = bit;
    out.set(new TextEncoder().encode(name), i * entry + 2);
  });
  return out;
}
