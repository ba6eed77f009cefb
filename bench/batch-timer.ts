/**
 * Per-call timing for calls far shorter than the clock's resolution: performance.now() is
 * coarsened to 100 µs in pages that are not cross-origin isolated, so calls are timed in batches.
 * No imports: the page and workers of the browser benchmarks load it as it is.
 */

export interface BatchPlan {
  /** Batches timed (one more runs first, untimed, as a warm-up). */
  readonly batches: number;
  /** Calls per batch, one after the other. */
  readonly perBatch: number;
}

/**
 * The median over `plan.batches` batches of the mean microseconds per call of `call`; `prepare`
 * makes each call's argument before its batch starts, outside the timing.
 */
export async function medianMicros<T>(
  plan: BatchPlan,
  prepare: () => T,
  call: (arg: T) => Promise<unknown>,
): Promise<number> {
  const means: number[] = [];
  for (let b = 0; b <= plan.batches; b++) {
    const args = Array.from({ length: plan.perBatch }, prepare);
    const start = performance.now();
    for (const arg of args) await call(arg);
    if (b > 0) means.push(((performance.now() - start) * 1000) / plan.perBatch);
  }
  means.sort((x, y) => x - y);
  return means[means.length >> 1]!;
}
