/**
 * Internal snapshots, write side (QEMU's block/qcow2-snapshot.c qcow2_snapshot_create, _goto,
 * _delete and qcow2-refcount.c qcow2_update_snapshot_refcount). They run on a quiet node: the
 * writer has written all metadata back, refcounts change through the engine's refcount cache,
 * and L1/L2 tables are rewritten here directly, so the engine's L2 cache and active L1 are
 * reloaded afterwards. Metadata is ordered so that a crash leaks clusters at worst: references
 * are added before counts drop and counted before they are written.
 */
import { genericError, ioError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import { Table, type Qcow2Engine } from '../../../qcow2/engine.ts';
import type { Qcow2Snapshot } from './snapshots.ts';
import type { Qcow2Writer } from './writer.ts';

export const OFLAG_COPIED = 1n << 63n;
export const OFLAG_COMPRESSED = 1n << 62n;
/** L1E_OFFSET_MASK and L2E_OFFSET_MASK. */
export const OFFSET_MASK = 0x00fffffffffffe00n;
/** QCOW_MAX_SNAPSHOTS. */
const MAX_SNAPSHOTS = 65536;
const ENTRY_HEADER = 40;
/** sizeof(QCowSnapshotExtraData) as QEMU 7.2 writes it: vm_state_size_large, disk_size, icount. */
const EXTRA_DATA = 24;
const HDR_NB_SNAPSHOTS = 60;

export interface SnapshotImage {
  readonly file: BlockNode;
  readonly engine: Qcow2Engine;
  readonly writer: Qcow2Writer;
  readonly clusterSize: number;
  readonly extendedL2: boolean;
  readonly hasDataFile: boolean;
  /** The image has a backing node (unallocated clusters do not read as zeros). */
  readonly hasBacking: boolean;
  /** The virtual disk size now. */
  size: number;
  /** Slots of the engine's refcount block cache (to reload the refcount table with). */
  readonly refcountSlots: number;
  /** Resizes the image (qcow2_co_truncate), updating `size`. */
  readonly resize: (bytes: number) => Promise<void>;
  /** Where the snapshot table is and how many entries it has (updated by the operations). */
  tableOffset: number;
  count: number;
  /** The table as parsed (updated by the operations). */
  snapshots: Qcow2Snapshot[];
}

/** What a new snapshot records besides its name (QEMUSnapshotInfo). */
export interface NewSnapshot {
  readonly name: string;
  /** Empty or absent: the next free numeric id (find_new_snapshot_id). */
  readonly id?: string;
  readonly dateSec: number;
  readonly dateNsec: number;
  readonly vmStateSize?: number;
  readonly vmClockNsec?: number;
  readonly icount?: bigint;
}

/** qcow2_snapshot_create. Throws ENOTSUP with a data file, EFBIG when full, EEXIST for a used id. */
export async function snapshotCreate(img: SnapshotImage, sn: NewSnapshot): Promise<void> {
  if (img.hasDataFile) throw ioError('ENOTSUP');
  if (img.count >= MAX_SNAPSHOTS) throw ioError('EFBIG');
  const id = sn.id || String(Math.max(0, ...img.snapshots.map((s) => Number.parseInt(s.id, 10) || 0)) + 1);
  if (img.snapshots.some((s) => s.id === id)) throw ioError('EEXIST');
  await quiesce(img, async (active) => {
    const l1 = await readBytes(img.file, active.offset, active.entries * 8);
    const l1Offset = active.entries === 0 ? 0 : await writeNewClusters(img, l1);
    const tables = new Map<number, Uint8Array>();
    await updateSnapshotRefcount(img, l1, 1, tables);
    await writeTables(img, tables, active.offset, l1);
    const entry = encodeEntry(sn, id, l1Offset, active.entries, img.size);
    await rewriteTable(img, [...(await rawEntries(img)), entry]);
  });
}

/**
 * qcow2_snapshot_goto by id or name: the image is first resized to the snapshot's disk size
 * (as QEMU does through blk_truncate), then the snapshot's L1 becomes the active one, its
 * clusters counted first, the old active tree's released after.
 */
export async function snapshotGoto(img: SnapshotImage, idOrName: string): Promise<void> {
  const sn = img.snapshots.find((s) => s.id === idOrName) ?? img.snapshots.find((s) => s.name === idOrName);
  if (!sn) throw ioError('ENOENT');
  if (sn.diskSize !== img.size) await img.resize(sn.diskSize);
  await quiesce(img, async (active) => {
    if (sn.l1Size > active.entries) {
      await img.writer.growL1(sn.l1Size);
      active = img.engine.takeL1();
    }
    const snL1 = await readBytes(img.file, sn.l1TableOffset, sn.l1Size * 8);
    await updateSnapshotRefcount(img, snL1, 1, new Map());
    await img.writer.flush();
    const oldL1 = await readBytes(img.file, active.offset, active.entries * 8);
    const newL1 = new Uint8Array(active.entries * 8);
    newL1.set(snL1);
    await img.file.write(active.offset, newL1);
    await img.file.flush();
    await updateSnapshotRefcount(img, oldL1, -1, new Map());
    await img.writer.flush();
    const tables = new Map<number, Uint8Array>();
    await updateSnapshotRefcount(img, newL1, 0, tables);
    await writeTables(img, tables, active.offset, newL1);
  });
}

/** qcow2_snapshot_delete: the entry matching both given selectors goes first, then its clusters. */
export async function snapshotDelete(img: SnapshotImage, id?: string, name?: string): Promise<void> {
  const index = img.snapshots.findIndex(
    (s) => (id === undefined || s.id === id) && (name === undefined || s.name === name),
  );
  if (index < 0 || (id === undefined && name === undefined)) throw genericError("Can't find the snapshot");
  const sn = img.snapshots[index]!;
  await quiesce(img, async (active) => {
    const entries = await rawEntries(img);
    entries.splice(index, 1);
    await rewriteTable(img, entries);
    const snL1 = await readBytes(img.file, sn.l1TableOffset, sn.l1Size * 8);
    await updateSnapshotRefcount(img, snL1, -1, new Map());
    await freeClusters(img, sn.l1TableOffset, sn.l1Size * 8);
    await img.writer.flush();
    const l1 = await readBytes(img.file, active.offset, active.entries * 8);
    const tables = new Map<number, Uint8Array>();
    await updateSnapshotRefcount(img, l1, 0, tables);
    await writeTables(img, tables, active.offset, l1);
  });
}

export interface ActiveL1 {
  offset: number;
  entries: number;
}

/**
 * Runs `op` with all metadata written back, then writes back what it changed in the refcount
 * cache and makes the engine forget the L2 slices and active L1 it may have changed on disk.
 */
export async function quiesce(img: SnapshotImage, op: (active: ActiveL1) => Promise<void>): Promise<void> {
  await img.writer.flush();
  const active = img.engine.takeL1();
  try {
    await op(active);
    await img.writer.flush();
  } finally {
    const now = img.engine.takeL1();
    img.engine.dropL2Cache();
    await img.engine.useL1(Table.ACTIVE_L1, now.offset, now.entries, (dst) => img.file.read(now.offset, dst));
  }
}

/**
 * qcow2_update_snapshot_refcount over the L1 table `l1` (big-endian entries, changed in place):
 * adds `addend` to every L2 table and data cluster it references and, unless decrementing,
 * sets COPIED exactly where the refcount is then 1. Changed L2 tables are collected in `tables`
 * (by offset; read from there first) for writeTables.
 */
async function updateSnapshotRefcount(
  img: SnapshotImage,
  l1: Uint8Array,
  addend: -1 | 0 | 1,
  tables: Map<number, Uint8Array>,
): Promise<void> {
  const cs = img.clusterSize;
  const l1View = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
  const flags = addend >= 0;
  for (let i = 0; i < l1.length / 8; i++) {
    const l1e = l1View.getBigUint64(i * 8);
    const l2Offset = Number(l1e & OFFSET_MASK);
    if (l2Offset === 0) continue;
    const l2 = tables.get(l2Offset) ?? (await readBytes(img.file, l2Offset, cs));
    if (await updateL2(img, l2, addend, flags)) tables.set(l2Offset, l2);
    const refcount = await adjust(img, l2Offset / cs, addend);
    if (flags) l1View.setBigUint64(i * 8, withCopied(l1e, refcount));
  }
}

/** The entries of one L2 table: counts, and COPIED when `flags`. True if an entry changed. */
async function updateL2(
  img: SnapshotImage,
  l2: Uint8Array,
  addend: -1 | 0 | 1,
  flags: boolean,
): Promise<boolean> {
  const cs = img.clusterSize;
  const v = new DataView(l2.buffer, l2.byteOffset, l2.byteLength);
  const stride = img.extendedL2 ? 16 : 8;
  let changed = false;
  for (let at = 0; at < cs; at += stride) {
    const e = v.getBigUint64(at);
    if ((e & OFLAG_COMPRESSED) !== 0n) {
      if (addend !== 0) for (const c of compressedClusters(e, img.clusterSize)) await adjust(img, c, addend);
      continue;
    }
    const host = Number(e & OFFSET_MASK);
    if (host === 0) continue;
    const refcount = await adjust(img, host / cs, addend);
    if (!flags) continue;
    const next = withCopied(e, refcount);
    if (next !== e) {
      v.setBigUint64(at, next);
      changed = true;
    }
  }
  return changed;
}

/** The host clusters a compressed L2 entry's data touches (qcow2_parse_compressed_l2_entry). */
function compressedClusters(e: bigint, clusterSize: number): number[] {
  const cb = BigInt(Math.log2(clusterSize));
  const x = 62n - (cb - 8n);
  const start = e & ((1n << x) - 1n);
  const sectors = ((e >> x) & ((1n << (cb - 8n)) - 1n)) + 1n;
  const stop = (start & ~511n) + sectors * 512n;
  const first = Number(start >> cb);
  const last = Number((stop - 1n) >> cb);
  return Array.from({ length: last - first + 1 }, (_, k) => first + k);
}

async function adjust(img: SnapshotImage, cluster: number, addend: -1 | 0 | 1): Promise<number> {
  return addend === 0 ? img.writer.refcount(cluster) : img.writer.changeRefcount(cluster, addend);
}

function withCopied(e: bigint, refcount: number): bigint {
  return refcount === 1 ? e | OFLAG_COPIED : e & ~OFLAG_COPIED;
}

/**
 * Writes the refcounts counted so far, then the changed L2 tables, then the active L1 `l1` at
 * `l1Offset`: a crash in between leaves refcounts too high, never too low.
 */
export async function writeTables(
  img: SnapshotImage,
  tables: Map<number, Uint8Array>,
  l1Offset: number,
  l1: Uint8Array,
): Promise<void> {
  await img.writer.flush();
  for (const [offset, bytes] of tables) await img.file.write(offset, bytes);
  await img.file.flush();
  if (l1.length > 0) await img.file.write(l1Offset, l1);
  await img.file.flush();
}

/** Allocates clusters for `bytes`, writes them there (zero-padded) and flushes; their offset. */
async function writeNewClusters(img: SnapshotImage, bytes: Uint8Array): Promise<number> {
  const clusters = Math.max(1, Math.ceil(bytes.length / img.clusterSize));
  const offset = await img.writer.allocClusters(clusters);
  const padded = new Uint8Array(clusters * img.clusterSize);
  padded.set(bytes);
  await img.file.write(offset, padded);
  await img.writer.flush();
  return offset;
}

/** qcow2_free_clusters for [offset, offset + bytes), at once (the caller dropped all references). */
async function freeClusters(img: SnapshotImage, offset: number, bytes: number): Promise<void> {
  if (offset === 0 || bytes === 0) return;
  const first = Math.floor(offset / img.clusterSize);
  const last = Math.floor((offset + bytes - 1) / img.clusterSize);
  for (let c = first; c <= last; c++) await img.writer.changeRefcount(c, -1);
}

/** The snapshot table's entries as stored (unknown extra data kept), without padding. */
async function rawEntries(img: SnapshotImage): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  let pos = img.tableOffset;
  for (let i = 0; i < img.count; i++) {
    pos = Math.ceil(pos / 8) * 8;
    const h = await readBytes(img.file, pos, ENTRY_HEADER);
    const v = new DataView(h.buffer);
    const len = ENTRY_HEADER + v.getUint32(36) + v.getUint16(12) + v.getUint16(14);
    out.push(await readBytes(img.file, pos, len));
    pos += len;
  }
  return out;
}

