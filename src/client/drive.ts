/**
 * A page-side handle on one drive in the worker. Buffers cross transferred, not cloned: `write`
 * detaches the ArrayBuffer behind the data it is given (all of it, if `data` is a view of part of
 * a larger buffer); `read` returns a buffer that was the worker's. Requests on one drive behave
 * as if applied one by one in call order (BlockBackend ordering), so a read issued after an
 * un-awaited write sees it — what v86's disk objects (get/set with callbacks) need.
 */
import { transfer } from 'comlink';
import type { DriveInfo } from '../worker/api.ts';
import type { WorkerCall } from './index.ts';

export class DriveHandle {
  readonly id: string;
  /** The node-name of the drive's root node. */
  readonly nodeName: string;
  /** Bytes, when the drive was made (v86 reads it synchronously as byteLength). */
  readonly size: number;
  readonly readOnly: boolean;

  constructor(
    info: DriveInfo,
    private readonly call: WorkerCall,
  ) {
    this.id = info.id;
    this.nodeName = info.nodeName;
    this.size = info.length;
    this.readOnly = info.readOnly;
  }

  /** `length` bytes at `offset`; zeros past the end, as QEMU pads. */
  read(offset: number, length: number): Promise<Uint8Array> {
    return this.call((w) => w.driveRead(this.id, offset, length));
  }

  /** Writes `data` at `offset`; its ArrayBuffer is transferred (detached here). */
  write(offset: number, data: Uint8Array): Promise<void> {
    return this.call((w) => w.driveWrite(this.id, offset, transfer(data, [data.buffer])));
  }

  flush(): Promise<void> {
    return this.call((w) => w.driveFlush(this.id));
  }

  discard(offset: number, bytes: number): Promise<void> {
    return this.call((w) => w.driveDiscard(this.id, offset, bytes));
  }

  /** Zeroes `bytes` at `offset`; with `unmap` the drive may deallocate them instead. */
  writeZeroes(offset: number, bytes: number, opts: { unmap?: boolean } = {}): Promise<void> {
    return this.call((w) => w.driveWriteZeroes(this.id, offset, bytes, opts.unmap ?? false));
  }

  /** The current length in bytes (it changes with block_resize). */
  length(): Promise<number> {
    return this.call((w) => w.driveLength(this.id));
  }

  /** Flushes and closes the drive; the handle is dead afterwards. */
  close(): Promise<void> {
    return this.call((w) => w.removeDrive(this.id));
  }
}
