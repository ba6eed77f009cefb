/**
 * qcow2_expand_zero_clusters (block/qcow2-cluster.c), for a downgrade to compat=0.10, whose
 * images have no zero flag: in the active L1 and every snapshot's, a zero cluster with a host
 * cluster becomes that cluster filled with zeros; one without becomes unallocated when nothing
 * lies below the image, and a newly allocated cluster of zeros when a backing file does. The
 * zeros and the refcounts are on disk before the L2 entries pointing at them.
 * Unlike QEMU 7.2, a host cluster that other L2 tables also use (a snapshot's data: measured,
 * QEMU zeroes it and the snapshot loses it) is not zeroed in place: the entry gets a new
 * cluster and the shared one loses its references once the L2 tables are written.
 * Extended L2 images cannot be downgraded (refused before this), so entries are 8 bytes.
 */
import type { Qcow2Snapshot } from './snapshots.ts';
import {
  OFFSET_MASK,
  OFLAG_COMPRESSED,
  OFLAG_COPIED,
  quiesce,
  readBytes,
  writeTables,
  type SnapshotImage,
} from './snapshot-write.ts';

const OFLAG_ZERO = 1n;

/** Expands the zero clusters of every L1 table of `img` (a read-write, quiet image). */
export async function expandZeroClusters(img: SnapshotImage): Promise<void> {
  await quiesce(img, async (active) => {
    const tables = new Map<number, Uint8Array>();
    const l1s: Array<Pick<Qcow2Snapshot, 'l1TableOffset' | 'l1Size'>> = [
      { l1TableOffset: active.offset, l1Size: active.entries },
      ...img.snapshots,
    ];
    const unshared: number[] = [];
    for (const { l1TableOffset, l1Size } of l1s) {
      const l1 = await readBytes(img.file, l1TableOffset, l1Size * 8);
      const v = new DataView(l1.buffer);
      for (let i = 0; i < l1Size; i++) {
        const l2Offset = Number(v.getBigUint64(i * 8) & OFFSET_MASK);
        if (l2Offset === 0) continue;
        const l2 = tables.get(l2Offset) ?? (await readBytes(img.file, l2Offset, img.clusterSize));
        if (await expandL2(img, l2, l2Offset, unshared)) tables.set(l2Offset, l2);
      }
    }
    // Refcounts and the zeroed clusters, [flush], the L2 tables, [flush], then the references
    // the L2 tables dropped.
    await writeTables(img, tables, 0, new Uint8Array(0));
    for (const cluster of unshared) await img.writer.changeRefcount(cluster, -1);
  });
}

/**
 * The zero entries of the L2 table `l2` (at `l2Offset`), changed in place; true if any. A
 * cluster allocated for a shared table gets the table's refcount, as it is shared as often;
 * `unshared` collects one cluster per reference dropped from a host cluster left to others.
 */
async function expandL2(
  img: SnapshotImage,
  l2: Uint8Array,
  l2Offset: number,
  unshared: number[],
): Promise<boolean> {
  const cs = img.clusterSize;
  const v = new DataView(l2.buffer, l2.byteOffset, l2.byteLength);
  const l2Refcount = await img.writer.refcount(l2Offset / cs);
  let changed = false;
  for (let at = 0; at < cs; at += 8) {
    const e = v.getBigUint64(at);
    if ((e & OFLAG_COMPRESSED) !== 0n || (e & OFLAG_ZERO) === 0n) continue;
    changed = true;
    let host = Number(e & OFFSET_MASK);
    if (host !== 0 && (await img.writer.refcount(host / cs)) > l2Refcount) {
      for (let n = 0; n < l2Refcount; n++) unshared.push(host / cs);
      host = await newCluster(img, l2Refcount);
    } else if (host === 0) {
      if (!img.hasBacking) {
        v.setBigUint64(at, 0n);
        continue;
      }
      host = await newCluster(img, l2Refcount);
    }
    await img.file.write(host, new Uint8Array(cs));
    v.setBigUint64(at, BigInt(host) | (l2Refcount === 1 ? OFLAG_COPIED : 0n));
  }
  return changed;
}

/** A newly allocated cluster with refcount `refcount`; its host offset. */
async function newCluster(img: SnapshotImage, refcount: number): Promise<number> {
  const host = await img.writer.allocClusters(1);
  for (let n = 1; n < refcount; n++) await img.writer.changeRefcount(host / img.clusterSize, 1);
  return host;
}
