/**
 * `blockgraph convert`: qemu-img convert (qemu-img.c img_convert) for one source image. The
 * target is created with the source's size and the `-o` options (`-B`/`-F` become backing_file/
 * backing_fmt), or with -n must exist and be at least as large; convert-copy.ts copies the data,
 * sparse as -S says. The target is not flushed: qemu-img convert's default target cache mode is
 * "unsafe" (-t), which ignores flushes.
 * `-l` converts an internal snapshot instead of the active image, as qemu-img does.
 * `-c` writes the data as compressed clusters (qcow2 targets; compression_type from -o).
 * Not implemented: several sources, -t/-T, -m/-W, --target-image-opts.
 */
import type { BlockBackend } from '../block/backend.ts';
import { QmpError } from '../block/errors.ts';
import { parseQemuOpts } from '../config/qemu-opts.ts';
import { parseSize } from '../config/size.ts';
import { BlockGraph } from '../graph/graph.ts';
import type { ObjectRegistry } from '../objects/registry.ts';
import { creationPath } from './create-image.ts';
import { createWithOpts, printHelp } from './create.ts';
import { mergedOpts, parseCreateOpts, wantsHelp, type CreateOpts } from './create-opts.ts';
import { copyImage } from './convert-copy.ts';
import { parseImageArgs } from './img-args.ts';
import { openBackend, orCouldNotOpen, type ImageSpec } from './image-opts.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

/** qemu-img's -S default: zero runs shorter than this inside data are written as data. */
const MIN_SPARSE = 4096;
/** The largest -S: MAX_BUF_SECTORS (32768) sectors. */
const MAX_SPARSE = 32768 * 512;

export const USAGE = `usage: blockgraph convert [--object objectdef] [--image-opts] [-U] [-p] [-q] [-n] [-f fmt] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-S sparse_size] [-l snapshot_param] filename output_filename\n`;

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'hf:O:B:F:o:S:l:cnpqU', []);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    const minSparse = parsed.values('S').map(sparseSize).at(-1) ?? MIN_SPARSE;
    const snapshot = parsed.values('l').map(snapshotParam).at(-1);
    const outFormat = parsed.values('O').at(-1) ?? 'raw';
    const noCreate = parsed.values('n').length > 0;
    const createOpts = parsed.values('o').join(',');
    const progress = parsed.values('p').length > 0 && parsed.values('q').length === 0;
    if (noCreate && createOpts) throw new CliExit('-o has no effect when skipping image creation');
    if (createOpts && wantsHelp(createOpts)) {
      return printHelp(io, outFormat, parsed.operands.length >= 2 ? parsed.operands.at(-1) : undefined);
    }
    if (parsed.operands.length < 2) throw new CliExit('Must specify image file name');
    if (parsed.operands.length > 2) throw new CliExit('Only one source image is supported');
    const [srcName, dstName] = parsed.operands;
    await convertImage(
      { ...parsed.image, filename: srcName, readOnly: true },
      snapshot,
      { filename: dstName, format: outFormat },
      {
        noCreate,
        createOpts,
        backingFile: parsed.values('B').at(-1),
        backingFormat: parsed.values('F').at(-1),
        minSparse,
        compress: parsed.values('c').length > 0,
        objects: parsed.objects,
        progress: progress ? (text) => io.out(text) : undefined,
      },
    );
    return 0;
  });
}

/** -S's argument (cvtnum_full, then img_convert's own check), with qemu-img's texts. */
function sparseSize(arg: string): number {
  const what = 'buffer size for sparse output';
  let bytes: number;
  try {
    bytes = /^\s*-/.test(arg) ? NaN : parseSize(arg, what);
  } catch (err) {
    bytes = NaN;
    if (!(err as Error).message.includes('You may use')) throw new CliExit((err as Error).message);
  }
  if (Number.isNaN(bytes)) {
    throw new CliExit(
      `Invalid ${what} specified. You may use k, M, G, T, P or E suffixes for\n${PROGRAM}: ` +
        'kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.',
    );
  }
  if (bytes > 0x7fffffff) throw new CliExit(`Invalid ${what} specified. Must be between 0 and 2147483647.`);
  if (bytes % 512 !== 0 || bytes > MAX_SPARSE) {
    throw new CliExit(
      `Invalid ${what} specified. Valid sizes are multiples of 512 up to ${MAX_SPARSE}. ` +
        'Select 0 to disable sparse detection (fully allocates output).',
    );
  }
  return bytes;
}

