/**
 * QEMU's texts for what the engine reports (block/qcow2.c qcow2_do_open, qcow2_validate_table;
 * block/qcow2-cluster.c qcow2_get_host_offset), built from the status and its values.
 */
import { BlockIOError, errnoOf, genericError, QmpError, STRERROR } from '../../../block/errors.ts';
import { EngineError, Status, type MapAnswer } from '../../../qcow2/engine.ts';

const TABLE_NAMES = ['Reference count table', 'Snapshot table', 'Active L1 table', 'Snapshot L1 table'];

const OPEN_TEXTS: Readonly<Record<number, (v: bigint) => string>> = {
  [Status.NOT_QCOW2]: () => 'Image is not in qcow2 format',
  [Status.BAD_VERSION]: (v) => `Unsupported qcow2 version ${v}`,
  [Status.BAD_CLUSTER_BITS]: (v) => `Unsupported cluster size: 2^${v}`,
  [Status.HEADER_TOO_SHORT]: () => 'qcow2 header too short',
  [Status.HEADER_EXCEEDS_CLUSTER]: () => 'qcow2 header exceeds cluster size',
  [Status.BAD_BACKING_OFFSET]: () => 'Invalid backing file offset',
  [Status.UNKNOWN_COMPRESSION]: (v) => `qcow2: unknown compression type: ${v}`,
  [Status.COMPRESSION_BIT_SET]: () => 'qcow2: Compression type incompatible feature bit must not be set',
  [Status.COMPRESSION_BIT_MISSING]: () => 'qcow2: Compression type incompatible feature bit must be set',
  [Status.CORRUPT_RW]: () => 'qcow2: Image is corrupt; cannot be opened read/write',
  [Status.BAD_SUBCLUSTER_SIZE]: (v) => `Unsupported subcluster size: ${v}`,
  [Status.REFCOUNT_ORDER]: () => 'Reference count entry width too large; may not exceed 64 bits',
  [Status.NO_REFCOUNT_TABLE]: () => 'Image does not contain a reference count table',
  [Status.TABLE_TOO_LARGE]: (v) => `${TABLE_NAMES[Number(v)]} too large`,
  [Status.TABLE_OFFSET_INVALID]: (v) => `${TABLE_NAMES[Number(v)]} offset invalid`,
  [Status.IMAGE_TOO_BIG]: () => 'Image is too big',
  [Status.L1_TOO_SMALL]: () => 'L1 table is too small',
};

/** The open error for engine status `status` with value `value` (UNSUPPORTED_FEATURE excepted). */
export function openError(status: number, value: bigint): QmpError {
  const text = OPEN_TEXTS[status];
  return genericError(text ? text(value) : `qcow2 engine failed with status ${status}`);
}

/** C's printf("%#x"): zero has no prefix. */
const hex = (n: number) => (n === 0 ? '0' : `0x${n.toString(16)}`);

/** The corruption message qcow2_signal_corruption would print for a failed map() answer. */
export function corruptionText(a: MapAnswer): string | undefined {
  const l2 = hex(a.bytes);
  const index = hex(a.host);
  switch (a.status) {
    case Status.L2_UNALIGNED:
      return `L2 table offset ${l2} unaligned (L1 index: ${index})`;
    case Status.CLUSTER_UNALIGNED:
      return `Cluster allocation offset ${hex(a.csize)} unaligned (L2 offset: ${l2}, L2 index: ${index})`;
    case Status.INVALID_SUBCLUSTER:
      // The doubled space is QEMU's.
      return `Invalid cluster entry found  (L2 offset: ${l2}, L2 index: ${index})`;
    case Status.ZERO_IN_V2:
      return `Zero cluster entry found in pre-v3 image (L2 offset: ${l2}, L2 index: ${index})`;
    case Status.DATA_FILE_MISMATCH:
      return (
        `External data file host cluster offset ${hex(a.csize)} does not match guest cluster ` +
        `offset: ${hex(a.guest)}, L2 index: ${index})`
      );
    case Status.COMPRESSED_WITH_DATA_FILE:
      return `Compressed cluster entry found in image with external data file (L2 offset: ${l2}, L2 index: ${index})`;
    default:
      return undefined;
  }
}

/** The EIO a request fails with when the image turned out to be corrupt, in QEMU's two wordings. */
export function corruptionError(message: string, fatal: boolean): BlockIOError {
  return new BlockIOError(
    'EIO',
    fatal
      ? `qcow2: Marking image as corrupt: ${message}; further corruption events will be suppressed`
      : `qcow2: Image is corrupt: ${message}; further non-fatal corruption events will be suppressed`,
  );
}

/** Runs a read of open; a failure becomes QEMU's "<what>: <strerror>" (error_setg_errno). */
export async function readOr<T>(op: () => Promise<T>, what: string): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof EngineError) throw openError(err.status, err.value);
    if (err instanceof QmpError && !(err instanceof BlockIOError)) throw err;
    throw genericError(`${what}: ${STRERROR[errnoOf(err)]}`);
  }
}
