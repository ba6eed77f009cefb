/**
 * qcow2_update_options_prepare's checks of the open options against the header: cache sizes,
 * the clean interval, lazy refcounts, the overlap checks and the encryption options.
 */
import { genericError } from '../../../block/errors.ts';
import { Overlap, type Qcow2Engine, type Qcow2Header } from '../../../qcow2/engine.ts';
import { cacheSizes } from './cache-options.ts';
import { INCOMPAT_EXTL2 } from './create-header.ts';
import type { HeaderExtensions } from './extensions.ts';

const UINT_MAX = 0xffffffff;

/** Cache options (qcow2_update_options_prepare): sizes, the clean interval, lazy refcounts. */
export function configureCache(
  engine: Qcow2Engine,
  opts: Readonly<Record<string, unknown>>,
  header: Qcow2Header,
  clusterSize: number,
  size: number,
): number {
  const extendedL2 = (header.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n;
  const sizes = cacheSizes(opts, clusterSize, size, extendedL2 ? 16 : 8);
  if (!engine.configureCache(sizes.l2Entries, sizes.l2EntryBytes)) {
    throw genericError('Could not allocate metadata caches');
  }
  const interval = opts['cache-clean-interval'];
  if (typeof interval === 'number' && interval > UINT_MAX) throw genericError('Cache clean interval too big');
  if (opts['lazy-refcounts'] === true && header.version < 3) {
    throw genericError('Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level');
  }
  return sizes.refcountEntries;
}

/** The `encrypt` options against the header's method (qcow2_update_options_prepare). */
export function checkEncryptionOptions(header: Qcow2Header, opts: Readonly<Record<string, unknown>>): void {
  const format = (opts.encrypt as { format?: unknown } | undefined)?.format;
  if (header.cryptMethod === 0) {
    if (typeof format === 'string') {
      throw genericError(`No encryption in image header, but options specified format '${format}'`);
    }
    return;
  }
  if (header.cryptMethod > 2) throw genericError(`Unsupported encryption method ${header.cryptMethod}`);
  const method = header.cryptMethod === 1 ? 'aes' : 'luks';
  if (typeof format === 'string' && format !== method) {
    throw genericError(`Header reported '${method}' encryption format but options specify '${format}'`);
  }
}

/** Encrypted images are refused: blockgraph has no qcow2 encryption (QEMU's texts where it has one). */
export function checkEncryption(header: Qcow2Header, ext: HeaderExtensions): void {
  if (header.cryptMethod === 0) return;
  if (header.cryptMethod === 2 && !ext.cryptoHeader) {
    throw genericError('Missing CRYPTO header for crypt method 2');
  }
  throw genericError('Encrypted qcow2 images are not supported');
}

/** The overlap-check option (qcow2_update_options_prepare): a template name or { template }. */
export function overlapChecks(option: unknown): number {
  const template =
    typeof option === 'string'
      ? option
      : ((option as { template?: string } | undefined)?.template ?? 'cached');
  if (template === 'none') return 0;
  // 'constant': the structures whose place never changes without a header update.
  if (template === 'constant') return Overlap.MAIN_HEADER | Overlap.ACTIVE_L1 | Overlap.REFCOUNT_TABLE;
  return 0x1f;
}
