/**
 * The internal snapshot table (qcow2.txt "Snapshots"), read as QEMU's qcow2_read_snapshots does:
 * entries of variable length, each padded to 8 bytes, at snapshots_offset.
 */
import type { SnapshotInfo } from '../../../block/driver.ts';
import { genericError } from '../../../block/errors.ts';
import { cString } from './extensions.ts';

/** QCOW_MAX_SNAPSHOT_EXTRA_DATA and QCOW_MAX_SNAPSHOTS_SIZE (block/qcow2.h). */
const MAX_EXTRA_DATA = 1024;
const MAX_TABLE_BYTES = 64 << 20;
const ENTRY_HEADER = 40;

export interface Qcow2Snapshot {
  readonly l1TableOffset: number;
  readonly l1Size: number;
  readonly id: string;
  readonly name: string;
  readonly vmStateSize: number;
  readonly dateSec: number;
  readonly dateNsec: number;
  readonly vmClockNsec: number;
  /** Virtual disk size when taken (extra data bytes 48-55; else the image's size). */
  readonly diskSize: number;
  /** Extra data bytes 56-63 (-1 when absent, and then not reported). */
  readonly icount: bigint;
}

/** Reads `len` bytes at host offset `offset` of the image file (zeros past its end). */
export type ReadAt = (offset: number, len: number) => Promise<Uint8Array>;

/** Reads the `count` entries at `offset`. `imageSize` stands in for a missing disk size. */
export async function readSnapshotTable(
  read: ReadAt,
  offset: number,
  count: number,
  imageSize: number,
): Promise<Qcow2Snapshot[]> {
  const out: Qcow2Snapshot[] = [];
  let pos = offset;
  for (let i = 0; i < count; i++) {
    pos = Math.ceil(pos / 8) * 8;
    const h = await readOrFail(read, pos, ENTRY_HEADER);
    const v = new DataView(h.buffer, h.byteOffset, ENTRY_HEADER);
    const idSize = v.getUint16(12);
    const nameSize = v.getUint16(14);
    const extraSize = v.getUint32(36);
    if (extraSize > MAX_EXTRA_DATA)
      throw genericError(`Too much extra metadata in snapshot table entry ${i}`);
    const rest = await readOrFail(read, pos + ENTRY_HEADER, extraSize + idSize + nameSize);
    const extra = new DataView(rest.buffer, rest.byteOffset, extraSize);
    pos += ENTRY_HEADER + extraSize + idSize + nameSize;
    if (pos - offset > MAX_TABLE_BYTES) throw genericError('Snapshot table exceeds the maximum size');
    out.push({
      l1TableOffset: Number(v.getBigUint64(0)),
      l1Size: v.getUint32(8),
      dateSec: v.getUint32(16),
      dateNsec: v.getUint32(20),
      vmClockNsec: Number(v.getBigUint64(24)),
      vmStateSize: extraSize >= 8 ? Number(extra.getBigUint64(0)) : v.getUint32(32),
      diskSize: extraSize >= 16 ? Number(extra.getBigUint64(8)) : imageSize,
      icount: extraSize >= 24 ? extra.getBigInt64(16) : -1n,
      id: cString(rest.subarray(extraSize, extraSize + idSize)),
      name: cString(rest.subarray(extraSize + idSize, extraSize + idSize + nameSize)),
    });
  }
  return out;
}

async function readOrFail(read: ReadAt, offset: number, len: number): Promise<Uint8Array> {
  try {
    return await read(offset, len);
  } catch (err) {
    throw genericError(`Failed to read snapshot table: ${(err as Error).message}`);
  }
}

/** QAPI SnapshotInfo, as `qemu-img info` lists a snapshot. */
export function snapshotInfo(sn: Qcow2Snapshot): SnapshotInfo {
  const info: SnapshotInfo = {
    id: sn.id,
    name: sn.name,
    'vm-state-size': sn.vmStateSize,
    'date-sec': sn.dateSec,
    'date-nsec': sn.dateNsec,
    'vm-clock-sec': Math.floor(sn.vmClockNsec / 1e9),
    'vm-clock-nsec': sn.vmClockNsec % 1e9,
  };
  return sn.icount === -1n ? info : { ...info, icount: Number(sn.icount) };
}

/**
 * The snapshot `id`/`name` select, as bdrv_snapshot_load_tmp matches them: both must match when
 * both are given. Throws qemu-img's "Can't find snapshot" text otherwise.
 */
export function findSnapshot(
  snapshots: readonly Qcow2Snapshot[],
  id: string | undefined,
  name: string | undefined,
): Qcow2Snapshot {
  const sn = snapshots.find(
    (s) => (id === undefined || s.id === id) && (name === undefined || s.name === name),
  );
  if (!sn || (id === undefined && name === undefined)) throw genericError("Can't find snapshot");
  return sn;
}
