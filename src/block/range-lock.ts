/**
 * Byte ranges held exclusively (QEMU's serialising requests, block-copy's in-flight tasks,
 * mirror_wait_on_conflicts): an acquire waits until no held range overlaps its own.
 */
export class RangeLock {
  private readonly held = new Set<{ start: number; end: number; done: Promise<void> }>();

  /** Holds [start, end) once nothing overlapping is held; the returned function releases it. */
  async acquire(start: number, end: number): Promise<() => void> {
    for (;;) {
      const busy = [...this.held].find((h) => h.start < end && start < h.end);
      if (!busy) break;
      await busy.done;
    }
    let release!: () => void;
    const entry = { start, end, done: new Promise<void>((resolve) => (release = resolve)) };
    this.held.add(entry);
    return () => {
      this.held.delete(entry);
      release();
    };
  }

  /** Runs `fn` holding [start, end), released however `fn` ends. */
  async run<T>(start: number, end: number, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(start, end);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
