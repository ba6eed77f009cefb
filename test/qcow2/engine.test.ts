/**
 * The qcow2 engine on its own: headers and tables built in memory, no storage. The engine
 * answers NEED_LOAD and the test plays the host, so every answer a broken engine could get
 * wrong is checked against hand-computed values.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { EngineError, HEADER_BYTES, Qcow2Engine, Status, Table } from '../../src/qcow2/engine.ts';
import { ensureWasmBuilt } from '../wasm/ensure-built.ts';

beforeAll(() => ensureWasmBuilt());

const KiB = 1024;
const MiB = 1 << 20;
const TiB = 2 ** 40;

interface HeaderFields {
  magic?: number;
  version?: number;
  clusterBits?: number;
  size?: number;
  l1Size?: number;
  l1Offset?: number;
  reftableOffset?: number;
  reftableClusters?: number;
  incompat?: bigint;
  refcountOrder?: number;
  headerLength?: number;
}

/** A v3 header (qcow2.txt "Header") with 64 KiB clusters unless told otherwise. */
function header(f: HeaderFields = {}): Uint8Array {
  const b = new Uint8Array(HEADER_BYTES);
  const v = new DataView(b.buffer);
  const clusterBits = f.clusterBits ?? 16;
  v.setUint32(0, f.magic ?? 0x514649fb);
  v.setUint32(4, f.version ?? 3);
  v.setUint32(20, clusterBits);
  v.setBigUint64(24, BigInt(f.size ?? MiB));
  v.setUint32(36, f.l1Size ?? 1);
  v.setBigUint64(40, BigInt(f.l1Offset ?? 3 * 2 ** clusterBits));
  v.setBigUint64(48, BigInt(f.reftableOffset ?? 2 ** clusterBits));
  v.setUint32(56, f.reftableClusters ?? 1);
  v.setBigUint64(72, f.incompat ?? 0n);
  v.setUint32(96, f.refcountOrder ?? 4);
  v.setUint32(100, f.headerLength ?? 112);
  return b;
}

async function parseError(head: Uint8Array, readWrite = false): Promise<EngineError> {
  const engine = await Qcow2Engine.create();
  try {
    engine.parseHeader(head, readWrite);
  } catch (err) {
    return err as EngineError;
  }
  throw new Error('parseHeader accepted the header');
}

describe('header validation (qcow2_do_open order)', () => {
  it.each([
    ['bad magic', { magic: 0x12345678 }, Status.NOT_QCOW2, undefined],
    ['version 4', { version: 4 }, Status.BAD_VERSION, 4n],
    ['cluster_bits 8', { clusterBits: 8 }, Status.BAD_CLUSTER_BITS, 8n],
    ['cluster_bits 22', { clusterBits: 22 }, Status.BAD_CLUSTER_BITS, 22n],
    ['header_length 96', { headerLength: 96 }, Status.HEADER_TOO_SHORT, undefined],
    ['unknown incompatible bit', { incompat: 1n << 20n }, Status.UNSUPPORTED_FEATURE, 1n << 20n],
    ['refcount_order 7', { refcountOrder: 7 }, Status.REFCOUNT_ORDER, undefined],
    ['no refcount table', { reftableClusters: 0 }, Status.NO_REFCOUNT_TABLE, undefined],
    ['huge L1', { l1Size: 0x7fffffff }, Status.TABLE_TOO_LARGE, BigInt(Table.ACTIVE_L1)],
    ['unaligned L1', { l1Offset: 0x10001 }, Status.TABLE_OFFSET_INVALID, BigInt(Table.ACTIVE_L1)],
    [
      'unaligned refcount table',
      { reftableOffset: 0x1001 },
      Status.TABLE_OFFSET_INVALID,
      BigInt(Table.REFCOUNT),
    ],
    ['L1 too small for the size', { size: 2 * 512 * MiB, l1Size: 1 }, Status.L1_TOO_SMALL, undefined],
    // Extended L2 needs subclusters of at least 512 bytes: clusters of at least 16 KiB.
    ['extended L2 with 8 KiB clusters', { clusterBits: 13, incompat: 16n }, Status.BAD_SUBCLUSTER_SIZE, 256n],
  ] as const)('%s', async (_, fields, status, value) => {
    const err = await parseError(header(fields));
    expect(err.status).toBe(status);
    if (value !== undefined) expect(err.value).toBe(value);
  });

  it('refuses the corrupt bit only for a read-write open', async () => {
    expect((await parseError(header({ incompat: 2n }), true)).status).toBe(Status.CORRUPT_RW);
    const engine = await Qcow2Engine.create();
    expect(engine.parseHeader(header({ incompat: 2n }), false).incompatibleFeatures).toBe(2n);
  });

  it('gives v2 images the v3 defaults', async () => {
    const engine = await Qcow2Engine.create();
    const h = engine.parseHeader(header({ version: 2, refcountOrder: 99, incompat: 1n << 40n }), true);
    expect(h).toMatchObject({ version: 2, refcountOrder: 4, headerLength: 72, incompatibleFeatures: 0n });
  });
});