export interface ConvertOptions {
  /** -n: the target exists; do not create it. */
  readonly noCreate?: boolean;
  /** -o: the target's creation options (QemuOpts syntax). */
  readonly createOpts?: string;
  /** -B / -F: the target's backing file and its format. */
  readonly backingFile?: string;
  readonly backingFormat?: string;
  /** -S in bytes (default 4 KiB); 0 allocates everything. */
  readonly minSparse?: number;
  /** -c: compressed clusters. */
  readonly compress?: boolean;
  /** -p: where the progress lines go. */
  readonly progress?: (text: string) => void;
  /** --object: the user-creatable objects (secrets, throttle groups) the images may name. */
  readonly objects?: ObjectRegistry;
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
  const graph = new BlockGraph(undefined, opts.objects);
  const source = snapshot ? await openSnapshot(graph, src, snapshot) : await openOrExit(graph, src);
  try {
    const size = source.length();
    const createOpts = path === undefined ? undefined : targetOpts(format, size, opts);
    const backing = createOpts?.get('backing_file')?.str ?? opts.backingFile;
    if (createOpts?.has('backing_file') && !createOpts.has('backing_fmt')) {
      throw new CliExit('Use of backing file requires explicit backing format');
    }
    if (opts.compress) checkCompression(format, createOpts);
    if (path !== undefined) {
      try {
        await createWithOpts(path, format, createOpts!);
      } catch (err) {
        throw new CliExit(`${dst.filename}: error while converting ${format}: ${(err as Error).message}`);
      }
    }
    const target = await openOrExit(graph, dst);
    try {
      if (target.length() < size) throw new CliExit('output file is smaller than input file');
      await copyImage(source, target, {
        zeroInit: !opts.noCreate && backing === undefined && opts.minSparse !== 0,
        targetHasBacking: backing !== undefined,
        minSparse: opts.minSparse ?? MIN_SPARSE,
        progress: opts.progress,
        compressClusters: opts.compress ? targetClusterSize(target) : undefined,
      });
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

/**
 * The target's creation options: `-o`, then -B/-F (add_old_style_options), then the source's
 * size, which replaces any `-o size` (as img_convert does).
 */
function targetOpts(format: string, size: number, opts: ConvertOptions): CreateOpts {
  const descs = mergedOpts(format);
  const created: CreateOpts = new Map();
  try {
    if (opts.createOpts) parseCreateOpts(opts.createOpts, descs, created);
  } catch (err) {
    if (err instanceof QmpError) throw new CliExit(err.message);
    throw err;
  }
  const hasBacking = descs.some((d) => d.name === 'backing_file');
  for (const [name, value, what] of [
    ['backing_file', opts.backingFile, 'Backing file'],
    ['backing_fmt', opts.backingFormat, 'Backing file format'],
  ] as const) {
    if (value === undefined) continue;
    if (!hasBacking) throw new CliExit(`${what} not supported for file format '${format}'`);
    created.set(name, { str: value, value });
  }
  created.set('size', { str: String(size), value: size });
  return created;
}

/** img_convert's checks for -c: a format that can compress, and no preallocation. */
function checkCompression(format: string, createOpts: CreateOpts | undefined): void {
  if (format !== 'qcow2') throw new CliExit('Compression not supported for this file format');
  const prealloc = createOpts?.get('preallocation')?.str;
  if (prealloc !== undefined && prealloc !== 'off') {
    throw new CliExit('Compression and preallocation not supported at the same time');
  }
}

/** -c: the target's cluster size (bdrv_get_info), which each compressed write covers. */
function targetClusterSize(target: BlockBackend): number {
  const cs = target.root?.ops.imageFacts?.().clusterSize;
  if (cs === undefined) throw new CliExit('could not get block driver info');
  if (cs <= 0 || cs > MAX_SPARSE) throw new CliExit('invalid cluster size');
  return cs;
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
