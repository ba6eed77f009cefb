/**
 * qcow2 images made by qemu-img and qemu-io for the CLI tests, in a test's temporary directory.
 * The raw base is written in full: the file protocol cannot see holes (map.test.ts), so a
 * sparse base would map differently from qemu-img for reasons that are not qcow2's.
 */
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { runTool } from './helpers.ts';

function must(cmd: string, args: string[], cwd: string): void {
  const r = runTool(cmd, args, cwd);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

function qemuIo(file: string, commands: string[], cwd: string): void {
  must('qemu-io', ['-f', 'qcow2', ...commands.flatMap((c) => ['-c', c]), file], cwd);
}

/**
 * base.raw (3 MiB) <- mid.qcow2 (4 MiB) <- top.qcow2 (6 MiB): data, zero writes, a discard and
 * a compressed cluster in the layers, each overlay larger than the image below it.
 */
export function makeChain(dir: string): void {
  const base = new Uint8Array(3 << 20);
  randomFillSync(base);
  writeFileSync(`${dir}/base.raw`, base);
  must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'mid.qcow2', '4M'], dir);
  qemuIo(
    'mid.qcow2',
    ['write -P 3 64k 128k', 'write -z 512k 64k', 'discard 0 64k', 'write -P 7 3M 64k'],
    dir,
  );
  must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', 'top.qcow2', '6M'], dir);
  qemuIo('top.qcow2', ['write -P 4 128k 64k', 'write -z 1M 64k', 'write -c -P 9 2M 64k'], dir);
}

/** snap.qcow2: two internal snapshots ("first" with ID 1, then one tagged "2") over changing data. */
export function makeSnapshots(dir: string): void {
  must('qemu-img', ['create', '-q', '-f', 'qcow2', 'snap.qcow2', '4M'], dir);
  qemuIo('snap.qcow2', ['write -P 1 0 64k'], dir);
  must('qemu-img', ['snapshot', '-c', 'first', 'snap.qcow2'], dir);
  qemuIo('snap.qcow2', ['write -P 2 0 64k', 'write -P 3 1M 64k'], dir);
  must('qemu-img', ['snapshot', '-c', '2', 'snap.qcow2'], dir);
  qemuIo('snap.qcow2', ['write -P 4 0 64k'], dir);
}

/** bitmaps.qcow2 (two persistent bitmaps) and datafile.qcow2 (raw external data file). */
export function makeFeatureImages(dir: string): void {
  must('qemu-img', ['create', '-q', '-f', 'qcow2', 'bitmaps.qcow2', '1M'], dir);
  must('qemu-img', ['bitmap', '--add', 'bitmaps.qcow2', 'b0'], dir);
  must('qemu-img', ['bitmap', '--add', '-g', '128k', '--disable', 'bitmaps.qcow2', 'other'], dir);
  const create = ['create', '-q', '-f', 'qcow2', '-o', 'data_file=datafile.data,data_file_raw=on'];
  must('qemu-img', [...create, 'datafile.qcow2', '1M'], dir);
  qemuIo('datafile.qcow2', ['write -P 5 64k 64k'], dir);
}
