/**
 * `blockgraph create`: qemu-img create (qemu-img.c img_create, block.c bdrv_img_create).
 *   create [-f fmt] [-o options] [-b backing_file [-F backing_fmt]] [-u] [-q] filename [size]
 * The options are checked and the "Formatting ..." line printed as qemu-img does; then the host
 * file (and a qcow2 data file) is created and the format's creator writes the image. Errors after
 * the usage checks are prefixed with the filename, as bdrv_img_create's are.
 */
import { dirname, isAbsolute, join } from 'node:path';
import type { BlockNode } from '../block/node.ts';
import { QmpError } from '../block/errors.ts';
import { parseSize } from '../config/size.ts';
import { validateOptions } from '../config/validate.ts';
import { qcow2Creator } from '../drivers/format/qcow2/create.ts';
import { findDriver } from '../drivers/index.ts';
import { createHostFile, deleteHostFile } from '../drivers/protocol/file-create.ts';
import { BlockGraph } from '../graph/graph.ts';
import type { ObjectRegistry } from '../objects/registry.ts';
import { createImage, creationPath } from './create-image.ts';
import {
  formatOpts,
  mergedOpts,
  optsHelp,
  parseCreateOpts,
  printOpts,
  wantsHelp,
  type CreateOpts,
} from './create-opts.ts';
import { parseImageArgs } from './img-args.ts';
import { openImage } from './image-opts.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

export const USAGE = `usage: ${PROGRAM} create [--object objectdef] [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]\n`;

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'F:b:f:ho:qu', []);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    const format = parsed.values('f').at(-1) ?? 'raw';
    const options = parsed.values('o').join(',');
    const [filename, sizeArg, extra] = parsed.operands;
    if (options && wantsHelp(options)) return printHelp(io, format, filename);
    if (filename === undefined) throw new CliExit('Expecting image file name', true);
    const size = sizeArg === undefined ? undefined : imageSize(sizeArg);
    if (extra !== undefined) throw new CliExit(`Unexpected argument: ${extra}`, true);
    const request: CreateRequest = {
      filename,
      format,
      options,
      size,
      backingFile: parsed.values('b').at(-1),
      backingFormat: parsed.values('F').at(-1),
      noBackingOpen: parsed.values('u').length > 0,
      objects: parsed.objects,
    };
    try {
      await createFromCli(request, parsed.values('q').length > 0 ? () => {} : (t) => io.out(t));
    } catch (err) {
      if (!(err instanceof QmpError)) throw err;
      // bdrv_img_create's errors carry the filename; a hint follows without a newline of its own.
      const [message, hint] = err.message.split(HINT);
      io.err(`${PROGRAM}: ${filename}: ${message}\n${hint ?? ''}`);
      return 1;
    }
    return 0;
  });
}

/** Separates an error from error_append_hint text that qemu-img prints without a final newline. */
const HINT = '\u0000';

/** The size operand (cvtnum), with qemu-img's two-line refusal. */
function imageSize(arg: string): number {
  try {
    return parseSize(arg, 'image size');
  } catch (err) {
    throw new CliExit((err as Error).message.replaceAll('\n', `\n${PROGRAM}: `));
  }
}

interface CreateRequest {
  readonly filename: string;
  readonly format: string;
  readonly options: string;
  readonly size?: number;
  readonly backingFile?: string;
  readonly backingFormat?: string;
  /** -u: do not open the backing file. */
  readonly noBackingOpen: boolean;
  /** --object: the user-creatable objects the backing file may need (its secret). */
  readonly objects: ObjectRegistry;
}

/** bdrv_img_create: option checks, backing checks, the Formatting line, then creation. */
async function createFromCli(req: CreateRequest, print: (text: string) => void): Promise<void> {
  const path = creationPath(req.format, req.filename);
  const descs = mergedOpts(req.format);
  const opts: CreateOpts = new Map();
  if (req.options) parseCreateOpts(req.options, descs, opts);
  if (req.size !== undefined) {
    if (opts.has('size')) throw new QmpError('GenericError', 'The image size must be specified only once');
    opts.set('size', { str: String(req.size), value: req.size });
  }
  setBacking(
    req,
    descs.some((d) => d.name === 'backing_file'),
    opts,
  );
  await checkBacking(req, opts);
  if (!opts.has('size')) throw new QmpError('GenericError', 'Image creation needs a size parameter');
  print(`Formatting '${req.filename}', fmt=${req.format} ${printOpts(descs, opts)}\n`);
  await createWithOpts(path, req.format, opts);
}

/**
 * bdrv_create with parsed `-o` options (`size` included): the image of `format` at host `path`
 * (create-image.ts creationPath). Shared with convert, which creates its target this way.
 */
export async function createWithOpts(path: string, format: string, opts: CreateOpts): Promise<void> {
  const value = (name: string) => opts.get(name)?.value;
  if (format !== 'qcow2') {
    const mode = (value('preallocation') as string | undefined) ?? 'off';
    if (!['off', 'metadata', 'falloc', 'full'].includes(mode))
      throw new QmpError('GenericError', `invalid parameter value: ${mode}`);
    await createImage(path, format, { size: value('size'), preallocation: mode });
    return;
  }
  await createQcow2(path, opts);
}

