/**
 * The metadata of a fresh qcow2 image, laid out cluster by cluster exactly where QEMU 7.2's
 * qcow2_co_create puts it, so that our images are byte-identical to `qemu-img create`'s.
 * QEMU builds an image by writing a minimal header, refcount table and refcount block, then
 * opening it and running its ordinary allocator (qcow2_alloc_clusters), L1 growth and
 * preallocation over it. This class replays those algorithms on in-memory metadata — including
 * their quirks: the -EAGAIN restart after a new refcount block is hooked up, self-describing
 * refcount blocks, refcount-table moves that free the old table for reuse (block/qcow2-refcount.c:
 * alloc_refcount_block, qcow2_refcount_area, qcow2_refcount_metadata_size).
 * It performs no I/O: `image` collects what QEMU would have written, for the caller to write.
 */

/** QCOW_OFLAG_COPIED: the cluster's refcount is exactly one (every cluster of a fresh image). */
const COPIED_HI = 0x80000000;

/** QEMU's -EAGAIN from alloc_refcount_block: metadata was placed; search for free space again. */
class Again extends Error {}

/** The bytes QEMU would have written into the image file, cluster-granular, and its length. */
export class SparseImage {
  readonly clusters = new Map<number, Uint8Array>();
  length = 0;

  constructor(readonly clusterSize: number) {}

  write(offset: number, data: Uint8Array): void {
    for (let done = 0; done < data.length;) {
      const at = offset + done;
      const index = Math.floor(at / this.clusterSize);
      const start = at - index * this.clusterSize;
      const n = Math.min(this.clusterSize - start, data.length - done);
      let cluster = this.clusters.get(index);
      if (!cluster) this.clusters.set(index, (cluster = new Uint8Array(this.clusterSize)));
      cluster.set(data.subarray(done, done + n), start);
      done += n;
    }
    this.length = Math.max(this.length, offset + data.length);
  }
}

export interface LayoutParams {
  readonly clusterBits: number;
  /** log2 of the refcount width in bits (0..6). */
  readonly refcountOrder: number;
  readonly extendedL2: boolean;
  /** Guest data lives in an external data file: host offset = guest offset, not refcounted. */
  readonly dataFile: boolean;
}

export class Qcow2Layout {
  readonly clusterSize: number;
  readonly image: SparseImage;
  /** Refcount entries per refcount block. */
  private readonly refblockEntries: number;
  private readonly l2Entries: number;
  private readonly l2EntryBytes: number;
  reftableOffset: number;
  /** Refcount table entries (host offsets of refcount blocks, 0 = none). */
  reftable: number[];
  /** Refcount blocks in their on-disk encoding, by host offset. */
  readonly refblocks = new Map<number, Uint8Array>();
  private freeClusterIndex = 0;
  l1Offset = 0;
  /** L1 entries: host offsets of L2 tables (0 = none); all are COPIED. */
  l1: number[] = [];
  /** L2 tables in their on-disk encoding, by host offset. */
  readonly l2Tables = new Map<number, Uint8Array>();

  /**
   * The state qcow2_co_create reaches before its truncate: header in cluster 0, a one-cluster
   * refcount table in cluster 1 whose only block is cluster 2, all three refcounted.
   */
  constructor(readonly params: LayoutParams) {
    const cs = (this.clusterSize = 2 ** params.clusterBits);
    this.image = new SparseImage(cs);
    this.refblockEntries = (cs * 8) >> params.refcountOrder;
    this.l2EntryBytes = params.extendedL2 ? 16 : 8;
    this.l2Entries = cs / this.l2EntryBytes;
    this.image.write(0, new Uint8Array(3 * cs));
    this.reftableOffset = cs;
    this.reftable = new Array<number>(cs / 8).fill(0);
    this.reftable[0] = 2 * cs;
    this.refblocks.set(2 * cs, new Uint8Array(cs));
    this.allocClusters(3 * cs);
  }

  /** Guest bytes one L2 table maps. */
  get l2Coverage(): number {
    return this.l2Entries * this.clusterSize;
  }

