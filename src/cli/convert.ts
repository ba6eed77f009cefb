/**
 * `blockgraph convert`: qemu-img convert for one source image. The target is created with the
 * source's size (or, with -n, must exist and be at least as large). The copy goes in chunks of
 * CHUNK bytes, never the whole image in memory, and keeps the target sparse: ranges the source
 * reports as zero are not read, and 4 KiB blocks of read data that are all zeros are not written
 * (qemu-img's default -S 4k). A fresh target already reads as zeros, so nothing is written there;
 * with -n the zeros are written as write-zeroes requests. The target is not flushed: qemu-img
 * convert's default target cache mode is "unsafe" (-t), which ignores flushes.
 * `-l` converts an internal snapshot instead of the active image, as qemu-img does.
 * Not implemented: several sources, -o, -B, -c, -S, -t/-T, -m/-W, --target-image-opts.
 */
import type { BlockBackend } from '../block/backend.ts';
import { errnoOf, STRERROR } from '../block/errors.ts';
import { parseQemuOpts } from '../config/qemu-opts.ts';
import { BlockGraph } from '../graph/graph.ts';
import { createImage, creationPath } from './create-image.ts';
import { formatFixed } from './format.ts';
import { parseImageArgs } from './img-args.ts';
import { openBackend, orCouldNotOpen, type ImageSpec } from './image-opts.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

/** Bytes per copy step (qemu-img's default buffer of 4096 sectors). */
const CHUNK = 2 << 20;
/** Zero runs shorter than this inside data are written as data (qemu-img's -S default). */
const MIN_SPARSE = 4096;

export const USAGE = `usage: blockgraph convert [--object objectdef] [--image-opts] [-U] [-p] [-q] [-n] [-f fmt] [-O output_fmt] [-l snapshot_param] filename output_filename\n`;

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'hf:O:l:npqU', []);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    const snapshot = parsed.values('l').map(snapshotParam).at(-1);
    const outFormat = parsed.values('O').at(-1) ?? 'raw';
    const noCreate = parsed.values('n').length > 0;
    const progress = parsed.values('p').length > 0 && parsed.values('q').length === 0;
    if (parsed.operands.length < 2) throw new CliExit('Must specify image file name');
    if (parsed.operands.length > 2) throw new CliExit('Only one source image is supported');
    const [srcName, dstName] = parsed.operands;
    await convertImage(
      { ...parsed.image, filename: srcName, readOnly: true },
      snapshot,
      { filename: dstName, format: outFormat },
      { noCreate, progress: progress ? (text) => io.out(text) : undefined },
    );
    return 0;
  });
}

export interface ConvertOptions {
  /** -n: the target exists; do not create it. */
  readonly noCreate?: boolean;
  /** -p: where the progress lines go. */
  readonly progress?: (text: string) => void;
}

/**
 * `-l`'s argument: `snapshot.id=ID,snapshot.name=NAME` (either or both), or a bare string that
 * names a snapshot by ID or else by name (bdrv_snapshot_load_tmp_by_id_or_name).
 */
type SnapshotParam = { id?: string; name?: string } | { idOrName: string };

function snapshotParam(arg: string): SnapshotParam {
  if (!arg.startsWith('snapshot.')) return { idOrName: arg };
  const fail = (why: string): never => {
    throw new CliExit(`${why}\n${PROGRAM}: Failed in parsing snapshot param '${arg}'`);
  };
  let options: Record<string, string> = {};
  try {
    options = parseQemuOpts(arg).options;
  } catch (err) {
    fail((err as Error).message);
  }
  const bad = Object.keys(options).find((key) => key !== 'snapshot.id' && key !== 'snapshot.name');
  if (bad !== undefined) fail(`Invalid parameter '${bad}'`);
  return { id: options['snapshot.id'], name: options['snapshot.name'] };
}

/**
 * Copies the image `src` (or its internal snapshot `snapshot`) into `dst` (created unless
 * `noCreate`); throws qemu-img's errors.
 */
