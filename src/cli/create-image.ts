/**
 * Image creation for the CLI (QEMU's bdrv_create with a filename): the protocol file is created
 * (or emptied) on the host, opened as a `file` node, and the format's creator writes the image
 * into it (src/block/driver.ts ImageCreator). The bare `file` protocol is created like raw.
 */
import { genericError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { filenameToOptions } from '../config/filename.ts';
import { findDriver } from '../drivers/index.ts';
import { rawCreator } from '../drivers/format/raw-create.ts';
import { createHostFile } from '../drivers/protocol/file-create.ts';
import { BlockGraph } from '../graph/graph.ts';

/** The creator for `format`, with qemu-img's refusals for unknown and non-creating formats. */
function creatorOf(format: string) {
  const driver = findDriver(format);
  if (!driver) throw genericError(`Unknown file format '${format}'`);
  const creator = format === 'file' ? rawCreator : driver.creator;
  if (!creator) throw genericError(`Format driver '${format}' does not support image creation`);
  return creator;
}

/**
 * The host path an image of `format` named `filename` is created at. Throws qemu-img's refusal
 * when the format or the protocol cannot create images.
 */
export function creationPath(format: string, filename: string): string {
  creatorOf(format);
  const options = filenameToOptions(filename, format);
  const protocol = (format === 'file' ? options : options.file) as Record<string, unknown>;
  if (protocol.driver !== 'file') {
    throw genericError(`Protocol driver '${String(protocol.driver)}' does not support image creation`);
  }
  return String(protocol.filename);
}

/**
 * Creates (or empties) the host file `path` and makes it an image of `format`: `options` are the
 * creator's (QAPI names; `size` is required). `children` holds nodes the options refer to
 * (qcow2's `data-file`). Throws QEMU's texts ("Could not create 'PATH': <strerror>", option checks).
 */
export async function createImage(
  path: string,
  format: string,
  options: Record<string, unknown>,
  children: ReadonlyMap<string, BlockNode> = new Map(),
): Promise<void> {
  const creator = creatorOf(format);
  await createHostFile(path);
  const graph = new BlockGraph();
  const file = await graph.open({ driver: 'file', filename: path });
  try {
    await creator.create(file, options, { children });
  } finally {
    await graph.release(file);
  }
}
