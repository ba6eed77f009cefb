/**
 * Header extensions (qcow2.txt "Header extensions", "Feature name table", "Bitmaps extension",
 * "Full disk encryption header pointer"), parsed as QEMU's qcow2_read_extensions does, from the
 * bytes between the end of the header and the backing file name (or the end of cluster 0).
 * Unknown extensions are kept as bytes so the write side can preserve them.
 */
import { genericError } from '../../../block/errors.ts';

export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO_HEADER = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

/** QCOW2_AUTOCLEAR_BITMAPS: the bitmaps extension is consistent. */
export const AUTOCLEAR_BITMAPS = 1n;
/** sizeof(bs->backing_format) in QEMU: a format name must be shorter. */
const BACKING_FORMAT_MAX = 16;
/** QCOW2_MAX_BITMAPS and QCOW2_MAX_BITMAP_DIRECTORY_SIZE (block/qcow2.h). */
const MAX_BITMAPS = 65535;
const MAX_BITMAP_DIRECTORY_SIZE = 1024 * MAX_BITMAPS;

export interface FeatureName {
  /** 0 incompatible, 1 compatible, 2 autoclear. */
  readonly type: number;
  readonly bit: number;
  readonly name: string;
}

export interface HeaderExtensions {
  backingFormat?: string;
  features: FeatureName[];
  dataFile?: string;
  bitmaps?: { nbBitmaps: number; directorySize: number; directoryOffset: number };
  cryptoHeader?: { offset: number; length: number };
  /** Unknown extensions in file order, for rewriting the header. */
  unknown: { magic: number; data: Uint8Array }[];
}

/**
 * Parses the extensions in `area`, which holds the image's bytes from offset `start` (the header
 * length) to the end of the extension area. `autoclear` and `clusterSize` decide how the bitmaps
 * extension is taken. Throws QEMU's texts for a malformed extension.
 */
export function parseExtensions(area: Uint8Array, autoclear: bigint, clusterSize: number): HeaderExtensions {
  const out: HeaderExtensions = { features: [], unknown: [] };
  const view = new DataView(area.buffer, area.byteOffset, area.byteLength);
  const end = area.length;
  for (let pos = 0; pos < end;) {
    // An extension header cut off by the end of the area reads as zeros (QEMU's padded read).
    const magic = pos + 4 <= end ? view.getUint32(pos) : 0;
    const len = pos + 8 <= end ? view.getUint32(pos + 4) : 0;
    pos += 8;
    if (pos > end || len > end - pos) throw genericError('Header extension too large');
    if (magic === EXT_END) break;
    const data = area.subarray(pos, pos + len);
    switch (magic) {
      case EXT_BACKING_FORMAT:
        if (len >= BACKING_FORMAT_MAX) {
          throw genericError(`ERROR: ext_backing_format: len=${len} too large (>=${BACKING_FORMAT_MAX})`);
        }
        out.backingFormat = cString(data);
        break;
      case EXT_FEATURE_TABLE:
        out.features = parseFeatureTable(data);
        break;
      case EXT_DATA_FILE:
        out.dataFile = cString(data);
        break;
      case EXT_BITMAPS:
        out.bitmaps = parseBitmaps(data, autoclear, clusterSize);
        break;
      case EXT_CRYPTO_HEADER:
        if (len !== 16) {
          throw genericError(`CRYPTO header extension size ${len}, but expected size 16`);
        }
        out.cryptoHeader = { offset: u64(data, 0), length: u64(data, 8) };
        break;
      default:
        out.unknown.push({ magic, data: data.slice() });
    }
    pos += (len + 7) & ~7;
  }
  return out;
}

/** Entries of 48 bytes: type, bit, name padded with zeros (qcow2.txt "Feature name table"). */
function parseFeatureTable(data: Uint8Array): FeatureName[] {
  const out: FeatureName[] = [];
  for (let at = 0; at + 48 <= data.length; at += 48) {
    out.push({ type: data[at]!, bit: data[at + 1]!, name: cString(data.subarray(at + 2, at + 48)) });
  }
  return out;
}

/**
 * The bitmaps extension, checked as QEMU does; undefined when the autoclear bit says a program
 * without bitmap support modified the image (QEMU then ignores the extension).
 */
function parseBitmaps(data: Uint8Array, autoclear: bigint, clusterSize: number): HeaderExtensions['bitmaps'] {
  if (data.length !== 24) throw genericError('bitmaps_ext: Invalid extension length');
  if ((autoclear & AUTOCLEAR_BITMAPS) === 0n) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, 24);
  if (view.getUint32(4) !== 0) throw genericError('bitmaps_ext: Reserved field is not zero');
  const nbBitmaps = view.getUint32(0);
  const directorySize = u64(data, 8);
  const directoryOffset = u64(data, 16);
  if (nbBitmaps > MAX_BITMAPS) {
    throw genericError(
      `bitmaps_ext: Image has ${nbBitmaps} bitmaps, exceeding the QEMU supported maximum of ${MAX_BITMAPS}`,
    );
  }
  if (nbBitmaps === 0) throw genericError('found bitmaps extension with zero bitmaps');
  if (directoryOffset % clusterSize !== 0) {
    throw genericError('bitmaps_ext: invalid bitmap directory offset');
  }
  if (directorySize > MAX_BITMAP_DIRECTORY_SIZE) {
    throw genericError(
      `bitmaps_ext: bitmap directory size (${directorySize}) exceeds the maximum supported size (${MAX_BITMAP_DIRECTORY_SIZE})`,
    );
  }
  return { nbBitmaps, directorySize, directoryOffset };
}

/**
 * QEMU's report_unsupported_feature: the names of the unknown incompatible bits in `mask` from
 * the feature name table, then any left unnamed as a hex mask.
 */
export function unsupportedFeatureText(features: readonly FeatureName[], mask: bigint): string {
  const names: string[] = [];
  for (const f of features) {
    if (f.name === '') break;
    if (f.type === 0 && (mask & (1n << BigInt(f.bit))) !== 0n) {
      names.push(f.name);
      mask &= ~(1n << BigInt(f.bit));
    }
  }
  if (mask !== 0n) names.push(`Unknown incompatible feature: ${mask.toString(16)}`);
  return `Unsupported qcow2 feature(s): ${names.join(', ')}`;
}

/** A string up to its first NUL (QEMU reads these into NUL-terminated C strings). */
export function cString(data: Uint8Array): string {
  const nul = data.indexOf(0);
  return new TextDecoder().decode(nul < 0 ? data : data.subarray(0, nul));
}

function u64(data: Uint8Array, at: number): number {
  return Number(new DataView(data.buffer, data.byteOffset + at, 8).getBigUint64(0));
}
