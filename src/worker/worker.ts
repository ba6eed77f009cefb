/** The dedicated Worker entry: hosts the WebAssembly module and exposes WorkerApi via comlink. */
import { expose } from 'comlink';
import { WasmIo } from '../wasm/io.ts';
import { createWorkerApi } from './api.ts';
import { registerErrorTransfer } from './errors.ts';

registerErrorTransfer();
const io = WasmIo.load();
// A load failure is reported to each caller (they await `io`), not as an unhandled rejection.
io.catch(() => {});
// Expose at once: messages posted while nothing listens would be lost.
expose(createWorkerApi(io));
