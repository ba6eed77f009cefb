/**
 * Binding of the engine's compressed cluster allocation (assembly/qcow2/compressed.ts), next to
 * Qcow2Engine's (engine.ts) and answering in the same WriteAnswer shape, so the writer's step
 * loop serves it unchanged.
 */
import type { BlockgraphExports } from '../wasm/load.ts';
import type { Qcow2Engine, WriteAnswer } from './engine.ts';
import { emptyWriteAnswer, Status } from './engine.ts';

export class CompressedAllocator {
  private readonly exports: BlockgraphExports;
  private readonly answer = emptyWriteAnswer();

  constructor(engine: Qcow2Engine) {
    this.exports = engine.wasmExports();
  }

  /**
   * One step of allocating `bytes` compressed bytes for the guest cluster at `offset`. ALLOC:
   * write them at `host` (after zeroing the new L2 table `newL2`, if nonzero), then commit(`id`).
   * CLUSTER_IN_USE: the cluster holds data. Loads, waits (WAIT_ALLOC: `id`), SHARED_L2 (`bytes`:
   * the L1 index) and OVERLAP as Qcow2Engine.prepareWrite. The answer is reused by the next call.
   */
  prepare(offset: number, bytes: number): WriteAnswer {
    let io = this.io();
    io[0] = BigInt(offset);
    io[1] = BigInt(bytes);
    const a = this.answer;
    a.status = this.exports.qcow2PrepareCompressed();
    io = this.io();
    a.slot = Number(io[0]);
    a.bytes = Number(io[0]);
    a.id = a.status === Status.WAIT_ALLOC ? Number(io[0]) : Number(io[4]);
    a.host = Number(io[1]);
    a.regionStart = Number(io[2]);
    a.loadBytes = Number(io[2]);
    a.loadPtr = Number(io[3]);
    a.newL2 = Number(io[5]);
    return a;
  }

  /** Links allocation `id` (its data is written). */
  commit(id: number): void {
    const status = this.exports.qcow2CommitCompressed(id);
    if (status !== Status.OK) throw new Error(`qcow2: no compressed allocation ${id} to commit`);
  }

  /** The data of allocation `id` could not be written: its refcounts are queued for freeing. */
  abort(id: number): void {
    this.exports.qcow2AbortCompressed(id);
  }

  /** The request/result area (a fresh view: memory may have grown since the last call). */
  private io(): BigUint64Array {
    return new BigUint64Array(this.exports.memory.buffer, this.exports.qcow2Io() >>> 0, 16);
  }
}
