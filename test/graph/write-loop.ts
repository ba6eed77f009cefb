/**
 * A concurrent writer through a BlockBackend with a shadow copy, for the live-change tests: it
 * keeps a few random writes in flight at all times, applying each to the shadow in call order
 * (BlockBackend completes overlapping requests in call order, so the shadow is what the disk
 * must hold). `stop` waits for the last writes; any failed request fails it.
 */
import type { BlockBackend } from '../../src/block/backend.ts';

export interface WriteLoop {
  readonly shadow: Uint8Array;
  /** Writes completed so far. */
  readonly done: () => number;
  /** Resolves once at least `n` more writes have completed (the loop is making progress). */
  progress(n: number): Promise<void>;
  stop(): Promise<void>;
}

const MAX_WRITE = 24 * 1024;

export function startWriteLoop(blk: BlockBackend, seed: number, inFlight = 4): WriteLoop {
  const size = blk.length();
  const shadow = new Uint8Array(size);
  let state = seed >>> 0 || 1;
  const rand = (n: number) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  let running = true;
  let completed = 0;
  let failure: unknown;
  const waiters: { at: number; resolve: () => void }[] = [];
  const one = async (): Promise<void> => {
    while (running && failure === undefined) {
      const len = 1 + rand(MAX_WRITE);
      const offset = rand(size - len);
      const data = new Uint8Array(len).fill(rand(255) + 1);
      data[0] = completed & 0xff;
      shadow.set(data, offset);
      await blk.write(offset, data);
      completed++;
      // Yield to the event loop as a guest does: over synchronous storage the writes would
      // otherwise complete in microtasks alone and starve timers and I/O callbacks.
      await new Promise((resolve) => setImmediate(resolve));
      for (const w of waiters.filter((w) => completed >= w.at)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const workers = Array.from({ length: inFlight }, () =>
    one().catch((err: unknown) => {
      failure ??= err;
    }),
  );
  return {
    shadow,
    done: () => completed,
    progress: (n) => new Promise((resolve) => waiters.push({ at: completed + n, resolve })),
    async stop() {
      running = false;
      await Promise.all(workers);
      if (failure !== undefined) throw failure;
    },
  };
}

/** Reads the whole backend. */
export async function readAll(blk: BlockBackend): Promise<Uint8Array> {
  const out = new Uint8Array(blk.length());
  await blk.read(0, out);
  return out;
}
