/**
 * The copy loop of `blockgraph convert` (qemu-img.c convert_iteration_sectors / convert_co_do_copy
 * / convert_co_write). Every range of the source gets one of qemu-img's statuses:
 *   - backing: the target has a backing file and the source's top layer does not allocate the
 *     range: nothing is written, the target's backing file provides it (-B);
 *   - zero: the source reads zeros there: skipped on a target that reads as zeros already
 *     (`zeroInit`), else written as write-zeroes; with -S 0, written as data zeros;
 *   - data: read and written, except blocks of `minSparse` bytes (absolute alignment) that are
 *     all zeros, which are treated as zero ranges (-S; 0 disables the detection).
 * The copy goes in chunks of CHUNK bytes, never the whole image in memory.
 *
 * With -c (`compressClusters`) every step is one whole target cluster (or the image's last,
 * partial one), as convert_iteration_sectors makes it: a range shorter than a cluster counts
 * as data for the whole cluster, longer ones are cut to whole clusters; a data cluster that is
 * all zeros is a zero range (unless -S 0), any other is written compressed, and at the end an
 * empty compressed write lets the format align the file's end (blk_pwrite_compressed(0, 0)).
 */
import type { BlockBackend } from '../block/backend.ts';
import { errnoOf, STRERROR } from '../block/errors.ts';
import { formatFixed } from './format.ts';
import { CliExit } from './program.ts';

/** Bytes per copy step (qemu-img's default buffer of 4096 sectors). */
const CHUNK = 2 << 20;

export interface CopyPlan {
  /** The target reads as zeros where nothing is written (a new image without backing file). */
  readonly zeroInit: boolean;
  /** The target has a backing file: ranges the source's top layer lacks are left to it. */
  readonly targetHasBacking: boolean;
  /** -S in bytes (a multiple of 512); 0 writes every byte, zeros included. */
  readonly minSparse: number;
  /** -p: where the progress lines go. */
  readonly progress?: (text: string) => void;
  /** -c: the target's cluster size; data goes as compressed writes of one cluster. */
  readonly compressClusters?: number;
}

type Kind = 'backing' | 'zero' | 'data';

/** What the source holds at `offset`, and for how many bytes (at most `limit`). */
async function classify(
  source: BlockBackend,
  offset: number,
  limit: number,
  plan: CopyPlan,
): Promise<{ kind: Kind; bytes: number }> {
  const status = await source.root!.blockStatus(offset, limit).catch((err) => {
    throw new CliExit(`error while reading block status at offset ${offset}: ${STRERROR[errnoOf(err)]}`);
  });
  const bytes = Math.min(status.bytes, limit);
  // bdrv_block_status of the top layer only: below it is the target's backing file's business.
  if (plan.targetHasBacking && status.depth > 0) return clusterStep({ kind: 'backing', bytes }, limit, plan);
  if (status.zero && !status.data) return clusterStep({ kind: 'zero', bytes }, limit, plan);
  return clusterStep({ kind: 'data', bytes }, limit, plan);
}

/** -c: whole clusters per step (convert_iteration_sectors), one at a time for data. */
function clusterStep(
  step: { kind: Kind; bytes: number },
  limit: number,
  plan: CopyPlan,
): { kind: Kind; bytes: number } {
  const cs = plan.compressClusters;
  if (!cs) return step;
  if (step.bytes < cs) return { kind: 'data', bytes: Math.min(cs, limit) };
  return { kind: step.kind, bytes: step.kind === 'data' ? cs : step.bytes - (step.bytes % cs) };
}

/**
 * Copies `source` into `target` as `plan` says. Two buffers: the next chunk is read while the
 * previous one is written (qemu-img overlaps its requests the same way, with coroutines).
 */
