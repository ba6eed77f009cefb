/**
 * QmpErrors across the worker boundary. comlink's own 'throw' handler keeps only an error's
 * message, name and stack, so a QmpError would arrive as a plain Error without its QMP class
 * (and a BlockIOError without the errno its error policy needs), and passes anything thrown that
 * is not an Error as it is. This wraps that handler.
 */
import { transferHandlers, type TransferHandler } from 'comlink';
import { BlockIOError, QmpError, type Errno, type QmpErrorClass } from '../block/errors.ts';

interface WireQmpError {
  qmpError: { name: string; errorClass: QmpErrorClass; message: string; errno?: Errno; stack?: string };
}

const comlinkThrow = transferHandlers.get('throw')!;

const qmpThrow: TransferHandler<unknown, unknown> = {
  canHandle: comlinkThrow.canHandle,
  // comlink hands over `{ value: thrown, [throwMarker]: 0 }`.
  serialize(thrown) {
    const { value } = thrown as { value: unknown };
    // comlink passes a thrown non-Error as is; it would surface as "[object Object]".
    if (!(value instanceof Error))
      return comlinkThrow.serialize({ ...(thrown as object), value: new Error(describe(value)) });
    if (!(value instanceof QmpError)) return comlinkThrow.serialize(thrown);
    const { name, errorClass, message, stack } = value;
    const errno = value instanceof BlockIOError ? value.errno : undefined;
    return [{ qmpError: { name, errorClass, message, errno, stack } } satisfies WireQmpError, []];
  },
  deserialize(wire) {
    if (!isWireQmpError(wire)) return comlinkThrow.deserialize(wire);
    const { name, errorClass, message, errno, stack } = wire.qmpError;
    const err = errno ? new BlockIOError(errno, message) : new QmpError(errorClass, message);
    err.name = name;
    if (stack) err.stack = stack;
    throw err;
  },
};

/**
 * Makes thrown QmpErrors (and BlockIOErrors) arrive with their class, message and errno.
 * Both sides of a comlink channel must call it; calling it again does nothing.
 */
export function registerErrorTransfer(): void {
  transferHandlers.set('throw', qmpThrow);
}

function isWireQmpError(wire: unknown): wire is WireQmpError {
  return typeof wire === 'object' && wire !== null && 'qmpError' in wire;
}

/** A message for a thrown value that is not an Error. */
function describe(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return `non-Error thrown: ${JSON.stringify(value)}`;
  } catch {
    return `non-Error thrown: ${String(value)}`;
  }
}
