/**
 * Where the `idb` protocol keeps an image: an idb-keyval custom store (object store `images` of
 * the IndexedDB database named by the `database` option), holding per image NAME
 *   [NAME]         → ImageRecord { length, chunkSize }
 *   [NAME, index]  → Uint8Array of chunkSize bytes (absent: zeros)
 * Array keys sort element by element, so one key range covers an image, or a run of its chunks.
 * Read-write transactions commit with durability 'strict': Chromium defaults to 'relaxed' (since
 * 121), which acknowledges a commit before it reaches the disk.
 */
import { get, getMany, promisifyRequest, type UseStore } from 'idb-keyval';
import { BlockIOError, ioError } from '../../block/errors.ts';
import type { ChunkBatch } from './chunk-batch.ts';
import type { ChunkStore } from './chunk-image.ts';

const OBJECT_STORE = 'images';

/** The record under [NAME]. */
export interface ImageRecord {
  readonly length: number;
  readonly chunkSize: number;
}

/** One store function (and so one connection) per database and realm. */
const STORES = new Map<string, UseStore>();

/**
 * idb-keyval's createStore with the durability it cannot set: read-write transactions are
 * 'strict'. The connection is reopened if the browser closes it.
 */
export function durableStore(database: string): UseStore {
  let store = STORES.get(database);
  if (store) return store;
  let dbp: Promise<IDBDatabase> | undefined;
  const getDB = (): Promise<IDBDatabase> => {
    if (dbp) return dbp;
    const request = indexedDB.open(database);
    request.onupgradeneeded = () => request.result.createObjectStore(OBJECT_STORE);
    const opened = promisifyRequest(request);
    dbp = opened;
    opened.then(
      (db) => (db.onclose = () => (dbp = undefined)),
      () => (dbp = undefined),
    );
    return opened;
  };
  store = (mode, callback) =>
    getDB().then((db) => {
      const durability = mode === 'readwrite' ? 'strict' : 'default';
      return callback(db.transaction(OBJECT_STORE, mode, { durability }).objectStore(OBJECT_STORE));
    });
  STORES.set(database, store);
  return store;
}

/** Every key of image `name`: its record and all its chunks. */
function wholeImage(name: string): IDBKeyRange {
  // [] sorts after every number, so [name, []] is above every chunk key.
  return IDBKeyRange.bound([name], [name, []]);
}

/** Runs an IndexedDB operation; its failure becomes ENOSPC (over quota) or EIO. */
export async function idbCall<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof BlockIOError) throw err;
    throw ioError((err as DOMException | null)?.name === 'QuotaExceededError' ? 'ENOSPC' : 'EIO');
  }
}

/** The image's record, or undefined if there is no such image. */
export function readRecord(store: UseStore, name: string): Promise<ImageRecord | undefined> {
  return idbCall(() => get<ImageRecord>([name], store));
}

/** Replaces image `name` (if any) by an empty one with this record, in one transaction. */
export function resetImage(store: UseStore, name: string, record: ImageRecord): Promise<void> {
  return idbCall(() =>
    store('readwrite', (s) => {
      s.delete(wholeImage(name));
      s.put(record, [name]);
      return promisifyRequest(s.transaction);
    }),
  );
}

/** Deletes image `name` and its chunks. */
export function deleteImage(store: UseStore, name: string): Promise<void> {
  return idbCall(() =>
    store('readwrite', (s) => {
      s.delete(wholeImage(name));
      return promisifyRequest(s.transaction);
    }),
  );
}

/** The chunks of one image as a ChunkStore. */
export class IdbChunkStore implements ChunkStore {
  constructor(
    private readonly store: UseStore,
    private readonly name: string,
    private readonly chunkSize: number,
  ) {}

  read(indices: readonly number[]): Promise<(Uint8Array | undefined)[]> {
    return idbCall(() =>
      getMany<Uint8Array>(
        indices.map((index) => [this.name, index]),
        this.store,
      ),
    );
  }

  async indicesIn(first: number, last: number): Promise<number[]> {
    const range = IDBKeyRange.bound([this.name, first], [this.name, last]);
    const keys = await idbCall(() => this.store('readonly', (s) => promisifyRequest(s.getAllKeys(range))));
    return keys.map((key) => (key as [string, number])[1]);
  }

  commit(batch: ChunkBatch, length: number): Promise<void> {
    const name = this.name;
    const record: ImageRecord = { length, chunkSize: this.chunkSize };
    return idbCall(() =>
      this.store('readwrite', (s) => {
        // Infinity is a valid key: a shrink deletes every chunk from `first` on.
        for (const [first, end] of batch.ranges)
          s.delete(IDBKeyRange.bound([name, first], [name, end], false, true));
        for (const [index, chunk] of batch.chunks) {
          if (chunk) s.put(chunk, [name, index]);
          else s.delete([name, index]);
        }
        s.put(record, [name]);
        return promisifyRequest(s.transaction);
      }),
    );
  }
}
