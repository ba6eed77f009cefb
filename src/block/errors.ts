/**
 * Errors that cross every boundary in blockgraph (QMP, the worker, the CLI) carry QEMU's
 * QMP error class and QEMU's own message text, so a QEMU user reads what they would read there.
 */

/** QMP error classes, as in qapi/error.json. */
export type QmpErrorClass =
  'GenericError' | 'CommandNotFound' | 'DeviceNotActive' | 'DeviceNotFound' | 'KVMMissingCap';

export class QmpError extends Error {
  constructor(
    readonly errorClass: QmpErrorClass,
    message: string,
  ) {
    super(message);
    this.name = 'QmpError';
  }

  /** The `error` member of a QMP response. */
  toQmp(): { class: QmpErrorClass; desc: string } {
    return { class: this.errorClass, desc: this.message };
  }
}

/** A GenericError — by far the most common class in QEMU's block layer. */
export function genericError(message: string): QmpError {
  return new QmpError('GenericError', message);
}

/** The errno values a block request can fail with; these drive rerror/werror policies. */
export type Errno =
  | 'EIO'
  | 'ENOSPC'
  | 'EROFS'
  | 'EINVAL'
  | 'EPERM'
  | 'EACCES'
  | 'ENOENT'
  | 'ENOMEDIUM'
  | 'ENOTSUP'
  | 'EFBIG'
  | 'EEXIST'
  | 'ECANCELED';

/** Linux numbers for the errnos above: blkdebug's `errno` option and qemu-io print them. */
export const ERRNO_NUMBERS: Readonly<Record<Errno, number>> = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EACCES: 13,
  EEXIST: 17,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ENOTSUP: 95,
  ENOMEDIUM: 123,
  ECANCELED: 125,
};

/** strerror() texts as glibc prints them (qemu-io shows them after the failed command). */
export const STRERROR: Readonly<Record<Errno, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  EACCES: 'Permission denied',
  EINVAL: 'Invalid argument',
  EFBIG: 'File too large',
  EEXIST: 'File exists',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  ENOTSUP: 'Operation not supported',
  ENOMEDIUM: 'No medium found',
  ECANCELED: 'Operation canceled',
};

export function errnoFromNumber(n: number): Errno | undefined {
  return (Object.keys(ERRNO_NUMBERS) as Errno[]).find((k) => ERRNO_NUMBERS[k] === n);
}

/** A failed block request. `message` names the node; `errno` decides the error policy. */
export class BlockIOError extends QmpError {
  constructor(
    readonly errno: Errno,
    message: string = STRERROR[errno],
  ) {
    super('GenericError', message);
    this.name = 'BlockIOError';
  }
}

export function ioError(errno: Errno, message?: string): BlockIOError {
  return new BlockIOError(errno, message);
}

/** The errno of any thrown value: BlockIOErrors keep theirs, Node fs errors map, others are EIO. */
export function errnoOf(err: unknown): Errno {
  if (err instanceof BlockIOError) return err.errno;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in ERRNO_NUMBERS) return code as Errno;
  return 'EIO';
}