  /** qcow2_grow_l1_table(exact): a new L1 of `entries` entries (the old one is empty). */
  growL1(entries: number): void {
    const bytes = entries * 8;
    this.l1Offset = this.allocClusters(bytes);
    this.l1 = new Array<number>(entries).fill(0);
    this.image.write(this.l1Offset, new Uint8Array(bytes));
  }

  /**
   * preallocate_co for `size` guest bytes: per L2 table, the table first and then its data
   * clusters (unwritten). Returns the host end of the last data run, cluster-aligned: the length
   * QEMU then truncates the data file (or the image itself) to.
   */
  preallocateMetadata(size: number): number {
    const cs = this.clusterSize;
    const total = Math.ceil(size / cs);
    let end = 0;
    for (let g = 0; g < total;) {
      const n = Math.min(total - g, this.l2Entries - (g % this.l2Entries));
      this.l2Table(Math.floor(g / this.l2Entries));
      const host = this.params.dataFile ? g * cs : this.allocClusters(n * cs);
      for (let k = 0; k < n; k++) this.mapCluster(g + k, host + k * cs);
      end = host + n * cs;
      g += n;
    }
    return end;
  }

  /**
   * The falloc/full branch of qcow2_co_truncate (no data file): refcount structures for all data
   * and L2 tables first (qcow2_refcount_area, which moves the refcount table behind the current
   * end), the data clusters right after them, then the L2 tables wherever the allocator finds
   * room. Returns the host range the data occupies.
   */
  preallocateFull(size: number): { start: number; end: number } {
    const cs = this.clusterSize;
    const dataClusters = Math.ceil(size / cs);
    const l2Tables = Math.ceil(dataClusters / this.l2Entries) + 1;
    const fileEnd = (this.lastUsedCluster() + 1) * cs;
    const start = this.refcountArea(fileEnd, dataClusters + l2Tables, true, 0, 0);
    this.updateRefcount(start, dataClusters * cs, 1);
    for (let g = 0; g < dataClusters; g++) {
      this.l2Table(Math.floor(g / this.l2Entries));
      this.mapCluster(g, start + g * cs);
    }
    return { start, end: start + dataClusters * cs };
  }

  /** Points guest cluster `guest` at `host` in its (existing) L2 table; subclusters stay unallocated. */
  private mapCluster(guest: number, host: number): void {
    const table = this.l2Tables.get(this.l1[Math.floor(guest / this.l2Entries)])!;
    const view = new DataView(table.buffer);
    const at = (guest % this.l2Entries) * this.l2EntryBytes;
    view.setUint32(at, COPIED_HI + Math.floor(host / 2 ** 32));
    view.setUint32(at + 4, host % 2 ** 32);
  }

  /** get_cluster_table: the L2 table of L1 entry `index`, allocated (l2_allocate) if missing. */
  private l2Table(index: number): void {
    if (this.l1[index]) return;
    const offset = this.allocClusters(this.clusterSize);
    this.l2Tables.set(offset, new Uint8Array(this.clusterSize));
    this.image.write(offset, new Uint8Array(this.clusterSize));
    this.l1[index] = offset;
  }

  /** qcow2_alloc_clusters: `bytes` worth of free clusters, refcounted; their host offset. */
  allocClusters(bytes: number): number {
    for (;;) {
      const offset = this.allocNoref(Math.ceil(bytes / this.clusterSize));
      try {
        this.updateRefcount(offset, bytes, 1);
        return offset;
      } catch (err) {
        if (!(err instanceof Again)) throw err;
      }
    }
  }

  /** alloc_clusters_noref: the first run of `count` free clusters from the search position. */
  private allocNoref(count: number): number {
    for (let found = 0; found < count;) {
      found = this.refcount(this.freeClusterIndex++) === 0 ? found + 1 : 0;
    }
    return (this.freeClusterIndex - count) * this.clusterSize;
  }

  /** The refcount of cluster `index`; clusters no refcount block covers have refcount 0. */
  refcount(index: number): number {
    const offset = this.reftable[Math.floor(index / this.refblockEntries)];
    if (!offset) return 0;
    return this.getEntry(this.refblocks.get(offset)!, index % this.refblockEntries);
  }

