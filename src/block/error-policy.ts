/**
 * rerror/werror policies (QEMU's blk_get_error_action, blk_error_action and the io-status
 * helpers in block/block-backend.c). In QEMU the devices apply these; in blockgraph the
 * BlockBackend applies them on behalf of the frontend attached to it.
 */
import { STRERROR, type Errno } from './errors.ts';

export type WriteErrorPolicy = 'report' | 'ignore' | 'stop' | 'enospc';
export type ReadErrorPolicy = 'report' | 'ignore' | 'stop';
/** QAPI BlockErrorAction. */
export type ErrorAction = 'ignore' | 'report' | 'stop';
/** QAPI BlockDeviceIoStatus. */
export type IoStatus = 'ok' | 'failed' | 'nospace';

/** What to do with a failed request: `enospc` stops only on ENOSPC and reports the rest. */
export function errorAction(policy: WriteErrorPolicy | ReadErrorPolicy, errno: Errno): ErrorAction {
  if (policy === 'enospc') return errno === 'ENOSPC' ? 'stop' : 'report';
  return policy;
}

/**
 * io-status is tracked (and shown by query-block) only when a device is attached and one of the
 * policies can stop the machine (blk_iostatus_is_enabled).
 */
export function iostatusEnabled(werror: WriteErrorPolicy, rerror: ReadErrorPolicy): boolean {
  return werror === 'stop' || werror === 'enospc' || rerror === 'stop';
}

/** The io-status after a stop for `errno`: the first error sticks until `cont` (blk_iostatus_set_err). */
export function iostatusAfterError(current: IoStatus, errno: Errno): IoStatus {
  if (current !== 'ok') return current;
  return errno === 'ENOSPC' ? 'nospace' : 'failed';
}

export type IoErrorEvent = {
  device: string;
  'node-name'?: string;
  operation: 'read' | 'write';
  action: ErrorAction;
  nospace?: boolean;
  reason: string;
};

/**
 * BLOCK_IO_ERROR's data (send_qmp_error_event), members in QAPI order; `nospace` is present
 * when io-status is tracked.
 */
export function ioErrorEvent(
  device: string,
  nodeName: string | undefined,
  isRead: boolean,
  action: ErrorAction,
  withIostatus: boolean,
  errno: Errno,
): IoErrorEvent {
  const data: Partial<IoErrorEvent> = { device };
  if (nodeName !== undefined) data['node-name'] = nodeName;
  data.operation = isRead ? 'read' : 'write';
  data.action = action;
  if (withIostatus) data.nospace = errno === 'ENOSPC';
  data.reason = STRERROR[errno];
  return data as IoErrorEvent;
}
