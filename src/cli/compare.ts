/**
 * `blockgraph compare`: qemu-img compare (qemu-img.c: img_compare). Compares the guest-visible
 * content of two images chunk by chunk, reading only where blockStatus does not already say both
 * read as zeros; ranges allocated in one image only must read as zeros there. Past the end of
 * the shorter image, the longer one must read as zeros ("Warning: Image size mismatch!").
 * With -s (strict) the sizes and the block status of each range must match too.
 * Exit codes as qemu-img's: 0 identical, 1 different (or a usage error), 2 an image cannot be
 * opened, 3 a block status query failed, 4 a read failed.
 */
import type { BlockBackend } from '../block/backend.ts';
import { errnoOf, QmpError, STRERROR } from '../block/errors.ts';
import type { BlockStatus } from '../block/types.ts';
import { BlockGraph } from '../graph/graph.ts';
import type { ObjectRegistry } from '../objects/registry.ts';
import { formatFixed } from './format.ts';
import { parseImageArgs, type ImageArgs } from './img-args.ts';
import { openBackend, orCouldNotOpen, type ImageSpec } from './image-opts.ts';
import { layerStatus } from './layer-status.ts';
import { CliExit, runReporting, type CliIo } from './program.ts';

/** qemu-img's IO_BUF_SIZE: the most read from each image in one step. */
const CHUNK = 2 << 20;
const SECTOR = 512;

const DIFFERENT = 1;
const OPEN_FAILED = 2;
const STATUS_FAILED = 3;
const READ_FAILED = 4;

/** bdrv_parse_cache_mode's accepted names (the mode changes nothing for a read-only compare). */
const CACHE_MODES = new Set(['off', 'none', 'directsync', 'writeback', 'unsafe', 'writethrough']);

export const USAGE =
  'usage: blockgraph compare [--object objectdef] [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2\n';

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    let parsed: ImageArgs;
    try {
      parsed = parseImageArgs(args, 'hf:F:T:pqsU', []);
    } catch (err) {
      // A bad --object, or --image-opts with -f, is an error (2), not a usage error.
      if (err instanceof QmpError || (err instanceof CliExit && !err.usage)) {
        throw new CliExit(err.message, false, OPEN_FAILED);
      }
      throw err;
    }
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    const quiet = parsed.values('q').length > 0;
    if (parsed.operands.length !== 2) throw new CliExit('Expecting two image file names', true);
    const [name1, name2] = parsed.operands;
    const { format: _f, ...common } = parsed.image;
    const progress = parsed.values('p').length > 0 && !quiet ? new Progress(io) : undefined;
    try {
      const cache = parsed.values('T').at(-1);
      if (cache !== undefined && !CACHE_MODES.has(cache)) {
        throw new CliExit(`Invalid source cache option: ${cache}`, false, OPEN_FAILED);
      }
      const identical = await compareImages(
        { ...parsed.image, filename: name1, readOnly: true },
        { ...common, format: parsed.values('F').at(-1), filename: name2, readOnly: true },
        {
          strict: parsed.values('s').length > 0,
          say: quiet ? () => {} : (text) => io.out(text),
          progress,
          objects: parsed.objects,
        },
      );
      return identical ? 0 : DIFFERENT;
    } finally {
      progress?.end();
    }
  });
}

export interface CompareOptions {
  /** -s: sizes and block status must match too. */
  readonly strict?: boolean;
  /** Where the verdict lines go (nowhere with -q). */
  readonly say: (text: string) => void;
  readonly progress?: Progress;
  /** --object: the user-creatable objects (secrets, throttle groups) the images may name. */
  readonly objects?: ObjectRegistry;
}

/**
 * Compares the images `spec1` and `spec2`. Resolves to whether they are identical, after saying
 * why not (or "Images are identical."); throws CliExit with exit code 2 to 4 on errors.
 */
export async function compareImages(
  spec1: ImageSpec,
  spec2: ImageSpec,
  opts: CompareOptions,
): Promise<boolean> {
  const graph = new BlockGraph(undefined, opts.objects);
  const img1 = await openOrExit(graph, spec1);
  try {
    const img2 = await openOrExit(graph, spec2);
    try {
      const verdict = await compareContent(img1, img2, opts);
      if (verdict !== undefined) {
        opts.say(verdict);
        return false;
      }
      opts.say('Images are identical.\n');
      return true;
    } finally {
      await img2.blk.close();
    }
  } finally {
    await img1.blk.close();
  }
}

interface Image {
  readonly blk: BlockBackend;
  readonly name: string;
  readonly size: number;
}

async function openOrExit(graph: BlockGraph, spec: ImageSpec): Promise<Image> {
  const { blk } = await orCouldNotOpen(spec.filename, () => openBackend(graph, spec, ''), OPEN_FAILED);
  return { blk, name: spec.filename, size: blk.length() };
}