  /**
   * update_refcount: adds `addend` to the clusters of [offset, offset + bytes). If a refcount
   * block had to be created, the clusters updated so far are reverted and Again is thrown.
   */
  private updateRefcount(offset: number, bytes: number, addend: number): void {
    if (bytes === 0) return;
    const cs = this.clusterSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + bytes - 1) / cs);
    let block: Uint8Array | undefined;
    let blockIndex = -1;
    for (let index = first; index <= last; index++) {
      const tableIndex = Math.floor(index / this.refblockEntries);
      if (tableIndex !== blockIndex) {
        try {
          block = this.refcountBlock(index);
        } catch (err) {
          this.updateRefcount(offset, (index - first) * cs, -addend);
          throw err;
        }
        blockIndex = tableIndex;
      }
      const entry = index % this.refblockEntries;
      const value = this.getEntry(block!, entry) + addend;
      this.setEntry(block!, entry, value);
      if (value === 0 && index < this.freeClusterIndex) this.freeClusterIndex = index;
    }
  }

  /** alloc_refcount_block: the block covering cluster `index`; creating one throws Again. */
  private refcountBlock(index: number): Uint8Array {
    const cs = this.clusterSize;
    const tableIndex = Math.floor(index / this.refblockEntries);
    const existing = this.reftable[tableIndex];
    if (existing) return this.refblocks.get(existing)!;
    const offset = this.allocNoref(1);
    const block = new Uint8Array(cs);
    const self = Math.floor(offset / cs / this.refblockEntries) === tableIndex;
    if (self) this.setEntry(block, (offset / cs) % this.refblockEntries, 1);
    else this.updateRefcount(offset, cs, 1);
    this.refblocks.set(offset, block);
    this.image.write(offset, block);
    if (tableIndex < this.reftable.length) {
      this.reftable[tableIndex] = offset;
      throw new Again();
    }
    const used = Math.ceil(Math.max(index + 1, offset / cs + 1) / this.refblockEntries);
    this.refcountArea(used * this.refblockEntries * cs, 0, false, tableIndex, offset);
    throw new Again();
  }

  /**
   * qcow2_refcount_area: a new refcount table and the refcount blocks to cover everything up to
   * `start` + `extra` clusters (and themselves), placed at `start`; the old table is freed.
   * Returns the host offset right after the new structures.
   */
  private refcountArea(
    start: number,
    extra: number,
    exact: boolean,
    newIndex: number,
    newBlock: number,
  ): number {
    const cs = this.clusterSize;
    const blocks = refcountMetadataSize(start / cs + extra, cs, this.params.refcountOrder, !exact).blocks;
    const areaIndex = Math.floor(start / cs / this.refblockEntries);
    const entriesPerCluster = cs / 8;
    const size = roundUp(exact ? blocks : blocks + Math.ceil(blocks / 2), entriesPerCluster);
    const tableClusters = size / entriesPerCluster;
    const table = new Array<number>(size).fill(0);
    for (let i = 0; i < Math.min(size, this.reftable.length); i++) table[i] = this.reftable[i];
    if (newBlock) table[newIndex] = newBlock;
    let missing = 0;
    for (let i = areaIndex; i < blocks; i++) if (!table[i]) missing++;
    const tableOffset = start + missing * cs;
    const end = tableOffset + tableClusters * cs;
    let blockOffset = start;
    for (let i = areaIndex; i < blocks; i++) {
      if (!table[i]) {
        this.refblocks.set(blockOffset, new Uint8Array(cs));
        table[i] = blockOffset;
        blockOffset += cs;
      }
      const block = this.refblocks.get(table[i])!;
      const covered = i * this.refblockEntries * cs;
      if (covered >= end) continue;
      const from = covered < start ? (start - covered) / cs : 0;
      const to = Math.min((end - covered) / cs, this.refblockEntries);
      for (let j = from; j < to; j++) this.setEntry(block, j, 1);
    }
    for (let o = start; o < tableOffset; o += cs) this.image.write(o, this.refblocks.get(o)!);
    // The old table stays on disk as it was; only its clusters are freed.
    const oldOffset = this.reftableOffset;
    const oldSize = this.reftable.length;
    this.image.write(oldOffset, encodeOffsets(this.reftable, 0));
    this.image.write(tableOffset, new Uint8Array(size * 8));
    this.reftable = table;
    this.reftableOffset = tableOffset;
    this.updateRefcount(oldOffset, oldSize * 8, -1);
    return end;
  }

  /** qcow2_get_last_cluster over the whole image: the highest cluster with a refcount. */
  private lastUsedCluster(): number {
    let last = -1;
    for (let t = 0; t < this.reftable.length; t++) {
      if (!this.reftable[t]) continue;
      for (let e = 0; e < this.refblockEntries; e++) {
        if (this.refcount(t * this.refblockEntries + e)) last = t * this.refblockEntries + e;
      }
    }
    return last;
  }

  /** Reads refcount entry `i` of a block (QEMU's get_refcount_roN: sub-byte widths LSB first). */
  private getEntry(block: Uint8Array, i: number): number {
    const bits = 1 << this.params.refcountOrder;
    if (bits < 8) {
      const per = 8 / bits;
      return (block[Math.floor(i / per)] >> ((i % per) * bits)) & ((1 << bits) - 1);
    }
    const bytes = bits / 8;
    let value = 0;
    for (let b = 0; b < bytes; b++) value = value * 256 + block[i * bytes + b];
    return value;
  }

  private setEntry(block: Uint8Array, i: number, value: number): void {
    const bits = 1 << this.params.refcountOrder;
    if (bits < 8) {
      const per = 8 / bits;
      const shift = (i % per) * bits;
      const at = Math.floor(i / per);
      block[at] = (block[at] & ~(((1 << bits) - 1) << shift)) | (value << shift);
      return;
    }
    const bytes = bits / 8;
    for (let b = bytes - 1, v = value; b >= 0; b--, v = Math.floor(v / 256)) block[i * bytes + b] = v % 256;
  }

  /** Every metadata structure in its final state, written over what `image` holds. */
  finish(): SparseImage {
    this.image.write(this.reftableOffset, encodeOffsets(this.reftable, 0));
    for (const [offset, block] of this.refblocks) this.image.write(offset, block);
    for (const [offset, table] of this.l2Tables) this.image.write(offset, table);
    if (this.l1.length > 0) this.image.write(this.l1Offset, encodeOffsets(this.l1, COPIED_HI));
    return this.image;
  }
}