/** An engine over a synthetic image: 64 KiB clusters, L1 at 192 KiB, `slots` L2 slices. */
async function engineWith(opts: {
  l1: bigint[];
  size?: number;
  slots?: number;
  sliceBytes?: number;
  clusterBits?: number;
  version?: number;
  incompat?: bigint;
}) {
  const engine = await Qcow2Engine.create();
  const clusterBits = opts.clusterBits ?? 16;
  const h = engine.parseHeader(
    header({
      size: opts.size ?? MiB,
      l1Size: opts.l1.length,
      clusterBits,
      version: opts.version,
      incompat: opts.incompat,
      headerLength: opts.version === 2 ? 72 : 112,
    }),
    false,
  );
  expect(engine.configureCache(opts.slots ?? 4, opts.sliceBytes ?? 2 ** clusterBits)).toBe(true);
  await engine.useL1(Table.ACTIVE_L1, h.l1TableOffset, opts.l1.length, async (dst) => {
    const v = new DataView(dst.buffer, dst.byteOffset);
    opts.l1.forEach((e, i) => v.setBigUint64(i * 8, e));
  });
  return engine;
}

/** An L2 slice of big-endian entries (two words each with extended L2). */
function slice(bytes: number, entries: bigint[]): Uint8Array {
  const b = new Uint8Array(bytes);
  const v = new DataView(b.buffer);
  entries.forEach((e, i) => v.setBigUint64(i * 8, e));
  return b;
}

const COPIED = 1n << 63n;
const L2 = 0x40000n;

