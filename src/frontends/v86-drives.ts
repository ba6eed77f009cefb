/**
 * -drive and -device configurations → v86's disk slots → BlockBackends and disk objects.
 *
 * v86's machine has one IDE controller with two channels: `hda` and `hdb` (ide.0 units 0 and 1,
 * hard disks; hdb only with hda), `cdrom` (ide.1 unit 0, an ATAPI CD-ROM that always exists,
 * QEMU's ide1-cd0), and a floppy controller with `fda` and `fdb`. QEMU's rules decide where a
 * drive goes — -drive if=ide|floppy is connected at its bus/unit, -device ide-hd|ide-cd|floppy
 * takes an if=none drive at its bus/unit or the first free one — with QEMU's texts for what QEMU
 * refuses, and our own for the positions v86 lacks. Every byte the guest reads or writes goes
 * through the backend and the graph.
 */
import { BlockBackend } from '../block/backend.ts';
import type { EventSink } from '../block/driver.ts';
import { genericError } from '../block/errors.ts';
import type { DeviceConfig, DeviceModel } from '../config/device.ts';
import type { DriveConfig } from '../config/drive.ts';
import { attachBackend, openDriveNode } from '../graph/drive.ts';
import type { BlockGraph } from '../graph/graph.ts';
import { CdromDevice, type V86AtapiInterface } from './cdrom.ts';
import { IdeHooks, type V86IdeInterface } from './ide-hooks.ts';
import { V86Disk, type DiskErrorHandler } from './v86-disk.ts';

/** `virtio`: a virtio-blk-pci device of ours (virtio-blk/v86-pci.ts), one per drive. */
export type V86Slot = 'hda' | 'hdb' | 'cdrom' | 'fda' | 'fdb' | 'virtio';

/** A drive placed in a v86 slot, and the id its device has (query-block `qdev`). */
export interface SlotAssignment {
  readonly slot: V86Slot;
  readonly drive: DriveConfig;
  readonly deviceId: string;
}

/** An opened slot: the backend, and the disk object v86 is started with (none: empty CD-ROM). */
export interface MachineDrive {
  readonly slot: V86Slot;
  readonly backend: BlockBackend;
  readonly disk?: V86Disk;
  /** cache=writeback: the IDE disk reports a write cache, so the guest sends flushes. */
  readonly writeCache: boolean;
}

/** Where each IDE position is in v86, and what it can hold. */
const IDE_SLOTS: Readonly<Record<string, { slot: V86Slot; model: DeviceModel }>> = {
  '0.0': { slot: 'hda', model: 'ide-hd' },
  '0.1': { slot: 'hdb', model: 'ide-hd' },
  '1.0': { slot: 'cdrom', model: 'ide-cd' },
};
const IDE_BUSES = 2;
const IDE_UNITS = 2;
const FLOPPY_SLOTS: readonly V86Slot[] = ['fda', 'fdb'];

/**
 * The floppy sizes v86's FDC knows (its disk-format table): it pads a smaller image by copying
 * its ArrayBuffer, which a disk object does not have, so only exact sizes can be served.
 */
const FLOPPY_SIZES = [
  163840, 184320, 204800, 327680, 368640, 409600, 419840, 430080, 655360, 737280, 819200, 839680, 849920,
  901120, 1064960, 1146880, 1228800, 1474560, 1511424, 1529856, 1638400, 1720320, 1763328, 1784832, 1802240,
  1884160, 1966080, 2949120, 3194880, 3276800, 3604480, 3932160,
];

/** An empty drive as QEMU's pc adds for its default CD-ROM (-drive if=ide,index=2,media=cdrom). */
const DEFAULT_CDROM_ID = 'ide1-cd0';

/**
 * Places `drives` (in command-line order) and `devices` on v86's machine. Throws the error of
 * the first that cannot be placed, wrapped by `optionError(kind, i, err)` so that the caller can
 * name the option it came from ("-device ...: "); errors about the machine as a whole are not.
 */
export function assignSlots(
  drives: readonly DriveConfig[],
  devices: readonly DeviceConfig[],
  optionError: (kind: 'drive' | 'device', index: number, err: unknown) => Error,
): SlotAssignment[] {
  const out: SlotAssignment[] = [];
  const ide = new Map<string, string>();
  drives.forEach((drive, i) => {
    let slot: V86Slot | undefined;
    try {
      slot = driveSlot(drive);
    } catch (err) {
      throw optionError('drive', i, err);
    }
    if (slot) out.push({ slot, drive, deviceId: drive.id });
    if (drive.backend.interface === 'ide') ide.set(`${drive.backend.bus}.${drive.backend.unit}`, drive.id);
  });
  const used = new Set<string>();
  devices.forEach((device, i) => {
    try {
      out.push(placeDevice(device, drives, ide, used, out.length));
    } catch (err) {
      throw optionError('device', i, err);
    }
  });
  if (out.some((a) => a.slot === 'hdb') && !out.some((a) => a.slot === 'hda')) {
    throw genericError('v86 has a disk at ide.0 unit 1 (hdb) only together with one at unit 0 (hda)');
  }
  if (!out.some((a) => a.slot === 'cdrom')) out.push(defaultCdrom());
  return out;
}