/** A table entry as qcow2_write_snapshots writes it (QEMU 7.2: 24 bytes of extra data). */
function encodeEntry(
  sn: NewSnapshot,
  id: string,
  l1Offset: number,
  l1Size: number,
  diskSize: number,
): Uint8Array {
  const enc = new TextEncoder();
  const idBytes = enc.encode(id);
  const nameBytes = enc.encode(sn.name);
  const out = new Uint8Array(ENTRY_HEADER + EXTRA_DATA + idBytes.length + nameBytes.length);
  const v = new DataView(out.buffer);
  const vmState = sn.vmStateSize ?? 0;
  v.setBigUint64(0, BigInt(l1Offset));
  v.setUint32(8, l1Size);
  v.setUint16(12, idBytes.length);
  v.setUint16(14, nameBytes.length);
  v.setUint32(16, sn.dateSec);
  v.setUint32(20, sn.dateNsec);
  v.setBigUint64(24, BigInt(sn.vmClockNsec ?? 0));
  v.setUint32(32, vmState >>> 0);
  v.setUint32(36, EXTRA_DATA);
  v.setBigUint64(40, BigInt(vmState));
  v.setBigUint64(48, BigInt(diskSize));
  v.setBigInt64(56, sn.icount ?? 0n);
  out.set(idBytes, ENTRY_HEADER + EXTRA_DATA);
  out.set(nameBytes, ENTRY_HEADER + EXTRA_DATA + idBytes.length);
  return out;
}

