/**
 * The main-thread API: starts the blockgraph Worker and calls it through comlink. Every method
 * transfers the buffer it is given, so the caller's buffer is detached (byteLength 0) afterwards.
 */
import { releaseProxy, transfer, wrap, type Remote } from 'comlink';
import type { WorkerApi } from '../worker/api.ts';
import { registerErrorTransfer } from '../worker/errors.ts';

export class BlockgraphClient {
  private readonly remote: Remote<WorkerApi>;

  constructor(private readonly worker: Worker) {
    registerErrorTransfer();
    this.remote = wrap<WorkerApi>(worker);
  }

  /** Starts a new worker (vite bundles the worker entry from this exact expression). */
  static start(): BlockgraphClient {
    return new BlockgraphClient(
      new Worker(new URL('../worker/worker.ts', import.meta.url), { type: 'module', name: 'blockgraph' }),
    );
  }

  isZero(data: Uint8Array): Promise<boolean> {
    return this.remote.isZero(transfer(data, [data.buffer]));
  }

  verifyPattern(data: Uint8Array, pattern: number): Promise<number> {
    return this.remote.verifyPattern(transfer(data, [data.buffer]), pattern);
  }

  fillPattern(len: number, pattern: number): Promise<Uint8Array> {
    return this.remote.fillPattern(len, pattern);
  }

  terminate(): void {
    this.remote[releaseProxy]();
    this.worker.terminate();
  }
}
