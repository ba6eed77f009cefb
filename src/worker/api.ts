/**
 * The worker's comlink surface. Buffers arrive and leave transferred (the client wraps them in
 * comlink.transfer), never cloned. Calls made before the module has loaded wait for it.
 */
import { transfer } from 'comlink';
import type { WasmIo } from '../wasm/io.ts';

export function createWorkerApi(io: Promise<WasmIo>) {
  return {
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
  };
}

export type WorkerApi = ReturnType<typeof createWorkerApi>;
