/**
 * Typed binding of the qcow2 engine (assembly/qcow2/, DESIGN.md §3): one WebAssembly instance
 * per open image, driven through the engine's request/result area. The engine never does I/O;
 * callers (src/drivers/format/qcow2.ts) read what it asks for and hand it back.
 *
 * Linear memory may grow in any engine call that allocates (parseHeader's staging, useL1,
 * configureCache, map reserving a slot): views are taken fresh after each such call.
 */
import { instantiateBlockgraph, type BlockgraphExports } from '../wasm/load.ts';

/** The engine's answers; keep in step with assembly/qcow2/io.ts Status. */
export const Status = {
  OK: 0,
  DATA: 1,
  ZERO_PLAIN: 2,
  ZERO_ALLOC: 3,
  UNALLOC_PLAIN: 4,
  UNALLOC_ALLOC: 5,
  COMPRESSED: 6,
  NEED_LOAD: 7,
  WAIT: 8,
  BUSY: 9,
  IN_PLACE: 10,
  ALLOC: 11,
  WAIT_ALLOC: 12,
  /** zeroClusters: write real zeros over the range answered. */
  FALLBACK: 13,
  NOT_QCOW2: 16,
  BAD_VERSION: 17,
  BAD_CLUSTER_BITS: 18,
  HEADER_TOO_SHORT: 19,
  HEADER_EXCEEDS_CLUSTER: 20,
  BAD_BACKING_OFFSET: 21,
  UNKNOWN_COMPRESSION: 22,
  COMPRESSION_BIT_SET: 23,
  COMPRESSION_BIT_MISSING: 24,
  UNSUPPORTED_FEATURE: 25,
  CORRUPT_RW: 26,
  BAD_SUBCLUSTER_SIZE: 27,
  REFCOUNT_ORDER: 28,
  NO_REFCOUNT_TABLE: 29,
  TABLE_TOO_LARGE: 30,
  TABLE_OFFSET_INVALID: 31,
  IMAGE_TOO_BIG: 32,
  L1_TOO_SMALL: 33,
  CACHE_TOO_BIG: 34,
  NOT_OPEN: 35,
  L2_UNALIGNED: 48,
  CLUSTER_UNALIGNED: 49,
  INVALID_SUBCLUSTER: 50,
  ZERO_IN_V2: 51,
  DATA_FILE_MISMATCH: 52,
  COMPRESSED_WITH_DATA_FILE: 53,
  REFBLOCK_UNALIGNED: 54,
  REFCOUNT_UNDERFLOW: 55,
  REFCOUNT_OVERFLOW: 56,
  SHARED_L2: 64,
  OVERLAP: 65,
  BEYOND_L1: 66,
  /** A compressed write to a cluster that holds data (assembly/qcow2/compressed.ts). */
  CLUSTER_IN_USE: 67,
} as const;

/** QCow2MetadataOverlap bits the engine checks (assembly/qcow2/write.ts OL_*). */
export const Overlap = {
  MAIN_HEADER: 1,
  ACTIVE_L1: 2,
  ACTIVE_L2: 4,
  REFCOUNT_TABLE: 8,
  REFCOUNT_BLOCK: 16,
} as const;

/** zeroClusters modes (assembly/qcow2/write.ts). */
export const ZeroMode = { ZERO: 0, ZERO_UNMAP: 1, DISCARD: 2, HAS_BACKING: 8 } as const;

/** Which metadata cache a dirty slot belongs to. */
export const CacheId = { L2: 0, REFCOUNT: 1 } as const;

/** One step of a write plan (see Qcow2Engine.prepareWrite). Reused by the next call. */
export interface WriteAnswer {
  status: number;
  /** IN_PLACE, ALLOC: guest bytes from the queried offset this answer covers. */
  bytes: number;
  /** IN_PLACE: host offset of the first byte; ALLOC: host offset of regionStart. */
  host: number;
  /** ALLOC: the guest region to write (request plus the copied head and tail). */
  regionStart: number;
  regionEnd: number;
  /** ALLOC: the allocation to commit or abort; WAIT_ALLOC: the one to wait for. */
  id: number;
  /** ALLOC: a new L2 table cluster to zero before commit (0: none). */
  newL2: number;
  /** NEED_LOAD, WAIT: the tagged cache slot; NEED_LOAD: what to read where (as MapAnswer). */
  slot: number;
  loadBytes: number;
  loadPtr: number;
}