/** The slot a drive's interface connects it to (if=none: none until a -device takes it). */
function driveSlot(drive: DriveConfig): V86Slot | undefined {
  const { interface: iface, bus, unit } = drive.backend;
  if (iface === 'none') return undefined;
  if (iface === 'ide') return ideSlot(drive);
  if (iface === 'floppy') return floppySlot(drive, unit);
  if (iface === 'virtio') return 'virtio';
  throw genericError(`machine type does not support if=${iface},bus=${bus},unit=${unit}`);
}

/** -drive if=ide: v86 has a disk at ide.0 units 0 and 1, a CD-ROM at ide.1 unit 0. */
function ideSlot(drive: DriveConfig): V86Slot {
  const { media, bus, unit } = drive.backend;
  const place = IDE_SLOTS[`${bus}.${unit}`];
  if (!place || (place.model === 'ide-cd') !== (media === 'cdrom')) {
    const kind = media === 'cdrom' ? ',media=cdrom' : '';
    throw genericError(`machine type does not support if=ide${kind},bus=${bus},unit=${unit}`);
  }
  return place.slot;
}

function floppySlot(drive: DriveConfig, unit: number): V86Slot {
  const slot = FLOPPY_SLOTS[unit];
  if (!slot) throw genericError(`machine type does not support if=floppy,bus=0,unit=${unit}`);
  if (drive.backend.media === 'cdrom') throw genericError('v86 has no CD-ROM on the floppy controller');
  return slot;
}

/**
 * One -device: its drive (an if=none drive no other device took), its position (qdev's first
 * free unit on the first bus with one), checked as QEMU's ide_dev_initfn / floppy code does.
 */
function placeDevice(
  device: DeviceConfig,
  drives: readonly DriveConfig[],
  ide: Map<string, string>,
  used: Set<string>,
  index: number,
): SlotAssignment {
  const drive = device.drive === undefined ? undefined : findDrive(device, drives, used);
  const deviceId = device.id ?? drive?.id ?? `#device${index}`;
  if (device.driver === 'virtio-blk-pci') {
    // virtio_blk_device_realize's text; `drive` itself is required by parseDevice.
    if (!drive?.blockdev) throw genericError('Device needs media, but drive is empty');
    return { slot: 'virtio', drive, deviceId };
  }
  if (device.driver === 'floppy') {
    if (!drive) throw genericError('floppy needs a drive');
    return { slot: floppySlot(drive, device.unit ?? 0), drive, deviceId };
  }
  if (device.driver === 'ide-hd' && !drive?.blockdev)
    throw genericError('Device needs media, but drive is empty');
  const [bus, unit] = idePosition(device, ide);
  const place = IDE_SLOTS[`${bus}.${unit}`];
  if (place?.model !== device.driver) {
    throw genericError(
      `v86 has no ${device.driver} at ide.${bus} unit ${unit} (only ide-hd at ide.0 units 0 and 1, ide-cd at ide.1 unit 0)`,
    );
  }
  ide.set(`${bus}.${unit}`, deviceId);
  return { slot: place.slot, drive: drive ?? emptyCdrom(deviceId), deviceId };
}

/** The drive a device names: it must exist, be if=none, and be free. */
function findDrive(device: DeviceConfig, drives: readonly DriveConfig[], used: Set<string>): DriveConfig {
  const drive = drives.find((d) => d.id === device.drive);
  if (!drive) throw genericError(`Property '${device.driver}.drive' can't find value '${device.drive}'`);
  if (drive.backend.interface !== 'none') {
    throw genericError(
      `Drive '${drive.id}' is already in use because it has been automatically connected to another device ` +
        "(did you need 'if=none' in the drive options?)",
    );
  }
  if (used.has(drive.id)) throw genericError(`Drive '${drive.id}' is already in use by another device`);
  used.add(drive.id);
  return drive;
}

