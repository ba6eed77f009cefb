/**
 * One 4 KiB and one 1 MiB read and write through the worker boundary, in Chromium: a page calls a
 * drive handle (src/client) on a memory drive in the blockgraph worker's API, the buffers
 * transferred both ways; the same API call made inside the worker shows what the boundary adds.
 * Prints the median µs per call and MB/s of each, the boundary's cost per call, and the ratio.
 * Not a test: a Playwright-driven script on its own dev server.
 *
 *   npx tsx bench/worker-roundtrip.ts [batches=21]
 *
 * BENCH_PORT (default 5293) is the dev server's port.
 */
import { fsPath, openBenchPage } from './browser.ts';
import type { RoundTripCase, RoundTripResult } from './worker-roundtrip.page.ts';

const PORT = Number(process.env.BENCH_PORT ?? 5293);
const PAGE_MODULE = fsPath(new URL('./worker-roundtrip.page.ts', import.meta.url));
const KiB = 1024;
const MiB = 1024 * KiB;

function cases(batches: number): RoundTripCase[] {
  return [
    { len: 4 * KiB, perBatch: 200 },
    { len: MiB, perBatch: 20 },
  ].flatMap(({ len, perBatch }) =>
    (['read', 'write'] as const).map((op) => ({ op, len, plan: { batches, perBatch } })),
  );
}

function print(results: readonly RoundTripResult[]): void {
  const mbs = (len: number, micros: number) => (len / micros).toFixed(0);
  console.log('call           through the boundary      in the worker       boundary adds   ratio');
  console.log('                   µs/call    MB/s       µs/call    MB/s         µs/call');
  for (const r of results) {
    const name = `${r.op} ${r.len >= MiB ? `${r.len / MiB} MiB` : `${r.len / KiB} KiB`}`;
    console.log(
      `${name.padEnd(14)}${r.boundaryMicros.toFixed(1).padStart(11)}${mbs(r.len, r.boundaryMicros).padStart(8)}` +
        `${r.directMicros.toFixed(1).padStart(14)}${mbs(r.len, r.directMicros).padStart(8)}` +
        `${(r.boundaryMicros - r.directMicros).toFixed(1).padStart(16)}` +
        `${(r.boundaryMicros / r.directMicros).toFixed(2).padStart(7)}x`,
    );
  }
}

async function main(): Promise<void> {
  const batches = Number(process.argv[2] ?? 21);
  const { page, close } = await openBenchPage(PORT);
  try {
    const results = await page.evaluate(
      async ([url, cs]) => ((await import(url)) as typeof import('./worker-roundtrip.page.ts')).run(cs),
      [PAGE_MODULE, cases(batches)] as const,
    );
    console.log(
      `Chromium, memory drive, median of ${batches} batches (200 calls of 4 KiB, 20 of 1 MiB each), ` +
        'one call at a time:\n',
    );
    print(results);
  } finally {
    await close();
  }
}

await main();
