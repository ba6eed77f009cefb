/**
 * How a command-line image becomes an opened graph node, shared by every command: a filename
 * (legacy syntax and `json:{...}` included) with an optional `-f` format, or an `--image-opts`
 * keyval string (`driver=raw,file.driver=file,file.filename=x`). qemu-img and qemu-io do the same
 * in img_open() / openfile(); the checks and their wording are theirs.
 */
import { genericError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { parseKeyval } from '../config/keyval.ts';
import { filenameToOptions } from '../config/filename.ts';
import { findDriver } from '../drivers/index.ts';
import type { BlockGraph } from '../graph/graph.ts';
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
}

/** Refuses `-f` together with `--image-opts`, in the wording of `tool` (they differ). */
export function checkFormatOptions(tool: 'img' | 'io', spec: ImageSpec): void {
  if (!spec.imageOpts || spec.format === undefined) return;
  throw new CliExit(
    tool === 'img' ? '--image-opts and --format are mutually exclusive' : '--image-opts and -f are mutually exclusive',
  );
}

/**
 * The blockdev options tree `spec` stands for, as the user wrote it (keyval values stay strings),
 * before validation. Throws QEMU's error for an unknown `-f` driver or unparsable options.
 */
export function imageOptions(spec: ImageSpec): Record<string, unknown> {
  if (spec.imageOpts) return parseKeyval(spec.filename);
  if (spec.format !== undefined && !findDriver(spec.format)) {
    throw genericError(`Unknown driver '${spec.format}'`);
  }
  return filenameToOptions(spec.filename, spec.format);
}

/**
 * Opens the image `spec` names in `graph` and returns its root node. Errors carry QEMU's inner
 * message; callers add their tool's prefix ("Could not open 'x': ", "can't open device x: ").
 */
export async function openImage(graph: BlockGraph, spec: ImageSpec): Promise<BlockNode> {
  const options = imageOptions(spec);
  if (spec.readOnly) options['read-only'] = true;
  if (spec.forceShare) {
    if (options['read-only'] !== true && options['read-only'] !== 'on') {
      throw genericError('force-share=on can only be used with read-only images');
    }
    options['force-share'] = true;
  }
  return graph.open(options, spec.imageOpts ? 'cli' : 'qmp');
}