/** bus=ide.N and unit=U, or the first free unit (ide_bus_create_drive's search). */
function idePosition(device: DeviceConfig, ide: Map<string, string>): [number, number] {
  let buses = [0, 1];
  if (device.bus !== undefined) {
    const m = /^ide\.(\d+)$/.exec(device.bus);
    if (!m || Number(m[1]) >= IDE_BUSES) throw genericError(`Bus '${device.bus}' not found`);
    buses = [Number(m[1])];
  }
  if (device.unit !== undefined && device.unit >= IDE_UNITS) {
    throw genericError(`Can't create IDE unit ${device.unit}, bus supports only ${IDE_UNITS} units`);
  }
  for (const bus of buses) {
    const units = device.unit === undefined ? [0, 1] : [device.unit];
    const free = units.find((u) => !ide.has(`${bus}.${u}`));
    if (free !== undefined) return [bus, free];
    if (device.unit !== undefined || device.bus !== undefined) {
      throw genericError(`IDE unit ${units[units.length - 1]} is in use`);
    }
  }
  throw genericError('IDE unit 1 is in use');
}

function emptyCdrom(id: string): DriveConfig {
  return {
    id,
    blockdev: null,
    source: 'legacy',
    probe: false,
    snapshot: false,
    backend: {
      werror: 'enospc',
      rerror: 'report',
      readOnly: true,
      writeback: true,
      interface: 'ide',
      media: 'cdrom',
      index: 2,
      bus: 1,
      unit: 0,
    },
  };
}

function defaultCdrom(): SlotAssignment {
  return { slot: 'cdrom', drive: emptyCdrom(DEFAULT_CDROM_ID), deviceId: DEFAULT_CDROM_ID };
}

/**
 * Opens the BlockBackend of one slot (with its nodes, unless the drive is empty) and the disk
 * object v86 starts with. Nothing stays open in the graph on failure.
 */
export async function openMachineDrive(
  graph: BlockGraph,
  { slot, drive, deviceId }: SlotAssignment,
  onError: DiskErrorHandler,
): Promise<MachineDrive> {
  const removable = slot === 'cdrom';
  const { readOnly, werror, rerror, writeback } = drive.backend;
  const opts = { readOnly, werror, rerror, writeback, removable };
  // -device ide-cd without drive= has an anonymous BlockBackend, as in QEMU.
  const name = drive.id === deviceId || drive.blockdev ? drive.id : '';
  let backend: BlockBackend;
  if (drive.blockdev) {
    const node = await openDriveNode(graph, { ...drive, blockdev: drive.blockdev });
    backend = await attachBackend(graph, name, node, opts);
  } else {
    if (!removable) throw genericError('Device needs media, but drive is empty');
    backend = new BlockBackend(graph, name, opts);
  }
  if ((slot === 'fda' || slot === 'fdb') && !FLOPPY_SIZES.includes(backend.length())) {
    await backend.close();
    throw genericError(
      `v86 takes floppy images of standard sizes only (1474560 bytes, ...), not ${backend.length()}`,
    );
  }
  backend.attachDevice(deviceId, removable);
  // A virtio drive is served by the virtio-blk device from its backend, not by a disk object.
  const disk = backend.root && slot !== 'virtio' ? new V86Disk(backend, onError) : undefined;
  return { slot, backend, disk, writeCache: writeback };
}

/** Flushes what the guest wrote and closes the drive. */
export async function closeMachineDrive(drive: MachineDrive): Promise<void> {
  try {
    if (drive.backend.root && !drive.backend.readOnly) await drive.backend.flush();
  } finally {
    await drive.backend.close();
  }
}

/** The part of v86's device tree (`emulator.v86.cpu.devices`) the IDE hooks attach to. */
export interface V86Devices {
  ide: {
    primary?: { master: V86IdeInterface; slave: V86IdeInterface };
    secondary: { master: V86AtapiInterface };
  };
}

/**
 * Hooks v86's IDE interfaces of the machine's IDE drives (ide-hooks.ts) and makes the CD-ROM a
 * device with a tray (cdrom.ts). Call once v86 created its devices, before the CPU runs.
 */
export function hookMachineDrives(
  devices: V86Devices,
  drives: readonly MachineDrive[],
  emit: EventSink,
  onError: DiskErrorHandler,
): void {
  for (const drive of drives) {
    const iface = ideInterface(devices, drive.slot);
    if (!iface) continue;
    const hooks = new IdeHooks(iface, { writeCache: drive.writeCache });
    if (drive.disk) drive.disk.failurePath = hooks.failurePath;
    if (drive.slot === 'cdrom') {
      new CdromDevice(iface as V86AtapiInterface, drive.backend, hooks, emit, onError);
    }
  }
}

function ideInterface(devices: V86Devices, slot: V86Slot): V86IdeInterface | undefined {
  if (slot === 'hda') return devices.ide.primary?.master;
  if (slot === 'hdb') return devices.ide.primary?.slave;
  if (slot === 'cdrom') return devices.ide.secondary.master;
  return undefined;
}
