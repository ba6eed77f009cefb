/**
 * Removable media (qapi/block.json, blockdev.c): blockdev-open-tray, blockdev-close-tray,
 * blockdev-remove-medium, blockdev-insert-medium, blockdev-change-medium, eject. The drive is
 * named by `device` (the BlockBackend) or `id` (the device); the tray belongs to the device
 * (BlockDevOps, set by frontends/cdrom.ts), the medium to the BlockBackend. Texts, event order
 * and the silent no-ops are QEMU 7.2's, as its `-M pc` with an ide-cd answers them.
 */
import type { BlockBackend, BlockDevOps } from '../../block/backend.ts';
import { genericError, QmpError } from '../../block/errors.ts';
import { protocolOptions } from '../../config/filename.ts';
import type { BlockGraph } from '../../graph/graph.ts';
import { withProbedFormat } from '../../graph/probe.ts';
import type { ArgsSchema } from '../args.ts';
import type { QmpCommand } from './types.ts';
import { NOTHING } from './types.ts';

const DEVICE_OR_ID = {
  device: { type: 'str', optional: true, help: 'the drive (BlockBackend) name' },
  id: { type: 'str', optional: true, help: 'the device id' },
} as const satisfies ArgsSchema;
const FORCE = {
  force: { type: 'bool', optional: true, help: 'open even if the guest locked the tray' },
} as const;
const ID = { id: { type: 'str', help: 'the device id' } } as const;

/** A drive whose device has a tray, and the name errors call it by. */
interface TrayDrive {
  blk: BlockBackend;
  ops: BlockDevOps;
  name: string;
}

/** qmp_get_blk: the drive named by exactly one of `device` and `id`. */
export function lookupDrive(graph: BlockGraph, device?: string, id?: string): BlockBackend {
  if ((device === undefined) === (id === undefined))
    throw genericError("Need exactly one of 'device' and 'id'");
  const blk =
    device !== undefined
      ? graph.backends.get(device)
      : [...graph.backends.values()].find((b) => b.deviceId === id);
  if (!blk) throw new QmpError('DeviceNotFound', `Device '${device ?? id}' not found`);
  return blk;
}

/** The drive, which must have removable media with a tray. */
function trayDrive(graph: BlockGraph, device?: string, id?: string): TrayDrive {
  const blk = lookupDrive(graph, device, id);
  const name = id ?? device!;
  const ops = blk.deviceOps;
  if (!ops) throw genericError(`Device '${name}' is not removable`);
  return { blk, ops, name };
}

/**
 * do_open_tray: opens the tray unless the guest locked it; a locked tray gets an eject request,
 * and opens anyway with `force`. Returns false when it stayed shut (locked, no force).
 */
function openTray({ ops }: TrayDrive, force: boolean): boolean {
  if (ops.isTrayOpen()) return true;
  const locked = ops.isMediumLocked();
  if (locked) ops.ejectRequest(force);
  if (!locked || force) ops.changeMedia(false);
  return !locked || force;
}

/** blockdev_remove_medium: with the tray open, the medium leaves the drive. */
async function removeMedium(drive: TrayDrive): Promise<void> {
  if (!drive.ops.isTrayOpen()) throw genericError(`Tray of device '${drive.name}' is not open`);
  await drive.blk.remove();
}

function args(a: Record<string, unknown>) {
  return a as { device?: string; id?: string; force?: boolean };
}

export const blockdevOpenTray: QmpCommand = {
  name: 'blockdev-open-tray',
  help: "open a drive's tray (a tray the guest locked only gets an eject request, unless force)",
  args: { ...DEVICE_OR_ID, ...FORCE },
  run(ctx, a) {
    const { device, id, force } = args(a);
    openTray(trayDrive(ctx.graph, device, id), force === true);
    return NOTHING;
  },
};

export const blockdevCloseTray: QmpCommand = {
  name: 'blockdev-close-tray',
  help: "close a drive's tray, loading the medium in it",
  args: DEVICE_OR_ID,
  run(ctx, a) {
    const { device, id } = args(a);
    const { ops } = trayDrive(ctx.graph, device, id);
    if (ops.isTrayOpen()) ops.changeMedia(true);
    return NOTHING;
  },
};