/** The walk of img_compare; resolves to the mismatch message, or undefined if identical. */
async function compareContent(a: Image, b: Image, opts: CompareOptions): Promise<string | undefined> {
  const total = Math.min(a.size, b.size);
  const base = Math.max(a.size, b.size);
  const buf1 = new Uint8Array(CHUNK);
  const buf2 = new Uint8Array(CHUNK);
  opts.progress?.print(0, 100);
  if (opts.strict && a.size !== b.size) return 'Strict mode: Image size mismatch!\n';
  let offset = 0;
  while (offset < total) {
    const s1 = await statusOf(a, offset);
    const s2 = await statusOf(b, offset);
    let chunk = Math.min(s1.bytes, s2.bytes);
    if (opts.strict && flags(s1, a.size, offset) !== flags(s2, b.size, offset)) {
      return `Strict mode: Offset ${offset} block status mismatch!\n`;
    }
    if (!(s1.zero && s2.zero)) {
      chunk = Math.min(chunk, CHUNK);
      if (s1.allocated && s2.allocated) {
        const d1 = await readOrExit(a, offset, buf1.subarray(0, chunk));
        const d2 = await readOrExit(b, offset, buf2.subarray(0, chunk));
        const at = firstDifference(d1, d2);
        if (at >= 0) return `Content mismatch at offset ${offset + at}!\n`;
      } else if (s1.allocated || s2.allocated) {
        const mismatch = await nonZeroAt(s1.allocated ? a : b, offset, buf1.subarray(0, chunk));
        if (mismatch !== undefined) return mismatch;
      }
    }
    offset += chunk;
    opts.progress?.advance(chunk, base);
  }
  if (a.size === b.size) return undefined;
  opts.say('Warning: Image size mismatch!\n');
  const over = a.size > b.size ? a : b;
  while (offset < base) {
    const s = await statusOf(over, offset);
    let chunk = s.bytes;
    if (s.allocated && !s.zero) {
      chunk = Math.min(chunk, CHUNK);
      const mismatch = await nonZeroAt(over, offset, buf1.subarray(0, chunk));
      if (mismatch !== undefined) return mismatch;
    }
    offset += chunk;
    opts.progress?.advance(chunk, base);
  }
  return undefined;
}

/**
 * bdrv_block_status_above up to the end of the image, or exit code 3. Its ALLOCATED is the flag
 * of the layer that answered, which is what layerStatus reports.
 */
async function statusOf(img: Image, offset: number): Promise<BlockStatus> {
  try {
    return await layerStatus(img.blk.root!, offset, img.size - offset);
  } catch {
    throw new CliExit(`Sector allocation test failed for ${img.name}`, false, STATUS_FAILED);
  }
}

/** The flags strict mode compares: BDRV_BLOCK_DATA, ZERO, OFFSET_VALID, ALLOCATED and EOF. */
function flags(s: BlockStatus, size: number, offset: number): string {
  const bits = [s.data, s.zero, s.offset !== undefined, s.allocated, offset + s.bytes >= size];
  return bits.map(Number).join('');
}

async function readOrExit(img: Image, offset: number, dst: Uint8Array): Promise<Uint8Array> {
  try {
    await img.blk.read(offset, dst);
    return dst;
  } catch (err) {
    const reason = STRERROR[errnoOf(err)];
    throw new CliExit(`Error while reading offset ${offset} of ${img.name}: ${reason}`, false, READ_FAILED);
  }
}

/**
 * compare_buffers: -1 if equal, else where the first differing 512-byte sector begins (sectors
 * counted from the start of the buffers, as qemu-img reports them).
 */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i - (i % SECTOR);
  return -1;
}

/** check_empty_sectors: the mismatch message if the range does not read as zeros. */
async function nonZeroAt(img: Image, offset: number, buf: Uint8Array): Promise<string | undefined> {
  const data = await readOrExit(img, offset, buf);
  const at = data.findIndex((byte) => byte !== 0);
  return at < 0 ? undefined : `Content mismatch at offset ${offset + at - (at % SECTOR)}!\n`;
}

/**
 * qemu-progress.c as compare uses it (min_skip 2.0): "    (NN.NN/100%)\r" at 0, at 100 and
 * whenever the percentage moved by more than 2 since the last line; a newline at the end. The
 * arithmetic is C's single-precision float, so the printed figures match qemu-img's.
 */
export class Progress {
  private current = 0;
  private lastPrint = 0;

  constructor(private readonly io: CliIo) {}

  /** qemu_progress_print(delta, max). */
  print(delta: number, max: number): void {
    const f = Math.fround;
    let current = max === 0 ? f(delta) : f(this.current + f(f(f(delta) / 100) * max));
    if (current > 100) current = 100;
    this.current = current;
    if (
      current > f(this.lastPrint + 2) ||
      current < f(this.lastPrint - 2) ||
      current === 0 ||
      current === 100
    ) {
      this.lastPrint = current;
      this.io.out(`    (${formatFixed(current, 2)}/100%)\r`);
    }
  }

  /** One step of `bytes` out of `total`: ((float) bytes / total) * 100. */
  advance(bytes: number, total: number): void {
    const f = Math.fround;
    this.print(f(f(f(bytes) / f(total)) * 100), 100);
  }

  end(): void {
    this.io.out('\n');
  }
}
