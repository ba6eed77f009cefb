/**
 * A -drive's nodes (blockdev.c blockdev_init → bdrv_open): the format probed when none was given,
 * and with snapshot=on a temporary qcow2 overlay on top (block.c bdrv_append_temp_snapshot), so
 * the guest's writes go to memory and the image is never written. Shared by every place a -drive
 * becomes a graph: `blockgraph boot` in Node and the browser worker.
 */
import { BlockBackend, type BackendOptions } from '../block/backend.ts';
import { genericError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { setIoLimits } from '../block/throttle/backend-throttle.ts';
import type { DriveConfig } from '../config/drive.ts';
import { validateOptions } from '../config/validate.ts';
import { findDriver } from '../drivers/index.ts';
import type { BlockGraph } from './graph.ts';
import { withProbedFormat } from './probe.ts';

/**
 * A -drive: its nodes, and the BlockBackend named by its id over them with the drive's settings,
 * a device attached (so werror/rerror apply). Refused for a drive without medium.
 */
export async function openDrive(graph: BlockGraph, drive: DriveConfig): Promise<BlockBackend> {
  const blockdev = drive.blockdev;
  if (!blockdev) throw genericError('Device needs media, but drive is empty');
  const node = await openDriveNode(graph, { ...drive, blockdev });
  const { readOnly, werror, rerror, writeback, throttle } = drive.backend;
  const backend = await attachBackend(graph, drive.id, node, { readOnly, werror, rerror, writeback });
  // blockdev_init: the drive's I/O limits, in its throttling.group or a group named after it.
  if (throttle)
    await setIoLimits(backend, graph.objects.throttleGroups, throttle.config, throttle.group, true);
  return backend;
}

/**
 * A BlockBackend named `id` with `node` as its medium and a device `id` attached (QEMU's
 * -device drive=...). On failure `node` is released (closed unless someone else keeps it).
 */
export async function attachBackend(
  graph: BlockGraph,
  id: string,
  node: BlockNode,
  opts: BackendOptions,
): Promise<BlockBackend> {
  let backend: BlockBackend | undefined;
  try {
    backend = new BlockBackend(graph, id, opts);
    backend.insert(node);
  } catch (err) {
    await backend?.close();
    await graph.release(node);
    throw err;
  }
  backend.attachDevice(id);
  return backend;
}

/**
 * Opens the nodes of `drive` (which has a medium) and returns the one its BlockBackend takes: the
 * image's top node, or with snapshot=on the overlay whose backing child it is. The image is then
 * opened read-only, as QEMU opens it with backing-file options; the overlay is read-only only if
 * the drive is. Nothing stays open in the graph on failure.
 */
export async function openDriveNode(
  graph: BlockGraph,
  drive: DriveConfig & { blockdev: Record<string, unknown> },
): Promise<BlockNode> {
  let options = drive.snapshot ? { ...drive.blockdev, 'read-only': true } : drive.blockdev;
  // Without format=, the format is probed from the image's first sector, as -drive does.
  if (drive.probe) options = await withProbedFormat(graph, options, drive.source);
  const image = await graph.open(options, drive.source);
  if (!drive.snapshot) return image;
  try {
    return await appendTempSnapshot(graph, image, drive.backend.readOnly);
  } catch (err) {
    await graph.release(image);
    throw err;
  }
}

/**
 * A new qcow2 image in a `memory` node, as large as `image`, opened with `image` as its backing
 * child. Like QEMU's temporary overlay it ignores flushes (cache.no-flush: nothing to keep).
 */
async function appendTempSnapshot(
  graph: BlockGraph,
  image: BlockNode,
  readOnly: boolean,
): Promise<BlockNode> {
  const file = await graph.open({ driver: 'memory' });
  try {
    await createQcow2(file, image.length());
    return await graph.open({
      driver: 'qcow2',
      file: file.nodeName,
      backing: image.nodeName,
      'read-only': readOnly,
      cache: { direct: false, 'no-flush': true },
    });
  } catch (err) {
    await graph.release(file);
    throw err;
  }
}

async function createQcow2(file: BlockNode, size: number): Promise<void> {
  const creator = findDriver('qcow2')!.creator!;
  const options = validateOptions(
    creator.options,
    { file: file.nodeName, size },
    { source: 'qmp', path: '', driverName: 'qcow2' },
  );
  try {
    await creator.create(file, options, { children: new Map() });
  } catch (err) {
    throw genericError(`Could not create temporary overlay '${file.nodeName}': ${(err as Error).message}`);
  }
}
