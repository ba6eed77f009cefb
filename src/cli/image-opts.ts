/**
 * How a command-line image becomes an opened graph node, shared by every command: a filename
 * (legacy syntax and `json:{...}` included) with an optional `-f` format, or an `--image-opts`
 * keyval string (`driver=raw,file.driver=file,file.filename=x`). qemu-img and qemu-io do the same
 * in img_open() / openfile(); the checks and their wording are theirs. Without a format the
 * image is probed (config/probe.ts), from the first bytes of its protocol node.
 */
import { BlockBackend } from '../block/backend.ts';
import { genericError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { filenameToOptions, parseJsonFilename } from '../config/filename.ts';
import { parseKeyval } from '../config/keyval.ts';
import { withProbedFormat } from '../graph/probe.ts';
import { findDriver } from '../drivers/index.ts';
import type { BlockGraph } from '../graph/graph.ts';
import { displayFilename } from './image-name.ts';
import { CliExit } from './program.ts';

export interface ImageSpec {
  readonly filename: string;
  /** `-f`: the format (or protocol) driver; probed when absent. */
  readonly format?: string;
  /** `--image-opts`: `filename` is a keyval option string. */
  readonly imageOpts?: boolean;
  readonly readOnly?: boolean;
  /** `-U`: share all permissions; QEMU allows it on read-only images only. */
  readonly forceShare?: boolean;
  /** Do not open the backing file the image names (BDRV_O_NO_BACKING, as qemu-img info). */
  readonly noBacking?: boolean;
  /** `convert -l`: show this internal snapshot, read-only (qcow2's `x-snapshot` option). */
  readonly snapshot?: { readonly id?: string; readonly name?: string };
}

export interface OpenedImage {
  readonly node: BlockNode;
  /** The name QEMU shows for it: the filename, or `json:{...}` (image-name.ts). */
  readonly name: string;
}

/** Refuses `-f` together with `--image-opts`, in the wording of `tool` (they differ). */
export function checkFormatOptions(tool: 'img' | 'io', spec: ImageSpec): void {
  if (!spec.imageOpts || spec.format === undefined) return;
  throw new CliExit(
    tool === 'img'
      ? '--image-opts and --format are mutually exclusive'
      : '--image-opts and -f are mutually exclusive',
  );
}

/**
 * Opens the image `spec` names in `graph`. Errors carry QEMU's inner message; callers add their
 * tool's prefix ("Could not open 'x': ", "can't open device x: ").
 */
export async function openImage(graph: BlockGraph, spec: ImageSpec): Promise<OpenedImage> {
  const options = await imageOptions(graph, spec);
  const name = displayFilename(options);
  const driver = findDriver(String(options.driver));
  if (spec.noBacking && driver?.options.backing && options.backing === undefined) options.backing = null;
  if (spec.snapshot) {
    // bdrv_snapshot_load_tmp's refusal for drivers that cannot show a snapshot.
    if (!driver?.options['x-snapshot']) {
      throw genericError(
        `Block format '${String(options.driver)}' used by device '' does not support temporarily loading internal snapshots`,
      );
    }
    options['x-snapshot'] = spec.snapshot;
  }
  if (spec.readOnly) options['read-only'] = true;
  if (spec.forceShare) {
    if (options['read-only'] !== true && options['read-only'] !== 'on') {
      throw genericError('force-share=on can only be used with read-only images');
    }
    options['force-share'] = true;
  }
  return { node: await graph.open(options, 'legacy'), name };
}

/**
 * Opens the image as the medium of a new BlockBackend named `name` ('' for an anonymous one),
 * read-only when `spec` is. Closing the backend closes the image.
 */
export async function openBackend(
  graph: BlockGraph,
  spec: ImageSpec,
  name: string,
): Promise<OpenedImage & { readonly blk: BlockBackend }> {
  const image = await openImage(graph, spec);
  const blk = new BlockBackend(graph, name, { readOnly: spec.readOnly === true });
  try {
    blk.insert(image.node);
  } catch (err) {
    await blk.close();
    await graph.release(image.node);
    throw err;
  }
  return { ...image, blk };
}

/** The blockdev options tree `spec` stands for, its format probed when none is given. */
async function imageOptions(graph: BlockGraph, spec: ImageSpec): Promise<Record<string, unknown>> {
  if (spec.format !== undefined && !findDriver(spec.format)) {
    throw genericError(`Unknown driver '${spec.format}'`);
  }
  const tree: Record<string, unknown> = spec.imageOpts
    ? parseKeyval(spec.filename)
    : spec.filename.startsWith('json:')
      ? parseJsonFilename(spec.filename)
      : {};
  if (spec.imageOpts || spec.filename.startsWith('json:')) {
    if (spec.format !== undefined) return { ...tree, driver: spec.format };
    if (tree.driver !== undefined) return tree;
    if (tree.file === undefined) throw genericError("Parameter 'driver' is missing");
    return withProbedFormat(graph, tree, 'legacy');
  }
  const plain = filenameToOptions(spec.filename, spec.format ?? 'raw');
  if (spec.format !== undefined || plain.file === undefined) return plain;
  return withProbedFormat(graph, plain, 'legacy');
}

/**
 * Runs `open`, turning a failure into qemu-img's "Could not open 'NAME': why" exit with the
 * command's exit code for it (qemu-img compare uses 2).
 */
export async function orCouldNotOpen<T>(filename: string, open: () => Promise<T>, status = 1): Promise<T> {
  try {
    return await open();
  } catch (err) {
    throw new CliExit(`Could not open '${filename}': ${(err as Error).message}`, false, status);
  }
}
