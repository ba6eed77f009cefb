/**
 * Read throughput through a BlockBackend: raw over memory against qcow2 (64 KiB clusters) over
 * memory, holding the same guest data, side by side in one run. Patterns: sequential 1 MiB reads
 * over the whole disk, and random 4 KiB reads (fixed seed, queue depth 1), each after a warm-up
 * pass so the qcow2 L2 cache is warm. Prints MB/s, IOPS and the qcow2/raw ratio (target >= 0.9).
 * The qcow2 half runs once the qcow2 driver is registered.
 *
 *   npx tsx bench/io.ts [size-MiB=256] [random-reads=50000]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockBackend } from '../src/block/backend.ts';
import { findDriver } from '../src/drivers/index.ts';
import { BlockGraph } from '../src/graph/graph.ts';
import { offsets } from './offsets.ts';

const MiB = 1 << 20;

interface Result {
  seqMBs: number;
  randIops: number;
}

/** A memory node named `store` holding `bytes`. */
async function fillStore(graph: BlockGraph, store: string, bytes: Uint8Array): Promise<void> {
  const node = await graph.open({ driver: 'memory', store, size: bytes.length });
  for (let at = 0; at < bytes.length; at += 16 * MiB) await node.write(at, bytes.subarray(at, at + 16 * MiB));
  await graph.release(node);
}

/** The image `qemu-img convert -O <format>` makes of `raw`, as bytes. */
function converted(raw: string, format: string, dir: string): Uint8Array {
  const out = join(dir, `image.${format}`);
  const args = ['convert', '-f', 'raw', '-O', format, '-o', 'cluster_size=65536', raw, out];
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return readFileSync(out);
}

async function run(blk: BlockBackend, randomReads: number): Promise<Result> {
  const size = blk.length();
  const big = new Uint8Array(MiB);
  const small = new Uint8Array(4096);
  const seq = async (): Promise<void> => {
    for (let at = 0; at < size; at += MiB) await blk.read(at, big);
  };
  const rand = offsets(randomReads, size / 4096);
  const random = async (): Promise<void> => {
    for (const at of rand) await blk.read(at, small);
  };
  await seq();
  let t = performance.now();
  await seq();
  const seqMBs = size / 1e6 / ((performance.now() - t) / 1000);
  await random();
  t = performance.now();
  await random();
  const randIops = randomReads / ((performance.now() - t) / 1000);
  return { seqMBs, randIops };
}

async function open(graph: BlockGraph, driver: string, store: string): Promise<BlockBackend> {
  const node = await graph.open({ driver, 'read-only': true, file: { driver: 'memory', store } });
  const blk = new BlockBackend(graph, '', { readOnly: true });
  blk.insert(node);
  return blk;
}

async function main(): Promise<void> {
  const sizeMiB = Number(process.argv[2] ?? 256);
  const randomReads = Number(process.argv[3] ?? 50000);
  const dir = mkdtempSync(join(tmpdir(), 'blockgraph-bench-'));
  try {
    // Every cluster holds data, so both images read the same bytes from memory.
    const raw = join(dir, 'image.raw');
    const fill = spawnSync('dd', ['if=/dev/urandom', `of=${raw}`, 'bs=1M', `count=${sizeMiB}`]);
    if (fill.status !== 0) throw new Error(String(fill.stderr));
    const graph = new BlockGraph();
    await fillStore(graph, 'bench-raw', readFileSync(raw));
    const results: [string, Result][] = [
      ['raw', await run(await open(graph, 'raw', 'bench-raw'), randomReads)],
    ];
    if (findDriver('qcow2')) {
      await fillStore(graph, 'bench-qcow2', converted(raw, 'qcow2', dir));
      results.push(['qcow2', await run(await open(graph, 'qcow2', 'bench-qcow2'), randomReads)]);
    } else {
      console.log('(qcow2 driver not registered yet: qcow2 half skipped)');
    }
    console.log(`${sizeMiB} MiB image in memory, ${randomReads} random reads, warm:`);
    for (const [name, r] of results) {
      console.log(
        `  ${name.padEnd(6)} sequential 1 MiB: ${r.seqMBs.toFixed(0).padStart(6)} MB/s   ` +
          `random 4 KiB: ${r.randIops.toFixed(0).padStart(7)} IOPS`,
      );
    }
    if (results.length === 2) {
      const [[, raw], [, q]] = results;
      console.log(
        `  qcow2/raw  sequential ${(q.seqMBs / raw.seqMBs).toFixed(2)}x, random ${(q.randIops / raw.randIops).toFixed(2)}x` +
          ' (target >= 0.9x)',
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