/** A table's state as taken for write-back (takeL1, takeRefcountTable). */
export interface TableState {
  /** The table's bytes (a copy) from entry `lo` to `hi` (all when moved). */
  bytes: Uint8Array;
  lo: number;
  hi: number;
  moved: boolean;
  offset: number;
  entries: number;
  /** Refcount table: its clusters. */
  clusters: number;
}

/** A dirty metadata slot copied for write-back. */
export interface DirtySlot {
  slot: number;
  host: number;
  bytes: Uint8Array;
  gen: number;
}

/** Tables named in TABLE_* errors (assembly/qcow2/io.ts Table). */
export const Table = { REFCOUNT: 0, SNAPSHOTS: 1, ACTIVE_L1: 2, SNAPSHOT_L1: 3 } as const;

/** Bytes of the header to stage for parseHeader (QEMU's sizeof(QCowHeader)). */
export const HEADER_BYTES = 112;

/** The fixed header as parsed (qcow2.txt "Header"); v2 images carry v3's defaults. */
export interface Qcow2Header {
  readonly version: number;
  readonly backingFileOffset: number;
  readonly backingFileSize: number;
  readonly clusterBits: number;
  readonly size: number;
  readonly cryptMethod: number;
  readonly l1Size: number;
  readonly l1TableOffset: number;
  readonly refcountTableOffset: number;
  readonly refcountTableClusters: number;
  readonly nbSnapshots: number;
  readonly snapshotsOffset: number;
  readonly incompatibleFeatures: bigint;
  readonly compatibleFeatures: bigint;
  readonly autoclearFeatures: bigint;
  readonly refcountOrder: number;
  readonly headerLength: number;
  readonly compressionType: number;
}

/** One answer of map(). `host` and `csize` are meaningful per `status` (see Qcow2Engine.map). */
export interface MapAnswer {
  status: number;
  /** Extents: bytes covered from the queried offset. NEED_LOAD: bytes to read. */
  bytes: number;
  /** Extents: host offset where the status has one. NEED_LOAD: host offset of the slice. */
  host: number;
  /** COMPRESSED: compressed bytes. NEED_LOAD: where in linear memory to put them. */
  csize: number;
  /** NEED_LOAD, WAIT: the cache slot. Corruption statuses: the L2 offset and index are in host/csize. */
  slot: number;
  /** Corruption statuses: the guest cluster offset (DATA_FILE_MISMATCH). */
  guest: number;
}

/** Result of a failed engine call: the status and IO[0] (the value its message needs). */
export class EngineError extends Error {
  constructor(
    readonly status: number,
    readonly value: bigint,
  ) {
    super(`qcow2 engine status ${status}`);
  }
}

/** A WriteAnswer to reuse for a binding's answers. */
export function emptyWriteAnswer(): WriteAnswer {
  return {
    status: 0,
    bytes: 0,
    host: 0,
    regionStart: 0,
    regionEnd: 0,
    id: 0,
    newL2: 0,
    slot: 0,
    loadBytes: 0,
    loadPtr: 0,
  };
}

export class Qcow2Engine {
  private ioView: BigUint64Array;
  /** The L2 cache's configuration, to set it up afresh (dropL2Cache). */
  private l2Geometry: [number, number] = [1, 512];
  private readonly answer: MapAnswer = { status: 0, bytes: 0, host: 0, csize: 0, slot: 0, guest: 0 };
  private readonly write = emptyWriteAnswer();

  private constructor(private readonly exports: BlockgraphExports) {
    this.ioView = this.freshIo();
  }

  /** A new engine: its own instance of the module, so its own memory and state. */
  static async create(source?: URL | BufferSource): Promise<Qcow2Engine> {
    return new Qcow2Engine(await instantiateBlockgraph(source));
  }

  /**
   * Parses the fixed header from `head` (at least HEADER_BYTES; shorter is zero-padded, as QEMU
   * pads short reads). Returns the header, or throws EngineError with QEMU's failing check.
   */
  parseHeader(head: Uint8Array, readWrite: boolean): Qcow2Header {
    const ptr = this.exports.qcow2Alloc(HEADER_BYTES) >>> 0;
    this.bytes(ptr, HEADER_BYTES).set(head.subarray(0, HEADER_BYTES));
    const status = this.exports.qcow2ParseHeader(ptr, readWrite ? 1 : 0);
    if (status !== Status.OK) throw new EngineError(status, this.io()[0]!);
    const f = (i: number) => this.exports.qcow2HeaderField(i);
    const n = (i: number) => Number(f(i));
    return {
      version: n(0),
      backingFileOffset: n(1),
      backingFileSize: n(2),
      clusterBits: n(3),
      size: n(4),
      cryptMethod: n(5),
      l1Size: n(6),
      l1TableOffset: n(7),
      refcountTableOffset: n(8),
      refcountTableClusters: n(9),
      nbSnapshots: n(10),
      snapshotsOffset: n(11),
      incompatibleFeatures: f(12),
      compatibleFeatures: f(13),
      autoclearFeatures: f(14),
      refcountOrder: n(15),
      headerLength: n(16),
      compressionType: n(17),
    };
  }

