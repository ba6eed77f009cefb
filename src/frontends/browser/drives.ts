/**
 * Booting v86 in the page on drives of the blockgraph Worker. An IDE drive handle becomes a
 * V86Disk (the disk object the Node boot uses) with the IDE hooks (ide-hooks.ts: the guest's
 * FLUSH CACHE reaches the drive, a failed request becomes an ATA error); a virtio drive handle
 * is served by a virtio-blk-pci device of ours (virtio-blk/v86-pci.ts). Either way every byte the
 * guest reads or writes goes guest → device → drive handle → worker → BlockBackend → graph. The
 * machine follows the graph's run state: a STOP event (werror/rerror=stop, QMP `stop`) pauses
 * it, RESUME runs it.
 */
import type { V86 } from 'v86';
import type { BlockgraphClient, DriveHandle, QmpEvent } from '../../client/index.ts';
import { IdeHooks, type V86IdeInterface } from '../ide-hooks.ts';
import { V86Disk, type DiskBackend, type DiskErrorHandler } from '../v86-disk.ts';
import type { VirtioBlkBackend } from '../virtio-blk/request.ts';
import { attachVirtioBlk } from '../virtio-blk/v86-pci.ts';
import { startBrowserMachine, type BrowserMachine, type BrowserMachineOptions } from './machine.ts';

export type IdeSlot = 'hda' | 'hdb' | 'cdrom';

export interface DriveBootOptions extends Omit<BrowserMachineOptions, IdeSlot | 'fda' | 'onLoaded'> {
  hda?: DriveHandle;
  hdb?: DriveHandle;
  /**
   * A read-only medium in the ATAPI CD-ROM for the machine's life. The tray (QMP eject,
   * blockdev-change-medium, ...) is not modelled in the browser: the worker's BlockBackend has
   * no device ops that could reach v86 on the page (cdrom.ts is the in-process model).
   */
  cdrom?: DriveHandle;
  /** The first floppy drive's disk (a standard floppy size; without IDE disks SeaBIOS boots it). */
  fda?: DriveHandle;
  /** Data disks on virtio-blk-pci devices, in PCI slot order (the guest's vda, vdb, ...). */
  virtio?: readonly DriveHandle[];
  /** A request that failed after the drive's error policy let it through (default: console). */
  onDiskError?: DiskErrorHandler;
}

export interface DriveMachine extends BrowserMachine {
  /** The IDE disk objects v86 was given, with their request counters. */
  readonly disks: Partial<Record<IdeSlot, V86Disk>>;
}

/** v86's IDE channels (`emulator.v86.cpu.devices.ide.primary`, `.secondary`; not in v86's .d.ts). */
interface V86Internals {
  v86: { cpu: { devices: { ide: Partial<Record<'primary' | 'secondary', IdeChannel>> } } };
}
type IdeChannel = Partial<Record<'master' | 'slave', V86IdeInterface>>;

/** Where v86 puts each disk: channel and unit. */
const IDE_UNITS = {
  hda: ['primary', 'master'],
  hdb: ['primary', 'slave'],
  cdrom: ['secondary', 'master'],
} as const;
const IDE_SLOTS = Object.keys(IDE_UNITS) as IdeSlot[];

/** Starts v86 with `opts`' drives; destroying the machine leaves the drives open. */
export async function bootFromDrives(
  client: BlockgraphClient,
  opts: DriveBootOptions,
): Promise<DriveMachine> {
  const disks: Partial<Record<IdeSlot, V86Disk>> = {};
  for (const slot of IDE_SLOTS) {
    const handle = opts[slot];
    if (handle) disks[slot] = new V86Disk(driveBackend(handle), opts.onDiskError);
  }
  const machine = await startBrowserMachine({
    memorySize: opts.memorySize,
    assets: opts.assets,
    screenContainer: opts.screenContainer,
    ...disks,
    fda: opts.fda && new V86Disk(driveBackend(opts.fda), opts.onDiskError),
    onLoaded: (emulator) => {
      hookIdeDisks(emulator, disks);
      for (const handle of opts.virtio ?? []) attachVirtioBlk(emulator, driveBackend(handle));
    },
  });
  const unfollow = client.onEvent((event) => followRunState(machine, event));
  return {
    ...machine,
    disks,
    destroy: async () => {
      unfollow();
      await machine.destroy();
    },
  };
}

/**
 * A drive handle as the BlockBackend the IDE and virtio-blk devices expect; the handle keeps
 * the call order, which they rely on.
 */
export function driveBackend(handle: DriveHandle): DiskBackend & VirtioBlkBackend {
  return {
    readOnly: handle.readOnly,
    length: () => handle.size,
    read: async (offset, dst) => dst.set(await handle.read(offset, dst.length)),
    // Both devices hand over a buffer of their own, so transferring (detaching) it is safe.
    write: (offset, src) => handle.write(offset, src),
    flush: () => handle.flush(),
    discard: (offset, bytes) => handle.discard(offset, bytes),
    writeZeroes: (offset, bytes, opts) => handle.writeZeroes(offset, bytes, opts),
  };
}

/**
 * Hooks v86's IDE interfaces of the machine's disks. The disk is said to have a write cache
 * whatever the drive's cache mode: with cache=writethrough every write is flushed already and a
 * guest flush costs nothing.
 */
function hookIdeDisks(emulator: V86, disks: Partial<Record<IdeSlot, V86Disk>>): void {
  const { ide } = (emulator as unknown as V86Internals).v86.cpu.devices;
  for (const slot of IDE_SLOTS) {
    const [channel, unit] = IDE_UNITS[slot];
    const iface = ide[channel]?.[unit];
    const disk = disks[slot];
    if (disk && iface) disk.failurePath = new IdeHooks(iface, { writeCache: true }).failurePath;
  }
}

function followRunState(machine: BrowserMachine, event: QmpEvent): void {
  if (event.event === 'STOP') void machine.pause();
  else if (event.event === 'RESUME') void machine.resume();
}