describe('mapping', () => {
  it('asks for the L2 slice, then answers one run for contiguous clusters', async () => {
    const engine = await engineWith({ l1: [L2 | COPIED] });
    let a = engine.map(0, MiB);
    expect(a.status).toBe(Status.NEED_LOAD);
    expect(a.host).toBe(Number(L2));
    expect(a.bytes).toBe(64 * KiB);
    // 16 clusters: 0-9 contiguous at 1 MiB, 10 elsewhere, 11 zero, 12-15 unallocated.
    const entries = Array.from({ length: 10 }, (_, i) => (0x100000n + BigInt(i) * 0x10000n) | COPIED);
    entries.push(0x300000n | COPIED, 1n);
    engine.fillSlot(a.slot, a.csize, slice(64 * KiB, entries));
    a = engine.map(4 * KiB, MiB - 4 * KiB);
    expect([a.status, a.bytes, a.host]).toEqual([Status.DATA, 10 * 64 * KiB - 4 * KiB, 0x101000]);
    a = engine.map(10 * 64 * KiB, MiB);
    expect([a.status, a.bytes, a.host]).toEqual([Status.DATA, 64 * KiB, 0x300000]);
    a = engine.map(11 * 64 * KiB, 10);
    expect([a.status, a.bytes]).toEqual([Status.ZERO_PLAIN, 10]);
    a = engine.map(12 * 64 * KiB, 4 * 64 * KiB);
    expect([a.status, a.bytes]).toEqual([Status.UNALLOC_PLAIN, 4 * 64 * KiB]);
  });

  it('answers unallocated for a whole L2 range without a table, without loading anything', async () => {
    const engine = await engineWith({ l1: [0n, L2], size: 2 * 512 * MiB });
    const a = engine.map(1000, 2 * 512 * MiB - 1000);
    expect([a.status, a.bytes]).toEqual([Status.UNALLOC_PLAIN, 512 * MiB - 1000]);
  });

  it('decodes compressed descriptors (host offset and sector count split by cluster_bits)', async () => {
    const engine = await engineWith({ l1: [L2] });
    const a0 = engine.map(0, MiB);
    // 64 KiB clusters: x = 62 - 8 = 54; 3 additional sectors, data at 0x12345.
    const entry = (1n << 62n) | (3n << 54n) | 0x12345n;
    engine.fillSlot(a0.slot, a0.csize, slice(64 * KiB, [entry, entry]));
    const a = engine.map(100, MiB);
    // Compressed clusters come one at a time; 4 sectors minus the offset into the first.
    expect([a.status, a.bytes, a.host, a.csize]).toEqual([
      Status.COMPRESSED,
      64 * KiB - 100,
      0x12345,
      4 * 512 - 0x145,
    ]);
  });

  it('reports corruption with the table, index and offset QEMU names', async () => {
    const engine = await engineWith({ l1: [0x40200n] });
    const a = engine.map(0, 512);
    expect([a.status, a.bytes, a.host]).toEqual([Status.L2_UNALIGNED, 0x40200, 0]);
    const e2 = await engineWith({ l1: [L2] });
    const b = e2.map(0, 512);
    e2.fillSlot(b.slot, b.csize, slice(64 * KiB, [0n, 0x10200n]));
    const c = e2.map(64 * KiB, 512);
    expect([c.status, c.bytes, c.host, c.csize]).toEqual([Status.CLUSTER_UNALIGNED, Number(L2), 1, 0x10200]);
  });

  it('refuses zero clusters in a v2 image', async () => {
    const engine = await engineWith({ l1: [L2], version: 2 });
    const a = engine.map(0, 512);
    engine.fillSlot(a.slot, a.csize, slice(64 * KiB, [1n]));
    expect(engine.map(0, 512).status).toBe(Status.ZERO_IN_V2);
  });

  it('maps extended L2 subclusters by their allocation and zero bits', async () => {
    const engine = await engineWith({ l1: [L2], incompat: 16n });
    const a = engine.map(0, MiB);
    // Cluster 0 at 1 MiB: subclusters 0-1 allocated, 2 zero, 3.. unallocated (2 KiB each).
    // Cluster 1: allocation and zero bits both set for subcluster 0: invalid.
    const bitmap0 = 0b011n | (0b100n << 32n);
    const bitmap1 = 1n | (1n << 32n);
    engine.fillSlot(a.slot, a.csize, slice(64 * KiB, [0x100000n | COPIED, bitmap0, 0x200000n, bitmap1]));
    let m = engine.map(1024, MiB);
    expect([m.status, m.bytes, m.host]).toEqual([Status.DATA, 3 * KiB, 0x100400]);
    m = engine.map(4 * KiB, MiB);
    expect([m.status, m.bytes, m.host]).toEqual([Status.ZERO_ALLOC, 2 * KiB, 0x101000]);
    m = engine.map(6 * KiB, 58 * KiB);
    expect([m.status, m.bytes, m.host]).toEqual([Status.UNALLOC_ALLOC, 58 * KiB, 0x101800]);
    // As in QEMU, a run reaching an invalid entry fails, even if it starts before it.
    m = engine.map(6 * KiB, MiB);
    expect([m.status, m.bytes, m.host]).toEqual([Status.INVALID_SUBCLUSTER, Number(L2), 1]);
    m = engine.map(64 * KiB, 1);
    expect([m.status, m.bytes, m.host]).toEqual([Status.INVALID_SUBCLUSTER, Number(L2), 1]);
  });
});

