/**
 * The file half of a shrink (qcow2_co_truncate with PREALLOC_MODE_OFF), once the clusters past
 * the new end are freed and written back: refcount blocks that count nothing any more leave the
 * refcount table (qcow2_shrink_reftable), and the image file is cut after the last cluster that
 * still has a reference (qcow2_get_last_cluster), so a shrunk image takes as little space on
 * its storage as QEMU's.
 */
import { readBytes, type SnapshotImage } from './snapshot-write.ts';

/** REFT_OFFSET_MASK. */
const REFT_OFFSET_MASK = 0xfffffffffffffe00n;
const HDR_REFTABLE = 48;

/** qcow2_shrink_reftable, then the file truncated after its last referenced cluster. */
export async function shrinkFile(img: SnapshotImage): Promise<void> {
  await shrinkReftable(img);
  await truncateTail(img);
}

/**
 * One pass over the refcount table: a block whose counts are all 0 (but its own, when it counts
 * itself) is dropped from the table on disk; the engine then reloads the table, and the dropped
 * blocks counted elsewhere are freed there.
 */
async function shrinkReftable(img: SnapshotImage): Promise<void> {
  const cs = img.clusterSize;
  const head = await readBytes(img.file, 0, 104);
  const h = new DataView(head.buffer);
  const offset = Number(h.getBigUint64(HDR_REFTABLE));
  const clusters = h.getUint32(HDR_REFTABLE + 8);
  const bits = h.getUint32(4) >= 3 ? 2 ** h.getUint32(96) : 16;
  const perBlock = (cs * 8) / bits;
  const table = await readBytes(img.file, offset, clusters * cs);
  const t = new DataView(table.buffer);
  const freed: number[] = [];
  let dropped = false;
  for (let i = 0; i < table.length / 8; i++) {
    const block = Number(t.getBigUint64(i * 8) & REFT_OFFSET_MASK);
    if (block === 0) continue;
    const counts = await readBytes(img.file, block, cs);
    const self = Math.floor(block / cs / perBlock) === i;
    if (self) clearEntry(counts, (block / cs) % perBlock, bits);
    if (counts.some((b) => b !== 0)) continue;
    t.setBigUint64(i * 8, 0n);
    dropped = true;
    if (!self) freed.push(block / cs);
  }
  if (!dropped) return;
  await img.file.write(offset, table);
  await img.file.flush();
  await img.engine.useRefcountTable(offset, clusters, img.refcountSlots, async (dst) => dst.set(table));
  for (const cluster of freed) await img.writer.changeRefcount(cluster, -1);
  await img.writer.flush();
}

/** Zeroes refcount entry `index` of a block of `bits`-wide entries. */
function clearEntry(block: Uint8Array, index: number, bits: number): void {
  if (bits >= 8) block.fill(0, (index * bits) / 8, ((index + 1) * bits) / 8);
  else {
    const at = Math.floor((index * bits) / 8);
    block[at] = block[at]! & ~(((1 << bits) - 1) << ((index * bits) % 8));
  }
}

/** Truncates the file after its last referenced cluster; QEMU only warns when that fails. */
async function truncateTail(img: SnapshotImage): Promise<void> {
  const cs = img.clusterSize;
  const fileSize = img.file.length();
  let last = Math.ceil(fileSize / cs) - 1;
  while (last > 0 && (await img.writer.refcount(last)) === 0) last--;
  const end = (last + 1) * cs;
  if (end >= fileSize) return;
  await img.file.truncate(end).catch(() => {});
}
