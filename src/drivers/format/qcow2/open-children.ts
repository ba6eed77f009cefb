/**
 * The children qcow2_do_open opens itself: the external data file and the backing file the
 * image names, unless the options gave them.
 */
import type { OpenContext } from '../../../block/driver.ts';
import { genericError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import type { Qcow2Header } from '../../../qcow2/engine.ts';
import { siblingFileOptions } from './backing.ts';
import { AUTOCLEAR_DATA_FILE_RAW, INCOMPAT_DATA_FILE } from './create-header.ts';
import { readOr } from './errors.ts';
import type { HeaderExtensions } from './extensions.ts';
import type { OpenedImage } from './node.ts';

/** The data-file child: given, named by the image, required, or refused, as qcow2_do_open decides. */
export async function openDataFile(
  ctx: OpenContext,
  file: BlockNode,
  header: Qcow2Header,
  ext: HeaderExtensions,
): Promise<BlockNode | undefined> {
  let dataFile = ctx.children.get('data-file') ?? undefined;
  if ((header.incompatibleFeatures & INCOMPAT_DATA_FILE) !== 0n) {
    if (!dataFile && ext.dataFile !== undefined) {
      // A data file is a protocol node holding guest clusters (BDRV_CHILD_DATA): no probing.
      const options = await siblingFileOptions(file, ext.dataFile);
      if (!ctx.openChild) throw genericError(`Cannot open data file '${ext.dataFile}'`);
      dataFile = await ctx.openChild({ ...options, 'read-only': ctx.readOnly }, 'data-file', 'data-file');
    }
    if (!dataFile) throw genericError("'data-file' is required for this image");
    return dataFile;
  }
  if (dataFile) throw genericError("'data-file' can only be set for images with an external data file");
  if ((header.autoclearFeatures & AUTOCLEAR_DATA_FILE_RAW) !== 0n) {
    throw genericError('data-file-raw requires a data file');
  }
  return undefined;
}

export async function readBackingName(
  readAt: (offset: number, len: number) => Promise<Uint8Array>,
  header: Qcow2Header,
  clusterSize: number,
): Promise<string> {
  const len = header.backingFileSize;
  // The name must fit bs->backing_file (PATH_MAX) and the first cluster.
  if (len > Math.min(1023, clusterSize - header.backingFileOffset)) {
    throw genericError('Backing file name too long');
  }
  const bytes = await readOr(() => readAt(header.backingFileOffset, len), 'Could not read backing file name');
  return new TextDecoder().decode(bytes);
}

/**
 * The backing node (bdrv_open_backing_file): the `backing` option when given (null: none), else
 * the file the image names, resolved next to it by the same protocol, opened read-only in the
 * format the image records or, without one, the probed format.
 */
export async function openBacking(
  ctx: OpenContext,
  file: BlockNode,
  image: OpenedImage,
): Promise<BlockNode | undefined> {
  if (ctx.children.has('backing')) return ctx.children.get('backing') ?? undefined;
  const name = image.backingName;
  if (name === undefined || name === '') return undefined;
  if (!ctx.openChild) {
    throw genericError(`Could not open backing file: cannot resolve '${name}' next to '${file.filename()}'`);
  }
  try {
    const options: Record<string, unknown> = {
      file: await siblingFileOptions(file, name),
      'read-only': true,
    };
    if (image.ext.backingFormat) options.driver = image.ext.backingFormat;
    return await ctx.openChild(options, 'backing', 'backing');
  } catch (err) {
    throw genericError(`Could not open backing file: ${(err as Error).message}`);
  }
}