  /**
   * Sets up the L2 cache: `slots` slices of `sliceBytes` (a power of two, 512..cluster size).
   * Returns false when the cache's bookkeeping would be unreasonably large.
   */
  configureCache(slots: number, sliceBytes: number): boolean {
    this.l2Geometry = [slots, sliceBytes];
    return this.exports.qcow2ConfigureCache(slots, sliceBytes) === 1;
  }

  /**
   * Forgets every cached L2 slice (none may be dirty, loading or pinned): after the host rewrote
   * L2 tables itself (snapshot operations).
   */
  dropL2Cache(): void {
    const [slots, sliceBytes] = this.l2Geometry;
    this.exports.qcow2ConfigureCache(slots, sliceBytes);
  }

  /**
   * Maps through the L1 table of `entries` entries at `offset` from now on (`table`: Table.ACTIVE_L1
   * or Table.SNAPSHOT_L1, which is validated here). `fill` receives the view where the table's
   * bytes must be stored, before the next map().
   */
  async useL1(
    table: number,
    offset: number,
    entries: number,
    fill: (dst: Uint8Array) => Promise<void>,
  ): Promise<void> {
    const io = this.io();
    io[0] = BigInt(offset);
    io[1] = BigInt(entries);
    const status = this.exports.qcow2UseL1(table);
    if (status !== Status.OK) throw new EngineError(status, this.io()[0]!);
    const ptr = Number(this.io()[0]);
    // Read into a separate buffer: memory may grow while the read is pending.
    const bytes = new Uint8Array(entries * 8);
    await fill(bytes);
    this.bytes(ptr, bytes.length).set(bytes);
  }

  /**
   * One step of mapping [offset, offset + bytes): see assembly/qcow2/map.ts for the statuses.
   * The returned object is reused by the next call.
   */
  map(offset: number, bytes: number): MapAnswer {
    let io = this.io();
    io[0] = BigInt(offset);
    io[1] = BigInt(bytes);
    const a = this.answer;
    a.status = this.exports.qcow2Map();
    io = this.io();
    if (a.status === Status.NEED_LOAD) {
      a.slot = Number(io[0]);
      a.host = Number(io[1]);
      a.bytes = Number(io[2]);
      a.csize = Number(io[3]);
    } else if (a.status === Status.WAIT) {
      a.slot = Number(io[0]);
    } else {
      a.bytes = Number(io[0]);
      a.host = Number(io[1]);
      a.csize = Number(io[2]);
      a.guest = Number(io[3]);
    }
    return a;
  }

  /** Stores a loaded slice into the slot map() asked for and marks it ready. */
  fillSlot(slot: number, ptr: number, data: Uint8Array): void {
    this.bytes(ptr, data.length).set(data);
    this.exports.qcow2Loaded(slot, 1);
  }

  /** The load of `slot` failed: the slot is freed so a later map() asks again. */
  failSlot(slot: number): void {
    this.exports.qcow2Loaded(slot, 0);
  }

  /** Frees L2 slices unused since the previous call (cache-clean-interval). */
  cleanUnused(): number {
    return this.exports.qcow2CleanUnused();
  }

  /** Sets up refcounts for writing: the table (read by `fill`) and a cache of `slots` blocks. */
  async useRefcountTable(
    offset: number,
    clusters: number,
    slots: number,
    fill: (dst: Uint8Array) => Promise<void>,
  ): Promise<void> {
    // Read first, then hand over in one synchronous step: the engine never sees a table that
    // is set up but not yet filled.
    const bytes = new Uint8Array(clusters * 2 ** this.clusterBits());
    await fill(bytes);
    const io = this.io();
    io[0] = BigInt(offset);
    io[1] = BigInt(clusters);
    const status = this.exports.qcow2UseRefcountTable(slots);
    if (status !== Status.OK) throw new EngineError(status, this.io()[0]!);
    this.bytes(Number(this.io()[0]), bytes.length).set(bytes);
  }

