/**
 * `blockgraph snapshot`: qemu-img snapshot. `-l` lists an image's internal snapshots in
 * qemu-img's table (block/qapi.c: bdrv_snapshot_dump), which `info` prints too; `-c`, `-a` and
 * `-d` create, apply and delete one through the format driver's snapshot operations, with
 * qemu-img 7.2's messages (qemu-img.c img_snapshot, block/snapshot.c).
 * As in qemu-img 7.2 the format is probed (there is no -f; --image-opts can name a driver).
 */
import type { BlockDriverOps, SnapshotInfo } from '../block/driver.ts';
import { BlockIOError, ERRNO_NUMBERS, errnoOf, ioError, STRERROR } from '../block/errors.ts';
import { imageInfo } from '../block/node-info.ts';
import { BlockGraph } from '../graph/graph.ts';
import { snapshotDumpHeader, snapshotDumpLine } from './format.ts';
import { parseImageArgs } from './img-args.ts';
import { openImage, orCouldNotOpen } from './image-opts.ts';
import { CliExit, runReporting, type CliIo } from './program.ts';

/** The actions, by option letter, that change the image. */
const WRITING_ACTIONS = ['c', 'a', 'd'] as const;

export const USAGE =
  'usage: blockgraph snapshot [--object objectdef] [--image-opts] [-U] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename\n';

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'la:c:d:hqU', []);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    const actions: Array<'l' | (typeof WRITING_ACTIONS)[number]> = parsed.values('l').map(() => 'l');
    for (const letter of WRITING_ACTIONS) {
      actions.push(...parsed.values(letter).map(() => letter));
    }
    if (actions.length > 1) throw new CliExit("Cannot mix '-l', '-a', '-c', '-d'", true);
    if (parsed.operands.length !== 1) throw new CliExit('Expecting one image file name', true);
    const action = actions[0];
    const readOnly = action === undefined || action === 'l';
    const spec = { ...parsed.image, filename: parsed.operands[0], readOnly };
    const graph = new BlockGraph(undefined, parsed.objects);
    const image = await orCouldNotOpen(spec.filename, () => openImage(graph, spec));
    try {
      const snapshots = (imageInfo(image.node).snapshots as SnapshotInfo[] | undefined) ?? [];
      if (readOnly) {
        // dump_snapshots prints nothing at all for an image without snapshots.
        if (action === 'l' && snapshots.length) io.out(snapshotList(snapshots));
        return 0;
      }
      const name = parsed.values(action)[0]!;
      await change(image.node.ops, action, name, snapshots);
      return 0;
    } finally {
      await graph.release(image.node);
    }
  });
}

/** -c, -a or -d of snapshot `name` on `ops`, failing with qemu-img's message. */
async function change(
  ops: BlockDriverOps,
  action: 'c' | 'a' | 'd',
  name: string,
  snapshots: readonly SnapshotInfo[],
): Promise<void> {
  if (action === 'c') {
    // bdrv_snapshot_create's failure is reported as "-errno (strerror)".
    await orExit(
      `Could not create snapshot '${name}': `,
      (err) => {
        const errno = errnoOf(err);
        return `-${ERRNO_NUMBERS[errno]} (${STRERROR[errno]})`;
      },
      () => (ops.snapshotCreate ? ops.snapshotCreate(name) : Promise.reject(unsupported())),
    );
  } else if (action === 'a') {
    await orExit(`Could not apply snapshot '${name}': `, gotoText, () =>
      ops.snapshotGoto
        ? ops.snapshotGoto(name)
        : Promise.reject(new Error('Block driver does not support snapshots')),
    );
  } else {
    // bdrv_snapshot_find looks the name up among the names only.
    const sn = snapshots.find((s) => s.name === name);
    if (!sn || !ops.snapshotDelete)
      throw new CliExit(`Could not delete snapshot '${name}': snapshot not found`);
    await orExit(
      `Could not delete snapshot '${name}': `,
      (err) => (err as Error).message,
      () => ops.snapshotDelete!(sn.id, sn.name),
    );
  }
}

function unsupported(): Error {
  return ioError('ENOTSUP');
}

/** bdrv_snapshot_goto: a driver's errno becomes "Failed to load snapshot: <strerror>". */
function gotoText(err: unknown): string {
  if (err instanceof BlockIOError) return `Failed to load snapshot: ${STRERROR[err.errno]}`;
  return (err as Error).message;
}

async function orExit(
  prefix: string,
  text: (err: unknown) => string,
  op: () => Promise<void>,
): Promise<void> {
  try {
    await op();
  } catch (err) {
    throw new CliExit(prefix + text(err));
  }
}

/** "Snapshot list:", the header and one line per snapshot, as qemu-img info and snapshot -l. */
export function snapshotList(snapshots: readonly SnapshotInfo[]): string {
  return `Snapshot list:\n${snapshotDumpHeader()}\n${snapshots.map((sn) => `${snapshotDumpLine(sn)}\n`).join('')}`;
}
