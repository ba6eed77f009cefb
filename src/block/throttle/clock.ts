/**
 * The clock throttling runs on (QEMU's QEMU_CLOCK_REALTIME and its timers). Injected, so tests
 * drive time by hand and check exact waits.
 */
export interface ThrottleClock {
  /** Nanoseconds on a monotonic clock. */
  now(): number;
  /** Calls `callback` once `now()` has reached `atNs`; returns the function that cancels it. */
  setTimer(atNs: number, callback: () => void): () => void;
}

/** The real clock: performance.now() and setTimeout (millisecond granularity). */
export const REALTIME_CLOCK: ThrottleClock = {
  now: () => Math.round(performance.now() * 1e6),
  setTimer(atNs, callback) {
    const handle = setTimeout(callback, Math.max(0, Math.ceil((atNs - REALTIME_CLOCK.now()) / 1e6)));
    return () => clearTimeout(handle);
  },
};
