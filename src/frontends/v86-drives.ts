/**
 * -drive configurations → graph nodes → BlockBackends → v86 IDE disks. v86 has one IDE channel
 * with two hard disks (`hda` = bus 0 unit 0, `hdb` = bus 0 unit 1); every byte the guest reads or
 * writes on them goes through the backend and the graph.
 */
import type { BlockBackend } from '../block/backend.ts';
import { genericError } from '../block/errors.ts';
import type { DriveConfig } from '../config/drive.ts';
import { openDrive } from '../graph/drive.ts';
import type { BlockGraph } from '../graph/graph.ts';
import { V86Disk, type DiskErrorHandler } from './v86-disk.ts';

export type IdeSlot = 'hda' | 'hdb';

export interface IdeDrive {
  readonly slot: IdeSlot;
  readonly backend: BlockBackend;
  readonly disk: V86Disk;
}

/**
 * Opens `drive` in `graph` and makes the v86 disk for it. Throws QEMU's texts for what the
 * machine cannot take (another interface, a CD-ROM, an empty drive, a third disk) and for what
 * the graph refuses; nothing stays open in the graph on failure.
 */
export async function openIdeDrive(
  graph: BlockGraph,
  drive: DriveConfig,
  onError: DiskErrorHandler,
): Promise<IdeDrive> {
  const slot = ideSlot(drive);
  const backend = await openDrive(graph, drive);
  return { slot, backend, disk: new V86Disk(backend, onError) };
}

/** Flushes what the guest wrote (v86's IDE never sends FLUSH CACHE) and closes the drive. */
export async function closeIdeDrive(drive: IdeDrive): Promise<void> {
  try {
    await drive.backend.flush();
  } finally {
    await drive.backend.close();
  }
}

function ideSlot(drive: DriveConfig): IdeSlot {
  const { interface: iface, media, bus, unit } = drive.backend;
  if (iface !== 'ide' || media !== 'disk' || bus !== 0) {
    const kind = media === 'cdrom' ? ',media=cdrom' : '';
    throw genericError(`machine type does not support if=${iface}${kind},bus=${bus},unit=${unit}`);
  }
  return unit === 0 ? 'hda' : 'hdb';
}