export async function convertImage(
  src: ImageSpec,
  snapshot: SnapshotParam | undefined,
  dst: ImageSpec,
  opts: ConvertOptions = {},
): Promise<void> {
  const format = dst.format ?? 'raw';
  const path = opts.noCreate ? undefined : creationPath(format, dst.filename);
  const graph = new BlockGraph();
  const source = snapshot ? await openSnapshot(graph, src, snapshot) : await openOrExit(graph, src);
  try {
    const size = source.length();
    if (path !== undefined) {
      try {
        await createImage(path, format, { size });
      } catch (err) {
        throw new CliExit(`${dst.filename}: error while converting ${format}: ${(err as Error).message}`);
      }
    }
    const target = await openOrExit(graph, dst);
    try {
      if (target.length() < size) throw new CliExit('output file is smaller than input file');
      await copy(source, target, !opts.noCreate, opts.progress);
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

/** The image behind an anonymous BlockBackend, or qemu-img's "Could not open" error. */
async function openOrExit(graph: BlockGraph, spec: ImageSpec): Promise<BlockBackend> {
  return (await orCouldNotOpen(spec.filename, () => openBackend(graph, spec, ''))).blk;
}

/**
 * The image `spec` showing its internal snapshot `param` (qemu-img opens the image, then loads
 * the snapshot with bdrv_snapshot_load_tmp): open errors as usual, then "Failed to load snapshot".
 */
async function openSnapshot(graph: BlockGraph, spec: ImageSpec, param: SnapshotParam): Promise<BlockBackend> {
  const plain = await openOrExit(graph, spec);
  const root = plain.root!;
  const snapshots = root.ops.imageFacts?.().snapshots ?? [];
  await plain.close();
  const snapshot =
    'idOrName' in param
      ? snapshots.some((sn) => sn.id === param.idOrName)
        ? { id: param.idOrName }
        : { name: param.idOrName }
      : param;
  try {
    return (await openBackend(graph, { ...spec, snapshot }, '')).blk;
  } catch (err) {
    throw new CliExit(`Failed to load snapshot: ${(err as Error).message}`);
  }
}

/**
 * Copies every byte of `source` into `target`; `zeroed`: the target already reads as zeros.
 * Two buffers: the next chunk is read while the previous one is written (qemu-img overlaps its
 * requests the same way, with coroutines).
 */
async function copy(
  source: BlockBackend,
  target: BlockBackend,
  zeroed: boolean,
  progress?: (text: string) => void,
): Promise<void> {
  const size = source.length();
  const buffers = [new Uint8Array(CHUNK), new Uint8Array(CHUNK)];
  const report = progressPrinter(size, progress);
  let writing: Promise<void> = Promise.resolve();
  try {
    for (let offset = 0, turn = 0; offset < size;) {
      // Ask about the whole rest: a zero extent is skipped in one step however large it is.
      const status = await source.root!.blockStatus(offset, size - offset).catch((err) => {
        throw new CliExit(`error while reading block status at offset ${offset}: ${STRERROR[errnoOf(err)]}`);
      });
      const zero = status.zero && !status.data;
      const bytes = Math.min(status.bytes, size - offset, zero ? Infinity : CHUNK);
      const at = offset;
      if (zero) {
        if (!zeroed) await writeOrExit(at, () => target.writeZeroes(at, bytes));
      } else {
        // The other buffer may still be being written; this one is free.
        const data = buffers[turn].subarray(0, bytes);
        turn ^= 1;
        await source.read(at, data).catch((err) => {
          throw new CliExit(`error while reading at byte ${at}: ${STRERROR[errnoOf(err)]}`);
        });
        await writing;
        writing = writeSparse(target, at, data, zeroed);
        // Failures surface at the next await; until then the rejection is not unhandled.
        writing.catch(() => {});
      }
      offset += bytes;
      report(offset);
    }
  } finally {
    await writing;
  }
  report(size, true);
}

/**
 * Writes `data` at `offset`, leaving out MIN_SPARSE-aligned blocks that are all zeros (or writing
 * them as write-zeroes when the target does not read as zeros already).
 */
async function writeSparse(
  target: BlockBackend,
  offset: number,
  data: Uint8Array,
  zeroed: boolean,
): Promise<void> {
  for (let start = 0; start < data.length;) {
    const zero = blockIsZero(data, offset, start);
    let end = nextBlock(offset, start);
    while (end < data.length && blockIsZero(data, offset, end) === zero) end = nextBlock(offset, end);
    end = Math.min(end, data.length);
    const at = offset + start;
    if (!zero) await writeOrExit(at, () => target.write(at, data.subarray(start, end)));
    else if (!zeroed) await writeOrExit(at, () => target.writeZeroes(at, end - start));
    start = end;
  }
}

/** The index in `data` where the block after the one holding index `at` begins (absolute alignment). */
function nextBlock(base: number, at: number): number {
  return (Math.floor((base + at) / MIN_SPARSE) + 1) * MIN_SPARSE - base;
}

/** Whether the (possibly partial) block of `data` starting at index `at` is all zeros. */
function blockIsZero(data: Uint8Array, base: number, at: number): boolean {
  const end = Math.min(data.length, nextBlock(base, at));
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
function progressPrinter(size: number, out?: (text: string) => void): (done: number, end?: boolean) => void {
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
