/**
 * The page half of bench/worker-roundtrip.ts: a BlockgraphClient on the bench worker, a memory
 * drive, and each read/write size timed through a drive handle (the worker boundary: comlink
 * messages, buffers transferred) and by the worker itself (the same API call, no boundary).
 */
import { wrap } from 'comlink';
import { BlockgraphClient } from '../src/client/index.ts';
import { medianMicros, type BatchPlan } from './batch-timer.ts';
import type { RoundTripOp, RoundTripWorkerApi } from './worker-roundtrip.worker.ts';

export interface RoundTripCase {
  readonly op: RoundTripOp;
  readonly len: number;
  readonly plan: BatchPlan;
}

export interface RoundTripResult extends RoundTripCase {
  /** Median µs per call through a drive handle. */
  readonly boundaryMicros: number;
  /** Median µs per call made inside the worker. */
  readonly directMicros: number;
}

export async function run(cases: readonly RoundTripCase[]): Promise<RoundTripResult[]> {
  const worker = new Worker(new URL('./worker-roundtrip.worker.ts', import.meta.url), { type: 'module' });
  const client = new BlockgraphClient(worker);
  const direct = wrap<RoundTripWorkerApi>(worker);
  try {
    const drive = await client.addDrive({ id: 'mem', node: { driver: 'memory', size: 64 << 20 } });
    const results: RoundTripResult[] = [];
    for (const c of cases) {
      const boundaryMicros =
        c.op === 'read'
          ? await medianMicros(
              c.plan,
              () => 0,
              () => drive.read(0, c.len),
            )
          : await medianMicros(
              c.plan,
              () => new Uint8Array(c.len),
              (data) => drive.write(0, data),
            );
      const directMicros = await direct.timeDirect(drive.id, c.op, c.len, c.plan);
      results.push({ ...c, boundaryMicros, directMicros });
    }
    return results;
  } finally {
    client.terminate();
  }
}
