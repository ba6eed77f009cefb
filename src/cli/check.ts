/**
 * `blockgraph check`: qemu-img check (qemu-img.c img_check). Checks a qcow2 image's metadata
 * (drivers/format/qcow2/check.ts), with `-r leaks|all` repairs it and checks it again, and
 * prints the result in qemu-img's human form or as its JSON (QAPI ImageCheck). Problems found
 * are listed on stderr as QEMU lists them. Exit codes are qemu-img's: 0 clean, 1 the check could
 * not be completed, 2 corruptions, 3 leaked clusters, 63 a format without checks.
 *
 * The image is opened read-only first, as its format driver would open it (so every "Could not
 * open" is qemu-img's); a repair then writes to its protocol node, opened again read-write.
 * Opening the qcow2 node read-write instead would repair a dirty image on open, which qemu-img
 * check's BDRV_O_CHECK open does not.
 */
import { errnoOf, STRERROR } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { checkImage, type CheckResult } from '../drivers/format/qcow2/check.ts';
import { BlockGraph } from '../graph/graph.ts';
import type { ObjectRegistry } from '../objects/registry.ts';
import { parseImageArgs } from './img-args.ts';
import { openImage, orCouldNotOpen } from './image-opts.ts';
import { qobjectJson } from '../config/qjson.ts';
import { CliExit, report, runReporting, type CliIo } from './program.ts';

export const USAGE =
  'usage: blockgraph check [--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename\n';

/** Exit codes of img_check. */
const EXIT_CORRUPTIONS = 2;
const EXIT_LEAKS = 3;
const EXIT_NO_CHECKS = 63;

interface Options {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly repair?: 'leaks' | 'all';
}

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'hf:r:T:qU', [
      { name: 'repair', hasArg: true, key: 'r' },
      { name: 'output', hasArg: true },
    ]);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    const repair = parsed.values('r').at(-1);
    if (repair !== undefined && repair !== 'leaks' && repair !== 'all') {
      throw new CliExit(`Unknown option value for -r (expecting 'leaks' or 'all'): ${repair}`, true);
    }
    const output = parsed.values('output').at(-1) ?? 'human';
    if (output !== 'human' && output !== 'json') {
      throw new CliExit('--output must be used with human or json as argument.');
    }
    if (parsed.operands.length !== 1) throw new CliExit('Expecting one image file name', true);
    const filename = parsed.operands[0]!;
    if (repair !== undefined && parsed.image.forceShare) {
      throw new CliExit(
        `Could not open '${filename}': force-share=on can only be used with read-only images`,
      );
    }
    const opts: Options = { json: output === 'json', quiet: parsed.values('q').length > 0, repair };
    return checkCommand(io, { ...parsed.image, filename }, opts, parsed.objects);
  });
}

async function checkCommand(
  io: CliIo,
  spec: { filename: string; format?: string; imageOpts?: boolean; forceShare?: boolean },
  opts: Options,
  objects: ObjectRegistry,
): Promise<number> {
  const graph = new BlockGraph(undefined, objects);
  const image = await orCouldNotOpen(spec.filename, () => openImage(graph, { ...spec, readOnly: true }));
  const format = image.node.driver.name;
  let open: BlockNode | undefined = image.node;
  try {
    const file = image.node.child('file');
    if (format !== 'qcow2' || !file) {
      throw new CliExit('This image format does not support checks', false, EXIT_NO_CHECKS);
    }
    if (!opts.repair) return await checkAndReport(io, file, spec.filename, format, opts);
    const { 'node-name': _, ...fileOptions } = file.options;
    await graph.release(image.node);
    open = undefined;
    open = await orCouldNotOpen(spec.filename, () => graph.open({ ...fileOptions, 'read-only': false }));
    return await checkAndReport(io, open, spec.filename, format, opts);
  } finally {
    if (open) await graph.release(open);
  }
}

