/** A ThrottleClock tests move by hand: timers fire in time order, woken requests run between. */
import type { ThrottleClock } from '../../../src/block/throttle/clock.ts';

interface Timer {
  readonly at: number;
  readonly callback: () => void;
}

/** Lets every promise chain that can make progress do so. */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class ManualClock implements ThrottleClock {
  private t = 0;
  private timers: Timer[] = [];

  now(): number {
    return this.t;
  }

  setTimer(at: number, callback: () => void): () => void {
    const timer = { at, callback };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Timers armed and not yet fired or cancelled. */
  get armed(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ns`, firing each timer due on the way at its own time. */
  async advance(ns: number): Promise<void> {
    const end = this.t + ns;
    for (;;) {
      await settle();
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.t = Math.max(this.t, due.at);
      due.callback();
    }
    this.t = end;
    await settle();
  }
}
