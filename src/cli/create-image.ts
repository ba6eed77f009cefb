/**
 * Image creation for the CLI (QEMU's bdrv_create for the formats blockgraph can create so far):
 * `raw` and the bare `file` protocol are both a host file of the virtual size, created or
 * truncated and then extended (sparse), as file-posix's raw_co_create does.
 */
import { open } from 'node:fs/promises';
import { errnoOf, genericError, STRERROR } from '../block/errors.ts';
import { filenameToOptions } from '../config/filename.ts';
import { findDriver } from '../drivers/index.ts';

/** Formats whose creation is just sizing a protocol file. */
const PLAIN_FORMATS = new Set(['raw', 'file']);

/** Checks that `format` names a driver that can create images, with qemu-img's texts. */
function checkCreatable(format: string): void {
  const driver = findDriver(format);
  if (!driver) throw genericError(`Unknown file format '${format}'`);
  if (!PLAIN_FORMATS.has(format))
    throw genericError(`Format driver '${format}' does not support image creation`);
}

/**
 * The host path an image of `format` named `filename` is created at. Throws qemu-img's refusal
 * when the format or the protocol cannot create images.
 */
export function creationPath(format: string, filename: string): string {
  checkCreatable(format);
  const options = filenameToOptions(filename, format);
  const protocol = (format === 'file' ? options : options.file) as Record<string, unknown>;
  if (protocol.driver !== 'file') {
    throw genericError(`Protocol driver '${String(protocol.driver)}' does not support image creation`);
  }
  return String(protocol.filename);
}

/**
 * Creates (or truncates) the host file `path` with `size` bytes, all reading as zeros.
 * Throws QEMU's "Could not create 'PATH': <strerror>".
 */
export async function createFile(path: string, size: number): Promise<void> {
  try {
    const fh = await open(path, 'w', 0o644);
    try {
      await fh.truncate(size);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw genericError(`Could not create '${path}': ${STRERROR[errnoOf(err)]}`);
  }
}
