/**
 * The worker half of bench/worker-roundtrip.ts: the blockgraph worker's own API
 * (src/worker/api.ts), exposed over comlink exactly as src/worker/worker.ts exposes it, plus
 * `timeDirect`, which makes the same API calls from inside the worker, without the boundary.
 */
import { expose } from 'comlink';
import { WasmIo } from '../src/wasm/io.ts';
import { createWorkerApi } from '../src/worker/api.ts';
import { registerErrorTransfer } from '../src/worker/errors.ts';
import { medianMicros, type BatchPlan } from './batch-timer.ts';

registerErrorTransfer();
const api = createWorkerApi(WasmIo.load());

export type RoundTripOp = 'read' | 'write';

/** Median µs per `op` of `len` bytes at offset 0 of drive `id`, called in this worker. */
function timeDirect(id: string, op: RoundTripOp, len: number, plan: BatchPlan): Promise<number> {
  return op === 'read'
    ? medianMicros(
        plan,
        () => 0,
        () => api.driveRead(id, 0, len),
      )
    : medianMicros(
        plan,
        () => new Uint8Array(len),
        (data) => api.driveWrite(id, 0, data),
      );
}

const bench = { ...api, timeDirect };
export type RoundTripWorkerApi = typeof bench;
expose(bench);
