/**
 * The worker's comlink surface: the contract between the page and the worker that hosts the
 * block graph. Buffers cross transferred (the client wraps them in comlink.transfer, the worker
 * returns them so), never cloned. Calls made before the WebAssembly module has loaded wait for it.
 * Failures are QmpErrors, which arrive on the page with their class and text (errors.ts).
 */
import { transfer } from 'comlink';
import { genericError } from '../block/errors.ts';
import type { BlockNode } from '../block/node.ts';
import { parseBlockdev } from '../config/blockdev.ts';
import { registerBlob, registeredBlobs, unregisterBlob, type BlobLike } from '../drivers/protocol/blob.ts';
import { attachMachine, type SavevmMachine } from '../frontends/savevm.ts';
import { BlockGraph } from '../graph/graph.ts';
import { addRootNode } from '../qmp/commands/block.ts';
import { QmpMonitor } from '../qmp/monitor.ts';
import type { WasmIo } from '../wasm/io.ts';
import { DriveTable, type DriveInfo, type DriveSpec } from './drives.ts';
import { QmpChannel, type QmpEvent } from './qmp-channel.ts';
import {
  deleteStoredImage,
  listStoredImages,
  type StoredImage,
  type StoredImageRef,
} from './stored-images.ts';

export type { DriveInfo, DriveSpec, QmpEvent, StoredImage, StoredImageRef };

export type NodeCounters = BlockNode['counters'];

/** A machine on the page, as savevm needs it (SavevmMachine without its description). */
export type PageMachine = Omit<SavevmMachine, 'description' | 'vmClockNsec'>;

export function createWorkerApi(io: Promise<WasmIo>) {
  // `quit` ends the page's QMP connection, as it ends QEMU's.
  const monitor = new QmpMonitor((emit) => new BlockGraph(emit), { onQuit: () => channel.close() });
  const channel = new QmpChannel(monitor);
  const drives = new DriveTable(monitor.graph);
  let blobSerial = 0;
  let detachMachine: (() => void) | undefined;

  return {
    /** Answers once the worker runs: the client's sign that the module loaded. */
    ping(): true {
      return true;
    },

    /** True if every byte of `data` is zero. */
    async isZero(data: Uint8Array): Promise<boolean> {
      return (await io).isZero(data);
    },

    /** Index of the first byte of `data` that is not `pattern`, or -1. */
    async verifyPattern(data: Uint8Array, pattern: number): Promise<number> {
      return (await io).verifyPattern(data, pattern);
    },

    /** A new buffer of `len` bytes of `pattern`, transferred to the caller. */
    async fillPattern(len: number, pattern: number): Promise<Uint8Array> {
      const data = new Uint8Array(len);
      (await io).fillPattern(data, pattern);
      return transfer(data, [data.buffer]);
    },

    /** A QMP command: its return value, or a QmpError with the response's class and text. */
    execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
      return channel.execute(command, args);
    },

    /** Calls `listener` (a comlink proxy) with every QMP event from now on. */
    subscribe(listener: (event: QmpEvent) => unknown): void {
      channel.listen((event) => {
        // The page may be gone; its events are then nobody's.
        Promise.resolve(listener(event)).catch(() => {});
      });
    },

    /**
     * Registers a Blob or File (passed by reference: postMessage does not copy its bytes) for the
     * `blob` driver, under `name`, else the File's name, else `blobN`. Returns the name.
     */
    registerBlob(blob: BlobLike & { name?: unknown }, name?: string): string {
      let chosen = name ?? (typeof blob.name === 'string' && blob.name !== '' ? blob.name : undefined);
      while (chosen === undefined) {
        const candidate = `blob${blobSerial++}`;
        if (!registeredBlobs().includes(candidate)) chosen = candidate;
      }
      registerBlob(chosen, blob);
      return chosen;
    },

    /** Forgets a registered name (nodes open on it keep reading it). */
    unregisterBlob(name: string): void {
      if (!unregisterBlob(name)) throw genericError(`No blob named '${name}' is registered`);
    },

    /**
     * A -blockdev argument (keyval, typed by the schema as QEMU types command-line options, or
     * JSON, typed strictly as QMP): opens the node as blockdev-add does; QEMU's texts when refused.
     */
    async blockdevAdd(arg: string): Promise<void> {
      const { options, source } = parseBlockdev(arg);
      await addRootNode(monitor.graph, options, source);
    },

    /** Makes a drive from a -drive string or a DriveSpec. */
    addDrive(spec: string | DriveSpec): Promise<DriveInfo> {
      return drives.add(spec);
    },

    /** Flushes and closes a drive. */
    removeDrive(id: string): Promise<void> {
      return drives.remove(id);
    },

    /** `length` bytes at `offset`, in a new buffer transferred to the caller. */
    async driveRead(id: string, offset: number, length: number): Promise<Uint8Array> {
      const data = new Uint8Array(length);
      await drives.get(id).read(offset, data);
      return transfer(data, [data.buffer]);
    },

    /** Writes `data` (transferred here by the caller) at `offset`. */
    driveWrite(id: string, offset: number, data: Uint8Array): Promise<void> {
      return drives.get(id).write(offset, data);
    },

    driveFlush(id: string): Promise<void> {
      return drives.get(id).flush();
    },

    driveDiscard(id: string, offset: number, bytes: number): Promise<void> {
      return drives.get(id).discard(offset, bytes);
    },

    /** Zeroes `bytes` at `offset`; `unmap` lets the drive deallocate them (BlockBackend.writeZeroes). */
    driveWriteZeroes(id: string, offset: number, bytes: number, unmap: boolean): Promise<void> {
      return drives.get(id).writeZeroes(offset, bytes, { unmap });
    },

    driveLength(id: string): number {
      return drives.get(id).length();
    },

    /**
     * Makes `machine` (a comlink proxy of the page's emulator: every member is async, so the
     * proxy is a PageMachine as it is) the one savevm / loadvm save and restore, replacing any
     * earlier one; `description` names its configuration (loadvm refuses a state saved under
     * another). null detaches it.
     */
    attachMachine(description: string, machine: PageMachine | null): void {
      detachMachine?.();
      detachMachine = undefined;
      if (!machine) return;
      detachMachine = attachMachine(monitor.graph, {
        description,
        pause: () => machine.pause(),
        resume: () => machine.resume(),
        saveState: () => machine.saveState(),
        restoreState: (state) => machine.restoreState(transfer(state, [state.buffer])),
      });
    },

    /** Each node's request counters (BlockNode.counters) by node-name, for the demo's graph. */
    nodeCounters(): Record<string, NodeCounters> {
      return Object.fromEntries([...monitor.graph.nodes].map(([name, node]) => [name, { ...node.counters }]));
    },

    /** The images kept in this browser (OPFS files, idb images). */
    listStoredImages(): Promise<StoredImage[]> {
      return listStoredImages();
    },

    /** Deletes a kept image; refused while a node has it open for writing. */
    deleteStoredImage(ref: StoredImageRef): Promise<void> {
      return deleteStoredImage(ref);
    },
  };
}

export type WorkerApi = ReturnType<typeof createWorkerApi>;
