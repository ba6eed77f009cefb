/**
 * Hooks into v86's IDE device model (the IDEInterface objects of v86's src/ide.js; their property
 * names survive minification) for what its disk-object interface cannot express (DESIGN.md §5):
 *
 *  - ATA FLUSH CACHE (0xE7) and FLUSH CACHE EXT (0xEA) reach the disk's `flush()`; v86 answers
 *    them at once without telling the disk. IDENTIFY DEVICE advertises a write cache (words 82
 *    and 85, bit 5, as QEMU's ide_identify does when the drive has cache=writeback), because
 *    Linux sends no flushes at all to a disk without one.
 *  - A PIO write completes to the guest only once the disk has written it (v86 reports success
 *    before calling `set`), so a write error can still fail its command.
 *  - A request that fails (after the BlockBackend's rerror/werror policy let the error through)
 *    fails its command as QEMU's hw/ide does: an ATA disk aborts it (ide_rw_error/ide_dma_error:
 *    status DRDY|ERR, error ABRT, bus-master DMA stopped, interrupt); an ATAPI CD-ROM answers
 *    CHECK CONDITION (ide_atapi_io_error: NOT READY / MEDIUM NOT PRESENT for ENOMEDIUM, else
 *    ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE).
 * A device reset (the guest's timeout handling) makes every request still in flight stale: its
 * completion or failure no longer touches the registers.
 *
 * v86 seals its device objects (Object.seal), so a method cannot be replaced on the object; the
 * hooks wrap the method on its prototype instead (`intercept`), and the wrapper calls the hook of
 * the object it runs on, or v86's own method for objects without one (other emulators).
 */
import { errnoOf } from '../block/errors.ts';
import { V86Disk, type FailurePath } from './v86-disk.ts';

/** The members of v86's IDEInterface the hooks use. */
export interface V86IdeInterface {
  is_atapi: boolean;
  drive_connected: boolean;
  buffer: unknown;
  current_command: number;
  status_reg: number;
  error_reg: number;
  data: Uint8Array;
  data_length: number;
  data_pointer: number;
  data_end: number;
  write_dest: number;
  channel: { dma_status: number };
  ata_command(cmd: number): void;
  ata_abort_command(): void;
  atapi_check_condition_response(senseKey: number, asc: number): void;
  ata_advance(cmd: number, sectors: number): void;
  create_identify_packet(): void;
  device_reset(): void;
  do_write(): void;
  push_irq(): void;
  report_write(bytes: number): void;
}

/** A hook: gets v86's own method (bound to the object) and the call's arguments. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Interceptor = (original: (...args: any[]) => unknown, ...args: any[]) => unknown;

const hooksByObject = new WeakMap<object, Map<string, Interceptor>>();
const wrappedByPrototype = new WeakMap<object, Set<string>>();

/** Routes calls of `obj[name]` through `hook` (the prototype's method is wrapped once). */
export function intercept(obj: object, name: string, hook: Interceptor): void {
  const own = hooksByObject.get(obj) ?? new Map<string, Interceptor>();
  own.set(name, hook);
  hooksByObject.set(obj, own);
  const proto = Object.getPrototypeOf(obj) as Record<string, unknown>;
  const wrapped = wrappedByPrototype.get(proto) ?? new Set<string>();
  wrappedByPrototype.set(proto, wrapped);
  if (wrapped.has(name)) return;
  wrapped.add(name);
  const original = proto[name] as (...args: unknown[]) => unknown;
  proto[name] = function (this: object, ...args: unknown[]) {
    const hook = hooksByObject.get(this)?.get(name);
    return hook ? hook((...a: unknown[]) => original.apply(this, a), ...args) : original.apply(this, args);
  };
}

