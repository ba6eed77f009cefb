/**
 * file (QEMU block/file-posix.c, regular files only): a host file through Node's fs.promises.
 * Node only: `node:fs/promises` is imported when a node is opened, so this module still loads in
 * a browser (where opening fails).
 *
 * Differences from QEMU, each because Node has no API for it:
 * - no OFD locking: `locking` is accepted and validated but nothing is locked;
 * - `aio` is accepted and validated; requests up to 1 MiB run synchronously (see SYNC_MAX),
 *   larger ones in Node's thread pool;
 * - discard is a no-op (no fallocate punch-hole), as QEMU does when the host cannot discard;
 *   zero writes write zeros;
 * - block status reports the whole file as data (no SEEK_DATA/SEEK_HOLE);
 * - the length is read once at open and then tracked, not re-read from the file on every query.
 */
import type { FileHandle } from 'node:fs/promises';
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { fileCreator } from './file-create.ts';
import { BlockIOError, errnoOf, genericError, ioError, STRERROR, type Errno } from '../../block/errors.ts';

const OPTIONS = {
  filename: { type: 'str', required: true, help: 'path to the image file' },
  locking: {
    type: 'enum',
    values: ['auto', 'on', 'off'],
    default: 'auto',
    help: 'whether to lock the file (accepted; Node cannot take OFD locks)',
  },
  aio: {
    type: 'enum',
    values: ['threads', 'native', 'io_uring'],
    default: 'threads',
    help: 'AIO backend (accepted; Node always uses its thread pool)',
  },
} as const;

/** glibc's strerror() for open(2) failures that are not block-request errnos. */
const OPEN_STRERROR: Readonly<Record<string, string>> = {
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  ETXTBSY: 'Text file busy',
  EMFILE: 'Too many open files',
};

export const fileDriver = {
  name: 'file',
  kind: 'protocol',
  options: OPTIONS,
  capabilities: { writable: true, persistent: true, growable: true, discard: false, writeZeroes: false },
  protocols: ['file'],
  protocolCreator: fileCreator,

  /** `file:PATH` → PATH, everything after the prefix taken literally (raw_parse_filename). */
  parseFilename(filename: string): Record<string, unknown> {
    return { filename: filename.startsWith('file:') ? filename.slice('file:'.length) : filename };
  },

  async open(ctx): Promise<BlockDriverOps> {
    const filename = ctx.options.filename;
    if (typeof filename !== 'string') throw genericError("The 'file' block driver requires a file name");
    const fh = await openRegularFile(filename, ctx.readOnly);
    const { fstatSync } = await nodeFs();
    let size = (await fh.stat()).size;
    return {
      length: () => size,
      read: (offset, dst) => io(() => readFully(fh, offset, dst)),
      write: (offset, src, flags) =>
        io(async () => {
          await writeFully(fh, offset, src);
          size = Math.max(size, offset + src.length);
          if (flags.fua) await fh.datasync();
        }),
      flush: () => io(() => fh.datasync()),
      truncate: (bytes) =>
        io(async () => {
          await fh.truncate(bytes);
          size = bytes;
        }),
      close: () => fh.close(),
      filename: () => filename,
      // bdrv_get_allocated_file_size: the host's allocated blocks, so sparse files report little.
      imageFacts: () => ({ actualSize: fstatSync(fh.fd).blocks * 512, dirty: false }),
    };
  },
} as const satisfies BlockDriver;

/** `node:fs`, imported on first use so that this module still loads in a browser. */
let nodeFsModule: Promise<typeof import('node:fs')> | undefined;
const nodeFs = () => (nodeFsModule ??= import('node:fs'));

/**
 * Opens `filename` read-only or read-write. On exit the file is open and regular; otherwise it
 * throws QEMU's texts: "Could not open 'PATH': <strerror>" (a read-write open of a directory
 * fails with EISDIR there) and "'file' driver requires 'PATH' to be a regular file".
 */
async function openRegularFile(filename: string, readOnly: boolean): Promise<FileHandle> {
  const fs = await import('node:fs/promises');
  let fh: FileHandle;
  try {
    fh = await fs.open(filename, readOnly ? 'r' : 'r+');
  } catch (err) {
    throw genericError(`Could not open '${filename}': ${openErrorText(err)}`);
  }
  if (!(await fh.stat()).isFile()) {
    await fh.close();
    throw genericError(`'file' driver requires '${filename}' to be a regular file`);
  }
  return fh;
}

function openErrorText(err: unknown): string {
  const code = String((err as { code?: unknown }).code);
  return OPEN_STRERROR[code] ?? STRERROR[code as Errno] ?? (err as Error).message;
}

/** Runs a host I/O call, turning a Node error into a BlockIOError with its errno. */
async function io<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw err instanceof BlockIOError ? err : ioError(errnoOf(err));
  }
}

/**
 * Requests up to this size run synchronously on the calling thread. Node's thread-pool round
 * trip costs ~100 µs here, while a 4 KiB pwrite into the page cache takes ~3 µs (measured on
 * these machines: 10,000 vs 260,000+ IOPS at queue depth 1), so the pool only pays off for
 * requests large enough that blocking the event loop for them would be felt.
 */
const SYNC_MAX = 1 << 20;

/** Reads all of `dst`; a file that shrank under us reads as zeros past its end (as QEMU pads). */
async function readFully(fh: FileHandle, offset: number, dst: Uint8Array): Promise<void> {
  const { readSync } = await nodeFs();
  for (let done = 0; done < dst.length;) {
    const len = dst.length - done;
    const bytesRead =
      len <= SYNC_MAX
        ? readSync(fh.fd, dst, done, len, offset + done)
        : (await fh.read(dst, done, len, offset + done)).bytesRead;
    if (bytesRead === 0) {
      dst.fill(0, done);
      return;
    }
    done += bytesRead;
  }
}

async function writeFully(fh: FileHandle, offset: number, src: Uint8Array): Promise<void> {
  const { writeSync } = await nodeFs();
  for (let done = 0; done < src.length;) {
    const len = src.length - done;
    done +=
      len <= SYNC_MAX
        ? writeSync(fh.fd, src, done, len, offset + done)
        : (await fh.write(src, done, len, offset + done)).bytesWritten;
  }
}
