/**
 * `blockgraph measure`: qemu-img measure (qemu-img.c img_measure).
 *   measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [--object objectdef]
 *           [--image-opts] [-f fmt] [-l snapshot_param] filename]
 * Prints the file size a new image of `-O` format (default raw) needs for --size bytes or for
 * the data of an image. Bitmaps are not measured: a qcow2 source reports "bitmaps size: 0".
 */
import { genericError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { parseSize } from '../config/size.ts';
import { measureQcow2, type MeasureResult } from '../drivers/format/qcow2/measure.ts';
import { findDriver } from '../drivers/index.ts';
import { BlockGraph } from '../graph/graph.ts';
import { mergedOpts, parseCreateOpts, type CreateOpts } from './create-opts.ts';
import { parseImageArgs } from './img-args.ts';
import { openBackend, orCouldNotOpen } from './image-opts.ts';
import { qobjectJson } from '../config/qjson.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

export const USAGE = `usage: ${PROGRAM} measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [--object objectdef] [--image-opts] [-f fmt] [-l snapshot_param] filename]\n`;

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'hf:O:o:l:U', [
      { name: 'output', hasArg: true },
      { name: 'size', hasArg: true },
    ]);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    const output = parsed.values('output').at(-1) ?? 'human';
    if (output !== 'human' && output !== 'json') {
      throw new CliExit('--output must be used with human or json as argument.');
    }
    const sizeArg = parsed.values('size').at(-1);
    const size = sizeArg === undefined ? undefined : sizeOrExit(sizeArg);
    const [filename] = parsed.operands;
    if (filename !== undefined && size !== undefined) {
      throw new CliExit('--size N cannot be used together with a filename.');
    }
    if (filename === undefined && size === undefined) {
      throw new CliExit('Either --size N or one filename must be specified.');
    }
    const format = parsed.values('O').at(-1) ?? 'raw';
    if (!findDriver(format) || !findDriver(format)?.creator)
      throw new CliExit(`Unknown file format '${format}'`);
    const opts: CreateOpts = new Map();
    try {
      parseCreateOpts(parsed.values('o').join(','), mergedOpts(format), opts);
    } catch (err) {
      throw new CliExit(`${(err as Error).message}\n${PROGRAM}: Invalid options for file format '${format}'`);
    }
    const graph = new BlockGraph(undefined, parsed.objects);
    const source =
      filename === undefined
        ? undefined
        : await orCouldNotOpen(filename, () =>
            openBackend(graph, { ...parsed.image, filename, readOnly: true }, ''),
          );
    try {
      const node = source?.blk.root ?? undefined;
      const result = await measure(format, opts, size ?? 0, node);
      const bitmaps =
        format === 'qcow2' && opts.get('compat')?.str !== '0.10' && node?.driver.name === 'qcow2';
      io.out(render(result, bitmaps ? 0 : undefined, output));
    } finally {
      await source?.blk.close();
    }
    return 0;
  });
}

function sizeOrExit(arg: string): number {
  try {
    return parseSize(arg, 'image size');
  } catch (err) {
    throw new CliExit((err as Error).message.replaceAll('\n', `\n${PROGRAM}: `));
  }
}

/** The format's bdrv_measure: qcow2_measure, or raw_measure (the size, sector-aligned). */
async function measure(
  format: string,
  opts: CreateOpts,
  size: number,
  source?: BlockNode,
): Promise<MeasureResult> {
  if (format !== 'qcow2') {
    const bytes = source ? source.length() : Math.ceil(size / 512) * 512;
    return { required: bytes, fullyAllocated: bytes };
  }
  const value = (name: string) => opts.get(name)?.value;
  const clusterSize = (value('cluster_size') as number | undefined) ?? 65536;
  const extendedL2 = value('extended_l2') === true;
  try {
    return await measureQcow2(
      {
        size: (value('size') as number | undefined) ?? size,
        clusterSize,
        refcountOrder: Math.log2((value('refcount_bits') as number | undefined) ?? 16),
        extendedL2,
        preallocation: (value('preallocation') as string | undefined) ?? 'off',
        hasBacking: opts.has('backing_file'),
      },
      source,
    );
  } catch (err) {
    throw genericError((err as Error).message);
  }
}

function render(r: MeasureResult, bitmaps: number | undefined, output: string): string {
  if (output === 'json') {
    const info = {
      required: r.required,
      'fully-allocated': r.fullyAllocated,
      ...(bitmaps !== undefined && { bitmaps }),
    };
    return `${qobjectJson(info, true)}\n`;
  }
  let text = `required size: ${r.required}\nfully allocated size: ${r.fullyAllocated}\n`;
  if (bitmaps !== undefined) text += `bitmaps size: ${bitmaps}\n`;
  return text;
}