export async function copyImage(source: BlockBackend, target: BlockBackend, plan: CopyPlan): Promise<void> {
  const size = source.length();
  const buffers = [new Uint8Array(CHUNK), new Uint8Array(CHUNK)];
  const report = progressPrinter(size, plan.progress);
  let writing: Promise<void> = Promise.resolve();
  try {
    for (let offset = 0, turn = 0; offset < size;) {
      const { kind, bytes: extent } = await classify(source, offset, size - offset, plan);
      // A skipped or zeroed extent goes in one step however large it is.
      const bytes =
        kind === 'data' || (kind === 'zero' && plan.minSparse === 0) ? Math.min(extent, CHUNK) : extent;
      const at = offset;
      if (kind === 'zero' && plan.minSparse > 0) {
        if (!plan.zeroInit) await writeOrExit(at, () => target.writeZeroes(at, bytes, { unmap: true }));
      } else if (kind !== 'backing') {
        // The other buffer may still be being written; this one is free.
        const data = buffers[turn].subarray(0, bytes);
        turn ^= 1;
        if (kind === 'zero') data.fill(0);
        else {
          await source.read(at, data).catch((err) => {
            throw new CliExit(`error while reading at byte ${at}: ${STRERROR[errnoOf(err)]}`);
          });
        }
        await writing;
        writing = plan.compressClusters
          ? writeCompressed(target, at, data, plan)
          : plan.minSparse > 0
            ? writeSparse(target, at, data, plan)
            : writeOrExit(at, () => target.write(at, data));
        // Failures surface at the next await; until then the rejection is not unhandled.
        writing.catch(() => {});
      }
      offset += bytes;
      report(offset);
    }
  } finally {
    await writing;
  }
  // The root node, not the backend: an empty request does not pass the backend's alignment.
  if (plan.compressClusters) await writeOrExit(0, () => target.root!.write(0, new Uint8Array(0), COMPRESSED));
  report(size, true);
}

const COMPRESSED = { compressed: true } as const;

/** -c: one cluster, compressed, unless it is all zeros (a zero range then, but with -S 0). */
async function writeCompressed(target: BlockBackend, at: number, data: Uint8Array, plan: CopyPlan) {
  if (plan.minSparse === 0 || !blockIsZero(data, at, 0, data.length)) {
    return writeOrExit(at, () => target.write(at, data, COMPRESSED));
  }
  if (!plan.zeroInit) await writeOrExit(at, () => target.writeZeroes(at, data.length, { unmap: true }));
}

/**
 * Writes `data` at `offset`, leaving out the all-zero blocks of plan.minSparse bytes (or writing
 * them as write-zeroes when the target does not read as zeros already).
 */
async function writeSparse(
  target: BlockBackend,
  offset: number,
  data: Uint8Array,
  plan: CopyPlan,
): Promise<void> {
  const block = plan.minSparse;
  for (let start = 0; start < data.length;) {
    const zero = blockIsZero(data, offset, start, block);
    let end = nextBlock(offset, start, block);
    while (end < data.length && blockIsZero(data, offset, end, block) === zero)
      end = nextBlock(offset, end, block);
    end = Math.min(end, data.length);
    const at = offset + start;
    if (!zero) await writeOrExit(at, () => target.write(at, data.subarray(start, end)));
    else if (!plan.zeroInit)
      await writeOrExit(at, () => target.writeZeroes(at, end - start, { unmap: true }));
    start = end;
  }
}

/** The index in `data` where the block after the one holding index `at` begins (absolute alignment). */
function nextBlock(base: number, at: number, block: number): number {
  return (Math.floor((base + at) / block) + 1) * block - base;
}

/** Whether the (possibly partial) block of `data` starting at index `at` is all zeros. */
function blockIsZero(data: Uint8Array, base: number, at: number, block: number): boolean {
  const end = Math.min(data.length, nextBlock(base, at, block));
  let i = at;
  // Whole 32-bit words where the block is aligned for them: 4x fewer steps on zero blocks.
  if ((data.byteOffset + i) % 4 === 0) {
    const words = new Uint32Array(data.buffer, data.byteOffset + i, (end - i) >> 2);
    for (let w = 0; w < words.length; w++) if (words[w] !== 0) return false;
    i += words.length * 4;
  }
  for (; i < end; i++) if (data[i] !== 0) return false;
  return true;
}

async function writeOrExit(offset: number, op: () => Promise<void>): Promise<void> {
  try {
    await op();
  } catch (err) {
    throw new CliExit(`error while writing at byte ${offset}: ${STRERROR[errnoOf(err)]}`);
  }
}

/**
 * qemu_progress_print(): "    (NN.NN/100%)\r" whenever progress advanced by at least 1%, and
 * once more at the end followed by a newline.
 */
export function progressPrinter(
  size: number,
  out?: (text: string) => void,
): (done: number, end?: boolean) => void {
  if (!out) return () => {};
  const line = (percent: number): void => out(`    (${formatFixed(percent, 2)}/100%)\r`);
  let last = 0;
  line(0);
  return (done, end = false) => {
    const percent = size === 0 ? 100 : (done / size) * 100;
    if (percent - last >= 1 || end) {
      line(percent);
      last = percent;
    }
    if (end) out('\n');
  };
}
