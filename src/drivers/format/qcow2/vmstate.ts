/**
 * The VM state area (QEMU's qcow2_save_vmstate / qcow2_load_vmstate / qcow2_vm_state_offset in
 * block/qcow2.c; docs/interop/qcow2.txt "Snapshots": vm_state_size): savevm's machine state is
 * kept in the image's guest address space, from the first L1 entry boundary at or past the
 * virtual disk's end, mapped through the L1 and L2 tables like guest data. An internal snapshot
 * taken afterwards copies those mappings with the disk's and records the state's size; the
 * active layer then drops them (qcow2_snapshot_create), so the area is only ever read back
 * through a snapshot — after loadvm made it the active layer, or here without doing so.
 */
import { ioError } from '../../../block/errors.ts';
import { HEADER_BYTES, Qcow2Engine, Table } from '../../../qcow2/engine.ts';
import { cacheSizes } from './cache-options.ts';
import { Qcow2Reader } from './reader.ts';
import type { SnapshotImage } from './snapshot-write.ts';
import type { Qcow2Snapshot } from './snapshots.ts';

const INCOMPAT_EXTL2 = 16n;

/**
 * qcow2_vm_state_offset: l1_vm_state_index (size_to_l1 of the disk size) times the guest bytes
 * one L2 table maps. Extended L2 entries are 16 bytes, so a table maps half as many clusters.
 */
export function vmStateOffset(diskSize: number, clusterSize: number, extendedL2: boolean): number {
  const l2Bytes = clusterSize * (clusterSize / (extendedL2 ? 16 : 8));
  return Math.ceil(diskSize / l2Bytes) * l2Bytes;
}

/**
 * Writes `src` at `pos` of the active layer's VM state area. The L1 table is grown to cover it
 * first (the write path's l1_index >= l1_size case). Whole clusters of zeros become zero clusters
 * instead of data: a machine state is mostly empty RAM, and reads answer zeros for both.
 */
export async function writeVmState(img: SnapshotImage, pos: number, src: Uint8Array): Promise<void> {
  const start = vmStateOffset(img.size, img.clusterSize, img.extendedL2) + pos;
  const l2Bytes = img.clusterSize * (img.clusterSize / (img.extendedL2 ? 16 : 8));
  if (!Number.isSafeInteger(start + src.length)) throw ioError('EINVAL');
  await img.writer.growL1(Math.ceil((start + src.length) / l2Bytes));
  for (const run of zeroRuns(src, start, img.clusterSize)) {
    const part = src.subarray(run.from, run.to);
    if (run.zero) await img.writer.writeZeroes(start + run.from, part.length, true);
    else await img.writer.write(start + run.from, part);
  }
  await img.writer.flush();
}

/**
 * What qcow2_snapshot_create does once the snapshot holds the state: the active layer's
 * mappings of the first `bytes` of the area are discarded, so the next snapshot does not carry
 * them and the next savevm does not copy-on-write them.
 */
export async function dropVmState(img: SnapshotImage, bytes: number): Promise<void> {
  const start = vmStateOffset(img.size, img.clusterSize, img.extendedL2);
  const cs = img.clusterSize;
  await img.writer.discard(start, Math.ceil(bytes / cs) * cs);
  await img.writer.flush();
}

/** What reading the area needs of an open image. */
export interface VmStateSource {
  /** The node's reader: maps through the active L1 table; its nodes serve a snapshot's reader. */
  readonly reader: Qcow2Reader;
  /** The virtual disk size now. */
  readonly size: number;
  readonly clusterSize: number;
  readonly extendedL2: boolean;
  readonly snapshots: readonly Qcow2Snapshot[];
  /** Writes back dirty metadata (read-write nodes), so the file alone describes the image. */
  readonly flush?: () => Promise<void>;
}

/**
 * Reads `dst.length` bytes at `pos` of the VM state area of the active layer, or of the snapshot
 * with id `snapshotId` (ENOENT if there is none). Unwritten bytes read as zeros (or, as in QEMU,
 * as the backing file's bytes there, which lie past its end unless it is larger).
 */
export async function readVmState(
  src: VmStateSource,
  pos: number,
  dst: Uint8Array,
  snapshotId?: string,
): Promise<void> {
  if (snapshotId === undefined) {
    return src.reader.read(vmStateOffset(src.size, src.clusterSize, src.extendedL2) + pos, dst);
  }
  const sn = src.snapshots.find((s) => s.id === snapshotId);
  if (!sn) throw ioError('ENOENT');
  await src.flush?.();
  const reader = await snapshotReader(src.reader, sn);
  await reader.read(vmStateOffset(sn.diskSize, src.clusterSize, src.extendedL2) + pos, dst);
}

/**
 * A reader mapping through snapshot `sn`'s L1 table, as a read-only open with x-snapshot
 * (bdrv_snapshot_load_tmp) maps: its own engine over the same file, so the live node's engine
 * keeps its active table. The file must be up to date (see VmStateSource.flush); the snapshot's
 * tables are never rewritten in place while it exists (shared tables are copied first).
 */
async function snapshotReader(live: Qcow2Reader, sn: Qcow2Snapshot): Promise<Qcow2Reader> {
  const { file, clusterSize } = live.nodes;
  const engine = await Qcow2Engine.create();
  const head = new Uint8Array(HEADER_BYTES);
  await file.read(0, head);
  const header = engine.parseHeader(head, false);
  const entryBytes = (header.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n ? 16 : 8;
  const sizes = cacheSizes({}, clusterSize, sn.diskSize, entryBytes);
  engine.configureCache(sizes.l2Entries, sizes.l2EntryBytes);
  await engine.useL1(Table.SNAPSHOT_L1, sn.l1TableOffset, sn.l1Size, (d) => file.read(sn.l1TableOffset, d));
  return new Qcow2Reader(engine, live.nodes, false, () => {});
}

interface Run {
  from: number;
  to: number;
  zero: boolean;
}

/**
 * Splits `src`, which lands at image offset `at`, into alternating runs of data and of whole
 * all-zero clusters. Partial clusters at either end count as data.
 */
function zeroRuns(src: Uint8Array, at: number, clusterSize: number): Run[] {
  const runs: Run[] = [];
  let from = 0;
  while (from < src.length) {
    const to = Math.min(src.length, Math.floor((at + from) / clusterSize) * clusterSize + clusterSize - at);
    const zero = to - from === clusterSize && isZero(src.subarray(from, to));
    const last = runs.at(-1);
    if (last && last.zero === zero) last.to = to;
    else runs.push({ from, to, zero });
    from = to;
  }
  return runs;
}

function isZero(bytes: Uint8Array): boolean {
  if (bytes.byteOffset % 4 === 0 && bytes.length % 4 === 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}
