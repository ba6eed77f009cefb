/**
 * Creating a host file for the `file` protocol (file-posix's raw_co_create, Node only): the file
 * is created, or emptied if it exists; sizing it is the format's job (raw's or qcow2's creator).
 * `node:fs/promises` is imported when called, so this module loads in a browser too.
 */
import type { ProtocolCreator } from '../../block/driver.ts';
import { errnoOf, genericError, STRERROR } from '../../block/errors.ts';

/** Creates or empties `path`. Throws QEMU's "Could not create 'PATH': <strerror>". */
export async function createHostFile(path: string): Promise<void> {
  const { open } = await import('node:fs/promises');
  try {
    await (await open(path, 'w', 0o644)).close();
  } catch (err) {
    throw genericError(`Could not create '${path}': ${STRERROR[errnoOf(err)]}`);
  }
}

/** Removes `path`, ignoring errors (bdrv_co_delete_file_noerr after a failed creation). */
export async function deleteHostFile(path: string): Promise<void> {
  const { rm } = await import('node:fs/promises');
  await rm(path, { force: true }).catch(() => {});
}

/** BlockdevCreateOptionsFile (nocow and extent-size-hint are not supported). */
export const fileCreator: ProtocolCreator = {
  options: { filename: { type: 'str', required: true, help: 'host file to create' } },
  async create(options) {
    const filename = options.filename as string;
    await createHostFile(filename);
    return { driver: 'file', filename };
  },
};
