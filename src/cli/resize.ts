/**
 * `blockgraph resize`: qemu-img resize (qemu-img.c img_resize).
 *   resize [--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc] [-q] [--shrink]
 *          filename [+ | -]size
 * The size is the last argument, taken off before option parsing so that `-1G` is not an option;
 * `+`/`-` make it relative to the current size. Shrinking needs --shrink. The image is resized
 * through its root node's truncate (raw: the file; qcow2: L1 growth and the header size).
 */
import { QmpError } from '../block/errors.ts';
import { mergedOpts, parseCreateOpts, type CreateOpts } from './create-opts.ts';
import { parseImageArgs } from './img-args.ts';
import { openBackend, orCouldNotOpen } from './image-opts.ts';
import { BlockGraph } from '../graph/graph.ts';
import { CliExit, PROGRAM, runReporting, type CliIo } from './program.ts';

export const USAGE = `usage: ${PROGRAM} resize [--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size\n`;

/** PreallocMode (qapi/block-core.json); only `off` is implemented by our drivers' truncate. */
const PREALLOC_MODES = ['off', 'metadata', 'falloc', 'full'];

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    // The size is taken off first, so even `--help` alone is too few arguments (as qemu-img).
    if (args.length < 2) throw new CliExit('Not enough arguments', true);
    const sizeArg = args[args.length - 1];
    const parsed = parseImageArgs(args.slice(0, -1), 'f:hq', [
      { name: 'preallocation', hasArg: true },
      { name: 'shrink', hasArg: false },
    ]);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    const prealloc = parsed.values('preallocation').at(-1) ?? 'off';
    if (!PREALLOC_MODES.includes(prealloc)) throw new CliExit(`Invalid preallocation mode '${prealloc}'`);
    if (parsed.operands.length !== 1) throw new CliExit('Expecting image file name and size', true);
    const [filename] = parsed.operands;
    const relative = sizeArg.startsWith('+') ? 1 : sizeArg.startsWith('-') ? -1 : 0;
    const amount = parseSizeParam(relative === 0 ? sizeArg : sizeArg.slice(1));

    const graph = new BlockGraph(undefined, parsed.objects);
    const { blk } = await orCouldNotOpen(filename, () =>
      openBackend(graph, { ...parsed.image, filename }, ''),
    );
    try {
      const current = blk.length();
      const total = relative === 0 ? amount : current + relative * amount;
      if (total <= 0) throw new CliExit('New image size must be positive');
      if (total <= current && prealloc !== 'off') {
        throw new CliExit('Preallocation can only be used for growing images');
      }
      if (total < current && parsed.values('shrink').length === 0) {
        throw new CliExit(
          'Use the --shrink option to perform a shrink operation.\n' +
            `${PROGRAM}: warning: Shrinking an image will delete all data beyond the shrunken ` +
            "image's end. Before performing such an operation, make sure there is no important data there.",
        );
      }
      if (prealloc !== 'off') {
        throw new CliExit(`Preallocation mode '${prealloc}' is not supported by ${PROGRAM} resize`);
      }
      await blk.root!.truncate(total);
    } finally {
      await blk.close();
    }
    if (parsed.values('q').length === 0) io.out('Image resized.\n');
    return 0;
  });
}

/** The size operand as qemu-img parses it: a QemuOpts `size` option (an implied key). */
function parseSizeParam(text: string): number {
  const opts: CreateOpts = new Map();
  try {
    parseCreateOpts(
      `size=${text}`,
      mergedOpts('raw').filter((d) => d.name === 'size'),
      opts,
    );
  } catch (err) {
    if (err instanceof QmpError) throw new CliExit(err.message);
    throw err;
  }
  return opts.get('size')!.value as number;
}
