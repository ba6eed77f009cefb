/**
 * The ATAPI CD-ROM (v86's secondary master, QEMU's ide1-cd0) as a device with a tray, over a
 * read-only BlockBackend: QEMU's ide-cd tray model (hw/ide/atapi.c, ide_cd_change_cb) on top of
 * v86's `eject`/`set_cdrom`. The tray state is ours; v86 only learns whether a medium is there:
 * a medium is given to v86 (as a new V86Disk, since v86 sizes the disc from it) when the tray
 * closes over one, and taken away when the tray opens. DEVICE_TRAY_MOVED is emitted on every
 * tray movement, from QMP (media.ts) or from the guest (START STOP UNIT with LoEj).
 * The guest's PREVENT ALLOW MEDIUM REMOVAL is tracked as the lock QMP `eject` respects.
 */
import type { BlockBackend, BlockDevOps } from '../block/backend.ts';
import type { EventSink } from '../block/driver.ts';
import { intercept, type IdeHooks, type V86IdeInterface } from './ide-hooks.ts';
import { V86Disk, type DiskErrorHandler } from './v86-disk.ts';

/** The members of v86's IDEInterface the CD-ROM uses beyond the IDE hooks'. */
export interface V86AtapiInterface extends V86IdeInterface {
  /** 2 after a media change: the next commands report NOT READY, then UNIT ATTENTION. */
  medium_changed: number;
  atapi_handle(): void;
  set_cdrom(disk: unknown): void;
}

const PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1e;
const START_STOP_UNIT = 0x1b;
/** START STOP UNIT byte 4: Start, LoEj, and the power condition (eject only when it is 0). */
const START = 0x01;
const LOEJ = 0x02;
const POWER_CONDITION = 0xf0;
const STATUS_ERR = 0x01;
const SENSE_NOT_READY = 0x02;
const SENSE_ILLEGAL_REQUEST = 0x05;
const ASC_MEDIA_REMOVAL_PREVENTED = 0x53;

export class CdromDevice implements BlockDevOps {
  private trayOpen = false;
  private locked = false;

  /**
   * Takes over `iface` (already hooked by `hooks`), whose v86 medium is `initial` (the disk v86
   * was started with, if the drive had a medium), and registers as `backend`'s device ops.
   */
  constructor(
    private readonly iface: V86AtapiInterface,
    private readonly backend: BlockBackend,
    private readonly hooks: IdeHooks,
    private readonly emit: EventSink,
    private readonly onError: DiskErrorHandler,
  ) {
    intercept(iface, 'atapi_handle', (handle) => this.atapiCommand(handle));
    backend.setDevOps(this);
  }

  /** A V86Disk for the backend's current medium, with this drive's error path. */
  newDisk(): V86Disk {
    const disk = new V86Disk(this.backend, this.onError);
    disk.failurePath = this.hooks.failurePath;
    return disk;
  }

  changeMedia(load: boolean): void {
    this.moveTray(!load);
  }

  /** v86 has no GET EVENT STATUS NOTIFICATION to pass the request on; only `force` unlocks. */
  ejectRequest(force: boolean): void {
    if (force) this.locked = false;
  }

  isTrayOpen(): boolean {
    return this.trayOpen;
  }

  isMediumLocked(): boolean {
    return this.locked;
  }

  /**
   * Moves the tray, giving v86 the medium or taking it away. The registers are left alone, as
   * QEMU's ide_cd_change_cb leaves them (v86's own eject/set_cdrom set ERR|DRQ in the status,
   * which would end a command in progress with an error).
   */
  private moveTray(open: boolean): void {
    const { iface } = this;
    if (open && iface.buffer) {
      // What v86's START STOP UNIT does to eject.
      iface.buffer = null;
      iface.medium_changed = 2;
    } else if (!open && this.backend.root && !iface.buffer) {
      const { status_reg, error_reg } = iface;
      iface.set_cdrom(this.newDisk());
      Object.assign(iface, { status_reg, error_reg });
    }
    if (open === this.trayOpen) return;
    this.trayOpen = open;
    this.emit('DEVICE_TRAY_MOVED', {
      device: this.backend.name,
      'tray-open': open,
      id: this.backend.deviceId ?? '',
    });
  }

  /**
   * v86's ATAPI command handler, with the tray commands ours: v86 runs every command (START STOP
   * UNIT without its eject bit); a command it did not refuse then takes effect on the tray
   * (QEMU: cmd_prevent_allow_medium_removal, cmd_start_stop_unit).
   */
  private atapiCommand(handle: () => unknown): void {
    const { iface } = this;
    const command = iface.data[0]!;
    const arg = iface.data[4]!;
    if (command === START_STOP_UNIT) iface.data[4] = arg & ~LOEJ;
    handle();
    if (iface.status_reg & STATUS_ERR) return;
    if (command === PREVENT_ALLOW_MEDIUM_REMOVAL) this.locked = (arg & 1) === 1;
    if (command === START_STOP_UNIT && arg & LOEJ && !(arg & POWER_CONDITION)) {
      const open = !(arg & START);
      if (open && !this.trayOpen && this.locked) {
        const sense = this.backend.root ? SENSE_NOT_READY : SENSE_ILLEGAL_REQUEST;
        iface.atapi_check_condition_response(sense, ASC_MEDIA_REMOVAL_PREVENTED);
        return;
      }
      this.moveTray(open);
    }
  }
}