  /**
   * One step of planning a write of [offset, offset + bytes) (assembly/qcow2/write.ts
   * prepareWrite). The returned object is reused by the next call.
   */
  prepareWrite(offset: number, bytes: number): WriteAnswer {
    let io = this.io();
    io[0] = BigInt(offset);
    io[1] = BigInt(bytes);
    const w = this.write;
    w.status = this.exports.qcow2PrepareWrite();
    io = this.io();
    if (w.status === Status.NEED_LOAD || w.status === Status.WAIT) {
      w.slot = Number(io[0]);
      w.host = Number(io[1]);
      w.loadBytes = Number(io[2]);
      w.loadPtr = Number(io[3]);
    } else {
      w.bytes = Number(io[0]);
      w.host = Number(io[1]);
      w.regionStart = Number(io[2]);
      w.regionEnd = Number(io[3]);
      // WAIT_ALLOC names the allocation in the way in IO[0]; ALLOC its own in IO[4].
      w.id = Number(w.status === Status.WAIT_ALLOC ? io[0] : io[4]);
      w.newL2 = Number(io[5]);
      w.slot = Number(io[0]);
    }
    return w;
  }

  /** Links allocation `id` (its data is written). */
  commit(id: number): void {
    const status = this.exports.qcow2Commit(id);
    if (status !== Status.OK) throw new EngineError(status, 0n);
  }

  abort(id: number): void {
    this.exports.qcow2Abort(id);
  }

  /**
   * One step of zeroing or discarding [offset, offset + bytes) (`mode`: ZeroMode). Answers as
   * prepareWrite for loads and waits; OK and FALLBACK cover `bytes` of the answer; ALLOC: a new
   * L2 table at `host` to zero before committing allocation `id`, then ask again.
   */
  zeroClusters(offset: number, bytes: number, mode: number): WriteAnswer {
    let io = this.io();
    io[0] = BigInt(offset);
    io[1] = BigInt(bytes);
    const w = this.write;
    w.status = this.exports.qcow2ZeroClusters(mode);
    io = this.io();
    w.slot = Number(io[0]);
    w.bytes = Number(io[0]);
    w.id = Number(io[0]);
    w.host = Number(io[1]);
    w.loadBytes = Number(io[2]);
    w.loadPtr = Number(io[3]);
    return w;
  }

  /** Makes the L1 table `entries` long: a status (OK, or loads to do first as prepareWrite). */
  growL1(entries: number): WriteAnswer {
    this.io()[0] = BigInt(entries);
    const w = this.write;
    w.status = this.exports.qcow2GrowL1();
    const io = this.io();
    w.slot = Number(io[0]);
    w.host = Number(io[1]);
    w.loadBytes = Number(io[2]);
    w.loadPtr = Number(io[3]);
    return w;
  }

  /** The L1 table's changes since the last take (cleared now; tableFailed restores them). */
  takeL1(): TableState {
    this.exports.qcow2TakeL1();
    return this.table(8);
  }

  takeRefcountTable(): TableState {
    this.exports.qcow2TakeRefcountTable();
    const t = this.table(8);
    const io = this.io();
    t.offset = Number(io[5]);
    t.clusters = Number(io[6]);
    return t;
  }

  /** A table write-back failed: its changes are dirty again. */
  tableFailed(which: 'l1' | 'refcount', moved: boolean): void {
    this.exports.qcow2TableFailed(which === 'l1' ? 0 : 1, moved ? 1 : 0);
  }

  /** The decrements queued since the last take: [first cluster, count] pairs. */
  takeFrees(): Array<[number, number]> {
    const n = this.exports.qcow2TakeFrees();
    if (n === 0) return [];
    const ptr = Number(this.io()[0]);
    const v = new BigUint64Array(this.exports.memory.buffer, ptr, n * 2);
    const out: Array<[number, number]> = [];
    for (let i = 0; i < n; i++) out.push([Number(v[2 * i]), Number(v[2 * i + 1])]);
    return out;
  }

  /** Decrements cluster `cluster`'s refcount: status, and the new refcount in `bytes` on OK. */
  decref(cluster: number): WriteAnswer {
    this.io()[0] = BigInt(cluster);
    return this.answerLoad(this.exports.qcow2Decref());
  }

  /** Increments cluster `cluster`'s refcount: status, and the new refcount in `bytes` on OK. */
  incref(cluster: number): WriteAnswer {
    this.io()[0] = BigInt(cluster);
    return this.answerLoad(this.exports.qcow2Incref());
  }

  /** Allocates `n` contiguous clusters: status, and their host offset in `host` on OK. */
  allocClusters(n: number): WriteAnswer {
    this.io()[0] = BigInt(n);
    const a = this.answerLoad(this.exports.qcow2AllocClusters());
    if (a.status === Status.OK) a.host = a.bytes;
    return a;
  }