/** Big-endian 64-bit entries; nonzero ones get `flagsHi` in their top 32 bits. */
function encodeOffsets(entries: readonly number[], flagsHi: number): Uint8Array {
  const out = new Uint8Array(entries.length * 8);
  const view = new DataView(out.buffer);
  entries.forEach((offset, i) => {
    if (!offset) return;
    view.setUint32(i * 8, flagsHi + Math.floor(offset / 2 ** 32));
    view.setUint32(i * 8 + 4, offset % 2 ** 32);
  });
  return out;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * qcow2_refcount_metadata_size: the refcount blocks and table clusters needed to count
 * `clusters` clusters plus themselves (the fixed point); `generous` adds room for the table to
 * grow by half, as QEMU does when it is not sizing exactly. Returns bytes and block count.
 */
export function refcountMetadataSize(
  clusters: number,
  clusterSize: number,
  refcountOrder: number,
  generous: boolean,
): { bytes: number; blocks: number } {
  const perTableCluster = clusterSize / 8;
  const perBlock = (clusterSize * 8) / 2 ** refcountOrder;
  let table = 0;
  let blocks = 0;
  let n = 0;
  let last: number;
  do {
    last = n;
    blocks = Math.ceil((clusters + table + blocks) / perBlock);
    table = Math.ceil(blocks / perTableCluster);
    n = clusters + blocks + table;
    if (n === last && generous) {
      clusters += Math.ceil(table / 2);
      n = 0;
      generous = false;
    }
  } while (n !== last);
  return { bytes: (blocks + table) * clusterSize, blocks };
}
