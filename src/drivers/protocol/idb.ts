/**
 * idb: an image in IndexedDB (blockgraph's own; QEMU has no equivalent), for browsers, in a page
 * or a worker. The image is `name` in the database `database`, stored as fixed-size chunks (a
 * power of two chosen at creation, `chunk-size`, 64 KiB by default) plus a record of its length
 * (idb-store.ts). Absent chunks read as zeros; writes past the end grow the image; discards and
 * zero writes delete whole chunks.
 *
 * Durability: writes are held in memory and committed on flush, all of them in one transaction
 * with durability 'strict' (chunk-image.ts), so after a crash the image is exactly as of some
 * completed flush, and a write that was never flushed may be lost. Closing a node flushes it.
 * Out of quota, a flush fails with ENOSPC and keeps its data pending for the next flush.
 *
 * Locking: a read-write node holds a Web Lock on the image (web-lock.ts); a second read-write
 * opener, in this or another tab, gets QEMU's `Failed to get "write" lock` at once. Read-only
 * nodes take no lock (QEMU would refuse them next to a writer unless force-share=on): they read
 * whatever was last committed, which is always a flushed state of each chunk.
 *
 * Images are made with blockdev-create (driver `idb`, `name`, optional `database` and
 * `chunk-size`, `size`); opening a name that does not exist fails, as opening a missing file does.
 */
import type { BlockDriver, BlockDriverOps, ProtocolCreator } from '../../block/driver.ts';
import { genericError, STRERROR } from '../../block/errors.ts';
import { withDefaults } from '../options.ts';
import { ChunkedImage } from './chunk-image.ts';
import {
  deleteImage,
  durableStore,
  IdbChunkStore,
  readRecord,
  resetImage,
  type ImageRecord,
} from './idb-store.ts';
import { takeWriteLock, withWriteLock } from './web-lock.ts';

const DEFAULT_DATABASE = 'blockgraph';
const DEFAULT_CHUNK_SIZE = 64 * 1024;
const MIN_CHUNK_SIZE = 4096;
const MAX_CHUNK_SIZE = 16 * 1024 * 1024;

const LOCATION = {
  database: { type: 'str', default: DEFAULT_DATABASE, help: 'IndexedDB database holding the image' },
  name: { type: 'str', required: true, help: 'name of the image in the database' },
} as const;

const CREATE_OPTIONS = {
  ...LOCATION,
  'chunk-size': {
    type: 'size',
    default: DEFAULT_CHUNK_SIZE,
    help: 'bytes per stored chunk: a power of two from 4k to 16M (default 64k)',
  },
} as const;

/** How messages name the image. */
function describe(database: string, name: string): string {
  return `${database}/${name}`;
}

/** The Web Lock that keeps a second writer off the image. */
function lockName(database: string, name: string): string {
  return `blockgraph-idb:${JSON.stringify([database, name])}`;
}

function location(options: Readonly<Record<string, unknown>>): { database: string; name: string } {
  const opts = withDefaults(LOCATION, options);
  return { database: opts.database as string, name: opts.name as string };
}

function validChunkSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

/** A record written by someone else, or damaged, is refused rather than guessed at. */
function validRecord(record: ImageRecord): boolean {
  return Number.isSafeInteger(record.length) && record.length >= 0 && validChunkSize(record.chunkSize);
}

/** Throws `<what>: IndexedDB is not available here` where there is none (Node). */
function requireIndexedDB(what: string): void {
  if (typeof indexedDB === 'undefined') throw genericError(`${what}: IndexedDB is not available here`);
}

/** BlockdevCreateOptions for `idb`: makes (or empties) the image; `size` is applied after. */
export const idbCreator: ProtocolCreator = {
  options: CREATE_OPTIONS,
  async create(options) {
    const { database, name } = location(options);
    const chunkSize = (options['chunk-size'] as number | undefined) ?? DEFAULT_CHUNK_SIZE;
    if (!validChunkSize(chunkSize)) {
      throw genericError(
        `Chunk size must be a power of two between ${MIN_CHUNK_SIZE} and ${MAX_CHUNK_SIZE / 1024}k`,
      );
    }
    const what = `Could not create '${describe(database, name)}'`;
    requireIndexedDB(what);
    await withWriteLock(lockName(database, name), async () => {
      try {
        await resetImage(durableStore(database), name, { length: 0, chunkSize });
      } catch (err) {
        throw genericError(`${what}: ${(err as Error).message}`);
      }
    });
    return { driver: 'idb', database, name };
  },
};

/**
 * Deletes image `name` of `database` with its chunks (a page's way to remove an image; QEMU
 * leaves deleting files to the host). Refused with the lock error while a writer has it open.
 */
export async function deleteIdbImage(database: string, name: string): Promise<void> {
  requireIndexedDB(`Could not delete '${describe(database, name)}'`);
  await withWriteLock(lockName(database, name), () => deleteImage(durableStore(database), name));
}

export const idbDriver = {
  name: 'idb',
  kind: 'protocol',
  options: LOCATION,
  capabilities: { writable: true, persistent: true, growable: true, discard: true, writeZeroes: true },
  protocolCreator: idbCreator,

  async open(ctx): Promise<BlockDriverOps> {
    const { database, name } = location(ctx.options);
    const what = `Could not open '${describe(database, name)}'`;
    requireIndexedDB(what);
    const release = ctx.readOnly ? () => {} : await takeWriteLock(lockName(database, name));
    try {
      const store = durableStore(database);
      const record = await readRecord(store, name);
      if (!record) throw genericError(`${what}: ${STRERROR.ENOENT}`);
      if (!validRecord(record)) throw genericError(`${what}: ${STRERROR.EINVAL}`);
      const image = new ChunkedImage(
        new IdbChunkStore(store, name, record.chunkSize),
        record.chunkSize,
        record.length,
      );
      return imageOps(image, release);
    } catch (err) {
      release();
      throw err;
    }
  },
} as const satisfies BlockDriver;

/** The node operations over an open image; `release` gives up its lock on close. */
function imageOps(image: ChunkedImage, release: () => void): BlockDriverOps {
  return {
    length: () => image.length,
    read: (offset, dst) => image.read(offset, dst),
    write: async (offset, src, flags) => {
      await image.write(offset, src);
      if (flags.fua) await image.flush();
    },
    writeZeroes: (offset, bytes) => image.zero(offset, bytes, true),
    discard: (offset, bytes) => image.zero(offset, bytes, false),
    flush: () => image.flush(),
    blockStatus: (offset, bytes) => image.status(offset, bytes),
    truncate: (bytes) => image.truncate(bytes),
    // bdrv_close flushes and ignores a failure: what could not be committed is lost.
    close: async () => {
      await image.flush().catch(() => {});
      release();
    },
  };
}