  /**
   * Starts the copy of the shared L2 table of L1 entry `l1i`: status; on OK `host` is the new
   * cluster and `regionStart` the old table (copy it, then linkL2). OVERLAP as prepareWrite.
   */
  unshareL2(l1i: number): WriteAnswer {
    this.io()[0] = BigInt(l1i);
    const a = this.answerLoad(this.exports.qcow2UnshareL2());
    if (a.status === Status.OK) {
      a.regionStart = a.host;
      a.host = a.bytes;
    } else if (a.status === Status.OVERLAP) {
      a.regionStart = Number(this.io()[2]);
    }
    return a;
  }

  /**
   * Clears the L1 entries from `entries` on and queues their L2 tables for freeing (a shrink,
   * after the guest range they mapped was discarded and written back).
   */
  shrinkL1(entries: number): void {
    this.io()[0] = BigInt(entries);
    this.exports.qcow2ShrinkL1();
  }

  /** Points L1 entry `l1i` at the copied L2 table `table`; the shared one is queued for freeing. */
  linkL2(l1i: number, table: number): void {
    const io = this.io();
    io[0] = BigInt(l1i);
    io[1] = BigInt(table);
    this.exports.qcow2LinkL2();
  }

  /** The refcount of `cluster`: status, and the refcount in `bytes` on OK. */
  refcountOf(cluster: number): WriteAnswer {
    this.io()[0] = BigInt(cluster);
    return this.answerLoad(this.exports.qcow2RefcountOf());
  }

  /** Copies of the dirty slots of cache `which` (CacheId), in slot order. */
  dirtySlots(which: number): DirtySlot[] {
    const out: DirtySlot[] = [];
    for (
      let s = this.exports.qcow2NextDirty(which, 0);
      s >= 0;
      s = this.exports.qcow2NextDirty(which, s + 1)
    ) {
      const io = this.io();
      const ptr = Number(io[1]);
      out.push({
        slot: s,
        host: Number(io[0]),
        gen: Number(io[3]),
        bytes: this.bytes(ptr, Number(io[2])).slice(),
      });
    }
    return out;
  }

  /** A dirty slot was written as copied: clean unless it changed since. */
  cleaned(which: number, slot: number, gen: number): void {
    this.exports.qcow2Cleaned(which, slot, gen);
  }

  /** The first Overlap bit (minus `ignore`) that [offset, offset + bytes) hits, or 0. */
  overlaps(offset: number, bytes: number, ignore: number): number {
    const io = this.io();
    io[0] = BigInt(offset);
    io[1] = BigInt(bytes);
    return this.exports.qcow2Overlaps(ignore);
  }

  /** Which Overlap bits to check (the overlap-check option). */
  setOverlapChecks(mask: number): void {
    this.exports.qcow2SetOverlapChecks(mask);
  }

  private answerLoad(status: number): WriteAnswer {
    const io = this.io();
    const w = this.write;
    w.status = status;
    w.slot = Number(io[0]);
    w.bytes = Number(io[0]);
    w.host = Number(io[1]);
    w.loadBytes = Number(io[2]);
    w.loadPtr = Number(io[3]);
    return w;
  }

  private table(entrySize: number): TableState {
    const io = this.io();
    const ptr = Number(io[0]);
    const entries = Number(io[1]);
    const moved = io[4] !== 0n;
    const lo = moved ? 0 : Number(io[2]);
    const hi = moved ? entries : Number(io[3]);
    const bytes = this.bytes(ptr + lo * entrySize, (hi - lo) * entrySize).slice();
    return { bytes, lo, hi, moved, offset: Number(io[5]), entries, clusters: 0 };
  }

  private clusterBits(): number {
    return Number(this.exports.qcow2HeaderField(3));
  }

  /** The instance's exports (its zero scan, for detect-zeroes). */
  wasmExports(): BlockgraphExports {
    return this.exports;
  }

  /** Bytes of linear memory in use (for tests bounding memory). */
  memoryBytes(): number {
    return this.exports.memory.buffer.byteLength;
  }

  private bytes(ptr: number, len: number): Uint8Array {
    return new Uint8Array(this.exports.memory.buffer, ptr, len);
  }

  /** The request/result area, re-viewed when memory has grown (growth detaches old views). */
  private io(): BigUint64Array {
    if (this.ioView.buffer !== this.exports.memory.buffer) this.ioView = this.freshIo();
    return this.ioView;
  }

  private freshIo(): BigUint64Array {
    return new BigUint64Array(this.exports.memory.buffer, this.exports.qcow2Io() >>> 0, 16);
  }
}
