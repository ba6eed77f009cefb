/**
 * A small, structure-aware view of qcow2 bytes for the hostile-image tests and the fuzzer: where
 * the header fields, L1/L2 entries, refcount table/blocks and header extensions live in a file
 * (QEMU docs/interop/qcow2.txt, sections "Header", "Header extensions", "Host cluster management",
 * "Cluster mapping"), and a seeded PRNG to pick values for them. Deliberately independent of the
 * engine: it must find the structures of a *valid* seed image, then the fuzzer breaks them.
 */

/** Header fields: byte offset and width (4 or 8), as in qcow2.txt "Header". */
export const HEADER = {
  magic: [0, 4],
  version: [4, 4],
  backing_file_offset: [8, 8],
  backing_file_size: [16, 4],
  cluster_bits: [20, 4],
  size: [24, 8],
  crypt_method: [32, 4],
  l1_size: [36, 4],
  l1_table_offset: [40, 8],
  refcount_table_offset: [48, 8],
  refcount_table_clusters: [56, 4],
  nb_snapshots: [60, 4],
  snapshots_offset: [64, 8],
  // Version 3 only.
  incompatible_features: [72, 8],
  compatible_features: [80, 8],
  autoclear_features: [88, 8],
  refcount_order: [96, 4],
  header_length: [100, 4],
} as const satisfies Record<string, readonly [number, 4 | 8]>;

export type HeaderField = keyof typeof HEADER;

export function getField(img: Uint8Array, field: HeaderField): bigint {
  const [at, width] = HEADER[field];
  const view = new DataView(img.buffer, img.byteOffset, img.byteLength);
  return width === 8 ? view.getBigUint64(at) : BigInt(view.getUint32(at));
}

/** Stores `value` (truncated to the field's width) into a header field. */
export function setField(img: Uint8Array, field: HeaderField, value: bigint): void {
  const [at, width] = HEADER[field];
  setBe(img, at, width, value);
}

export function getBe64(img: Uint8Array, at: number): bigint {
  return new DataView(img.buffer, img.byteOffset, img.byteLength).getBigUint64(at);
}

/** Big-endian store of the low `width` bytes of `value`. */
export function setBe(img: Uint8Array, at: number, width: 4 | 8, value: bigint): void {
  const view = new DataView(img.buffer, img.byteOffset, img.byteLength);
  if (width === 8) view.setBigUint64(at, BigInt.asUintN(64, value));
  else view.setUint32(at, Number(BigInt.asUintN(32, value)));
}

/** Offset mask of L1, L2 and refcount-table entries: bits 9-55 (qcow2.txt "Cluster mapping"). */
const OFFSET_MASK = 0x00ff_ffff_ffff_fe00n;
const COMPRESSED = 1n << 62n;

/** Where each structure of a valid image lives: file offsets of the 8-byte entries to mutate. */
export interface Layout {
  readonly clusterSize: number;
  readonly version: number;
  /** Header fields that exist in this version. */
  readonly fields: readonly HeaderField[];
  /** File offsets of the active L1 table's entries. */
  readonly l1: readonly number[];
  /** File offsets of L2 entries that are not 0 (the first 64 bits of extended entries). */
  readonly l2: readonly number[];
  /** File offsets of the extended L2 bitmaps (64-bit) of non-zero entries. */
  readonly l2Bitmaps: readonly number[];
  /** File offsets of compressed L2 entries (a subset of `l2`). */
  readonly compressed: readonly number[];
  /** File offsets of refcount table entries that are not 0. */
  readonly refcountTable: readonly number[];
  /** File offsets (cluster starts) of the refcount blocks. */
  readonly refcountBlocks: readonly number[];
  /** File offsets of header extension headers (type at +0, length at +4). */
  readonly extensions: readonly number[];
}