/** -b/-F become backing_file/backing_fmt, refused by formats without backing files. */
function setBacking(req: CreateRequest, supported: boolean, opts: CreateOpts): void {
  for (const [name, value] of [
    ['backing_file', req.backingFile],
    ['backing_fmt', req.backingFormat],
  ] as const) {
    if (value === undefined) continue;
    if (!supported) {
      const what = name === 'backing_file' ? 'Backing file' : 'Backing file format';
      throw new QmpError('GenericError', `${what} not supported for file format '${req.format}'`);
    }
    opts.set(name, { str: value, value });
  }
}

/**
 * The backing file checks of bdrv_img_create: a name, not the image itself; opened (unless -u)
 * to check it and to take its size when none was given; a format is required.
 */
async function checkBacking(req: CreateRequest, opts: CreateOpts): Promise<void> {
  const backing = opts.get('backing_file')?.str;
  const format = opts.get('backing_fmt')?.str;
  if (backing === undefined) return;
  if (backing === req.filename) {
    throw new QmpError(
      'GenericError',
      'Error: Trying to create an image with the same filename as the backing file',
    );
  }
  if (backing === '') throw new QmpError('GenericError', 'Expected backing file name, got empty string');
  if (req.noBackingOpen) {
    if (format === undefined)
      throw new QmpError('GenericError', 'Backing file specified without backing format');
    return;
  }
  // Relative backing names are relative to the new image (bdrv_get_full_backing_filename_from_filename).
  const full =
    isAbsolute(backing) || !req.filename.includes('/') ? backing : join(dirname(req.filename), backing);
  const graph = new BlockGraph(undefined, req.objects);
  let node: BlockNode;
  try {
    node = (
      await openImage(graph, { filename: full, format, readOnly: true, forceShare: true, noBacking: true })
    ).node;
  } catch (err) {
    throw new QmpError('GenericError', `${(err as Error).message}\nCould not open backing image.`);
  }
  try {
    if (format === undefined) {
      throw new QmpError(
        'GenericError',
        `Backing file specified without backing format${HINT}Detected format of ${node.driver.name}.`,
      );
    }
    if (!opts.has('size')) opts.set('size', { str: String(node.length()), value: node.length() });
  } finally {
    await graph.release(node);
  }
}

/**
 * qcow2_co_create_opts: the host file and the data file are created first, then the options are
 * turned into BlockdevCreateOptionsQcow2 (QAPI's checks and texts) and the image is written.
 * If that fails, both files are deleted again, as QEMU does.
 */
async function createQcow2(path: string, opts: CreateOpts): Promise<void> {
  const value = (name: string) => opts.get(name)?.value;
  const graph = new BlockGraph();
  const children = new Map<string, BlockNode>();
  const dataFile = value('data_file') as string | undefined;
  await createHostFile(path);
  try {
    if (dataFile !== undefined) {
      await createHostFile(dataFile);
      children.set('data-file', await graph.open({ driver: 'file', filename: dataFile }));
    }
    const compat = value('compat') as string | undefined;
    const qapi = {
      file: path,
      'data-file': dataFile,
      'data-file-raw': value('data_file_raw'),
      'extended-l2': value('extended_l2'),
      // qcow2_co_create_opts rounds the size up to whole sectors.
      size: Math.ceil((value('size') as number) / 512) * 512,
      version: compat === '0.10' ? 'v2' : compat === '1.1' ? 'v3' : compat,
      'backing-file': value('backing_file'),
      'backing-fmt': value('backing_fmt'),
      'cluster-size': value('cluster_size'),
      preallocation: value('preallocation'),
      'lazy-refcounts': value('lazy_refcounts'),
      'refcount-bits': value('refcount_bits'),
      'compression-type': value('compression_type'),
    };
    const valid = validateOptions(qcow2Creator.options, qapi, {
      source: 'qmp',
      path: '',
      driverName: 'qcow2',
    });
    await createImage(path, 'qcow2', valid, children);
  } catch (err) {
    for (const node of children.values()) await graph.release(node);
    children.clear();
    await deleteHostFile(path);
    if (dataFile !== undefined) await deleteHostFile(dataFile);
    throw err;
  } finally {
    for (const node of children.values()) await graph.release(node);
  }
}

/** `-o help`: the format's options (and the protocol's, given a filename), as qemu-img lists them. */
export function printHelp(io: CliIo, format: string, filename: string | undefined): number {
  const own = formatOpts(format);
  if (!own || !findDriver(format)) throw new CliExit(`Unknown file format '${format}'`);
  if (filename === undefined) {
    io.out(
      `Supported ${format} options:\n${optsHelp(own)}\n` +
        'The protocol level may support further options.\nSpecify the target filename to include those options.\n',
    );
  } else {
    io.out(`Supported options:\n${optsHelp(mergedOpts(format))}`);
  }
  return 0;
}