/** collect_image_check, the repair's double check, the dump, and img_check's exit code. */
async function checkAndReport(
  io: CliIo,
  file: BlockNode,
  filename: string,
  format: string,
  opts: Options,
): Promise<number> {
  const log = (line: string) => io.err(`${line}\n`);
  let result: CheckResult;
  try {
    result = await checkImage(file, { repair: opts.repair, log });
    if (result.corruptionsFixed || result.leaksFixed) {
      if (!opts.json && !opts.quiet) {
        io.out(
          'The following inconsistencies were found and repaired:\n\n' +
            `    ${result.leaksFixed} leaked clusters\n    ${result.corruptionsFixed} corruptions\n\n` +
            'Double checking the fixed image now...\n',
        );
      }
      const fixed = { leaksFixed: result.leaksFixed, corruptionsFixed: result.corruptionsFixed };
      result = { ...(await checkImage(file, { log })), ...fixed };
    }
  } catch (err) {
    report(io, `Check failed: ${STRERROR[errnoOf(err)]}`);
    return 1;
  }
  if (!opts.quiet)
    io.out(opts.json ? `${qobjectJson(imageCheck(result, filename, format), true)}\n` : human(result));
  if (result.checkErrors) {
    report(io, 'Check failed');
    return 1;
  }
  return result.corruptions ? EXIT_CORRUPTIONS : result.leaks ? EXIT_LEAKS : 0;
}

/** QAPI ImageCheck: optional members only when non-zero, in the schema's order. */
function imageCheck(r: CheckResult, filename: string, format: string): Record<string, unknown> {
  const out: Record<string, unknown> = { filename, format, 'check-errors': r.checkErrors };
  const optional: [string, number][] = [
    ['image-end-offset', r.imageEndOffset],
    ['corruptions', r.corruptions],
    ['leaks', r.leaks],
    ['corruptions-fixed', r.corruptionsFixed],
    ['leaks-fixed', r.leaksFixed],
    ['total-clusters', r.totalClusters],
    ['allocated-clusters', r.allocatedClusters],
    ['fragmented-clusters', r.fragmentedClusters],
    ['compressed-clusters', r.compressedClusters],
  ];
  for (const [key, value] of optional) if (value !== 0) out[key] = value;
  return out;
}

/** dump_human_image_check. */
function human(r: CheckResult): string {
  let out = '';
  if (!r.corruptions && !r.leaks && !r.checkErrors) {
    out += 'No errors were found on the image.\n';
  } else {
    if (r.corruptions) {
      out +=
        `\n${r.corruptions} errors were found on the image.\n` +
        'Data may be corrupted, or further writes to the image may corrupt it.\n';
    }
    if (r.leaks) {
      out +=
        `\n${r.leaks} leaked clusters were found on the image.\n` +
        'This means waste of disk space, but no harm to data.\n';
    }
    if (r.checkErrors) out += `\n${r.checkErrors} internal errors have occurred during the check.\n`;
  }
  if (r.totalClusters !== 0 && r.allocatedClusters !== 0) {
    const pct = (n: number, of: number) => percent((n * 100) / of);
    out +=
      `${r.allocatedClusters}/${r.totalClusters} = ${pct(r.allocatedClusters, r.totalClusters)}% allocated, ` +
      `${pct(r.fragmentedClusters, r.allocatedClusters)}% fragmented, ` +
      `${pct(r.compressedClusters, r.allocatedClusters)}% compressed clusters\n`;
  }
  if (r.imageEndOffset) out += `Image end offset: ${r.imageEndOffset}\n`;
  return out;
}

/**
 * printf's "%0.2f": like toFixed(2), except that an exact tie rounds to even (glibc rounds the
 * exact binary value in the current rounding mode; toFixed rounds ties up).
 */
export function percent(x: number): string {
  const exact = x.toFixed(100);
  const dot = exact.indexOf('.');
  if (!/^50*$/.test(exact.slice(dot + 3))) return x.toFixed(2);
  const down = exact.slice(0, dot + 3);
  const lastDigit = Number(down.at(-1));
  return lastDigit % 2 === 0 ? down : x.toFixed(2);
}