describe('the L2 cache', () => {
  /** Loads the slice engine.map asks for at `offset` with all-unallocated entries. */
  function loadAt(engine: Qcow2Engine, offset: number): number {
    const a = engine.map(offset, 512);
    expect(a.status).toBe(Status.NEED_LOAD);
    const slot = a.slot;
    engine.fillSlot(slot, a.csize, new Uint8Array(a.bytes));
    return slot;
  }

  const GiB = 1 << 30;
  const l1 = [0x40000n, 0x50000n, 0x60000n, 0x70000n];

  it('lets a second request wait for a load in flight, and reports BUSY when all slots load', async () => {
    const engine = await engineWith({ l1, size: 2 * GiB, slots: 2 });
    const first = engine.map(0, 512);
    expect(first.status).toBe(Status.NEED_LOAD);
    const slot = first.slot;
    const again = engine.map(4096, 512);
    expect([again.status, again.slot]).toEqual([Status.WAIT, slot]);
    expect(engine.map(512 * MiB, 512).status).toBe(Status.NEED_LOAD);
    expect(engine.map(GiB, 512).status).toBe(Status.BUSY);
    engine.failSlot(slot);
    // The failed slot is free again: the next request loads the slice anew.
    expect(engine.map(0, 512).status).toBe(Status.NEED_LOAD);
  });

  it('evicts the least recently used slice', async () => {
    const engine = await engineWith({ l1, size: 2 * GiB, slots: 2 });
    loadAt(engine, 0);
    loadAt(engine, 512 * MiB);
    expect(engine.map(0, 512).status).toBe(Status.UNALLOC_PLAIN); // touches slice 0
    loadAt(engine, GiB); // evicts the one at 512 MiB
    expect(engine.map(0, 512).status).toBe(Status.UNALLOC_PLAIN);
    expect(engine.map(512 * MiB, 512).status).toBe(Status.NEED_LOAD);
  });

  it('keys slices by host offset: 4 KiB slices of one table are separate entries', async () => {
    const engine = await engineWith({ l1, slots: 4, sliceBytes: 4096 });
    const a = engine.map(0, MiB);
    expect([a.status, a.host, a.bytes]).toEqual([Status.NEED_LOAD, 0x40000, 4096]);
    engine.fillSlot(a.slot, a.csize, new Uint8Array(4096));
    // 512 entries per slice: the run stops at the slice end (32 MiB).
    expect(engine.map(0, 64 * MiB).bytes).toBe(32 * MiB);
    const b = engine.map(32 * MiB, 512);
    expect([b.status, b.host]).toEqual([Status.NEED_LOAD, 0x40000 + 4096]);
  });

  it('drops slices unused between two cleanings (cache-clean-interval)', async () => {
    const engine = await engineWith({ l1, size: 2 * GiB });
    loadAt(engine, 0);
    loadAt(engine, 512 * MiB);
    expect(engine.cleanUnused()).toBe(0);
    engine.map(0, 512);
    expect(engine.cleanUnused()).toBe(1);
    expect(engine.map(512 * MiB, 512).status).toBe(Status.NEED_LOAD);
    expect(engine.map(0, 512).status).toBe(Status.UNALLOC_PLAIN);
  });

  it('keeps memory small for a 4 TiB image with a cache as large as QEMU would allow', async () => {
    const entries = (4 * TiB) / (64 * KiB) / 8192;
    const engine = await engineWith({
      l1: new Array<bigint>(entries).fill(0n),
      size: 4 * TiB,
      slots: 8192,
      sliceBytes: 4096,
    });
    const a = engine.map(0, 4 * TiB);
    // An answer never goes past the L2 slice (bytes_available in qcow2_get_host_offset).
    expect([a.status, a.bytes]).toEqual([Status.UNALLOC_PLAIN, 32 * MiB]);
    // 64 KiB of L1 plus slot bookkeeping; slot memory is allocated only as slices are loaded.
    expect(engine.memoryBytes()).toBeLessThan(2 * MiB);
  });
});
