/**
 * NBD throughput, both directions, side by side in one run on the same image (a raw file of
 * random data, served read-only over Unix sockets):
 *  - client: our nbd driver reading from qemu-nbd against QEMU's own client (`qemu-img bench`)
 *    reading from the same qemu-nbd: sequential 1 MiB reads and 4 KiB reads at queue depth 1
 *    (qemu-img bench has no random pattern: its 4 KiB reads step sequentially; ours are random,
 *    fixed seed, which only makes ours harder);
 *  - server: `qemu-img convert -O raw` reading from `blockgraph nbd` (in this process) against
 *    reading from qemu-nbd, best of `reps` runs each.
 * Prints MB/s, IOPS and the ratios ours/QEMU's.
 *
 *   npx tsx bench/nbd.ts [size-MiB=256] [random-reads=20000] [reps=3]
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveImage } from '../src/cli/nbd.ts';
import { BlockGraph } from '../src/graph/graph.ts';
import { protocolOptions } from '../src/config/filename.ts';
import { offsets } from './offsets.ts';

const MiB = 1 << 20;
const [sizeMiB = 256, randomReads = 20000, reps = 3] = process.argv.slice(2).map(Number);

function tool(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

/** `qemu-img bench` read throughput (bytes/s) for `count` requests of `size` bytes. */
function qemuBench(uri: string, count: number, size: number): number {
  const out = tool('qemu-img', [
    'bench',
    '-f',
    'raw',
    '-c',
    String(count),
    '-d',
    '1',
    '-s',
    String(size),
    uri,
  ]);
  const secs = Number(/Run completed in ([\d.]+) seconds/.exec(out)?.[1]);
  return (count * size) / secs;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

/** Our client: sequential 1 MiB and random 4 KiB reads, queue depth 1; bytes/s each. */
async function ourClient(uri: string, size: number): Promise<{ seq: number; rand: number }> {
  const graph = new BlockGraph();
  const node = await graph.open({ ...protocolOptions(uri), 'read-only': true });
  const big = new Uint8Array(MiB);
  const small = new Uint8Array(4096);
  const seqSecs = await timed(async () => {
    for (let at = 0; at < size; at += MiB) await node.read(at, big);
  });
  const rand = offsets(randomReads, size / 4096);
  const randSecs = await timed(async () => {
    for (const at of rand) await node.read(at, small);
  });
  await graph.release(node);
  return { seq: size / seqSecs, rand: (randomReads * 4096) / randSecs };
}

/** Best wall time of `qemu-img convert` from `uri`. */
function convertSecs(uri: string, out: string): number {
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    tool('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, out]);
    best = Math.min(best, (performance.now() - t) / 1000);
  }
  return best;
}

/** Runs `qemu-img convert` in a child without blocking our in-process server. */
async function convertSecsAsync(uri: string, out: string): Promise<number> {
  const { execFile } = await import('node:child_process');
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await new Promise<void>((resolve, reject) =>
      execFile('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, out], (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    best = Math.min(best, (performance.now() - t) / 1000);
  }
  return best;
}

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-bench-nbd-'));
try {
  const size = sizeMiB * MiB;
  const image = join(dir, 'image.raw');
  const data = new Uint8Array(size);
  for (let at = 0; at < size; at += 64 * 1024) randomFillSync(data.subarray(at, at + 64 * 1024));
  writeFileSync(image, data);
  const qsock = join(dir, 'qemu.sock');
  const pidFile = join(dir, 'qemu.pid');
  tool('qemu-nbd', [
    '--fork',
    `--pid-file=${pidFile}`,
    '-t',
    '-e',
    '4',
    '-r',
    '-f',
    'raw',
    '-k',
    qsock,
    image,
  ]);
  const qemuUri = `nbd+unix://?socket=${qsock}`;
  try {
    const ours = await ourClient(qemuUri, size);
    const theirSeq = qemuBench(qemuUri, sizeMiB, MiB);
    const their4k = qemuBench(qemuUri, randomReads, 4096);
    const osock = join(dir, 'ours.sock');
    const serving = await serveImage({
      image: { filename: image, format: 'raw', readOnly: true },
      address: { type: 'unix', path: osock },
      exportName: '',
      shared: 4,
      persistent: true,
    });
    const out = join(dir, 'out.raw');
    const fromOurs = await convertSecsAsync(`nbd+unix://?socket=${osock}`, out);
    const oursCopyOk = readFileSync(out).equals(data);
    const fromQemu = convertSecs(qemuUri, out);
    await serving.close();
    const mbs = (b: number) => (b / 1e6).toFixed(0).padStart(6);
    const iops = (b: number) => (b / 4096).toFixed(0).padStart(7);
    console.log(`image: ${sizeMiB} MiB raw, random data; Unix sockets; queue depth 1`);
    console.log(`client (server: qemu-nbd)        ours         qemu-img bench   ours/qemu`);
    console.log(
      `  sequential 1 MiB reads   ${mbs(ours.seq)} MB/s      ${mbs(theirSeq)} MB/s      ${(ours.seq / theirSeq).toFixed(2)}`,
    );
    console.log(
      `  4 KiB reads (ours random) ${iops(ours.rand)} IOPS   ${iops(their4k)} IOPS   ${(ours.rand / their4k).toFixed(2)}`,
    );
    console.log(`server (client: qemu-img convert) blockgraph nbd    qemu-nbd       qemu-nbd/ours time`);
    console.log(
      `  convert -O raw, best of ${reps}   ${fromOurs.toFixed(3)} s ${mbs(size / fromOurs)} MB/s  ${fromQemu.toFixed(3)} s ${mbs(size / fromQemu)} MB/s  ${(fromQemu / fromOurs).toFixed(2)}` +
        (oursCopyOk ? '' : '  COPY DIFFERS'),
    );
  } finally {
    process.kill(Number(readFileSync(pidFile, 'utf8')));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
