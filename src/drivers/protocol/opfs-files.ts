/**
 * The origin-private file system as the opfs driver sees it: paths resolved to file handles,
 * sync access handles opened, and the browser's DOMExceptions turned into QEMU's errnos and
 * open-error texts (file-posix's "Could not open 'x': No such file or directory").
 *
 * Every handle is opened in mode 'readwrite-unsafe' (Chromium >= 121), the only mode whose
 * handles coexist: 'readwrite' handles are exclusive, 'read-only' handles coexist only with
 * each other (measured in Chromium 156, any pair of modes: only read-only + read-only and
 * readwrite-unsafe + readwrite-unsafe open together). Write exclusion between writers is a Web
 * Lock instead (web-lock.ts), so readers can stay beside a writer as they can in QEMU.
 */
import { errnoOf, genericError, STRERROR, type Errno } from '../../block/errors.ts';

/** FileSystemSyncAccessHandle as Chromium >= 108 implements it (all methods synchronous). */
export interface SyncHandle {
  read(dst: Uint8Array, opts: { at: number }): number;
  write(src: Uint8Array, opts: { at: number }): number;
  truncate(bytes: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
}

/** FileSystemFileHandle with the `mode` option TypeScript's lib does not know yet. */
interface ModalFileHandle {
  createSyncAccessHandle(opts?: { mode: 'readwrite-unsafe' }): Promise<SyncHandle>;
}

/** The Web Lock that gives a writer exclusive use of the file at `path` (from opfsPath). */
export function lockName(path: readonly string[]): string {
  return `blockgraph-opfs:${path.join('/')}`;
}

/**
 * The normalized form of an OPFS path: '/'-separated names below the origin's root, with empty
 * names dropped as POSIX collapses repeated slashes ('/a//b' is 'a/b'). '.' and '..' are kept:
 * the browser refuses them as names (EINVAL), since OPFS has no such entries.
 */
export function opfsPath(filename: string): string[] {
  return filename.split('/').filter((name) => name !== '');
}

/**
 * Throws "`what`: <reason>" unless this realm can open sync access handles: they exist in
 * dedicated workers only (not in a page, a shared or a service worker), and OPFS only in a
 * browser's secure context.
 */
export function requireSyncHandles(what: string): void {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (typeof storage?.getDirectory !== 'function') {
    throw genericError(
      `${what}: the origin-private file system is not available here (a browser's secure context is needed)`,
    );
  }
  if (
    typeof FileSystemFileHandle === 'undefined' ||
    !('createSyncAccessHandle' in FileSystemFileHandle.prototype)
  ) {
    throw genericError(
      `${what}: the 'opfs' driver works only in a dedicated worker (createSyncAccessHandle() is not available here)`,
    );
  }
}

/**
 * The file at `path` (from opfsPath). With `create`, missing directories and the file are
 * made. DOMExceptions propagate; openErrorText explains them.
 */
export async function fileHandle(path: readonly string[], create: boolean): Promise<FileSystemFileHandle> {
  let dir = await navigator.storage.getDirectory();
  const last = path.length - 1;
  // The root itself is a directory: getFileHandle('') refuses it as an invalid name.
  if (last < 0) throw new DOMException('the root is a directory', 'TypeMismatchError');
  for (const name of path.slice(0, last)) {
    try {
      dir = await dir.getDirectoryHandle(name, { create });
    } catch (err) {
      // A file where a directory was wanted is ENOTDIR, not EISDIR as on the last name.
      throw isNamed(err, 'TypeMismatchError') ? new DOMException(name, 'NotADirectory') : err;
    }
  }
  return dir.getFileHandle(path[last]!, { create });
}

/** Opens a sync access handle that coexists with the driver's other handles on the file. */
export function syncHandle(file: FileSystemFileHandle): Promise<SyncHandle> {
  return (file as unknown as ModalFileHandle).createSyncAccessHandle({ mode: 'readwrite-unsafe' });
}

/** QEMU's lock conflict texts (file-posix raw_check_lock_bytes, as QMP reports them). */
export const LOCK_ERROR = 'Failed to get "write" lock';
/** A reader (which does not share write) meeting a writer. */
export const SHARED_LOCK_ERROR = 'Failed to get shared "write" lock';

/** glibc's strerror() for the open(2) failures that are not block-request errnos. */
const EISDIR = 'Is a directory';
const ENOTDIR = 'Not a directory';

/**
 * The error for a failed open (`verb` 'open', of a read-only node when `readOnly`) or creation
 * of `filename`, in file-posix's texts: a handle the browser refused because another is open is
 * QEMU's lock conflict; a read-only open of a directory is refused as not a regular file (a
 * read-write one fails in open(2) with EISDIR); anything else is "Could not VERB 'x': <strerror>".
 */
export function openError(
  err: unknown,
  verb: 'open' | 'create' | 'delete',
  filename: string,
  readOnly = false,
): Error {
  if (isNamed(err, 'NoModificationAllowedError'))
    return genericError(readOnly ? SHARED_LOCK_ERROR : LOCK_ERROR);
  if (readOnly && isNamed(err, 'TypeMismatchError')) {
    return genericError(`'opfs' driver requires '${filename}' to be a regular file`);
  }
  return genericError(`Could not ${verb} '${filename}': ${openErrorText(err)}`);
}

function openErrorText(err: unknown): string {
  if (isNamed(err, 'TypeMismatchError')) return EISDIR;
  if (isNamed(err, 'NotADirectory')) return ENOTDIR;
  return STRERROR[domErrno(err)];
}

/**
 * The errno of a write that returned `put` bytes for a request of `len`. Chromium 156 throws
 * QuotaExceededError when a profile on disk runs out of quota, but in an off-the-record profile
 * (incognito, Playwright's default contexts: OPFS in memory) it writes what fits and returns
 * base::File's error as an unsigned 32-bit count: 2^32 - 8 for FILE_ERROR_NO_SPACE (measured).
 */
export function shortWriteErrno(put: number, len: number): Errno {
  return put > len && put === 2 ** 32 - 8 ? 'ENOSPC' : 'EIO';
}

/** DOMException names (and the TypeError of a refused name) by the errno they mean. */
const ERRNO_BY_NAME: Readonly<Record<string, Errno>> = {
  NotFoundError: 'ENOENT',
  QuotaExceededError: 'ENOSPC',
  // A write through a handle the browser opened read-only.
  NoModificationAllowedError: 'EPERM',
  NotAllowedError: 'EACCES',
  SecurityError: 'EACCES',
  TypeError: 'EINVAL',
  // A closed handle, or one whose storage was cleared under it: the device is gone.
  InvalidStateError: 'EIO',
};

/** The errno of anything an OPFS call threw: known DOMException names map, the rest is EIO. */
export function domErrno(err: unknown): Errno {
  const name = (err as { name?: unknown } | null)?.name;
  return typeof name === 'string' && Object.hasOwn(ERRNO_BY_NAME, name) ? ERRNO_BY_NAME[name]! : errnoOf(err);
}

function isNamed(err: unknown, name: string): boolean {
  return (err as { name?: unknown } | null)?.name === name;
}
