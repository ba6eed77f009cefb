/**
 * Guest disk throughput, IDE against virtio-blk, in one boot of the test guest in Node: the guest
 * boots from an IDE copy of guest/out/guest.raw (hda) whose control block says `mode=bench`, and
 * reads 64 MiB with O_DIRECT (dd iflag=direct, 1 MiB blocks) from two 96 MiB raw data disks of
 * random bytes, one on IDE (hdb, /dev/sdb) and one on our virtio-blk-pci (/dev/vda). The guest
 * times each read itself and prints `BLOCKGRAPH-BENCH <disk> <bytes> <microseconds>`.
 * Prints MB/s for both and the virtio/IDE ratio (target ≥ 1.5).
 *
 *   npx tsx bench/guest-disk.ts [MiB=64]
 */
import { randomFillSync } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockBackend } from '../src/block/backend.ts';
import { writeGuestControl } from '../src/frontends/guest-control.ts';
import { V86Disk } from '../src/frontends/v86-disk.ts';
import { startNodeMachine } from '../src/frontends/v86-node.ts';
import { BlockGraph } from '../src/graph/graph.ts';

const MiB = 1 << 20;
const GUEST = join(import.meta.dirname, '../guest/out/guest.raw');
const DATA_DISK = 96 * MiB;
const TIMEOUT_MS = 300_000;
const DISKS = { ide: '/dev/sdb', virtio: '/dev/vda' } as const;

async function main(): Promise<void> {
  const bytes = Number(process.argv[2] ?? 64) * MiB;
  if (!existsSync(GUEST)) throw new Error(`${GUEST} missing: run npm run guest`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-guest-disk-'));
  try {
    const graph = new BlockGraph();
    const boot = await rawBackend(graph, 'hd0', copy(GUEST, join(dir, 'boot.raw')));
    await writeGuestControl(boot, {
      mode: 'bench',
      benchDisks: [DISKS.ide, DISKS.virtio],
      benchBytes: bytes,
    });
    const ide = await rawBackend(graph, 'hd1', dataDisk(join(dir, 'ide.raw')));
    const virtio = await rawBackend(graph, 'vd0', dataDisk(join(dir, 'virtio.raw')));
    const started = performance.now();
    const results = await runGuest(new V86Disk(boot), new V86Disk(ide), virtio);
    const wall = (performance.now() - started) / 1000;
    report(results, wall);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Boots the guest; resolves with the microseconds each disk's read took, by device path. */
async function runGuest(hda: V86Disk, hdb: V86Disk, virtio: BlockBackend): Promise<Map<string, number>> {
  const results = new Map<string, number>();
  let line = '';
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const machine = await startNodeMachine({
    memorySize: 64 * MiB,
    hda,
    hdb,
    virtio: [virtio],
    onSerialByte: (b) => {
      if (b !== 0x0a) return void (line += String.fromCharCode(b));
      const m = /^BLOCKGRAPH-BENCH (\S+) (\d+) (\d+)/.exec(line);
      if (m) results.set(m[1]!, Number(m[3]));
      if (/^BLOCKGRAPH-(CHECK \S+ FAIL|GUEST-DONE)/.test(line)) process.stderr.write(`${line}\n`);
      if (line.startsWith('BLOCKGRAPH-GUEST-DONE')) finish();
      line = '';
    },
  });
  const timer = setTimeout(finish, TIMEOUT_MS);
  await done;
  clearTimeout(timer);
  await machine.destroy();
  return results;
}

function report(results: Map<string, number>, wall: number): void {
  const bytes = Number(process.argv[2] ?? 64) * MiB;
  const mbs = (disk: string) => {
    const us = results.get(disk);
    return us === undefined ? undefined : bytes / 1e6 / (us / 1e6);
  };
  const [ide, virtio] = [mbs(DISKS.ide), mbs(DISKS.virtio)];
  const fmt = (v: number | undefined) => (v === undefined ? 'no result' : `${v.toFixed(1)} MB/s`);
  console.log(
    `guest O_DIRECT sequential read, ${bytes / MiB} MiB in 1 MiB blocks (boot + bench ${wall.toFixed(1)} s)`,
  );
  console.log(`  IDE        ${DISKS.ide}  ${fmt(ide)}`);
  console.log(`  virtio-blk ${DISKS.virtio}  ${fmt(virtio)}`);
  if (ide && virtio) console.log(`  virtio/IDE ${(virtio / ide).toFixed(2)}x (target >= 1.5x)`);
  else process.exitCode = 1;
}

async function rawBackend(graph: BlockGraph, name: string, filename: string): Promise<BlockBackend> {
  const node = await graph.open({ driver: 'raw', file: { driver: 'file', filename } });
  const backend = new BlockBackend(graph, name);
  backend.insert(node);
  backend.attachDevice(name);
  return backend;
}

function copy(from: string, to: string): string {
  copyFileSync(from, to);
  return to;
}

/** A raw disk of random bytes (a sparse file would let the host skip real reads). */
function dataDisk(path: string): string {
  writeFileSync(path, randomFillSync(new Uint8Array(DATA_DISK)));
  return path;
}

await main();
