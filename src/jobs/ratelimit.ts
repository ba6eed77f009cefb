/**
 * QEMU's include/qemu/ratelimit.h as block jobs use it (blockjob.c, BLOCK_JOB_SLICE_TIME): time
 * is cut into 100 ms slices of `speed / 10` bytes each; work done beyond a slice's quota extends
 * the slice, and the job sleeps until the extended slice ends. Speed 0 is unlimited.
 */
const SLICE_MS = 100;

export class RateLimit {
  private quota = 0;
  private sliceStart = 0;
  private sliceEnd = 0;
  private dispatched = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Bytes per second; 0 removes the limit (ratelimit_set_speed). */
  setSpeed(bytesPerSecond: number): void {
    this.quota = (bytesPerSecond * SLICE_MS) / 1000;
  }

  /**
   * Accounts `bytes` of work and returns how many milliseconds to wait before doing more
   * (ratelimit_calculate_delay): 0 while the current slice has quota left.
   */
  delay(bytes: number): number {
    if (this.quota === 0) return 0;
    const now = this.now();
    if (this.sliceEnd < now) {
      this.sliceStart = now;
      this.sliceEnd = now + SLICE_MS;
      this.dispatched = 0;
    }
    this.dispatched += bytes;
    if (this.dispatched < this.quota) return 0;
    this.sliceEnd = this.sliceStart + (this.dispatched / this.quota) * SLICE_MS;
    return this.sliceEnd - now;
  }
}
