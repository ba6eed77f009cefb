/**
 * qcow2 write throughput vs raw on the same medium (a file): random 4 KiB writes into a fresh
 * qcow2 (allocating), into a fully allocated one (in place), and into a raw image; and sequential
 * 4 KiB writes vs `qemu-img bench -w -d 1 -s 4k` (queue depth 1). Prints the ratios.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockGraph } from '../src/graph/graph.ts';

const N = 20000;
const SIZE = 1 << 30;
const dir = mkdtempSync(join(tmpdir(), 'bench-qcow2w-'));
const path = (n: string) => join(dir, n);

async function run(
  format: 'qcow2' | 'raw',
  name: string,
  offsets: number[],
  prefill: boolean,
): Promise<number> {
  execFileSync('qemu-img', ['create', '-q', '-f', format, path(name), String(SIZE)]);
  const graph = new BlockGraph();
  const node = await graph.open({ driver: format, file: { driver: 'file', filename: path(name) } });
  const buf = new Uint8Array(4096).fill(0x5a);
  if (prefill) for (const at of offsets) await node.write(at, buf);
  const t = performance.now();
  for (const at of offsets) await node.write(at, buf);
  await node.flush();
  const secs = (performance.now() - t) / 1000;
  await graph.release(node);
  return N / secs;
}

const span = 256 << 20;
const random = Array.from({ length: N }, () => Math.floor(Math.random() * (span / 4096)) * 4096);
const sequential = Array.from({ length: N }, (_, i) => i * 4096);
const raw = await run('raw', 'r.raw', random, false);
const alloc = await run('qcow2', 'a.qcow2', random, false);
const inPlace = await run('qcow2', 'b.qcow2', random, true);
const seq = await run('qcow2', 's.qcow2', sequential, false);
execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path('q.qcow2'), String(SIZE)]);
const t = performance.now();
execFileSync('qemu-img', [
  'bench',
  '-w',
  '-d',
  '1',
  '-s',
  '4k',
  '-c',
  String(N),
  '-f',
  'qcow2',
  path('q.qcow2'),
]);
const qemu = N / ((performance.now() - t) / 1000);
const f = (x: number) => `${Math.round(x)} IOPS`;
console.log(`random 4k raw:               ${f(raw)}`);
console.log(`random 4k qcow2 allocating:  ${f(alloc)}  ratio ${(alloc / raw).toFixed(2)} (target >= 0.5)`);
console.log(
  `random 4k qcow2 allocated:   ${f(inPlace)}  ratio ${(inPlace / raw).toFixed(2)} (target >= 0.9)`,
);
console.log(
  `sequential 4k qcow2:         ${f(seq)}  vs qemu-img bench ${f(qemu)}  ratio ${(seq / qemu).toFixed(2)} (target >= 0.5)`,
);
rmSync(dir, { recursive: true, force: true });
