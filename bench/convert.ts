/**
 * `blockgraph convert -O raw` against `qemu-img convert -O raw` on the same source, side by side
 * in one run: wall time and peak RSS of each process (GNU time's %e and %M), and their ratios.
 * Sources: a 1 GiB qcow2 holding 512 MiB of data (8 MiB of data in every 16 MiB), the same
 * image as a sparse raw file, and a 4 TiB qcow2 with 64 MiB of data; the qcow2 cases run once
 * the qcow2 driver is registered. Each output is checked with `qemu-img compare`.
 * Targets (issue 3): wall time <= 1.5x qemu-img's; peak RSS <= 150 MiB whatever the image size.
 *
 *   npx tsx bench/convert.ts [repetitions=3]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findDriver } from '../src/drivers/index.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'blockgraph.js');
const MiB = 1 << 20;

interface Sample {
  seconds: number;
  rssMiB: number;
}

/** Runs `cmd args` under GNU time; throws with its stderr if it fails. */
function timed(cmd: string, args: string[], dir: string): Sample {
  const report = join(dir, 'time.txt');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', report, cmd, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  const [seconds, kib] = readFileSync(report, 'utf8').trim().split(/\s+/).map(Number);
  return { seconds, rssMiB: kib / 1024 };
}

function tool(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
}

/** A qcow2 of `size` with `chunk` bytes of patterned data at the start of every `stride`. */
function makeQcow2(path: string, size: string, chunk: number, stride: number, count: number): void {
  tool('qemu-img', ['create', '-q', '-f', 'qcow2', path, size]);
  const writes = Array.from({ length: count }, (_, i) => ['-c', `write -P ${i + 1} ${i * stride} ${chunk}`]);
  tool('qemu-io', ['-f', 'qcow2', ...writes.flat(), path]);
}

/** The best wall time and the worst peak RSS of `reps` runs, outputs compared with the source. */
function measure(
  cmd: string,
  args: (out: string) => string[],
  src: string,
  dir: string,
  reps: number,
): Sample {
  const out = join(dir, 'out.raw');
  let best: Sample = { seconds: Infinity, rssMiB: 0 };
  for (let i = 0; i < reps; i++) {
    rmSync(out, { force: true });
    const s = timed(cmd, args(out), dir);
    best = { seconds: Math.min(best.seconds, s.seconds), rssMiB: Math.max(best.rssMiB, s.rssMiB) };
  }
  const cmp = spawnSync('qemu-img', ['compare', src, out], { encoding: 'utf8' });
  if (cmp.status !== 0) throw new Error(`${cmd}: output differs from ${src}: ${cmp.stdout}${cmp.stderr}`);
  rmSync(out, { force: true });
  return best;
}

function main(): void {
  const reps = Number(process.argv[2] ?? 3);
  const dir = mkdtempSync(join(tmpdir(), 'blockgraph-bench-'));
  try {
    const qcow2 = join(dir, 'half.qcow2');
    makeQcow2(qcow2, '1G', 8 * MiB, 16 * MiB, 64);
    const raw = join(dir, 'half.raw');
    tool('qemu-img', ['convert', '-O', 'raw', qcow2, raw]);
    const cases: [string, string, string][] = [['1 GiB raw, 512 MiB data (sparse file)', raw, 'raw']];
    if (findDriver('qcow2')) {
      const huge = join(dir, 'huge.qcow2');
      makeQcow2(huge, '4T', 8 * MiB, 512 << 30, 8);
      cases.push(['1 GiB qcow2, 512 MiB data', qcow2, 'qcow2'], ['4 TiB qcow2, 64 MiB data', huge, 'qcow2']);
    } else {
      console.log('(qcow2 driver not registered yet: qcow2 cases skipped)');
    }
    console.log(`convert -O raw, best wall time / worst peak RSS of ${reps} runs each`);
    for (const [label, src, format] of cases) {
      const q = measure(
        'qemu-img',
        (out) => ['convert', '-f', format, '-O', 'raw', src, out],
        src,
        dir,
        reps,
      );
      const b = measure(
        'node',
        (out) => [BIN, 'convert', '-f', format, '-O', 'raw', src, out],
        src,
        dir,
        reps,
      );
      console.log(
        `${label}:\n` +
          `  qemu-img   ${q.seconds.toFixed(2)} s  ${q.rssMiB.toFixed(0)} MiB\n` +
          `  blockgraph ${b.seconds.toFixed(2)} s  ${b.rssMiB.toFixed(0)} MiB\n` +
          `  ratio      ${(b.seconds / q.seconds).toFixed(2)}x time (target <= 1.5x), ` +
          `${(b.rssMiB / q.rssMiB).toFixed(2)}x RSS (target <= 150 MiB)`,
      );
    }
    const startup = timed('node', [BIN, '--help'], dir);
    console.log(
      `(blockgraph start-up alone, tsx included: ${startup.seconds.toFixed(2)} s, ${startup.rssMiB.toFixed(0)} MiB)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
