/**
 * `blockgraph snapshot`: qemu-img snapshot. `-l` lists an image's internal snapshots in
 * qemu-img's table (block/qapi.c: bdrv_snapshot_dump), which `info` prints too. Creating,
 * applying and deleting snapshots (-c, -a, -d) write to the image and are refused for now.
 * As in qemu-img 7.2 the format is probed (there is no -f; --image-opts can name a driver).
 */
import type { SnapshotInfo } from '../block/driver.ts';
import { imageInfo } from '../block/node-info.ts';
import { BlockGraph } from '../graph/graph.ts';
import { sizeToStr } from './format.ts';
import { parseImageArgs } from './img-args.ts';
import { openImage, orCouldNotOpen } from './image-opts.ts';
import { CliExit, runReporting, type CliIo } from './program.ts';

/** The actions, by option letter, that change the image. */
const WRITING_ACTIONS: Readonly<Record<string, string>> = {
  c: 'creating a snapshot',
  a: 'applying a snapshot',
  d: 'deleting a snapshot',
};

export const USAGE =
  'usage: blockgraph snapshot [--object objectdef] [--image-opts] [-U] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename\n';

export async function run(args: string[], io: CliIo): Promise<number> {
  return runReporting(io, async () => {
    const parsed = parseImageArgs(args, 'la:c:d:hqU', []);
    if (parsed.values('h').length > 0) {
      io.out(USAGE);
      return 0;
    }
    const actions = parsed.values('l').map(() => 'l');
    for (const letter of Object.keys(WRITING_ACTIONS)) {
      actions.push(...parsed.values(letter).map(() => letter));
    }
    if (actions.length > 1) throw new CliExit("Cannot mix '-l', '-a', '-c', '-d'", true);
    if (parsed.operands.length !== 1) throw new CliExit('Expecting one image file name', true);
    const action = actions[0];
    if (action !== undefined && action !== 'l') {
      throw new CliExit(`-${action} (${WRITING_ACTIONS[action]}) is not supported yet`);
    }
    const spec = { ...parsed.image, filename: parsed.operands[0], readOnly: true };
    const graph = new BlockGraph();
    const image = await orCouldNotOpen(spec.filename, () => openImage(graph, spec));
    try {
      const snapshots = imageInfo(image.node).snapshots as SnapshotInfo[] | undefined;
      // dump_snapshots prints nothing at all for an image without snapshots.
      if (action === 'l' && snapshots?.length) io.out(snapshotList(snapshots));
      return 0;
    } finally {
      await graph.release(image.node);
    }
  });
}

/** "Snapshot list:", the header and one line per snapshot, as qemu-img info and snapshot -l. */
export function snapshotList(snapshots: readonly SnapshotInfo[]): string {
  const header =
    'ID'.padEnd(10) +
    'TAG'.padEnd(17) +
    'VM SIZE'.padStart(8) +
    'DATE'.padStart(20) +
    'VM CLOCK'.padStart(13) +
    'ICOUNT'.padStart(11);
  return `Snapshot list:\n${header}\n${snapshots.map((sn) => `${snapshotLine(sn)}\n`).join('')}`;
}

/** bdrv_snapshot_dump: "%-9s %-16s %8s%20s%13s%11s" of one snapshot. */
function snapshotLine(sn: SnapshotInfo): string {
  const clockMs = Math.floor((sn['vm-clock-sec'] * 1e9 + sn['vm-clock-nsec']) / 1e6);
  const secs = Math.floor(clockMs / 1000);
  const clock =
    `${pad2(Math.floor(secs / 3600))}:${pad2(Math.floor(secs / 60) % 60)}:${pad2(secs % 60)}.` +
    String(clockMs % 1000).padStart(3, '0');
  return (
    `${sn.id.padEnd(9)} ${sn.name.padEnd(16)} ` +
    sizeToStr(sn['vm-state-size']).padStart(8) +
    localDate(sn['date-sec']).padStart(20) +
    clock.padStart(13) +
    (sn.icount === undefined ? '' : String(sn.icount)).padStart(11)
  );
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** "%Y-%m-%d %H:%M:%S" in the local time zone (g_date_time_new_from_unix_local). */
function localDate(seconds: number): string {
  const d = new Date(seconds * 1000);
  const date = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  return `${date} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}
