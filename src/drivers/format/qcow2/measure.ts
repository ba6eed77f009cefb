/**
 * qemu-img measure for qcow2 targets (block/qcow2.c: qcow2_measure, qcow2_calc_prealloc_size):
 * the fully allocated size is the data plus every piece of metadata a fully allocated image of
 * that size has; the required size counts only the data clusters the source actually holds.
 */
import type { BlockNode } from '../../../block/node.ts';
import { refcountMetadataSize } from './create-layout.ts';

export interface Qcow2MeasureParams {
  readonly size: number;
  readonly clusterSize: number;
  readonly refcountOrder: number;
  readonly extendedL2: boolean;
  readonly preallocation: string;
  /** A backing file is named: every cluster of the source counts as data. */
  readonly hasBacking: boolean;
}

export interface MeasureResult {
  readonly required: number;
  readonly fullyAllocated: number;
}

const MAX_L1_BYTES = 32 << 20;

/** Measures a new image of `p.size` bytes, or holding the data of `source`. Throws QEMU's text. */
export async function measureQcow2(p: Qcow2MeasureParams, source?: BlockNode): Promise<MeasureResult> {
  const cs = p.clusterSize;
  const l2Entry = p.extendedL2 ? 16 : 8;
  const l2Tables = Math.ceil(roundUp(p.size, cs) / cs / (cs / l2Entry));
  if (l2Tables * 8 > MAX_L1_BYTES) {
    throw new Error('The image size is too large (try using a larger cluster size)');
  }
  let size = roundUp(p.size, cs);
  let required = 0;
  if (source) {
    size = roundUp(source.length(), cs);
    required = p.hasBacking ? size : await allocatedBytes(source, cs);
  }
  if (p.preallocation === 'full' || p.preallocation === 'falloc') required = size;
  const fullyAllocated = preallocSize(size, cs, p.refcountOrder, l2Entry);
  return { required: fullyAllocated - size + required, fullyAllocated };
}

/** The source's data, counted in whole clusters; zero ranges are skipped (no backing). */
async function allocatedBytes(source: BlockNode, cs: number): Promise<number> {
  const end = source.length();
  let required = 0;
  for (let offset = 0, n = 0; offset < end; offset += n) {
    const status = await source.blockStatus(offset, end - offset);
    n = status.bytes;
    if (status.zero || !status.data || !status.allocated) continue;
    n = roundUp(offset + n, cs) - offset;
    required += (offset % cs) + n;
  }
  return required;
}

/** qcow2_calc_prealloc_size: header, L2 tables, L1 table, refcount structures and data. */
function preallocSize(total: number, cs: number, refcountOrder: number, l2Entry: number): number {
  let meta = cs;
  const l2Entries = roundUp(total / cs, cs / l2Entry);
  meta += l2Entries * l2Entry;
  const l1Entries = roundUp((l2Entries * l2Entry) / cs, cs / 8);
  meta += l1Entries * 8;
  meta += refcountMetadataSize((meta + total) / cs, cs, refcountOrder, false).bytes;
  return meta + total;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