/**
 * qcow2_write_snapshots: the new table goes to new clusters, then the header points at it (one
 * sector write of nb_snapshots and snapshots_offset), then the old table is freed.
 */
async function rewriteTable(img: SnapshotImage, entries: Uint8Array[]): Promise<void> {
  const size = entries.reduce((n, e) => Math.ceil(n / 8) * 8 + e.length, 0);
  const table = new Uint8Array(size);
  let pos = 0;
  for (const e of entries) {
    pos = Math.ceil(pos / 8) * 8;
    table.set(e, pos);
    pos += e.length;
  }
  const offset = entries.length === 0 ? 0 : await writeNewClusters(img, table);
  const h = new Uint8Array(12);
  const v = new DataView(h.buffer);
  v.setUint32(0, entries.length);
  v.setBigUint64(4, BigInt(offset));
  await img.file.write(HDR_NB_SNAPSHOTS, h);
  await img.file.flush();
  const old = img.tableOffset;
  const oldBytes = await tableBytes(img);
  img.tableOffset = offset;
  img.count = entries.length;
  await freeClusters(img, old, oldBytes);
  await img.writer.flush();
}

/** Bytes of the table as it is now (s->snapshots_size). */
async function tableBytes(img: SnapshotImage): Promise<number> {
  const entries = await rawEntries(img);
  return entries.reduce((n, e) => Math.ceil(n / 8) * 8 + e.length, 0);
}

export async function readBytes(file: BlockNode, offset: number, len: number): Promise<Uint8Array> {
  const buf = new Uint8Array(len);
  if (len > 0) await file.read(offset, buf);
  return buf;
}
