/**
 * blob: a Blob or File the page handed over (a dropped or chosen file), read-only, as QEMU's curl
 * driver is. The page registers the Blob under a name (the browser's /dev/fdset: the worker
 * cannot open files by path, so it is given them) and `{"driver": "blob", "name": "..."}` opens
 * it. In the worker plain filenames resolve to registered names (config/filename.ts), so a qcow2
 * naming `base.qcow2` as its backing file finds the Blob registered as `base.qcow2`.
 *
 * Reads take slices (`blob.slice(a, b).arrayBuffer()`), never the whole Blob: a 5 GiB File costs
 * no more memory than the largest request. Offsets are JS numbers, exact up to 2^53.
 */
import type { BlockDriver, BlockDriverOps } from '../../block/driver.ts';
import { genericError, ioError, STRERROR } from '../../block/errors.ts';

/** What the driver needs of a Blob (a File is one); tests may pass any object with these. */
export interface BlobLike {
  readonly size: number;
  slice(start: number, end: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

/** The largest slice read at once, so a huge request never needs a second buffer as big. */
const MAX_SLICE = 4 << 20;

/** Registered Blobs by name. Per realm: the worker's registry is what the page fills. */
const REGISTRY = new Map<string, BlobLike>();

/**
 * Registers `blob` as `name`. Refused when the name is taken: a different image under a name
 * open nodes were opened with would be a trap. Open nodes keep their Blob when it is unregistered.
 */
export function registerBlob(name: string, blob: BlobLike): void {
  if (name === '') throw genericError('A blob name must not be empty');
  if (REGISTRY.has(name)) throw genericError(`A blob named '${name}' is already registered`);
  REGISTRY.set(name, blob);
}

/** Forgets a registered name; returns whether it existed. */
export function unregisterBlob(name: string): boolean {
  return REGISTRY.delete(name);
}

/** The registered names, in registration order. */
export function registeredBlobs(): string[] {
  return [...REGISTRY.keys()];
}

const OPTIONS = {
  name: { type: 'str', required: true, help: 'the name the Blob was registered under' },
} as const;

export const blobDriver = {
  name: 'blob',
  kind: 'protocol',
  options: OPTIONS,
  capabilities: { writable: false, persistent: true, growable: false, discard: false, writeZeroes: false },

  /** A plain filename, where blob is the realm's default protocol, is a registered name. */
  parseFilename(filename: string): Record<string, unknown> {
    return { name: filename };
  },

  async open(ctx): Promise<BlockDriverOps> {
    const name = ctx.options.name as string;
    // bdrv_apply_auto_read_only, with curl's wording for a protocol that cannot write.
    if (!ctx.readOnly && ctx.options['auto-read-only'] !== true) {
      throw genericError('blob driver does not support writes');
    }
    const blob = REGISTRY.get(name);
    // The text file-posix gives for a path that does not exist.
    if (!blob) throw genericError(`Could not open '${name}': ${STRERROR.ENOENT}`);
    return {
      readOnly: true,
      length: () => blob.size,
      read: (offset, dst) => readSlices(blob, name, offset, dst),
      filename: () => name,
      imageFacts: () => ({ actualSize: blob.size }),
    };
  },
} as const satisfies BlockDriver;

/**
 * Fills `dst` from `blob` at `offset`. BlockNode keeps reads within length(), which is the size
 * rounded up to a sector: the bytes past the Blob's end read as zeros.
 */
async function readSlices(blob: BlobLike, name: string, offset: number, dst: Uint8Array): Promise<void> {
  const inside = Math.max(0, Math.min(dst.length, blob.size - offset));
  dst.fill(0, inside);
  for (let pos = 0; pos < inside; pos += MAX_SLICE) {
    const len = Math.min(MAX_SLICE, inside - pos);
    let bytes: ArrayBuffer;
    try {
      bytes = await blob.slice(offset + pos, offset + pos + len).arrayBuffer();
    } catch (err) {
      // Chromium: NotReadableError when the File changed or vanished on disk since it was chosen.
      throw ioError('EIO', `Could not read blob '${name}': ${(err as Error).message}`);
    }
    if (bytes.byteLength !== len) throw ioError('EIO', `Short read from blob '${name}' at ${offset + pos}`);
    dst.set(new Uint8Array(bytes), pos);
  }
}
