/**
 * The dedicated Worker entry: hosts the WebAssembly module, the block graph, its QMP monitor and
 * all protocol I/O, and exposes WorkerApi via comlink.
 */
import { expose } from 'comlink';
import { setDefaultProtocol } from '../config/filename.ts';
import { WasmIo } from '../wasm/io.ts';
import { createWorkerApi } from './api.ts';
import { registerErrorTransfer } from './errors.ts';

registerErrorTransfer();
// A worker has no files to open by path: plain names are Blobs the page registered.
setDefaultProtocol('blob');
const io = WasmIo.load();
// A load failure is reported to each caller (they await `io`), not as an unhandled rejection.
io.catch(() => {});
// Expose at once: messages posted while nothing listens would be lost.
expose(createWorkerApi(io));
