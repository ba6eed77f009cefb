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
} as const;

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

export class Qcow2Engine {
  private ioView: BigUint64Array;
  private readonly answer: MapAnswer = { status: 0, bytes: 0, host: 0, csize: 0, slot: 0, guest: 0 };

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
    return this.exports.qcow2ConfigureCache(slots, sliceBytes) === 1;
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
