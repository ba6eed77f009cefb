/**
 * opfs: a file in the origin-private file system (blockgraph's own; the browser's file-posix).
 * `filename` is a '/'-separated path below the origin's root; I/O goes through a
 * FileSystemSyncAccessHandle, which exists only in dedicated workers, so opening anywhere else
 * fails with a message saying so. Like QEMU's `file`, the node is growable (a write past the end
 * extends the file with zeros), `flush` flushes the handle, truncate resizes the file, and
 * blockdev-create (driver `opfs`, `filename`, `size`) makes the parent directories and the
 * emptied file.
 *
 * Differences from file-posix, each because the browser offers no more:
 * - locking is a Web Lock per path (opfs-files.ts), not OFD locks: a second read-write opener in
 *   any tab or worker of the origin gets `Failed to get "write" lock` at once; read-only nodes
 *   take no lock and coexist with the writer and each other (as QEMU's qemu-io -r does beside a
 *   running guest). Browsers without the sync handle `mode` option (before Chromium 121) give
 *   every handle exclusive use of the file: there a reader is refused beside anyone else, with
 *   `Failed to get shared "write" lock`;
 * - block status reports the whole file as data, discard is a no-op and zero writes write zeros
 *   (file-posix on a host without SEEK_DATA and punch-hole); OPFS files are not sparse: the
 *   origin's quota is charged their full length;
 * - no `aio`, no `cache.direct` semantics: the browser decides how it writes the file;
 * - names '.' and '..' are refused by the browser (EINVAL); repeated slashes collapse as in POSIX.
 *
 * In an off-the-record profile (incognito; Playwright's default contexts) Chromium keeps OPFS in
 * memory and every handle call is an IPC to the browser process: random 4 KiB reads measured
 * ~2,700 IOPS there against ~60,000 on a profile on disk (bench/browser-io.ts), and running out of
 * quota is reported differently (opfs-files.ts shortWriteErrno), still as ENOSPC.
 */
import type { BlockDriver, BlockDriverOps, ProtocolCreator } from '../../block/driver.ts';
import { BlockIOError, ioError } from '../../block/errors.ts';
import { withDefaults } from '../options.ts';
import {
  domErrno,
  fileHandle,
  lockName,
  openError,
  opfsPath,
  requireSyncHandles,
  shortWriteErrno,
  syncHandle,
  type SyncHandle,
} from './opfs-files.ts';
import { takeWriteLock, withWriteLock } from './web-lock.ts';

const OPTIONS = {
  filename: { type: 'str', required: true, help: 'path of the image in the origin-private file system' },
  locking: {
    type: 'enum',
    values: ['auto', 'on', 'off'],
    default: 'auto',
    help: 'whether a read-write node locks out other writers (off: writers may share the file)',
  },
} as const;

/** BlockdevCreateOptions for `opfs`: the file is made (or emptied); `size` is applied after. */
export const opfsCreator: ProtocolCreator = {
  options: { filename: { type: 'str', required: true, help: 'OPFS path of the file to create' } },
  async create(options) {
    const filename = options.filename as string;
    requireSyncHandles(`Could not create '${filename}'`);
    const path = opfsPath(filename);
    // raw_co_create locks the file while it empties it, whatever the `locking` option says.
    await withWriteLock(lockName(path), async () => {
      let handle: SyncHandle;
      try {
        handle = await syncHandle(await fileHandle(path, true));
      } catch (err) {
        throw openError(err, 'create', filename);
      }
      try {
        handle.truncate(0);
        handle.flush();
      } catch (err) {
        throw openError(err, 'create', filename);
      } finally {
        handle.close();
      }
    });
    return { driver: 'opfs', filename };
  },
};

/**
 * Removes the file at `filename` (a page's way to delete an image; QEMU leaves that to the
 * host). Refused with the lock error while a node has it open.
 */
export async function deleteOpfsImage(filename: string): Promise<void> {
  requireSyncHandles(`Could not delete '${filename}'`);
  const path = opfsPath(filename);
  await withWriteLock(lockName(path), async () => {
    try {
      let dir = await navigator.storage.getDirectory();
      for (const name of path.slice(0, -1)) dir = await dir.getDirectoryHandle(name);
      await dir.removeEntry(path.at(-1) ?? '');
    } catch (err) {
      throw openError(err, 'delete', filename);
    }
  });
}

export const opfsDriver = {
  name: 'opfs',
  kind: 'protocol',
  options: OPTIONS,
  capabilities: { writable: true, persistent: true, growable: true, discard: false, writeZeroes: false },
  protocols: ['opfs'],
  protocolCreator: opfsCreator,

  /** `opfs:PATH` → PATH, everything after the prefix taken literally (as `file:` is). */
  parseFilename(filename: string): Record<string, unknown> {
    return { filename: filename.startsWith('opfs:') ? filename.slice('opfs:'.length) : filename };
  },

  async open(ctx): Promise<BlockDriverOps> {
    const opts = withDefaults(OPTIONS, ctx.options);
    const filename = opts.filename as string;
    requireSyncHandles(`Could not open '${filename}'`);
    const path = opfsPath(filename);
    const locked = !ctx.readOnly && opts.locking !== 'off';
    const release = locked ? await takeWriteLock(lockName(path)) : () => {};
    let handle: SyncHandle | undefined;
    try {
      handle = await syncHandle(await fileHandle(path, false));
      return handleOps(handle, handle.getSize(), filename, release);
    } catch (err) {
      handle?.close();
      release();
      throw openError(err, 'open', filename, ctx.readOnly);
    }
  },
} as const satisfies BlockDriver;

/**
 * The node operations over an open handle of a file of `size` bytes; `release` gives up the
 * write lock on close.
 */
function handleOps(handle: SyncHandle, size: number, filename: string, release: () => void): BlockDriverOps {
  // The size is read once and then tracked, as file.ts does: QEMU caches bdrv_getlength() too.
  return {
    length: () => size,
    read: async (offset, dst) => {
      const got = io(() => handle.read(dst, { at: offset }));
      // A file that shrank under us (another writer, locking=off) reads as zeros past its end.
      dst.fill(0, got);
    },
    write: async (offset, src, flags) => {
      const put = io(() => handle.write(src, { at: offset }));
      if (put !== src.length) {
        // Part of it may have been written: the file is as long as it now is.
        size = handle.getSize();
        throw ioError(shortWriteErrno(put, src.length));
      }
      size = Math.max(size, offset + put);
      if (flags.fua) io(() => handle.flush());
    },
    flush: async () => io(() => handle.flush()),
    truncate: async (bytes) => {
      io(() => handle.truncate(bytes));
      size = handle.getSize();
      // An off-the-record Chromium profile fails to grow past the quota without a word.
      if (size !== bytes) throw ioError(size < bytes ? 'ENOSPC' : 'EIO');
    },
    close: async () => {
      try {
        handle.close();
      } finally {
        release();
      }
    },
    filename: () => filename,
    // Chromium charges the origin's quota for the whole length: the file costs its size.
    imageFacts: () => ({ actualSize: size, dirty: false }),
  };
}

/** Runs a sync handle call, turning a DOMException into a BlockIOError with its errno. */
function io<T>(op: () => T): T {
  try {
    return op();
  } catch (err) {
    if (err instanceof BlockIOError) throw err;
    throw ioError(domErrno(err));
  }
}