/** Finds the structures of a valid qcow2 image. Throws on an image it cannot walk. */
export function layoutOf(img: Uint8Array): Layout {
  const version = Number(getField(img, 'version'));
  const clusterBits = Number(getField(img, 'cluster_bits'));
  const clusterSize = 2 ** clusterBits;
  const extendedL2 = version >= 3 && (getField(img, 'incompatible_features') & 16n) !== 0n;
  const entryBytes = extendedL2 ? 16 : 8;
  const l1 = tableEntries(Number(getField(img, 'l1_table_offset')), Number(getField(img, 'l1_size')));
  const l2: number[] = [];
  const l2Bitmaps: number[] = [];
  const compressed: number[] = [];
  for (const at of l1) {
    const table = Number(getBe64(img, at) & OFFSET_MASK);
    if (table === 0 || table + clusterSize > img.length) continue;
    for (let e = table; e < table + clusterSize; e += entryBytes) {
      const entry = getBe64(img, e);
      const bitmap = extendedL2 ? getBe64(img, e + 8) : 0n;
      if (entry === 0n && bitmap === 0n) continue;
      l2.push(e);
      if (extendedL2) l2Bitmaps.push(e + 8);
      if (entry & COMPRESSED) compressed.push(e);
    }
  }
  const rtOffset = Number(getField(img, 'refcount_table_offset'));
  const rtEntries = (Number(getField(img, 'refcount_table_clusters')) * clusterSize) / 8;
  const refcountTable = tableEntries(rtOffset, rtEntries).filter((at) => getBe64(img, at) !== 0n);
  const refcountBlocks = refcountTable.map((at) => Number(getBe64(img, at) & OFFSET_MASK));
  return {
    clusterSize,
    version,
    fields: (Object.keys(HEADER) as HeaderField[]).filter((f) => version >= 3 || HEADER[f][0] < 72),
    l1,
    l2,
    l2Bitmaps,
    compressed,
    refcountTable,
    refcountBlocks,
    extensions: version >= 3 ? extensionHeaders(img) : extensionHeaders(img, 72),
  };
}

function tableEntries(offset: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => offset + 8 * i);
}

/** Offsets of the header extensions after the header, up to the end marker (type 0). */
function extensionHeaders(img: Uint8Array, start = Number(getField(img, 'header_length'))): number[] {
  const out: number[] = [];
  const view = new DataView(img.buffer, img.byteOffset, img.byteLength);
  for (let at = start; at + 8 <= img.length && view.getUint32(at) !== 0;) {
    out.push(at);
    at += 8 + Math.ceil(view.getUint32(at + 4) / 8) * 8;
  }
  return out;
}

/** A seeded PRNG (mulberry32): the same seed gives the same cases on every machine. */
export class Prng {
  constructor(private state: number) {}

  /** A uint32. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor((this.next() / 2 ** 32) * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  u64(): bigint {
    return (BigInt(this.next()) << 32n) | BigInt(this.next());
  }
}

/**
 * A value worth trying in a field or entry: edges (0, all ones, sign bits), offsets around the
 * file's end and the structures' own offsets, unaligned offsets, single flipped bits of `old`,
 * and noise. `fileSize` and `cluster` make the offsets plausible enough to get past first checks.
 */
export function interestingValue(rng: Prng, old: bigint, fileSize: number, cluster: number): bigint {
  const size = BigInt(fileSize);
  const c = BigInt(cluster);
  switch (rng.below(9)) {
    case 0:
      return rng.pick([0n, 1n, 0xffff_ffffn, 0x8000_0000n, (1n << 63n) | 0n, (1n << 64n) - 1n, 1n << 62n]);
    case 1:
      return old ^ (1n << BigInt(rng.below(64)));
    case 2:
      return old + BigInt(rng.below(5)) - 2n;
    case 3: // cluster-aligned, inside, at or just past the end of the file
      return (BigInt(rng.below(Number(size / c) + 3)) * c) | (old & (3n << 62n));
    case 4: // unaligned
      return (old & ~(c - 1n)) + BigInt(1 + rng.below(cluster - 1));
    case 5: // a tiny cluster index (points at the header / first tables)
      return (BigInt(rng.below(4)) * c) | (old & (3n << 62n));
    case 6:
      return old | (1n << BigInt(56 + rng.below(8)));
    case 7:
      return BigInt(rng.below(256));
    default:
      return rng.u64();
  }
}