const ATA_FLUSH_CACHE = 0xe7;
const ATA_FLUSH_CACHE_EXT = 0xea;
/** Status: BSY|DRDY|DSC while a request runs, DRDY|DSC when it is done. */
const STATUS_BUSY = 0xd0;
const STATUS_READY = 0x50;
/** Bus-master IDE status: the DMA engine is active. */
const BM_ACTIVE = 0x01;
/** IDENTIFY DEVICE: word 82 (command set supported) and 85 (enabled), bit 5 = write cache. */
const WRITE_CACHE_BIT = 0x20;
const SENSE_NOT_READY = 0x02;
const SENSE_ILLEGAL_REQUEST = 0x05;
const ASC_MEDIUM_NOT_PRESENT = 0x3a;
const ASC_LOGICAL_BLOCK_OOR = 0x21;

export interface IdeHookOptions {
  /** The drive has its write cache on (cache=writeback): IDENTIFY says so. */
  writeCache: boolean;
}

/** The hooks of one IDE interface (a v86 hda, hdb or cdrom slot). */
export class IdeHooks {
  /** Counts device resets; a request remembers the count it was issued under. */
  private resets = 0;

  constructor(
    private readonly iface: V86IdeInterface,
    private readonly options: IdeHookOptions,
  ) {
    intercept(iface, 'device_reset', (reset) => {
      this.resets++;
      reset();
    });
    intercept(iface, 'ata_command', (command, cmd: number) => {
      if (this.isFlush(cmd)) this.flushCache(cmd);
      else command(cmd);
    });
    intercept(iface, 'create_identify_packet', (identify) => {
      identify();
      if (!iface.is_atapi) this.advertiseWriteCache();
    });
    intercept(iface, 'do_write', () => this.pioWrite());
  }

  /** The error path for disks on this interface (set as the disk's `failurePath`). */
  readonly failurePath: FailurePath = () => {
    const issued = this.resets;
    return (err) => {
      if (issued === this.resets) this.failCommand(err);
    };
  };

  private isFlush(cmd: number): boolean {
    const { iface } = this;
    return (
      (cmd === ATA_FLUSH_CACHE || cmd === ATA_FLUSH_CACHE_EXT) && !iface.is_atapi && iface.drive_connected
    );
  }

  /** FLUSH CACHE: busy until the disk's flush completes, then the interrupt (QEMU: ide_flush_cb). */
  private flushCache(cmd: number): void {
    const { iface } = this;
    const disk = iface.buffer;
    iface.current_command = cmd;
    iface.error_reg = 0;
    if (!(disk instanceof V86Disk)) {
      iface.status_reg = STATUS_READY;
      iface.push_irq();
      return;
    }
    iface.status_reg = STATUS_BUSY;
    const issued = this.resets;
    disk.flush(() => {
      if (issued !== this.resets) return;
      iface.status_reg = STATUS_READY;
      iface.push_irq();
    });
  }

  /**
   * The end of a PIO write command (v86's do_write, reordered): the sectors go to the disk, and
   * only when the disk has them do the registers advance and the interrupt signal completion.
   */
  private pioWrite(): void {
    const { iface } = this;
    const bytes = iface.data_length;
    const command = iface.current_command;
    const issued = this.resets;
    iface.status_reg = STATUS_BUSY;
    (iface.buffer as V86Disk).set(iface.write_dest, iface.data.subarray(0, bytes), () => {
      if (issued !== this.resets) return;
      iface.ata_advance(command, bytes / 512);
      iface.status_reg = STATUS_READY;
      iface.push_irq();
    });
    iface.report_write(bytes);
  }

  private advertiseWriteCache(): void {
    const data = this.iface.data;
    data[82 * 2] |= WRITE_CACHE_BIT;
    if (this.options.writeCache) data[85 * 2] |= WRITE_CACHE_BIT;
  }

  /** Ends the current command with the error the guest should see for `err`. */
  private failCommand(err: unknown): void {
    const { iface } = this;
    iface.channel.dma_status &= ~BM_ACTIVE;
    iface.current_command = -1;
    if (iface.is_atapi) {
      if (errnoOf(err) === 'ENOMEDIUM')
        iface.atapi_check_condition_response(SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
      else iface.atapi_check_condition_response(SENSE_ILLEGAL_REQUEST, ASC_LOGICAL_BLOCK_OOR);
      iface.push_irq();
      return;
    }
    iface.data_pointer = iface.data_end = iface.data_length = 0;
    iface.ata_abort_command();
  }
}
