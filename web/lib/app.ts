/**
 * What the panels share: the worker client and a change signal. A panel that changes the graph
 * or the kept disks calls `changed()`; panels that show them subscribe with `onChange`.
 */
import type { BlockgraphClient } from '../../src/client/index.ts';

export class App {
  private readonly listeners = new Set<() => void>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly client: BlockgraphClient) {}

  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  changed(): void {
    for (const listener of this.listeners) listener();
  }

  /**
   * Runs `fn` once every earlier storage operation finished. The disks list opens each kept
   * image read-only for its info, and Chromium refuses to delete an OPFS file that has an open
   * access handle (the refusal reads as QEMU's lock error): listing and deleting take turns.
   */
  storage<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }
}
