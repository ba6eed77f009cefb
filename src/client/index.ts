/**
 * The main-thread API: starts the blockgraph Worker (graph, QMP monitor, protocol I/O) and calls
 * it through comlink. Buffers given to it are transferred, so the caller's buffer is detached
 * (byteLength 0) afterwards. Failures arrive as QmpErrors with QEMU's class and text; a worker
 * that fails to load rejects every call with a message saying so.
 */
import { proxy, releaseProxy, transfer, wrap, type Remote } from 'comlink';
import type {
  DriveSpec,
  NodeCounters,
  PageMachine,
  QmpEvent,
  StoredImage,
  StoredImageRef,
  WorkerApi,
} from '../worker/api.ts';
import { registerErrorTransfer } from '../worker/errors.ts';
import { DriveHandle } from './drive.ts';

export { DriveHandle };
export type { DriveSpec, NodeCounters, PageMachine, QmpEvent, StoredImage, StoredImageRef };

/** Runs one call on the worker, rejecting if the worker failed to load or was terminated. */
export type WorkerCall = <T>(fn: (worker: Remote<WorkerApi>) => Promise<T>) => Promise<T>;

export class BlockgraphClient {
  private readonly remote: Remote<WorkerApi>;
  private readonly listeners = new Set<(event: QmpEvent) => void>();
  private subscribed = false;
  private fail!: (err: Error) => void;
  /** Rejects when the worker is unusable; every call races it. */
  private readonly dead = new Promise<never>((_, reject) => (this.fail = reject));

  constructor(private readonly worker: Worker) {
    registerErrorTransfer();
    this.dead.catch(() => {});
    this.remote = wrap<WorkerApi>(worker);
    // Until the worker answers, an error event means it never loaded; comlink would wait forever.
    const onError = (e: Event) => this.fail(new Error(`blockgraph worker failed to load: ${loadError(e)}`));
    worker.addEventListener('error', onError);
    void this.call((w) => w.ping()).then(
      () => worker.removeEventListener('error', onError),
      () => {},
    );
  }

  /** Starts a new worker (vite bundles the worker entry from this exact expression). */
  static start(): BlockgraphClient {
    return new BlockgraphClient(
      new Worker(new URL('../worker/worker.ts', import.meta.url), { type: 'module', name: 'blockgraph' }),
    );
  }

  /** A QMP command's return value; a failure is a QmpError with the response's class and text. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    return this.call((w) => w.execute(command, args) as Promise<T>);
  }

  /**
   * Calls `listener` with every QMP event from now on, in the order the worker emitted them
   * (events travel apart from command returns: one may arrive just after its command returned).
   * Returns the function that stops it.
   */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    if (!this.subscribed) {
      this.subscribed = true;
      const fanOut = (event: QmpEvent) => this.listeners.forEach((l) => l(event));
      void this.call((w) => w.subscribe(proxy(fanOut))).catch(() => {});
    }
    return () => this.listeners.delete(listener);
  }

  /**
   * Registers a Blob or File with the worker's `blob` driver (the Blob crosses by reference; its
   * bytes are not copied) as `name`, else the File's name, else a generated one; returns the name.
   * A plain filename in the worker (-drive file=NAME, a qcow2's backing file) means this name.
   */
  registerBlob(blob: Blob, name?: string): Promise<string> {
    return this.call((w) => w.registerBlob(blob, name));
  }

  unregisterBlob(name: string): Promise<void> {
    return this.call((w) => w.unregisterBlob(name));
  }

  /** A -blockdev argument (keyval or JSON), opened as blockdev-add opens its options. */
  blockdevAdd(arg: string): Promise<void> {
    return this.call((w) => w.blockdevAdd(arg));
  }

  /** A drive from a -drive string (`file=disk.qcow2,snapshot=on`) or a DriveSpec. */
  async addDrive(spec: string | DriveSpec): Promise<DriveHandle> {
    const info = await this.call((w) => w.addDrive(spec));
    return new DriveHandle(info, this.call);
  }

  /**
   * Makes `machine` the one savevm / loadvm (QMP, HMP) save and restore; `description` names its
   * configuration. null detaches it. The state crosses as a copy: a few MiB per savevm.
   */
  attachMachine(description: string, machine: PageMachine | null): Promise<void> {
    return this.call((w) => w.attachMachine(description, machine && proxy(machine)));
  }

  /** Each node's request counters (reads, writes, bytes) by node-name; not part of QMP. */
  nodeCounters(): Promise<Record<string, NodeCounters>> {
    return this.call((w) => w.nodeCounters());
  }

  /** The images kept in this browser's storage (OPFS files, idb images). */
  listStoredImages(): Promise<StoredImage[]> {
    return this.call((w) => w.listStoredImages());
  }

  /** Deletes a kept image; refused while a node has it open for writing. */
  deleteStoredImage(ref: StoredImageRef): Promise<void> {
    return this.call((w) => w.deleteStoredImage(ref));
  }

  isZero(data: Uint8Array): Promise<boolean> {
    return this.call((w) => w.isZero(transfer(data, [data.buffer])));
  }

  verifyPattern(data: Uint8Array, pattern: number): Promise<number> {
    return this.call((w) => w.verifyPattern(transfer(data, [data.buffer]), pattern));
  }

  fillPattern(len: number, pattern: number): Promise<Uint8Array> {
    return this.call((w) => w.fillPattern(len, pattern));
  }

  /** Stops the worker; calls still pending and later ones reject. */
  terminate(): void {
    this.fail(new Error('blockgraph worker was terminated'));
    this.remote[releaseProxy]();
    this.worker.terminate();
  }

  private readonly call: WorkerCall = (fn) => {
    try {
      return Promise.race([fn(this.remote), this.dead]);
    } catch (err) {
      // A released proxy throws at once (after terminate); callers expect a rejection.
      return Promise.reject(err as Error);
    }
  };
}

/** Chromium reports a module that failed to load with a plain Event, which has no message. */
function loadError(e: Event): string {
  const message = (e as ErrorEvent).message;
  return message || 'its module did not load (network, MIME type or syntax error; see the console)';
}
