/**
 * `blockgraph map`: qemu-img map. Walks the image with blockStatus and prints the extents merged
 * as qemu-img merges them (qemu-img.c: get_block_status, entry_mergeable, dump_map_entry): as
 * JSON, one object per extent with its depth in the backing chain, or as the human table of
 * data extents and the file they live in.
 *
 * Known difference: the file protocol cannot see holes (Node has no SEEK_DATA), so a sparse raw
 * file maps as one data extent where qemu-img shows its holes as zero extents.
 */
import { errnoOf, STRERROR } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { parseSize } from '../config/size.ts';
import { BlockGraph } from '../graph/graph.ts';
import { parseImageArgs } from './img-args.ts';
import { openImage, orCouldNotOpen } from './image-opts.ts';
import { backingOf, layerStatus, skipFilters } from './layer-status.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

/** An extent as `qemu-img map --output=json` prints it (QAPI MapEntry, without the filename). */
export interface MapExtent {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  offset?: number;
}

/** One extent of the map, with the host file for the human table. */
interface MapEntry extends MapExtent {
  filename?: string;
}

type Output = 'human' | 'json';

export const USAGE =
  'usage: blockgraph map [--object objectdef] [--image-opts] [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] filename\n';

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'f:s:l:hU', [
      { name: 'output', hasArg: true },
      { name: 'start-offset', hasArg: true, key: 's' },
      { name: 'max-length', hasArg: true, key: 'l' },
    ]);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    // qemu-img converts the numbers as it meets them, before checking anything else.
    const start = sizeArg(parsed.values('s'), 'start offset') ?? 0;
    const maxLength = sizeArg(parsed.values('l'), 'max length');
    if (parsed.operands.length !== 1) throw new CliExit('Expecting one image file name', true);
    const output = parsed.values('output').at(-1) ?? 'human';
    if (output !== 'human' && output !== 'json') {
      throw new CliExit('--output must be used with human or json as argument.');
    }
    const spec = { ...parsed.image, filename: parsed.operands[0], readOnly: true };
    const graph = new BlockGraph(undefined, parsed.objects);
    const image = await orCouldNotOpen(spec.filename, () => openImage(graph, spec));
    try {
      const length = image.node.length();
      const end = maxLength === undefined ? length : Math.min(start + maxLength, length);
      await printMap(image.node, start, end, output, io);
      return 0;
    } finally {
      await graph.release(image.node);
    }
  });
}

/**
 * The last value given for a size option (cvtnum), or undefined. qemu-img prints the two lines
 * of the suffix hint as two error reports, each with the program name.
 */
function sizeArg(values: string[], what: string): number | undefined {
  let result: number | undefined;
  for (const value of values) {
    try {
      result = parseSize(value, what);
    } catch (err) {
      throw new CliExit((err as Error).message.replaceAll('\n', `\n${PROGRAM}: `));
    }
  }
  return result;
}

/** img_map's loop: status of [start, end), merged, printed entry by entry. */
async function printMap(
  node: BlockNode,
  start: number,
  end: number,
  output: Output,
  io: CliIo,
): Promise<void> {
  if (output === 'human')
    io.out(`${'Offset'.padEnd(16)}${'Length'.padEnd(16)}${'Mapped to'.padEnd(16)}File\n`);
  else io.out('[');
  let curr: MapEntry = { start, length: 0, depth: 0, present: false, zero: false, data: false };
  while (curr.start + curr.length < end) {
    const offset = curr.start + curr.length;
    const next = await entryAt(node, offset, end - offset);
    if (mergeable(curr, next)) {
      curr.length += next.length;
      continue;
    }
    if (curr.length > 0) dumpEntry(curr, next, output, io);
    curr = next;
  }
  dumpEntry(curr, undefined, output, io);
  if (output === 'json') io.out(']\n');
}

/** get_block_status: the status at `offset` and the file its host offset points into. */
async function entryAt(node: BlockNode, offset: number, bytes: number): Promise<MapEntry> {
  let status;
  try {
    status = await layerStatus(node, offset, bytes);
  } catch (err) {
    throw new CliExit(`Could not read file metadata: ${STRERROR[errnoOf(err)]}`);
  }
  const entry: MapEntry = {
    start: offset,
    length: Math.min(status.bytes, bytes),
    depth: status.depth,
    present: status.allocated,
    zero: status.zero,
    data: status.data,
  };
  if (status.offset !== undefined) {
    entry.offset = status.offset;
    entry.filename = hostNode(node, status.depth).filename();
  }
  return entry;
}

/**
 * The node a host offset reported at `depth` refers to (bdrv_block_status's `file`): in the
 * image `depth` backing links below `top`, the protocol node holding the bytes — raw passes the
 * request down to its file (BDRV_BLOCK_RAW), other formats map into their data file or file.
 */
function hostNode(top: BlockNode, depth: number): BlockNode {
  let layer = skipFilters(top);
  for (let i = 0; i < depth; i++) layer = backingOf(layer) ?? layer;
  for (let c = layer.primaryChild(); layer.driver.name === 'raw' && c; c = layer.primaryChild()) {
    layer = skipFilters(c);
  }
  if (layer.driver.kind === 'protocol') return layer;
  return layer.child('data-file') ?? layer.primaryChild() ?? layer;
}

/** entry_mergeable: `next` continues `curr` in every respect, host offsets included. */
function mergeable(curr: MapEntry, next: MapEntry): boolean {
  if (curr.length === 0) return false;
  if (
    curr.zero !== next.zero ||
    curr.data !== next.data ||
    curr.depth !== next.depth ||
    curr.present !== next.present ||
    curr.filename !== next.filename ||
    (curr.offset === undefined) !== (next.offset === undefined)
  ) {
    return false;
  }
  return curr.offset === undefined || curr.offset + curr.length === next.offset;
}

/**
 * dump_map_entry. The human table lists data extents only and treats every other kind as
 * zeros, so it rewrites `next` to merge more; it cannot show data without a host offset.
 */
function dumpEntry(e: MapEntry, next: MapEntry | undefined, output: Output, io: CliIo): void {
  if (output === 'json') {
    const offset = e.offset === undefined ? '' : `, "offset": ${int(e.offset)}`;
    io.out(
      `{ "start": ${int(e.start)}, "length": ${int(e.length)}, "depth": ${e.depth}, "present": ${e.present},` +
        ` "zero": ${e.zero}, "data": ${e.data}${offset}}${next ? ',\n' : ''}`,
    );
    return;
  }
  if (e.data && e.offset === undefined) {
    throw new CliExit('File contains external, encrypted or compressed clusters.');
  }
  if (e.data && !e.zero) {
    io.out(`${hex(e.start)}${hex(e.length)}${hex(e.offset ?? 0)}${e.filename ?? ''}\n`);
  }
  if (next && (!next.data || next.zero)) {
    next.data = false;
    next.zero = true;
  }
}

/** printf("%" PRId64): every digit of the integer (String() rounds beyond 2^53 to 17 digits). */
function int(value: number): string {
  return BigInt(value).toString();
}

/** printf("%#-16" PRIx64): "0x"-prefixed hex, but a bare "0" for zero, left-aligned. */
function hex(value: number): string {
  return (value === 0 ? '0' : `0x${value.toString(16)}`).padEnd(16);
}