export const blockdevRemoveMedium: QmpCommand = {
  name: 'blockdev-remove-medium',
  help: 'take the medium out of a drive whose tray is open',
  args: ID,
  async run(ctx, a) {
    await removeMedium(trayDrive(ctx.graph, undefined, a.id as string));
    return NOTHING;
  },
};

export const blockdevInsertMedium: QmpCommand = {
  name: 'blockdev-insert-medium',
  help: 'put a node (from blockdev-add) into a drive whose tray is open and empty',
  args: { ...ID, 'node-name': { type: 'str', help: 'the node to insert' } },
  run(ctx, a) {
    const nodeName = a['node-name'] as string;
    const node = ctx.graph.nodes.get(nodeName);
    if (!node) throw genericError(`Node '${nodeName}' not found`);
    const blk = lookupDrive(ctx.graph, undefined, a.id as string);
    insertMedium(blk, () => blk.insert(node));
    return NOTHING;
  },
};

/** qmp_blockdev_insert_medium's checks, then `insert`. */
function insertMedium(blk: BlockBackend, insert: () => void): void {
  const ops = blk.deviceOps;
  if (!ops) throw genericError('Device is not removable');
  if (!ops.isTrayOpen()) throw genericError('Tray of the device is not open');
  if (blk.root) throw genericError('There already is a medium in the device');
  insert();
}

export const eject: QmpCommand = {
  name: 'eject',
  help: 'open the tray and remove the medium (refused while the guest locks it, unless force)',
  args: { ...DEVICE_OR_ID, ...FORCE },
  async run(ctx, a) {
    const { device, id, force } = args(a);
    const drive = trayDrive(ctx.graph, device, id);
    if (!openTray(drive, force === true)) {
      throw genericError(
        `Device '${drive.name}' is locked and force was not specified, wait for tray to open and try again`,
      );
    }
    await removeMedium(drive);
    return NOTHING;
  },
};

export const blockdevChangeMedium: QmpCommand = {
  name: 'blockdev-change-medium',
  help: 'open the tray, replace the medium by an image file, close the tray',
  args: {
    ...DEVICE_OR_ID,
    filename: { type: 'str', help: 'the new image (a legacy filename: path or protocol:...)' },
    format: { type: 'str', optional: true, help: 'its format (probed when absent)' },
    ...FORCE,
    'read-only-mode': {
      type: { enum: ['retain', 'read-only', 'read-write'] },
      optional: true,
      help: 'how to open the image (default: as the current medium)',
    },
  },
  async run(ctx, a) {
    const { device, id, force } = args(a);
    const drive = trayDrive(ctx.graph, device, id);
    const readOnly = newMediumReadOnly(drive.blk, a['read-only-mode'] as string | undefined);
    const node = await openMedium(ctx.graph, a.filename as string, a.format as string | undefined, readOnly);
    try {
      if (!openTray(drive, force === true)) {
        throw genericError(
          `Device '${drive.name}' is locked and force was not specified, wait for tray to open and try again`,
        );
      }
      await removeMedium(drive);
      insertMedium(drive.blk, () => drive.blk.insert(node));
    } catch (err) {
      await ctx.graph.release(node);
      throw err;
    }
    drive.ops.changeMedia(true);
    return NOTHING;
  },
};

/** read-only-mode: `retain` keeps the current medium's mode (the drive's, when empty). */
function newMediumReadOnly(blk: BlockBackend, mode: string | undefined): boolean {
  if (mode === 'read-only') return true;
  if (mode === 'read-write') return false;
  return blk.root ? blk.root.readOnly : blk.readOnly;
}

/** The image of blockdev-change-medium, opened as -drive opens `file=` (format probed if absent). */
async function openMedium(
  graph: BlockGraph,
  filename: string,
  format: string | undefined,
  readOnly: boolean,
) {
  let options: Record<string, unknown> = { file: protocolOptions(filename), 'read-only': readOnly };
  if (format !== undefined) options.driver = format;
  else options = await withProbedFormat(graph, options, 'legacy');
  return graph.open(options, 'legacy');
}
